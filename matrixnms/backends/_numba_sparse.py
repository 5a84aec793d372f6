"""Numba kernels of the sparse mask-set ops (COCO RLE, crops): the dense kernels' pair counting and fused decay
(``backends/_numba.py``) run on ``matrixnms._sparse.SparseMasks`` directly, whose layout is ``_Packed``'s in
the transposed frame. Inputs and results are host NumPy arrays (see ``_generic_sparse``)."""

from __future__ import annotations

import numpy as np

from .._dispatch import register
from .._sparse import SparseMasks
from ._numba import _decay, _iou, _threads


def _work(s: SparseMasks) -> int:
    return int(s.data.shape[0]) * 64


@register("sparse_mask_iou", "numba")
def sparse_mask_iou(masks_a: SparseMasks, masks_b: SparseMasks | None, metric: str) -> np.ndarray:
    threads = _threads(_work(masks_a) + (0 if masks_b is None else _work(masks_b)))
    return _iou(masks_a, masks_b, None, threads, metric)


@register("sparse_mask_iou_sorted", "numba")
def sparse_mask_iou_sorted(masks: SparseMasks, order: np.ndarray, labels: np.ndarray | None,
                           metric: str) -> np.ndarray:
    return _iou(masks.take(order), None, labels, _threads(_work(masks)), metric)


@register("sparse_mask_decay", "numba")
def sparse_mask_decay(masks: SparseMasks, order: np.ndarray, labels: np.ndarray | None, areas: np.ndarray | None,
                      kernel: str, sigma: float, metric: str) -> np.ndarray:
    """The ``sparse_mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the dense path (and so to the loop reference) by
    ``tests/test_forms.py::test_every_function_on_rle_and_crops_equals_the_dense_results``.
    """
    s = masks.take(order)
    area = s.area if areas is None else np.ascontiguousarray(areas, np.float64)
    return _decay(s, area, np.zeros((s.n, 4)), labels, kernel, sigma, _threads(_work(masks)), metric)
