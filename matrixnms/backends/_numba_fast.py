"""Numba kernels for the decision steps of Fast NMS and Cluster-NMS on a (K, K) IoU matrix.

The IoU (the ``mask_iou_sorted`` kernel) dominates both methods; these kernels only spare NumPy arrays and
Torch CPU tensors the (K, K) bool temporaries and the per-operation overhead (and thread hand-offs) of the
array-API path, which on Torch CPU cost more than the IoU itself. Semantics as in ``_generic_fast``: rows
are candidates by descending score, only j > i is read, suppression is ``iou[i, j] > threshold``.

``"fast_nms_iou"`` / ``"cluster_nms_iou"``: ``fn(iou, iou_threshold) -> kept``, (K,) bool, the caller's library.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .._dispatch import register
from ._numba_runtime import host, wrap


@njit(cache=True)
def _suppressed(iou: np.ndarray, suppressors: np.ndarray, threshold: float) -> np.ndarray:
    """Candidates j with ``iou[i, j] > threshold`` for some earlier i where ``suppressors[i]``."""
    k = iou.shape[0]
    out = np.zeros(k, np.bool_)
    for i in range(k):
        if suppressors[i]:
            for j in range(i + 1, k):
                if iou[i, j] > threshold:
                    out[j] = True
    return out


@njit(cache=True)
def _cluster_kernel(iou: np.ndarray, threshold: float) -> np.ndarray:
    kept = np.ones(iou.shape[0], np.bool_)
    for _ in range(iou.shape[0] + 1):  # the fixed point (greedy NMS) comes within K + 1 steps
        updated = ~_suppressed(iou, kept, threshold)
        if np.array_equal(updated, kept):
            break
        kept = updated
    return kept


@register("fast_nms_iou", "numba")
def fast_nms_iou(iou: Any, iou_threshold: float) -> Any:
    matrix = host(iou, np.float64)
    everyone = np.ones(matrix.shape[0], np.bool_)
    return wrap(~_suppressed(matrix, everyone, float(iou_threshold)), iou)


@register("cluster_nms_iou", "numba")
def cluster_nms_iou(iou: Any, iou_threshold: float) -> Any:
    matrix = host(iou, np.float64)
    return wrap(_cluster_kernel(matrix, float(iou_threshold)), iou)
