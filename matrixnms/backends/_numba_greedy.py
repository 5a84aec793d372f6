"""Numba kernels for the sequential loops of greedy NMS and Soft-NMS (the baselines in ``matrixnms.baselines``).

They serve NumPy arrays and Torch CPU tensors (which share memory with NumPy, so nothing is copied on the way
in); results come back in the caller's library (both through ``_numba_runtime``). Inputs are already
validated. Box IoU is computed on the fly in float64 with exactly the operations of
``_generic.box_iou_block`` (so decisions at the threshold match the generic path bit for bit):
``w = max(min(x2) - max(x1), 0)``, ``inter = w * h``, ``union = (area_i + area_j) - inter``,
``iou = inter / union`` (0 when ``union <= 0``), clipped to [0, 1].

Op contract (registered for backend "numba"):

``"greedy_boxes"``: ``fn(boxes, order, labels, iou_threshold) -> kept``
    boxes (N, 4) the caller's full input; ``order`` (K,) int64 candidates sorted by descending score (ties:
    lower index); ``labels`` (K,) labels of the sorted candidates or None. Returns (K,) bool kept flags.
``"greedy_iou"``: ``fn(iou, iou_threshold) -> kept``
    ``iou`` (K, K) float64 IoU of the score-sorted candidates, 0 across labels (the ``mask_iou_sorted`` op).
``"soft_nms_boxes"``: ``fn(boxes, candidates, scores, labels, kernel, sigma, iou_threshold, score_threshold)``
    ``candidates`` (K,) int64 in increasing index order, ``scores`` (K,) float64 their scores (all
    >= score_threshold), ``labels`` (K,) or None. Returns ``(positions, decayed)``: (M,) int64 positions
    into ``candidates`` in selection order and (M,) float64 scores at selection.
``"soft_nms_iou"``: ``fn(iou, scores, kernel, sigma, iou_threshold, score_threshold)``
    the same from a (K, K) float64 IoU matrix of the candidates.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._dispatch import register
from .._typing import Array
from ._numba_runtime import host, view, wrap

_GAUSSIAN, _LINEAR = 0, 1


@njit(cache=True, inline="always")
def _box_iou(b: np.ndarray, area: np.ndarray, i: int, j: int, ios: bool) -> float:
    w = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
    h = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    inter = w * h
    union = min(area[i], area[j]) if ios else (area[i] + area[j]) - inter
    if union <= 0.0:
        return 0.0
    iou = inter / union
    return min(max(iou, 0.0), 1.0)


@njit(cache=True)
def _areas(b: np.ndarray) -> np.ndarray:
    out = np.empty(b.shape[0])
    for i in range(b.shape[0]):
        out[i] = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
    return out


@njit(cache=True)
def _greedy_boxes_kernel(b: np.ndarray, labels: np.ndarray, use_labels: bool, threshold: float,
                         ios: bool) -> np.ndarray:
    k = b.shape[0]
    area = _areas(b)
    kept = np.zeros(k, np.bool_)
    removed = np.zeros(k, np.bool_)
    # Visit each class as one contiguous run (a stable sort keeps the score order inside a class), so a
    # kept box only compares against boxes of its own class: per-class cost instead of K^2.
    visit = np.argsort(labels, kind="mergesort") if use_labels else np.arange(k)
    for a in range(k):
        i = visit[a]
        if removed[i]:
            continue
        kept[i] = True
        for c in range(a + 1, k):
            j = visit[c]
            if use_labels and labels[j] != labels[i]:
                break
            if not removed[j] and _box_iou(b, area, i, j, ios) > threshold:
                removed[j] = True
    return kept


@njit(cache=True)
def _greedy_iou_kernel(iou: np.ndarray, threshold: float) -> np.ndarray:
    k = iou.shape[0]
    kept = np.zeros(k, np.bool_)
    removed = np.zeros(k, np.bool_)
    for i in range(k):
        if removed[i]:
            continue
        kept[i] = True
        for j in range(i + 1, k):
            if not removed[j] and iou[i, j] > threshold:
                removed[j] = True
    return kept


@njit(cache=True)
def _soft_kernel(
    scores: np.ndarray, iou: np.ndarray, b: np.ndarray, labels: np.ndarray, use_matrix: bool,
    use_labels: bool, kernel: int, sigma: float, iou_threshold: float, score_threshold: float, ios: bool,
) -> tuple[np.ndarray, np.ndarray]:
    k = scores.shape[0]
    current = scores.copy()
    area = _areas(b) if not use_matrix else np.empty(0)
    # alive candidates, compacted by swap-removal; ties are broken by position explicitly, not by slot
    alive = np.arange(k)
    m = k
    positions = np.empty(k, np.int64)
    values = np.empty(k)
    n_out = 0
    while m > 0:
        best = 0
        for a in range(1, m):
            p, q = alive[a], alive[best]
            if current[p] > current[q] or (current[p] == current[q] and p < q):
                best = a
        i = alive[best]
        positions[n_out] = i
        values[n_out] = current[i]
        n_out += 1
        m -= 1
        alive[best] = alive[m]
        a = 0
        while a < m:
            j = alive[a]
            if use_matrix:
                iou_ij = iou[i, j]
            elif use_labels and labels[i] != labels[j]:
                iou_ij = 0.0
            else:
                iou_ij = _box_iou(b, area, i, j, ios)
            if kernel == _GAUSSIAN:
                factor = np.exp(-(iou_ij * iou_ij) / sigma)
            else:
                factor = 1.0 - iou_ij if iou_ij > iou_threshold else 1.0
            current[j] = current[j] * factor
            if current[j] < score_threshold:
                m -= 1
                alive[a] = alive[m]
            else:
                a += 1
    return positions[:n_out], values[:n_out]


_NO_LABELS = np.zeros(0, np.int64)
_NO_BOXES = np.zeros((0, 4))
_NO_IOU = np.zeros((0, 0))


def _labels(labels: Array | None) -> tuple[np.ndarray, bool]:
    """(int64 labels, True), or (an empty array, False) without labels: the kernels' two label arguments."""
    if labels is None:
        return _NO_LABELS, False
    return host(labels, np.int64), True


