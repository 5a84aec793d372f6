"""Hard NMS in matrix form: Fast NMS (YOLACT) and Cluster-NMS, on masks or boxes.

Both sort the candidates by descending score (equal scores: lower input index first) and read the
upper-triangular IoU matrix ``iou[i, j]``, i scored above j, 0 between different labels (class-aware):

- **Fast NMS** (Bolya et al., YOLACT, ICCV 2019): drop j when ``max_i iou[i, j] > iou_threshold`` over *every*
  higher-scored i, kept or not. Suppressed candidates still suppress, so Fast NMS keeps a subset of what greedy
  NMS keeps: in a chain A > B > C where A suppresses B and B suppresses C but A does not overlap C, greedy keeps
  A and C, Fast NMS only A. One matrix step, no sequential loop.
- **Cluster-NMS** (Zheng et al., "Enhancing Geometric Factors in Model Learning and Inference", 2021): iterate
  ``kept[j] = max over kept i < j of iou[i, j] <= iou_threshold`` from ``kept = all`` until it stops changing.
  The fixed point is exactly greedy NMS (:func:`matrixnms.nms`, :func:`~matrixnms.batched_nms`,
  :func:`~matrixnms.mask_nms`), reached in at most as many steps as the longest suppression chain, plus one.

Thresholds are strict, as in torchvision's ``nms``: a candidate is suppressed when its IoU is *greater* than
``iou_threshold``. IoU is float64 on every backend (masks: the exact counts of the ``mask_iou_sorted`` kernel,
Numba bit-packed on CPU; boxes: torchvision's continuous ``box_iou``), the same values greedy NMS decides on,
so a tie ``iou == iou_threshold`` is decided alike. The (K, K) work is chunked within
``matrixnms._config.CHUNK_BYTES`` beyond the mask IoU matrix itself (boxes never hold the whole matrix when it
does not fit). The decision steps are generic array-API code, plus Numba kernels on masks for NumPy and Torch
CPU input (they spare Torch the per-operation overhead); the IoU dominates the cost either way.
"""

from __future__ import annotations

from typing import Any, Literal

from ._dispatch import resolve
from ._forms import is_sparse_form, to_sparse
from ._typing import Array
from ._validate import check_boxes, check_masks, check_metric, namespace
from .baselines import _empty_keep, _greedy_order, _mask_iou_sorted


def _matrix_nms_keep(method: str, scores: Array, masks: Array | None, boxes: Array | None, labels: Array | None,
                     iou_threshold: Any, metric: Any, backend: str) -> Array:
    """Validate, sort, resolve the kernels of ``method`` ("fast_nms" or "cluster_nms") and assemble ``keep``."""
    if (masks is None) == (boxes is None):
        raise ValueError(f"{method} needs exactly one of masks or boxes, got "
                         + ("both" if masks is not None else "neither"))
    sparse = masks is not None and is_sparse_form(masks)
    xp = namespace(scores=scores, masks=None if sparse else masks, boxes=boxes, labels=labels)
    if sparse:
        check_items = lambda n: to_sparse(masks, "masks", n)  # noqa: E731
    elif masks is not None:
        check_items = lambda n: check_masks(xp, masks, n)  # noqa: E731
    else:
        check_items = lambda n: check_boxes(xp, boxes, n)  # noqa: E731
    threshold, order, sorted_labels = _greedy_order(xp, scores, labels, iou_threshold, backend, check_items)
    metric = check_metric(metric)
    if masks is not None:
        iou_fn = _mask_iou_sorted(xp, masks, scores, backend)
        _, decide = resolve(f"{method}_iou", scores, backend)
    else:
        _, decide = resolve(f"{method}_boxes", scores, backend)
    if order is None:
        return _empty_keep(xp, scores)
    if masks is not None:
        return order[decide(iou_fn(order, sorted_labels, metric), threshold)]
    return order[decide(boxes, order, sorted_labels, threshold, metric)]


def fast_nms(scores: Array, masks: Array | None = None, *, boxes: Array | None = None, labels: Array | None = None,
             iou_threshold: float = 0.5, metric: Literal["iou", "ios"] = "iou", backend: str = "auto") -> Array:
    """Fast NMS (YOLACT): drop every candidate whose IoU with *any* higher-scored one exceeds the threshold.

    Suppressed candidates still suppress, so the result is a subset of greedy NMS's (see the module docstring).

    Args:
        scores (Array[N], floating): any order; NaN and inf are rejected.
        masks (mask set): dense (N, *S) 0/1 masks, N COCO RLE dicts or a ``CroppedMasks``; exactly one of
            ``masks`` and ``boxes``. RLE and cropped masks are counted on the CPU; ``keep`` follows ``scores``.
        boxes (Array[N, 4], real): ``x1, y1, x2, y2`` boxes.
        labels (Array[N], int, optional): per-class NMS when given (IoU across labels counts as 0).
        iou_threshold (float in [0, 1]): suppress when IoU > iou_threshold (strict). 1 keeps everything.
        metric: ``"iou"`` or ``"ios"`` (intersection over the smaller area); 0 for empty masks either way.
        backend: ``"auto"``, ``"generic"``, ``"numba"``, ``"torch"`` or ``"cupy"``; for tests and benchmarks. A
            named backend must implement every operation used (``mask_iou_sorted`` and ``fast_nms_iou`` for
            masks, ``fast_nms_boxes`` for boxes), else ValueError.

    Returns:
        Array[K], int64: kept indices by decreasing score (ties: lower index first), in the library and on the
        device of ``scores``.
    """
    return _matrix_nms_keep("fast_nms", scores, masks, boxes, labels, iou_threshold, metric, backend)


def cluster_nms(scores: Array, masks: Array | None = None, *, boxes: Array | None = None, labels: Array | None = None,
                iou_threshold: float = 0.5, metric: Literal["iou", "ios"] = "iou", backend: str = "auto") -> Array:
    """Cluster-NMS: greedy NMS's exact result by iterating the matrix form of Fast NMS to its fixed point.

    Equal to ``mask_nms(masks, scores, iou_threshold, labels)`` on masks and to ``nms`` / ``batched_nms`` on
    boxes, for every input.

    Args:
        scores, masks, boxes, labels, iou_threshold, metric: as in :func:`fast_nms`.
        backend: as in :func:`fast_nms` (operations ``mask_iou_sorted`` and ``cluster_nms_iou`` for masks,
            ``cluster_nms_boxes`` for boxes).

    Returns:
        Array[K], int64: kept indices by decreasing score (ties: lower index first), as greedy NMS's.
    """
    return _matrix_nms_keep("cluster_nms", scores, masks, boxes, labels, iou_threshold, metric, backend)


__all__ = ["fast_nms", "cluster_nms"]
