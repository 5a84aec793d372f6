"""Matrix NMS for a batch of images in one call: (B, N) candidates in, (B, K) padded results out.

``batched_matrix_nms`` gives every image exactly what ``matrix_nms`` gives it alone (same order of operations,
same tie rules, same decay; see ``matrixnms.nms``), with fixed-shape results so that a batch needs no Python
loop over its images. Images with fewer real candidates than N mark their padding with ``valid``.

The whole call is array operations whose shapes follow the input shapes and the options: the thresholds
become masks, the sorts are batched sorts with -inf keys for non-candidates, the decay sees only pairs of
candidates in play. On a GPU it is a fixed handful of kernel launches with no host synchronisation after the
argument checks (whose value part, one reduction, is skipped while a graph is traced, compiled or captured).
On the CPU the Numba kernels pack and decay the candidates of every image in one parallel pass; for boxes
they also sort, threshold and rank each image in compiled code (``whole_batch``), the images over threads.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import array_api_compat

from ._dispatch import resolve
from ._typing import Array
from ._validate import check_batched_detections, check_nms_options


def _along(xp: Any, x: Array, index: Array) -> Array:
    return xp.take_along_axis(x, index, axis=1)


def _sort_first(xp: Any, first: Array, key: Array) -> Array:
    """(B, M) positions ordering each row: ``first`` entries by ``key`` descending, then the rest; ties by
    lower position (an ascending stable sort of the negated keys: no flips, unlike a descending one)."""
    keys = xp.where(first, -key, xp.full_like(key, math.inf))
    return xp.argsort(keys, axis=1, stable=True)


def batched_matrix_nms(
    scores: Array,
    masks: Array | None = None,
    *,
    boxes: Array | None = None,
    valid: Array | None = None,
    labels: Array | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    score_threshold: float | None = None,
    post_threshold: float | None = None,
    pre_top_k: int | None = None,
    post_top_k: int | None = None,
    backend: str = "auto",
) -> tuple[Array, Array, Array]:
    """Matrix NMS on each image of a batch; row b equals ``matrix_nms`` on image b's valid candidates.

    Options are ``matrix_nms``'s and apply per image (``pre_top_k`` candidates per image, ``post_top_k``
    results per image).

    Args:
        scores (Array[B, N], floating): detection scores, any order. NaN or inf is an error in a valid slot
            and ignored in an invalid one.
        masks (Array[B, N, H, W], bool or 0/1): binary masks; exactly one of ``masks`` and ``boxes``. Every
            slot must hold 0/1 values (padding is usually zeros), valid or not.
        boxes (Array[B, N, 4], real): ``x1, y1, x2, y2`` boxes; an invalid slot's box is never read.
        valid (Array[B, N], bool, optional): False marks padding, never a candidate. None: every slot.
        labels (Array[B, N], int, optional): class labels; IoU between different labels counts as 0.
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k, backend: as ``matrix_nms``.

    Returns:
        (Array[B, K] int64, Array[B, K] scores.dtype, Array[B] int64): ``keep``, indices into N ordered by
        decayed score (descending, ties by lower index) padded with -1; ``decayed``, their decayed scores
        padded with 0; ``num_kept``, the real entries per row. K = ``post_top_k`` when given, else N. Same
        library and device as ``scores``. ``keep[b, :num_kept[b]]`` and ``decayed[b, :num_kept[b]]`` equal
        ``matrix_nms`` on ``scores[b, valid[b]]`` (indices mapped back to N; scores to the dtype's rounding).
    """
    xp, b, n = check_batched_detections(scores, masks, boxes, valid, labels)
    sigma, score_threshold, post_threshold, pre_top_k, post_top_k = check_nms_options(
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
    _, decay_fn = resolve("batched_mask_decay" if masks is not None else "batched_box_decay", scores, backend)

    dtype = xp.float64 if scores.dtype == xp.float64 else xp.float32
    # (a non-finite score is an error in a valid slot of an eager call; a compiled graph skips value checks,
    # and there, as in the static form, such a score is simply not a candidate)
    candidate = xp.isfinite(scores) if valid is None else valid & xp.isfinite(scores)
    if score_threshold is not None:
        candidate = candidate & (scores >= score_threshold)
    whole_batch = getattr(decay_fn, "whole_batch", None)  # a kernel that does the rest in one pass
    if whole_batch is not None:
        return whole_batch(scores, boxes, candidate, labels, kernel, sigma, pre_top_k, post_threshold, post_top_k,
                           scores.dtype)
    # candidates first by score (ties: lower index), then the rest; pre_top_k keeps the first columns
    order = _sort_first(xp, candidate, scores)[:, :n if pre_top_k is None else min(pre_top_k, n)]
    in_play = _along(xp, candidate, order)
    sorted_labels = None if labels is None else _along(xp, labels, order)

    items = masks if masks is not None else boxes
    decay = decay_fn(items, order, in_play, sorted_labels, kernel, sigma, dtype)
    decayed = xp.astype(_along(xp, scores, order), dtype) * decay
    survives = in_play & (decayed >= (-math.inf if post_threshold is None else post_threshold))
    return _ranked(xp, order, decayed, survives, n, n if post_top_k is None else post_top_k, scores.dtype)


def _ranked(xp: Any, order: Array, decayed: Array, survives: Array, n: int, width: int,
            dtype: Any) -> tuple[Array, Array, Array]:
    """The (B, width) padded results: survivors by decayed score descending, ties by lower input index
    (``order``: indices < n)."""
    b, k = order.shape
    device = array_api_compat.device(order)
    # indices below 2**15 as int16: NumPy sorts 16-bit keys stably by radix, in linear time
    by_index = xp.argsort(xp.astype(order, xp.int16) if n < 2**15 else order, axis=1, stable=True)
    order, decayed, survives = (_along(xp, x, by_index) for x in (order, decayed, survives))
    ranking = _sort_first(xp, survives, decayed)[:, :min(width, k)]
    num_kept = xp.clip(xp.sum(xp.astype(survives, xp.int64), axis=1), max=width)
    filled = xp.arange(ranking.shape[1], device=device)[None, :] < num_kept[:, None]
    keep = xp.where(filled, _along(xp, order, ranking), xp.full_like(ranking, -1))
    kept = xp.astype(_along(xp, decayed, ranking), dtype)
    kept = xp.where(filled, kept, xp.zeros_like(kept))
    if ranking.shape[1] < width:  # more result columns than candidates: padding only
        keep = xp.concat([keep, xp.full((b, width - k), -1, dtype=xp.int64, device=device)], axis=1)
        kept = xp.concat([kept, xp.zeros((b, width - k), dtype=dtype, device=device)], axis=1)
    return keep, kept, num_kept


__all__ = ["batched_matrix_nms"]
