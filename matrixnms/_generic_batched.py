"""Array-API batched Matrix NMS decay: B images at once, no per-image loop and no host synchronisation.

The candidates of image b are ``masks[b, order[b]]`` (or boxes), sorted by descending score; ``in_play[b]``
marks the real ones (a prefix of the row: padding, invalid slots and candidates below ``score_threshold``
were sorted to the end with -inf keys). Pairs (i, j) count only when i < j, both are in play and (with
labels) their labels agree, so every image gets exactly the decay ``_generic.mask_decay`` gives its real
candidates alone (the formulas are in ``_generic``), operation for operation in the same dtype.

Every step is a tensor operation whose shape follows the input shapes: the Python loops run over pixel
chunks and column blocks, never over images or values, so on a GPU the batch is a fixed handful of kernel
launches, and the path can be captured in a CUDA graph. Temporaries stay within ``_config.CHUNK_BYTES``
beyond the (B, K, K) intersection counts: (B, K, pixel chunk) gathered masks, (B, K, column block) IoU.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import array_api_compat

from . import _config
from ._dispatch import register
from ._generic import blocks, ratio


def batch_rows(xp: Any, order: Any, n: int) -> Any:
    """Flat (B * K,) row indices into a (B * N, ...) view of per-image arrays for the (B, K) ``order``."""
    b = order.shape[0]
    offsets = xp.arange(b, dtype=xp.int64, device=array_api_compat.device(order)) * n
    return xp.reshape(order + offsets[:, None], (-1,))


def _mask_counts(xp: Any, masks: Any, order: Any) -> tuple[Any, Any]:
    """Exact (B, K, K) intersection counts (float32 while exact, else float64) and (B, K) float64 areas of
    ``masks[b, order[b]]``, pixel chunk by pixel chunk."""
    b, n, h, w = masks.shape
    k = order.shape[1]
    pixels = h * w
    device = array_api_compat.device(masks)
    work = xp.float32 if pixels < _config.EXACT_F32 else xp.float64
    itemsize = 4 if work == xp.float32 else 8
    step = min(max(1, _config.CHUNK_BYTES // (2 * itemsize * b * k + 1)), _config.EXACT_F32 - 1)
    rows = batch_rows(xp, order, n)
    flat = xp.reshape(masks, (b * n, pixels))
    inter = xp.zeros((b, k, k), dtype=work, device=device)
    area = xp.zeros((b, k), dtype=xp.float64, device=device)
    for start, stop in blocks(pixels, step):
        # integer indexing of a pixel slice: gathers only this chunk of the chosen candidates
        chunk = xp.reshape(xp.astype(flat[:, start:stop][rows, :], work), (b, k, stop - start))
        inter = inter + xp.matmul(chunk, xp.matrix_transpose(chunk))
        area = area + xp.astype(xp.sum(chunk, axis=2), xp.float64)
    return inter, area


def batched_decay(xp: Any, iou_columns: Callable[[int, int], Any], in_play: Any, labels: Any | None, kernel: str,
                  sigma: float, dtype: Any) -> Any:
    """(B, K) decay of sorted candidates from ``iou_columns(s, e)``, their (B, K, e - s) IoU with candidates
    s..e-1, one block of columns at a time; entries not in play get 1."""
    b, k = in_play.shape
    device = array_api_compat.device(in_play)
    if b * k == 0:
        return xp.ones((b, k), dtype=dtype, device=device)
    position = xp.arange(k, device=device)
    width = _config.CHUNK_BYTES // (_config.BLOCK_BYTES_PER_PAIR * b * k)
    zero = xp.zeros((), dtype=dtype, device=device)
    one = xp.ones((), dtype=dtype, device=device)

    def counted(s: int, e: int) -> tuple[Any, Any]:
        """The (B, K, e - s) IoU of the counted pairs (0 elsewhere) and which pairs count."""
        pairs = (position[:, None] < position[None, s:e]) & in_play[:, :, None] & in_play[:, None, s:e]
        if labels is not None:
            pairs = pairs & (labels[:, :, None] == labels[:, None, s:e])
        return xp.where(pairs, xp.clip(xp.astype(iou_columns(s, e), dtype), min=0, max=1), zero), pairs

    spans = list(blocks(k, width))
    # the largest IoU of each candidate with a higher-scored one it pairs with
    highest = xp.concat([xp.max(counted(s, e)[0], axis=1) for s, e in spans], axis=1)[:, :, None]
    columns = []
    for s, e in spans:
        iou, pairs = counted(s, e)
        if kernel == "gaussian":
            # the minimum over exponents, one exp per column: nothing overflows
            columns.append(xp.exp(xp.min(xp.where(pairs, (highest**2 - iou**2) / sigma, zero), axis=1)))
            continue
        remaining = 1 - highest
        # a duplicate (remaining 0) of a higher candidate no longer suppresses anything
        suppresses = pairs & (remaining > 0)
        terms = (1 - iou) / xp.where(remaining > 0, remaining, one)
        columns.append(xp.min(xp.where(suppresses, terms, one), axis=1))
    return xp.clip(xp.concat(columns, axis=1), min=0, max=1)


@register("batched_mask_decay", "generic")
def batched_mask_decay(masks: Any, order: Any, in_play: Any, labels: Any | None, kernel: str, sigma: float,
                       dtype: Any) -> Any:
    xp = array_api_compat.array_namespace(masks)
    inter, counted = _mask_counts(xp, masks, order)
    area = xp.astype(counted, dtype)

    def iou_columns(s: int, e: int) -> Any:
        common = xp.astype(inter[:, :, s:e], dtype)
        return ratio(xp, common, area[:, :, None] + area[:, None, s:e] - common)

    return batched_decay(xp, iou_columns, in_play, labels, kernel, sigma, dtype)


@register("batched_box_decay", "generic")
def batched_box_decay(boxes: Any, order: Any, in_play: Any, labels: Any | None, kernel: str, sigma: float,
                      dtype: Any) -> Any:
    xp = array_api_compat.array_namespace(boxes)
    n = boxes.shape[1]
    flat = xp.reshape(boxes, (boxes.shape[0] * n, 4))
    chosen = xp.astype(xp.reshape(xp.take(flat, batch_rows(xp, order, n), axis=0), (*order.shape, 4)), dtype)
    x1, y1, x2, y2 = (chosen[:, :, c] for c in range(4))
    area = (x2 - x1) * (y2 - y1)

    def iou_columns(s: int, e: int) -> Any:
        # torchvision's box_iou (as _generic.box_iou_block), rows against columns s..e-1 of each image
        width = xp.clip(xp.minimum(x2[:, :, None], x2[:, None, s:e]) - xp.maximum(x1[:, :, None], x1[:, None, s:e]),
                        min=0)
        height = xp.clip(xp.minimum(y2[:, :, None], y2[:, None, s:e]) - xp.maximum(y1[:, :, None], y1[:, None, s:e]),
                         min=0)
        common = width * height
        return ratio(xp, common, area[:, :, None] + area[:, None, s:e] - common)

    return batched_decay(xp, iou_columns, in_play, labels, kernel, sigma, dtype)


def _along(xp: Any, x: Any, index: Any) -> Any:
    return xp.take_along_axis(x, index, axis=1)


def _sort_first(xp: Any, first: Any, key: Any) -> Any:
    """(B, M) positions ordering each row: ``first`` entries by ``key`` descending, then the rest; ties by
    lower position (an ascending stable sort of the negated keys: no flips, unlike a descending one)."""
    keys = xp.where(first, -key, xp.full_like(key, math.inf))
    return xp.argsort(keys, axis=1, stable=True)


def _ranked(xp: Any, order: Any, decayed: Any, survives: Any, n: int, width: int,
            dtype: Any) -> tuple[Any, Any, Any]:
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


def decay_and_rank(decay_fn: Callable[..., Any], items: Any, scores: Any, candidate: Any, labels: Any | None,
                   kernel: str, sigma: float, pre_top_k: int | None, post_threshold: float | None,
                   post_top_k: int | None) -> tuple[Any, Any, Any]:
    """``batched_matrix_nms`` from its candidates (valid, finite, past ``score_threshold``) with a batched
    decay op ``decay_fn``: sort each row (ties: lower index), ``pre_top_k``, decay, ``post_threshold``, rank."""
    xp = array_api_compat.array_namespace(scores)
    n = scores.shape[1]
    dtype = xp.float64 if scores.dtype == xp.float64 else xp.float32
    # candidates first by score (ties: lower index), then the rest; pre_top_k keeps the first columns
    order = _sort_first(xp, candidate, scores)[:, :n if pre_top_k is None else min(pre_top_k, n)]
    in_play = _along(xp, candidate, order)
    sorted_labels = None if labels is None else _along(xp, labels, order)
    decay = decay_fn(items, order, in_play, sorted_labels, kernel, sigma, dtype)
    decayed = xp.astype(_along(xp, scores, order), dtype) * decay
    survives = in_play & (decayed >= (-math.inf if post_threshold is None else post_threshold))
    return _ranked(xp, order, decayed, survives, n, n if post_top_k is None else post_top_k, scores.dtype)


@register("batched_box_nms", "generic")
def batched_box_nms(scores: Any, boxes: Any, candidate: Any, labels: Any | None, kernel: str, sigma: float,
                    pre_top_k: int | None, post_threshold: float | None, post_top_k: int | None,
                    dtype: Any) -> tuple[Any, Any, Any]:
    """The ``batched_box_nms`` op on the array API: ``decay_and_rank`` with the batched box decay (``dtype``,
    the result's, is that of ``scores``)."""
    return decay_and_rank(batched_box_decay, boxes, scores, candidate, labels, kernel, sigma, pre_top_k,
                          post_threshold, post_top_k)
