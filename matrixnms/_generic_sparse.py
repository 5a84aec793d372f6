"""NumPy implementations of the sparse mask-set ops (COCO RLE, crops; see ``matrixnms._sparse``).

The reference for the Numba kernels: each pair whose boxes overlap is counted with NumPy over the overlapping
window of the two masks' words (AND, then a popcount); the decay is ``_generic.decay_from_iou_blocks`` on the
(K, K) overlap matrix. Inputs are host NumPy arrays (the public functions move ``order``, ``labels`` and
``areas`` to the host and the results back to the caller's library and device).
"""

from __future__ import annotations

import array_api_compat.numpy as np_xp
import numpy as np

from ._dispatch import register
from ._generic import decay_from_iou_blocks, overlap
from ._sparse import SparseMasks


def _popcount(words: np.ndarray) -> int:
    if hasattr(np, "bitwise_count"):
        return int(np.bitwise_count(words).sum())
    return int(np.unpackbits(np.ascontiguousarray(words).view(np.uint8)).sum())


def _words(s: SparseMasks, i: int) -> np.ndarray:
    x0, x1, y0, y1 = s.box[i]
    rows, nwords = x1 - x0 + 1, (y1 >> 6) - (y0 >> 6) + 1
    return s.data[s.offset[i]:s.offset[i] + rows * nwords].reshape(nwords, rows)


def intersections(a: SparseMasks, b: SparseMasks, labels: np.ndarray | None = None) -> np.ndarray:
    """float64 (N, M) exact intersection counts; pairs with disjoint boxes (or other labels) are 0."""
    out = np.zeros((a.n, b.n))
    for i in range(a.n):
        ax0, ax1, ay0, ay1 = a.box[i]
        if ax1 < ax0:
            continue
        wa = _words(a, i)
        for j in range(b.n):
            if labels is not None and labels[i] != labels[j]:
                continue
            bx0, bx1, by0, by1 = b.box[j]
            xa, xb, ya, yb = max(ax0, bx0), min(ax1, bx1), max(ay0, by0), min(ay1, by1)
            if xa > xb or ya > yb:
                continue
            wb = _words(b, j)
            ka, kb = ya >> 6, yb >> 6
            window_a = wa[ka - (ay0 >> 6):kb - (ay0 >> 6) + 1, xa - ax0:xb - ax0 + 1]
            window_b = wb[ka - (by0 >> 6):kb - (by0 >> 6) + 1, xa - bx0:xb - bx0 + 1]
            out[i, j] = _popcount(window_a & window_b)
    return out


@register("sparse_mask_iou", "generic")
def sparse_mask_iou(masks_a: SparseMasks, masks_b: SparseMasks | None, metric: str) -> np.ndarray:
    b = masks_a if masks_b is None else masks_b
    return overlap(np_xp, intersections(masks_a, b), masks_a.area[:, None], b.area[None, :], metric)


@register("sparse_mask_iou_sorted", "generic")
def sparse_mask_iou_sorted(masks: SparseMasks, order: np.ndarray, labels: np.ndarray | None,
                           metric: str) -> np.ndarray:
    s = masks.take(order)
    return overlap(np_xp, intersections(s, s, labels), s.area[:, None], s.area[None, :], metric)


@register("sparse_mask_decay", "generic")
def sparse_mask_decay(masks: SparseMasks, order: np.ndarray, labels: np.ndarray | None, areas: np.ndarray | None,
                      kernel: str, sigma: float, metric: str) -> np.ndarray:
    """The ``sparse_mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the dense path (and so to the loop reference) by
    ``tests/test_forms.py::test_every_function_on_rle_and_crops_equals_the_dense_results``.
    """
    s = masks.take(order)
    area = s.area if areas is None else np.asarray(areas, np.float64)
    iou = overlap(np_xp, intersections(s, s, labels), area[:, None], area[None, :], metric)
    return decay_from_iou_blocks(np_xp, s.n, lambda a, e: iou[:, a:e], labels, kernel, sigma, np.float64, "cpu")


