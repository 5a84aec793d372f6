"""Array-API implementations of Fast NMS and Cluster-NMS: hard NMS as matrix operations, no sequential loop.

For K candidates sorted by score, ``over[i, j]`` is "IoU > iou_threshold and same label" for i < j (False on
and below the diagonal). Fast NMS (YOLACT) keeps j when no column entry is set:

    kept[j] = not any_i over[i, j]

Cluster-NMS (Zheng et al., 2021) restricts the suppressors to the current kept set and iterates,

    kept <- not any_i (kept[i] and over[i, j])      starting from kept = all True (its first step is Fast NMS)

until ``kept`` stops changing. The fixed point is greedy NMS: the decision of j depends only on the kept flags
of the i < j, so once a prefix of the candidates is right it stays right and the next candidate becomes right
one step later; an unchanged ``kept`` satisfies greedy's definition for every j and greedy's result is the only
flag vector that does. The number of steps is at most the longest suppression chain plus one (<= K + 1).

``over`` comes in row blocks within ``_config.CHUNK_BYTES`` (the rows of a block against every candidate), from
the (K, K) float64 ``mask_iou_sorted`` matrix or from ``_generic.box_iou_block`` on the boxes: the same float64
IoU as greedy NMS, so decisions at ``iou == iou_threshold`` agree. Cluster-NMS keeps the bool blocks of
``over`` across its steps when the whole (K, K) bool matrix fits the budget, else recomputes them per step.
Each step of Cluster-NMS syncs once with the host (to see whether ``kept`` changed); Fast NMS never does.
"""

from __future__ import annotations

from typing import Callable

import array_api_compat

from . import _config
from ._dispatch import register
from ._generic import blocks
from ._generic_baselines import _row_block, box_over_rows
from ._typing import Array


def _upper_blocks(xp, k: int, over_rows: Callable[[int, int], Array], device) -> Callable[[int, int], Array]:
    """``over_rows`` restricted to j > i (a candidate never suppresses itself or a higher-scored one)."""
    position = xp.arange(k, dtype=xp.int64, device=device)

    def upper(s: int, e: int) -> Array:
        return over_rows(s, e) & (position[None, :] > position[s:e, None])

    return upper


def _suppressed(xp, k: int, row_blocks, kept: Array | None, device) -> Array:
    """(K,) bool: suppressed by some row i (with ``kept[i]`` when ``kept`` is given) of the ``over`` blocks."""
    out = xp.zeros((k,), dtype=xp.bool, device=device)
    for (s, e), over in row_blocks:
        if kept is not None:
            over = over & kept[s:e, None]
        out = out | xp.any(over, axis=0)
    return out


def _fast(xp, k: int, over_rows: Callable[[int, int], Array], device) -> Array:
    upper = _upper_blocks(xp, k, over_rows, device)
    return ~_suppressed(xp, k, (((s, e), upper(s, e)) for s, e in blocks(k, _row_block(k))), None, device)


def _cluster(xp, k: int, over_rows: Callable[[int, int], Array], device) -> Array:
    upper = _upper_blocks(xp, k, over_rows, device)
    spans = list(blocks(k, _row_block(k)))
    cached = [((s, e), upper(s, e)) for s, e in spans] if k * k <= _config.CHUNK_BYTES else None
    kept = xp.ones((k,), dtype=xp.bool, device=device)
    for _ in range(k + 1):  # the fixed point is reached in at most K + 1 steps (see the module docstring)
        row_blocks = cached if cached is not None else (((s, e), upper(s, e)) for s, e in spans)
        updated = ~_suppressed(xp, k, row_blocks, kept, device)
        if bool(xp.all(updated == kept)):
            break
        kept = updated
    return kept


def _on_iou(decide: Callable, iou: Array, iou_threshold: float) -> Array:
    xp = array_api_compat.array_namespace(iou)
    return decide(xp, iou.shape[0], lambda s, e: iou[s:e] > iou_threshold, array_api_compat.device(iou))


def _on_boxes(decide: Callable, boxes: Array, order: Array, labels: Array | None, iou_threshold: float,
              metric: str) -> Array:
    xp = array_api_compat.array_namespace(boxes)
    over_rows = box_over_rows(xp, boxes, order, labels, iou_threshold, metric)
    return decide(xp, order.shape[0], over_rows, array_api_compat.device(order))


@register("fast_nms_iou", "generic")
def fast_nms_iou(iou: Array, iou_threshold: float) -> Array:
    return _on_iou(_fast, iou, iou_threshold)


@register("cluster_nms_iou", "generic")
def cluster_nms_iou(iou: Array, iou_threshold: float) -> Array:
    return _on_iou(_cluster, iou, iou_threshold)


@register("fast_nms_boxes", "generic")
def fast_nms_boxes(boxes: Array, order: Array, labels: Array | None, iou_threshold: float,
                   metric: str) -> Array:
    return _on_boxes(_fast, boxes, order, labels, iou_threshold, metric)


@register("cluster_nms_boxes", "generic")
def cluster_nms_boxes(boxes: Array, order: Array, labels: Array | None, iou_threshold: float,
                      metric: str) -> Array:
    return _on_boxes(_cluster, boxes, order, labels, iou_threshold, metric)
