"""The traditional baselines Matrix NMS replaces: greedy NMS on boxes and masks, and Soft-NMS.

Greedy NMS (torchvision's semantics). Candidates are visited by descending score (equal scores: lower input
index first); a candidate is kept unless its IoU with an already kept candidate is strictly greater than
``iou_threshold``. ``batched_nms`` and ``labels`` run it per class (IoU between different labels counts as 0).

Soft-NMS (Bodla et al., ICCV 2017). Repeatedly select the candidate with the highest *current* score (ties:
lower input index), then multiply the current score of every remaining candidate j by

    gaussian:  exp(-iou(sel, j)^2 / sigma)                      (sigma = 0.5 as in the paper)
    linear:    1 - iou(sel, j)   if iou(sel, j) > iou_threshold, else 1   (iou_threshold = Nt = 0.3)

and drop the candidates whose current score fell below ``score_threshold`` (0.001). As in the paper, the
gaussian kernel has no IoU threshold: ``iou_threshold`` only affects the linear kernel.

Sigma in other libraries. The original Soft-NMS code, Detectron and mmcv's ``soft_nms`` use the paper's form
``exp(-iou^2 / sigma)`` with ``sigma = 0.5``: pass their sigma unchanged (mmcv's linear kernel decays at
``iou >= iou_threshold``, the paper's code and this one at ``iou > iou_threshold``). TensorFlow's
``non_max_suppression_with_scores(soft_nms_sigma=s)`` and OpenVINO's ``NonMaxSuppression`` (``soft_nms_sigma``)
compute ``exp(-0.5 * iou^2 / s)``: use ``sigma = 2 * s`` here (TensorFlow also keeps its ``iou_threshold`` as a
hard cut; its documentation passes ``iou_threshold=1.0`` for pure Soft-NMS). Matrix NMS's gaussian
``f(x) = exp(-x^2 / sigma)`` is the same function, so with the same sigma the two methods decay a lone
overlapping pair identically.

Numerics. IoU is computed in float64 on every backend (boxes: torchvision's continuous ``box_iou``, 0 where the
union is 0; masks: the exact counts of ``mask_iou``), so a decision at ``iou == iou_threshold`` never depends on
the input dtype or the backend. Soft-NMS decays in float64 and returns scores in the input's dtype.

Backends. On NumPy and Torch CPU arrays the sequential loops run in Numba kernels
(``backends/_numba_greedy``); otherwise (``backend="generic"`` / ``"torch"``, CUDA, CuPy) they run as one
vectorised step of array operations per candidate, with no host synchronisation inside the loop.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import array_api_compat

from ._dispatch import resolve
from ._forms import as_frames, is_sparse_form, resolve_sparse, to_host, to_sparse
from ._typing import Array
from ._validate import (
    check_batched_nms_labels, check_boxes, check_detections, check_iou_threshold, check_kernel, check_labels,
    check_masks, check_metric, check_positive, check_scores, check_threshold, namespace,
)


def _by_score(xp: Any, scores: Array) -> Array:
    """Indices sorted by descending score; equal scores keep input order (lower index first)."""
    return xp.astype(xp.argsort(scores, descending=True, stable=True), xp.int64)


def _empty_keep(xp: Any, scores: Array) -> Array:
    return xp.zeros((0,), dtype=xp.int64, device=array_api_compat.device(scores))


# --- public functions -----------------------------------------------------------------------------------


def _greedy_order(xp: Any, scores: Array, labels: Array | None, iou_threshold: Any, backend: str,
                  check_items: Callable[[int], None]) -> tuple[float, Array | None, Array | None]:
    """The checks and sort every greedy NMS starts with; ``check_items(n)`` checks its masks or boxes.

    Returns:
        (threshold, order, sorted labels): ``order`` (by decreasing score, ties by lower index) is None when
        there are no candidates.
    """
    n = check_scores(xp, scores)
    check_items(n)
    if labels is not None:
        check_labels(xp, labels, n)
    threshold = check_iou_threshold("iou_threshold", iou_threshold)
    if n == 0:
        return threshold, None, None
    order = _by_score(xp, scores)
    return threshold, order, None if labels is None else xp.take(labels, order)


def _greedy_boxes(boxes: Array, scores: Array, labels: Array | None, iou_threshold: Any, backend: str,
                  metric: Any) -> Array:
    xp = namespace(boxes=boxes, scores=scores, labels=labels)
    threshold, order, sorted_labels = _greedy_order(xp, scores, labels, iou_threshold, backend,
                                                    lambda n: check_boxes(xp, boxes, n))
    metric = check_metric(metric)
    _, greedy = resolve("greedy_boxes", scores, backend)
    if order is None:
        return _empty_keep(xp, scores)
    return order[greedy(boxes, order, sorted_labels, threshold, metric)]


def nms(boxes: Array, scores: Array, iou_threshold: float, *, metric: Literal["iou", "ios"] = "iou",
        backend: str = "auto") -> Array:
    """Greedy NMS on boxes, with torchvision's ``nms`` semantics.

    Args:
        boxes (Array[N, 4], real): ``x1, y1, x2, y2`` with ``x2 >= x1``, ``y2 >= y1``.
        scores (Array[N], floating): any order; NaN and inf are rejected.
        iou_threshold (float in [0, 1]): a box is suppressed when its IoU with a kept, higher-scored box is
            strictly greater. 1 keeps everything; 0 suppresses every box that overlaps a kept one at all.
        metric: ``"iou"`` (default) intersection over union, or ``"ios"`` intersection over the smaller of the
            two areas (supervision's IOS: a box inside a larger one scores 1); 0 for empty masks and
            zero-area boxes under either metric.
            ``iou_threshold`` then applies to it.
        backend: ``"auto"``, ``"generic"``, ``"numba"``, ``"torch"`` or ``"cupy"``; for tests and benchmarks.

    Returns:
        Array[K], int64: indices of the kept boxes by decreasing score (ties: lower index first), in the
        library and on the device of ``scores``.
    """
    return _greedy_boxes(boxes, scores, None, iou_threshold, backend, metric)


def batched_nms(
    boxes: Array, scores: Array, labels: Array, iou_threshold: float, *, metric: Literal["iou", "ios"] = "iou",
    backend: str = "auto",
) -> Array:
    """Greedy NMS per class (torchvision's ``batched_nms``): boxes of different labels never suppress.

    Args:
        boxes (Array[N, 4], real): ``x1, y1, x2, y2``.
        scores (Array[N], floating): any order.
        labels (Array[N], int): class of each box.
        iou_threshold (float in [0, 1]): suppress when IoU > iou_threshold with a kept box of the same label.
        metric: ``"iou"`` or ``"ios"``, as in :func:`nms`.
        backend: as in :func:`nms`.

    Returns:
        Array[K], int64: kept indices by decreasing score over all classes (ties: lower index first).
    """
    check_batched_nms_labels(labels)
    return _greedy_boxes(boxes, scores, labels, iou_threshold, backend, metric)


def mask_nms(
    masks: Array, scores: Array, iou_threshold: float, labels: Array | None = None, *,
    metric: Literal["iou", "ios"] = "iou", backend: str = "auto",
) -> Array:
    """Greedy NMS on binary masks, with the IoU of :func:`matrixnms.mask_iou`.

    Args:
        masks (Array[N, *S], bool or 0/1): binary masks of any trailing shape; two empty masks have IoU 0.
            Also COCO RLE dicts or a :class:`matrixnms.CroppedMasks`, as in :func:`matrixnms.matrix_nms`.
        scores (Array[N], floating): any order.
        iou_threshold (float in [0, 1]): suppress when IoU > iou_threshold with a kept, higher-scored mask.
        labels (Array[N], int, optional): per-class NMS when given (IoU across labels counts as 0).
        metric: ``"iou"`` or ``"ios"`` (intersection over the smaller mask), as in :func:`nms`.
        backend: as in :func:`nms`.

    Returns:
        Array[K], int64: kept indices by decreasing score (ties: lower index first).
    """
    sparse = is_sparse_form(masks)
    xp = namespace(masks=None if sparse else masks, scores=scores, labels=labels)
    threshold, order, sorted_labels = _greedy_order(
        xp, scores, labels, iou_threshold, backend,
        (lambda n: to_sparse(masks, "masks", n)) if sparse else (lambda n: check_masks(xp, masks, n)))
    metric = check_metric(metric)
    iou_fn = _mask_iou_sorted(xp, masks, scores, backend)
    _, greedy = resolve("greedy_iou", scores, backend)
    if order is None:
        return _empty_keep(xp, scores)
    return order[greedy(iou_fn(order, sorted_labels, metric), threshold)]


def _mask_iou_sorted(xp: Any, masks: Any, scores: Array, backend: str) -> Callable[[Array, Any, str], Array]:
    """``fn(order, labels, metric)``: the (K, K) float64 overlap of ``masks[order]`` in the place of ``scores``;
    RLE and cropped masks are counted on the CPU and the matrix moved there."""
    if is_sparse_form(masks):
        sparse, fn = to_sparse(masks), resolve_sparse("sparse_mask_iou_sorted", backend)
        device = array_api_compat.device(scores)
        return lambda order, labels, metric: xp.asarray(fn(sparse, to_host(order), to_host(labels), metric),
                                                        device=device)
    frames = as_frames(xp, masks)
    _, fn = resolve("mask_iou_sorted", scores, backend)
    return lambda order, labels, metric: fn(frames, order, labels, metric)


def soft_nms(
    scores: Array,
    masks: Array | None = None,
    *,
    boxes: Array | None = None,
    labels: Array | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float | None = 0.001,
    metric: Literal["iou", "ios"] = "iou",
    backend: str = "auto",
) -> tuple[Array, Array]:
    """Soft-NMS (Bodla et al., ICCV 2017) on masks or boxes: decay overlapping scores one selection at a time.

    Candidates with ``score < score_threshold`` are dropped first. Then, repeatedly: select the highest
    current score (ties: lower index), decay every remaining candidate by ``f(iou with the selected one)``
    and drop those now below ``score_threshold``. See the module docstring for the kernels and how ``sigma``
    maps to other libraries (TensorFlow / ONNX ``soft_nms_sigma = s`` is ``sigma = 2 * s`` here).

    Args:
        scores (Array[N], floating): detection scores, any order. Soft-NMS multiplies scores, so only
            non-negative scores are meaningful: negative ones are always below ``score_threshold``.
        masks (Array[N, *S], bool or 0/1): binary masks of any trailing shape, COCO RLE dicts or a
            :class:`matrixnms.CroppedMasks` (as in :func:`matrixnms.matrix_nms`); exactly one of ``masks`` and
            ``boxes``.
        boxes (Array[N, 4], real): ``x1, y1, x2, y2`` boxes.
        labels (Array[N], int, optional): class labels; candidates of different labels never decay each other.
        kernel: ``"gaussian"`` ``exp(-iou^2 / sigma)`` (ignores ``iou_threshold``, as in the paper) or
            ``"linear"`` ``1 - iou`` applied only when ``iou > iou_threshold``.
        sigma: the paper's gaussian sigma (> 0).
        iou_threshold (float in [0, 1]): the linear kernel's Nt.
        score_threshold (float >= 0 or None): drop candidates whose current score is below it; None is the
            same as 0 (keep every non-negative score).
        metric: ``"iou"`` or ``"ios"`` (intersection over the smaller area), the overlap the kernels read.
        backend: as in :func:`nms`.

    Returns:
        (Array[K] int64, Array[K] scores.dtype): ``keep``, the selected indices in selection order, which is
        descending decayed score (ties: lower index first), and their decayed scores. Same library and
        device as ``scores``.
    """
    if masks is not None and is_sparse_form(masks):
        masks = to_sparse(masks)
    xp, n = check_detections("soft_nms", scores, masks, boxes, labels)
    check_kernel(kernel)
    sigma = check_positive("sigma", sigma)
    iou_threshold = check_iou_threshold("iou_threshold", iou_threshold)
    score_threshold = check_threshold("score_threshold", score_threshold) or 0.0
    metric = check_metric(metric)
    if masks is not None:
        iou_fn = _mask_iou_sorted(xp, masks, scores, backend)
        _, soft = resolve("soft_nms_iou", scores, backend)
    else:
        _, soft = resolve("soft_nms_boxes", scores, backend)

    device = array_api_compat.device(scores)
    # candidates in increasing index order, so that "first maximum" means "lowest index" in the loops
    candidates = xp.arange(n, dtype=xp.int64, device=device)[scores >= score_threshold]
    if candidates.shape[0] == 0:
        return _empty_keep(xp, scores), xp.zeros((0,), dtype=scores.dtype, device=device)
    current = xp.astype(xp.take(scores, candidates), xp.float64)
    cand_labels = None if labels is None else xp.take(labels, candidates)
    options = (kernel, sigma, iou_threshold, score_threshold)
    if masks is not None:
        positions, values = soft(iou_fn(candidates, cand_labels, metric), current, *options)
    else:
        positions, values = soft(boxes, candidates, current, cand_labels, *options, metric)

    keep = xp.take(candidates, positions)
    decayed = xp.astype(values, scores.dtype)
    # Selection order is already descending with ties by lower index in float64; re-sorting (stable) in the
    # output dtype keeps that promise when rounding to float32/float16 creates new ties.
    by_index = xp.argsort(keep, stable=True)
    keep, decayed = xp.take(keep, by_index), xp.take(decayed, by_index)
    ranking = xp.argsort(decayed, descending=True, stable=True)
    return xp.take(keep, ranking), xp.take(decayed, ranking)


__all__ = ["nms", "batched_nms", "mask_nms", "soft_nms"]
