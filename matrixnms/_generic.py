"""Array-API implementations: the reference path shared by NumPy, Torch and CuPy.

Everything here is written once against the namespace ``xp`` of the caller's arrays (array-api-compat), so
results stay in the caller's library and on its device. Large intermediates are chunked so that no step
holds more than ``_config.CHUNK_BYTES`` beyond the (K, K) IoU/intersection matrix it produces.

Matrix NMS (SOLOv2, Eq. 4), for candidates sorted by descending score, ``iou[i, j]`` for i < j and the
same label (0 elsewhere), ``cmax[i] = max_k iou[k, i]``:

    decay[j] = min(1, min_{i < j} f(iou[i, j]) / f(cmax[i]))

with ``f(x) = exp(-x^2 / sigma)`` (gaussian) or ``f(x) = 1 - x`` (linear; a term with ``f(cmax[i]) = 0`` is
ignored). The gaussian minimum is taken over the exponents, ``exp(min_i (cmax[i]^2 - iou[i, j]^2) / sigma)``,
so no intermediate overflows. Entries that are not (i < j, same label) contribute 1, which never lowers the
minimum because the top candidate's own term ``f(iou[0, j]) <= 1`` is always present.
"""

from __future__ import annotations

from typing import Any, Callable

import array_api_compat

from . import _config
from ._dispatch import register


def blocks(total: int, size: int):
    size = max(1, int(size))
    for start in range(0, total, size):
        yield start, min(start + size, total)


def default_float(xp: Any, x: Any) -> Any:
    if array_api_compat.is_torch_array(x):
        import torch

        return torch.get_default_dtype()
    return xp.float64


def flat(xp: Any, masks: Any) -> Any:
    n, h, w = masks.shape
    return xp.reshape(masks, (n, h * w))


