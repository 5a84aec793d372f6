"""Every mask form gives the dense (N, H, W) results: dense masks of any trailing shape, COCO RLE, crops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import BACKENDS, assert_close, make_backend
from matrixnms import mask_iou, mask_nms, masks_to_boxes, matrix_nms, soft_nms
from strategies import mask_problems, masks

CPU_PLACES = [p for p in BACKENDS if p.values[0] in ("numpy-generic", "numpy-numba", "torch-torch", "torch-numba")]


def _reshapes(m: np.ndarray) -> list[np.ndarray]:
    """The same masks as (N, P), (N, 1, P), (N, H, W, 1), (N, 1, H, W) and a strided 4-D view."""
    n, h, w = m.shape
    strided = np.zeros((n, 2, h, w), bool)
    strided[:, 1] = m
    return [m.reshape(n, h * w), m.reshape(n, 1, h * w), m[..., None], m[:, None], strided[:, 1:]]


# --- dense masks of any trailing shape ----------------------------------------------------------------------


@pytest.mark.parametrize("place", CPU_PLACES)
@settings(max_examples=30)
@given(problem=mask_problems(max_n=8, max_side=12))
def test_matrix_nms_on_any_trailing_shape_equals_the_frames(place, problem):
    backend = make_backend(place)
    scores, m, labels, options = problem
    kw = dict(options, backend=backend.for_op("mask_decay"))
    lab = None if labels is None else backend.asarray(labels)
    keep, decayed = matrix_nms(backend.asarray(scores), backend.asarray(m), labels=lab, **kw)
    for shaped in _reshapes(m):
        k, d = matrix_nms(backend.asarray(scores), backend.asarray(shaped), labels=lab, **kw)
        np.testing.assert_array_equal(backend.to_numpy(k), backend.to_numpy(keep))
        assert_close(backend.to_numpy(d), backend.to_numpy(decayed), "float64")


@pytest.mark.parametrize("place", CPU_PLACES)
@settings(max_examples=20)
@given(m=masks(max_n=8, max_side=12), threshold=st.sampled_from([0.0, 0.3, 0.7]))
def test_iou_greedy_and_soft_nms_on_any_trailing_shape_equal_the_frames(place, m, threshold):
    backend = make_backend(place)
    scores = backend.asarray(np.linspace(1.0, 0.1, len(m)))
    dense = backend.asarray(m)
    iou = backend.to_numpy(mask_iou(dense, backend=backend.for_op("mask_iou")))
    loops = backend.for_op("mask_iou_sorted", "greedy_iou", "soft_nms_iou")
    keep = backend.to_numpy(mask_nms(dense, scores, threshold, backend=loops))
    soft = soft_nms(scores, dense, backend=loops)
    for shaped in _reshapes(m):
        x = backend.asarray(shaped)
        np.testing.assert_array_equal(backend.to_numpy(mask_iou(x, x, backend=backend.for_op("mask_iou"))), iou)
        got = mask_nms(x, scores, threshold, backend=loops)
        np.testing.assert_array_equal(backend.to_numpy(got), keep)
        k, d = soft_nms(scores, x, backend=loops)
        np.testing.assert_array_equal(backend.to_numpy(k), backend.to_numpy(soft[0]))
        assert_close(backend.to_numpy(d), backend.to_numpy(soft[1]), "float64")


def test_point_masks_count_every_point():
    points = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 1]], bool)
    np.testing.assert_allclose(mask_iou(points), [[1.0, 0.5], [0.5, 1.0]])


def test_masks_to_boxes_still_needs_frames():
    with pytest.raises(ValueError, match=r"masks must have shape \(N, H, W\), got \(2, 5\)"):
        masks_to_boxes(np.zeros((2, 5), bool))


def test_mask_iou_needs_the_same_trailing_shape():
    with pytest.raises(ValueError, match=r"masks_b must have the same trailing shape as masks_a \(2, 3, 4\)"):
        mask_iou(np.zeros((1, 2, 3, 4), bool), np.zeros((1, 6, 4), bool))