@register("greedy_boxes", "numba")
def greedy_boxes(boxes: Array, order: Array, labels: Array | None, iou_threshold: float, metric: str) -> Array:
    b = host(view(boxes)[view(order)], np.float64)
    lab, use_labels = _labels(labels)
    return wrap(_greedy_boxes_kernel(b, lab, use_labels, float(iou_threshold), metric == "ios"), order)


@register("greedy_iou", "numba")
def greedy_iou(iou: Array, iou_threshold: float) -> Array:
    matrix = host(iou, np.float64)
    return wrap(_greedy_iou_kernel(matrix, float(iou_threshold)), iou)


def _soft_options(kernel: str, sigma: float, iou_threshold: float, score_threshold: float) -> tuple:
    return (_GAUSSIAN if kernel == "gaussian" else _LINEAR, float(sigma), float(iou_threshold),
            float(score_threshold))


@register("soft_nms_boxes", "numba")
def soft_nms_boxes(boxes: Array, candidates: Array, scores: Array, labels: Array | None, kernel: str, sigma: float,
                   iou_threshold: float, score_threshold: float, metric: str) -> tuple[Array, Array]:
    b = host(view(boxes)[view(candidates)], np.float64)
    lab, use_labels = _labels(labels)
    s = host(scores, np.float64)
    positions, values = _soft_kernel(s, _NO_IOU, b, lab, False, use_labels,
                                     *_soft_options(kernel, sigma, iou_threshold, score_threshold), metric == "ios")
    return wrap(positions, scores), wrap(values, scores)


@register("soft_nms_iou", "numba")
def soft_nms_iou(iou: Array, scores: Array, kernel: str, sigma: float, iou_threshold: float,
                 score_threshold: float) -> tuple[Array, Array]:
    matrix = host(iou, np.float64)
    s = host(scores, np.float64)
    positions, values = _soft_kernel(s, matrix, _NO_BOXES, _NO_LABELS, True, False,
                                     *_soft_options(kernel, sigma, iou_threshold, score_threshold), False)
    return wrap(positions, scores), wrap(values, scores)