def _intersections(xp: Any, flat_a: Any, flat_b: Any | None, rows_a: Any = None):
    """Exact pairwise intersection counts and areas of 0/1 rows.

    Args:
        flat_a (Array[N, P]): 0/1 rows. ``rows_a`` optionally selects and orders them.
        flat_b (Array[M, P] or None): second set; None means the (selected) first set.

    Returns:
        (Array[N, M] float, Array[N] float64, Array[M] float64): counts (float32 while exact, else
        float64), and the areas of both sets.
    """
    dev = array_api_compat.device(flat_a)
    n = flat_a.shape[0] if rows_a is None else rows_a.shape[0]
    m = n if flat_b is None else flat_b.shape[0]
    pixels = flat_a.shape[1]
    work = xp.float32 if pixels < _config.EXACT_F32 else xp.float64
    itemsize = 4 if work == xp.float32 else 8
    step = min(max(1, _config.CHUNK_BYTES // (itemsize * (n + m) + 1)), _config.EXACT_F32 - 1)
    inter = xp.zeros((n, m), dtype=work, device=dev)
    area_a = xp.zeros((n,), dtype=xp.float64, device=dev)
    area_b = xp.zeros((m,), dtype=xp.float64, device=dev) if flat_b is not None else None
    for start, stop in blocks(pixels, step):
        a = flat_a[:, start:stop]
        if rows_a is not None:
            # integer indexing, not xp.take: torch's index_select on a strided bool view is ~100x slower
            a = a[rows_a, :]
        a = xp.astype(a, work)
        b = a if flat_b is None else xp.astype(flat_b[:, start:stop], work)
        inter = inter + xp.matmul(a, xp.matrix_transpose(b))
        area_a = area_a + xp.astype(xp.sum(a, axis=1), xp.float64)
        if area_b is not None:
            area_b = area_b + xp.astype(xp.sum(b, axis=1), xp.float64)
    return inter, area_a, (area_a if area_b is None else area_b)


def ratio(xp: Any, inter: Any, union: Any) -> Any:
    """inter / union, 0 where union is 0 (two empty masks or zero-area boxes)."""
    positive = union > 0
    return xp.where(positive, inter / xp.where(positive, union, xp.ones_like(union)), xp.zeros_like(union))


def overlap(xp: Any, inter: Any, area_a: Any, area_b: Any, metric: str) -> Any:
    """The pair metric from intersections and broadcastable areas: ``"iou"`` inter / union, ``"ios"``
    inter / the smaller area; 0 where that denominator is 0."""
    if metric == "ios":
        return ratio(xp, inter, xp.minimum(area_a, area_b))
    return ratio(xp, inter, area_a + area_b - inter)


@register("mask_iou", "generic")
def mask_iou(masks_a: Any, masks_b: Any | None, metric: str) -> Any:
    xp = array_api_compat.array_namespace(masks_a)
    out = default_float(xp, masks_a)
    flat_b = None if masks_b is None else flat(xp, masks_b)
    inter, area_a, area_b = _intersections(xp, flat(xp, masks_a), flat_b)
    inter = xp.astype(inter, xp.float64)
    iou = overlap(xp, inter, area_a[:, None], area_b[None, :], metric)
    return xp.astype(iou, out)


@register("mask_iou_sorted", "generic")
def mask_iou_sorted(masks: Any, order: Any, labels: Any | None, metric: str) -> Any:
    xp = array_api_compat.array_namespace(masks)
    inter, area, _ = _intersections(xp, flat(xp, masks), None, rows_a=order)
    inter = xp.astype(inter, xp.float64)
    iou = overlap(xp, inter, area[:, None], area[None, :], metric)
    if labels is not None:
        iou = xp.where(labels[:, None] == labels[None, :], iou, xp.zeros_like(iou))
    return iou


def box_areas(xp: Any, boxes: Any) -> Any:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou_block(xp: Any, a: Any, b: Any, area_a: Any, area_b: Any, metric: str = "iou") -> Any:
    width = xp.clip(xp.minimum(a[:, None, 2], b[None, :, 2]) - xp.maximum(a[:, None, 0], b[None, :, 0]), min=0)
    height = xp.clip(xp.minimum(a[:, None, 3], b[None, :, 3]) - xp.maximum(a[:, None, 1], b[None, :, 1]), min=0)
    inter = width * height
    iou = overlap(xp, inter, area_a[:, None], area_b[None, :], metric)
    return xp.clip(iou, min=0, max=1)


def _float_boxes(xp: Any, boxes: Any) -> Any:
    if xp.isdtype(boxes.dtype, "real floating"):
        return boxes
    return xp.astype(boxes, default_float(xp, boxes))


@register("box_iou", "generic")
def box_iou(boxes_a: Any, boxes_b: Any | None, metric: str) -> Any:
    xp = array_api_compat.array_namespace(boxes_a)
    a = _float_boxes(xp, boxes_a)
    b = a if boxes_b is None else xp.astype(_float_boxes(xp, boxes_b), a.dtype)
    area_a, area_b = box_areas(xp, a), box_areas(xp, b)
    rows = _config.CHUNK_BYTES // (_config.BLOCK_BYTES_PER_PAIR * max(1, b.shape[0]))
    parts = [box_iou_block(xp, a[s:e], b, area_a[s:e], area_b, metric) for s, e in blocks(a.shape[0], rows)]
    if not parts:
        return xp.zeros((0, b.shape[0]), dtype=a.dtype, device=array_api_compat.device(a))
    return xp.concat(parts, axis=0)


@register("masks_to_boxes", "generic")
def masks_to_boxes(masks: Any, fmt: str) -> Any:
    xp = array_api_compat.array_namespace(masks)
    n, h, w = masks.shape
    dev = array_api_compat.device(masks)
    if n == 0:
        return xp.zeros((0, 4), dtype=xp.float32, device=dev)
    binary = masks if xp.isdtype(masks.dtype, "bool") else masks != 0  # no full-size copy for bool masks
    rows = xp.any(binary, axis=2)  # (N, H)
    cols = xp.any(binary, axis=1)  # (N, W)
    nonempty = xp.any(rows, axis=1)
    y0 = xp.argmax(xp.astype(rows, xp.int8), axis=1)
    y1 = h - 1 - xp.argmax(xp.astype(xp.flip(rows, axis=1), xp.int8), axis=1)
    x0 = xp.argmax(xp.astype(cols, xp.int8), axis=1)
    x1 = w - 1 - xp.argmax(xp.astype(xp.flip(cols, axis=1), xp.int8), axis=1)
    boxes = xp.astype(xp.stack([x0, y0, x1, y1], axis=1), xp.float32)
    return _convert_inclusive(xp, boxes, nonempty, fmt)


def _convert_inclusive(xp: Any, boxes: Any, nonempty: Any, fmt: str) -> Any:
    """From inclusive [x0, y0, x_last, y_last] to ``fmt``; empty masks give zeros."""
    if fmt != "xyxy_inclusive":
        boxes = xp.concat([boxes[:, :2], boxes[:, 2:] + 1], axis=1)
    if fmt == "xywh":
        boxes = xp.concat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    return xp.where(nonempty[:, None], boxes, xp.zeros_like(boxes))


def decay_from_iou_blocks(
    xp: Any, k: int, iou_block: Callable[[int, int], Any], labels: Any | None, kernel: str, sigma: float,
    dtype: Any, device: Any,
) -> Any:
    """Matrix NMS decay of K sorted candidates from their IoU, one column block at a time.

    Args:
        iou_block: ``iou_block(s, e)`` returns the (K, e - s) IoU of all candidates vs candidates s..e-1.
        labels (Array[K] or None): labels of the sorted candidates; IoU across labels counts as 0.

    Returns:
        Array[K], dtype: decay factors in [0, 1].
    """
    if k == 0:
        return xp.zeros((0,), dtype=dtype, device=device)
    position = xp.arange(k, device=device)
    width = _config.CHUNK_BYTES // (_config.BLOCK_BYTES_PER_PAIR * k)

    def masked(s: int, e: int) -> tuple[Any, Any]:
        valid = position[:, None] < position[None, s:e]
        if labels is not None:
            valid = valid & (labels[:, None] == labels[None, s:e])
        iou = xp.clip(xp.astype(iou_block(s, e), dtype), min=0, max=1)
        return xp.where(valid, iou, xp.zeros_like(iou)), valid

    # cmax[i]: the largest IoU of candidate i with a higher-scored candidate of its label
    cmax = xp.concat([xp.max(masked(s, e)[0], axis=0) for s, e in blocks(k, width)])
    parts = []
    for s, e in blocks(k, width):
        iou, valid = masked(s, e)
        if kernel == "gaussian":
            # candidate i may itself be suppressed: compensate by f(cmax[i]), in the exponent
            exponent = xp.where(valid, (cmax[:, None] ** 2 - iou**2) / sigma, xp.zeros_like(iou))
            parts.append(xp.exp(xp.min(exponent, axis=0)))
        else:
            fc = 1 - cmax
            usable = fc > 0  # a duplicate (cmax = 1) of a higher candidate no longer suppresses
            denominator = xp.where(usable, fc, xp.ones_like(fc))
            ratio = xp.where(valid & usable[:, None], (1 - iou) / denominator[:, None], xp.ones_like(iou))
            parts.append(xp.min(ratio, axis=0))
    return xp.clip(xp.concat(parts), min=0, max=1)


@register("mask_decay", "generic")
def mask_decay(masks: Any, order: Any, labels: Any | None, areas: Any | None, kernel: str, sigma: float,
               dtype: Any, metric: str) -> Any:
    """The ``mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by ``tests/test_matrix_nms.py::test_masks_agree_with_reference`` (every
    place) and, over many pixel chunks and column blocks,
    ``tests/test_kernels.py::test_many_blocks_chunks_and_threads_agree_with_reference``.
    """
    xp = array_api_compat.array_namespace(masks)
    dev = array_api_compat.device(masks)
    inter, computed, _ = _intersections(xp, flat(xp, masks), None, rows_a=order)
    area = xp.astype(computed if areas is None else areas, dtype)

    def iou_block(s: int, e: int) -> Any:
        block = xp.astype(inter[:, s:e], dtype)
        return overlap(xp, block, area[:, None], area[None, s:e], metric)

    return decay_from_iou_blocks(xp, order.shape[0], iou_block, labels, kernel, sigma, dtype, dev)


@register("box_decay", "generic")
def box_decay(boxes: Any, order: Any, labels: Any | None, kernel: str, sigma: float, dtype: Any,
              metric: str) -> Any:
    """The ``box_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by ``tests/test_matrix_nms.py::test_boxes_agree_with_reference`` and
    ``tests/test_kernels.py::test_box_decay_over_several_blocks_agrees_with_reference``.
    """
    xp = array_api_compat.array_namespace(boxes)
    dev = array_api_compat.device(boxes)
    b = xp.astype(xp.take(boxes, order, axis=0), dtype)
    area = box_areas(xp, b)

    def iou_block(s: int, e: int) -> Any:
        return box_iou_block(xp, b, b[s:e], area, area[s:e], metric)

    return decay_from_iou_blocks(xp, order.shape[0], iou_block, labels, kernel, sigma, dtype, dev)
