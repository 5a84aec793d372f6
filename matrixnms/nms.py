"""Matrix NMS (Wang et al., SOLOv2, 2020) for binary masks and for boxes.

Every candidate's score is decayed in one parallel step from the IoU matrix of the candidates sorted by
score (Eq. 4 of the paper), instead of greedy NMS's sequential loop:

    decay[j] = min over higher-scored i of f(iou[i, j]) / f(cmax[i]),   cmax[i] = max_k iou[k, i]

gaussian ``f(x) = exp(-x^2 / sigma)`` (the paper's form, sigma = 0.5) or linear ``f(x) = 1 - x``. SOLO and
mmdetection write the gaussian as ``exp(-sigma' * (iou^2 - cmax^2))`` with sigma' = 2.0: the same decay with
sigma' = 1 / sigma. The exact semantics, shared by every backend, are in the module ``_generic``.
"""

from __future__ import annotations

from typing import Any, Literal

import array_api_compat

from ._dispatch import resolve
from ._forms import as_frames, is_sparse_form, resolve_sparse, to_host, to_sparse
from ._typing import Array
from ._validate import check_detections, check_metric, check_nms_options


def _compute_dtype(xp: Any, scores: Array) -> Any:
    return xp.float64 if scores.dtype == xp.float64 else xp.float32


def matrix_nms(
    scores: Array,
    masks: Array | None = None,
    *,
    boxes: Array | None = None,
    labels: Array | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    score_threshold: float | None = None,
    post_threshold: float | None = None,
    pre_top_k: int | None = None,
    post_top_k: int | None = None,
    mask_areas: Array | None = None,
    metric: Literal["iou", "ios"] = "iou",
    backend: str = "auto",
) -> tuple[Array, Array]:
    """Matrix NMS: decay every score by its overlap with higher-scored masks (or boxes), in one step.

    Order of operations: drop ``scores < score_threshold``, keep the ``pre_top_k`` highest, sort (stable:
    equal scores keep input order), decay, drop ``decayed < post_threshold``, keep the ``post_top_k``
    highest decayed.

    Args:
        scores (Array[N], floating): detection scores, any order; NaN and inf are rejected.
        masks (Array[N, *S], bool or 0/1): binary masks of any trailing shape S (``(N, P)`` points,
            ``(N, H, W)``, ``(N, D, H, W)``; the overlap counts every element); exactly one of ``masks`` and
            ``boxes``. Also a sequence of N COCO RLE dicts ``{"size": [H, W], "counts": ...}`` of one size
            (compressed ``bytes`` / ``str`` or uncompressed ``list`` counts, as pycocotools and COCO results
            files hold them) or a :class:`matrixnms.CroppedMasks`: never expanded to full frames; their
            overlap work runs on the CPU (Numba when installed) and the results follow ``scores``.
        boxes (Array[N, 4], float): ``x1, y1, x2, y2`` boxes, area ``(x2 - x1) * (y2 - y1)``.
        labels (Array[N], int, optional): class labels; IoU between different labels counts as 0.
            None means class-agnostic.
        kernel: ``"gaussian"`` ``f(x) = exp(-x^2 / sigma)`` or ``"linear"`` ``f(x) = 1 - x``.
        sigma: the paper's gaussian sigma (> 0). SOLO / mmdetection's ``sigma=2.0`` is ``sigma=0.5`` here.
        score_threshold: keep candidates with ``score >= score_threshold`` before the decay.
        post_threshold: keep results with ``decayed >= post_threshold`` (mmdetection's ``filter_thr``).
        pre_top_k: keep at most this many highest-scored candidates before the decay (``nms_pre``).
        post_top_k: return at most this many results (``max_num``).
        mask_areas (Array[N], optional): precomputed mask areas used for the union (or the smaller area).
        metric: ``"iou"`` (default) intersection over union, or ``"ios"`` intersection over the smaller of the
            two areas (supervision's IOS: a mask nested in a larger one scores 1); 0 for empty masks and
            zero-area boxes under either metric.
            The decay reads this overlap where the paper reads the IoU.
        backend: ``"auto"`` (fastest installed kernel), ``"generic"`` (array-API reference path),
            ``"numba"``, ``"torch"`` or ``"cupy"``; for tests and benchmarks.

    Returns:
        (Array[K] int64, Array[K] scores.dtype): ``keep`` indices into the input, ordered by decayed score
        (descending; ties by lower index), and their decayed scores. Same library and device as ``scores``.
    """
    if masks is not None and is_sparse_form(masks):
        masks = to_sparse(masks)  # COCO RLE or CroppedMasks: the overlap work runs on the CPU
    xp, n = check_detections("matrix_nms", scores, masks, boxes, labels, mask_areas)
    sigma, score_threshold, post_threshold, pre_top_k, post_top_k = check_nms_options(
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
    metric = check_metric(metric)
    sparse = masks is not None and is_sparse_form(masks)
    if sparse:
        decay_fn = resolve_sparse("sparse_mask_decay", backend)
    else:
        _, decay_fn = resolve("mask_decay" if masks is not None else "box_decay", scores, backend)

    device = array_api_compat.device(scores)
    dtype = _compute_dtype(xp, scores)
    candidates = xp.arange(n, dtype=xp.int64, device=device)
    if score_threshold is not None:
        candidates = candidates[scores >= score_threshold]
    ranking = xp.argsort(xp.take(scores, candidates), descending=True, stable=True)
    if pre_top_k is not None:
        ranking = ranking[:pre_top_k]
    order = xp.take(candidates, ranking)
    sorted_labels = None if labels is None else xp.take(labels, order)

    if sparse:
        areas = None if mask_areas is None else xp.take(mask_areas, order)
        decay = decay_fn(masks, to_host(order), to_host(sorted_labels), to_host(areas), kernel, sigma, metric)
        decay = xp.asarray(decay, dtype=dtype, device=device)
    elif masks is not None:
        masks = as_frames(xp, masks)
        areas = None if mask_areas is None else xp.take(mask_areas, order)
        decay = decay_fn(masks, order, sorted_labels, areas, kernel, sigma, dtype, metric)
    else:
        decay = decay_fn(boxes, order, sorted_labels, kernel, sigma, dtype, metric)
    decayed = xp.astype(xp.take(scores, order), dtype) * decay

    if post_threshold is not None:
        passed = decayed >= post_threshold
        order, decayed = order[passed], decayed[passed]
    # final ranking by decayed score; equal decayed scores by lower input index
    by_index = xp.argsort(order, stable=True)
    order, decayed = xp.take(order, by_index), xp.take(decayed, by_index)
    ranking = xp.argsort(decayed, descending=True, stable=True)
    if post_top_k is not None:
        ranking = ranking[:post_top_k]
    keep = xp.take(order, ranking)
    return keep, xp.astype(xp.take(decayed, ranking), scores.dtype)
