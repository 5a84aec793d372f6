"""Array-API implementations of the baselines' sequential loops (greedy NMS and Soft-NMS).

One vectorised step of array operations per candidate, with no host synchronisation inside the loop, so they
serve Torch (CPU and CUDA), CuPy and ``backend="generic"`` alike. IoU is float64 with the operations of
``_generic.box_iou_block`` (boxes) or taken from the ``mask_iou_sorted`` matrix (masks), so a decision at
``iou == iou_threshold`` never depends on the backend. The semantics are in ``matrixnms.baselines``; the
agreement with the loop-by-loop references is pinned by ``tests/test_greedy_nms.py``.
"""

from __future__ import annotations

from typing import Callable

import array_api_compat

from . import _config
from ._dispatch import register
from ._generic import blocks, box_areas, box_iou_block
from ._typing import Array


def _row_block(k: int) -> int:
    """Rows of a (rows, K) float64 IoU block within the chunk budget."""
    return max(1, _config.CHUNK_BYTES // (_config.BLOCK_BYTES_PER_PAIR * max(1, k)))


def _greedy(xp, k: int, over_rows: Callable[[int, int], Array], device) -> Array:
    """Greedy NMS over K candidates sorted by score.

    Args:
        over_rows: ``over_rows(s, e)`` returns the (e - s, K) bool matrix "candidate i (s <= i < e) would
            suppress candidate j": IoU > threshold and same label. Only j > i is read.

    Returns:
        Array[K], bool: kept flags.
    """
    removed = xp.zeros((k,), dtype=xp.bool, device=device)
    for s, e in blocks(k, _row_block(k)):
        over = over_rows(s, e)
        for i in range(s, e):
            # a removed candidate suppresses nothing: gate its row by its own flag instead of branching on
            # it, which would cost a device-to-host copy per step
            removed[i + 1:] |= over[i - s, i + 1:] & ~removed[i]
    return ~removed


def box_over_rows(xp, boxes: Array, order: Array, labels: Array | None, iou_threshold: float,
                  metric: str = "iou") -> Callable[[int, int], Array]:
    """``over_rows(s, e)``: the (e - s, K) bool "overlap > iou_threshold and same label" rows of boxes[order],
    from the float64 IoU (or IoS) of ``_generic.box_iou_block`` (so hard NMS variants decide ``iou == t``
    alike)."""
    b = xp.astype(xp.take(boxes, order, axis=0), xp.float64)
    area = box_areas(xp, b)

    def over_rows(s: int, e: int) -> Array:
        over = box_iou_block(xp, b[s:e], b, area[s:e], area, metric) > iou_threshold
        if labels is not None:
            over = over & (labels[s:e, None] == labels[None, :])
        return over

    return over_rows


@register("greedy_boxes", "generic")
def greedy_boxes(boxes: Array, order: Array, labels: Array | None, iou_threshold: float, metric: str) -> Array:
    xp = array_api_compat.array_namespace(boxes)
    over_rows = box_over_rows(xp, boxes, order, labels, iou_threshold, metric)
    return _greedy(xp, order.shape[0], over_rows, array_api_compat.device(order))


@register("greedy_iou", "generic")
def greedy_iou(iou: Array, iou_threshold: float) -> Array:
    xp = array_api_compat.array_namespace(iou)
    return _greedy(xp, iou.shape[0], lambda s, e: iou[s:e] > iou_threshold, array_api_compat.device(iou))


def _soft(xp, current: Array, iou_row: Callable[[Array], Array], kernel: str, sigma: float,
          iou_threshold: float, score_threshold: float) -> tuple[Array, Array]:
    """Soft-NMS over K candidates in increasing input-index order.

    Args:
        current (Array[K], float64): the candidates' scores, all >= score_threshold.
        iou_row: ``iou_row(i)`` with ``i`` an (1,) int64 array returns the (K,) float64 IoU of candidate i
            with every candidate (0 across labels).

    Returns:
        (Array[M] int64, Array[M] float64): positions of the selected candidates in selection order and
        their scores when selected.
    """
    k = current.shape[0]
    device = array_api_compat.device(current)
    position = xp.arange(k, dtype=xp.int64, device=device)
    alive = xp.ones((k,), dtype=xp.bool, device=device)
    picked = xp.zeros((k,), dtype=xp.int64, device=device)
    values = xp.zeros((k,), dtype=xp.float64, device=device)
    valid = xp.zeros((k,), dtype=xp.bool, device=device)
    lowest = xp.full((k,), -float("inf"), dtype=xp.float64, device=device)
    for step in range(k):
        # argmax returns the first maximum, i.e. the lowest input index among equal current scores
        i = xp.reshape(xp.argmax(xp.where(alive, current, lowest)), (1,))
        # nothing left alive: argmax points at a dead candidate and this step changes nothing
        ok = xp.take(alive, i)
        picked[step:step + 1] = i
        values[step:step + 1] = xp.take(current, i)
        valid[step:step + 1] = ok
        alive = alive & (position != i)
        iou = iou_row(i)
        if kernel == "gaussian":
            factor = xp.exp(-(iou * iou) / sigma)
        else:
            factor = xp.where(iou > iou_threshold, 1 - iou, xp.ones_like(iou))
        current = xp.where(alive, current * factor, current)
        alive = alive & (current >= score_threshold)
    return picked[valid], values[valid]


@register("soft_nms_iou", "generic")
def soft_nms_iou(iou: Array, scores: Array, kernel: str, sigma: float, iou_threshold: float,
                 score_threshold: float) -> tuple[Array, Array]:
    xp = array_api_compat.array_namespace(iou)
    return _soft(xp, scores, lambda i: xp.take(iou, i, axis=0)[0], kernel, sigma, iou_threshold, score_threshold)


@register("soft_nms_boxes", "generic")
def soft_nms_boxes(boxes: Array, candidates: Array, scores: Array, labels: Array | None, kernel: str,
                   sigma: float, iou_threshold: float, score_threshold: float, metric: str) -> tuple[Array, Array]:
    xp = array_api_compat.array_namespace(boxes)
    k = candidates.shape[0]
    device = array_api_compat.device(candidates)
    b = xp.astype(xp.take(boxes, candidates, axis=0), xp.float64)
    area = box_areas(xp, b)
    options = (kernel, sigma, iou_threshold, score_threshold)

    def iou_rows(rows: Array) -> Array:
        block = box_iou_block(xp, xp.take(b, rows, axis=0), b, xp.take(area, rows), area, metric)
        if labels is None:
            return block
        same = xp.take(labels, rows)[:, None] == labels[None, :]
        return xp.where(same, block, xp.zeros_like(block))

    if 8 * k * k <= _config.CHUNK_BYTES:
        # the whole (K, K) matrix fits the budget: one row lookup per step instead of ~20 small ops
        iou = xp.concat([iou_rows(xp.arange(s, e, dtype=xp.int64, device=device))
                         for s, e in blocks(k, _row_block(k))], axis=0)
        return soft_nms_iou(iou, scores, *options)
    return _soft(xp, scores, lambda i: iou_rows(i)[0], *options)
