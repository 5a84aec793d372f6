"""metric="ios": intersection over the smaller area, against loop references, on every function that takes it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from helpers import BACKENDS, assert_close, make_backend
from matrixnms import batched_nms, box_iou, mask_iou, mask_nms, matrix_nms, nms, soft_nms
from strategies import box_problems, boxes, mask_problems, masks

KERNEL_PLACES = [p for p in BACKENDS if not p.values[0].endswith("generic") or p.values[0] == "numpy-generic"]


def _greedy(iou: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS over candidates already sorted, from their overlap matrix (a loop)."""
    kept: list[int] = []
    for j in range(len(iou)):
        if all(iou[i, j] <= threshold for i in kept):
            kept.append(j)
    return kept


@pytest.mark.parametrize("place", KERNEL_PLACES)
@settings(max_examples=30)
@given(problem=mask_problems(max_n=8, max_side=12))
def test_matrix_nms_ios_on_masks_equals_the_loop_reference(place, problem):
    backend = make_backend(place)
    scores, m, labels, options = problem
    keep, decayed = matrix_nms(backend.asarray(scores), backend.asarray(m), metric="ios",
                               labels=None if labels is None else backend.asarray(labels),
                               backend=backend.for_op("mask_decay"), **options)
    ref_keep, ref_decayed = reference.matrix_nms(scores, m, labels=labels, metric="ios", **options)
    np.testing.assert_array_equal(backend.to_numpy(keep), ref_keep)
    assert_close(backend.to_numpy(decayed), np.asarray(ref_decayed), "float64")


@pytest.mark.parametrize("place", KERNEL_PLACES)
@settings(max_examples=30)
@given(problem=box_problems(max_n=10))
def test_matrix_nms_ios_on_boxes_equals_the_loop_reference(place, problem):
    backend = make_backend(place)
    scores, b, labels, options = problem
    keep, decayed = matrix_nms(backend.asarray(scores), boxes=backend.asarray(b), metric="ios",
                               labels=None if labels is None else backend.asarray(labels),
                               backend=backend.for_op("box_decay"), **options)
    ref_keep, ref_decayed = reference.matrix_nms(scores, boxes=b, labels=labels, metric="ios", **options)
    np.testing.assert_array_equal(backend.to_numpy(keep), ref_keep)
    assert_close(backend.to_numpy(decayed), np.asarray(ref_decayed), "float64")


@pytest.mark.parametrize("place", KERNEL_PLACES)
@settings(max_examples=25)
@given(m=masks(max_n=8, max_side=12), b=boxes(max_n=8), threshold=st.sampled_from([0.0, 0.4, 0.8]))
def test_iou_matrices_and_greedy_nms_with_ios_equal_loops(place, m, b, threshold):
    backend = make_backend(place)
    ios = reference.mask_ios(m, m)
    got = mask_iou(backend.asarray(m), metric="ios", backend=backend.for_op("mask_iou"))
    np.testing.assert_allclose(backend.to_numpy(got), ios, rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(box_iou(backend.asarray(b), metric="ios")), reference.box_ios(b, b),
                               rtol=1e-12, atol=1e-12)
    order = np.arange(len(m))  # scores strictly decreasing: the sort is the identity
    scores = backend.asarray(np.linspace(1.0, 0.1, len(m)))
    loops = backend.for_op("mask_iou_sorted", "greedy_iou")
    kept = mask_nms(backend.asarray(m), scores, threshold, metric="ios", backend=loops)
    np.testing.assert_array_equal(backend.to_numpy(kept), order[_greedy(ios, threshold)])
    box_scores = backend.asarray(np.linspace(1.0, 0.1, len(b)))
    kept = nms(backend.asarray(b), box_scores, threshold, metric="ios", backend=backend.for_op("greedy_boxes"))
    np.testing.assert_array_equal(backend.to_numpy(kept), _greedy(reference.box_ios(b, b), threshold))
    same = backend.asarray(np.zeros(len(b), np.int64))
    kept = batched_nms(backend.asarray(b), box_scores, same, threshold, metric="ios",
                       backend=backend.for_op("greedy_boxes"))
    np.testing.assert_array_equal(backend.to_numpy(kept), _greedy(reference.box_ios(b, b), threshold))


@pytest.mark.parametrize("place", KERNEL_PLACES)
def test_soft_nms_with_ios_decays_a_nested_mask_fully(place):
    backend = make_backend(place)
    m = np.zeros((2, 8, 8), bool)
    m[0, :, :] = True
    m[1, 2:4, 2:4] = True  # inside mask 0: IoS 1, IoU 1/16
    scores = backend.asarray(np.array([0.9, 0.8]))
    loops = backend.for_op("mask_iou_sorted", "soft_nms_iou")
    _, iou_decayed = soft_nms(scores, backend.asarray(m), kernel="linear", iou_threshold=0.0, backend=loops)
    keep, ios_decayed = soft_nms(scores, backend.asarray(m), kernel="linear", iou_threshold=0.0, metric="ios",
                                 backend=loops)
    np.testing.assert_allclose(backend.to_numpy(iou_decayed), [0.9, 0.8 * 15 / 16])
    np.testing.assert_array_equal(backend.to_numpy(keep), [0])  # 0.8 * (1 - 1) is below score_threshold
    box_keep, _ = soft_nms(scores, boxes=backend.asarray(np.array([[0.0, 0, 8, 8], [2.0, 2, 4, 4]])), kernel="linear",
                           iou_threshold=0.0, metric="ios", backend=backend.for_op("soft_nms_boxes"))
    np.testing.assert_array_equal(backend.to_numpy(box_keep), [0])


def test_ios_of_empty_masks_and_zero_area_boxes_is_zero():
    m = np.zeros((2, 3, 3), bool)
    m[1, 0, 0] = True
    np.testing.assert_array_equal(mask_iou(m, metric="ios"), [[0.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 0, 0, 5], [0.0, 0, 2, 2]])
    np.testing.assert_array_equal(box_iou(b, metric="ios"), [[0.0, 0.0], [0.0, 1.0]])
    keep, decayed = matrix_nms(np.array([0.9, 0.8]), m, metric="ios")
    assert not np.isnan(decayed).any()


@pytest.mark.parametrize("call", [
    lambda: matrix_nms(np.ones(1), np.ones((1, 2, 2), bool), metric="iom"),
    lambda: mask_iou(np.ones((1, 2, 2), bool), metric="IOS"),
    lambda: box_iou(np.ones((1, 4)), metric=None),
    lambda: nms(np.ones((1, 4)), np.ones(1), 0.5, metric="dice"),
    lambda: mask_nms(np.ones((1, 2, 2), bool), np.ones(1), 0.5, metric=1),
    lambda: soft_nms(np.ones(1), boxes=np.ones((1, 4)), metric="union"),
])
def test_an_unknown_metric_is_a_value_error_naming_metric(call):
    with pytest.raises(ValueError, match=r"metric must be one of \('iou', 'ios'\), got"):
        call()


def test_ios_matches_supervision_on_compact_masks_of_the_same_crops():
    pytest.importorskip("supervision")
    import warnings

    from matrixnms.scenes import highres_scene

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its note that OpenCV is not installed
        from supervision.detection.compact_mask import CompactMask
        from supervision.detection.utils.iou_and_nms import OverlapMetric, mask_iou_batch

    s = highres_scene(40, height=300, width=400, seed=4)
    inclusive = s.crops.boxes.astype(np.float32) - np.array([0, 0, 1, 1], np.float32)
    compact = CompactMask.from_coco_rle(s.rles, inclusive, s.size)
    theirs = mask_iou_batch(compact, compact, overlap_metric=OverlapMetric.IOS)
    # supervision counts in float32 for frames up to 2**24 pixels
    np.testing.assert_allclose(mask_iou(s.crops, metric="ios"), theirs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mask_iou(s.rles, metric="ios"), theirs, rtol=1e-6, atol=1e-7)
    assert (theirs > 0.99).sum() > (mask_iou(s.rles) > 0.99).sum(), "nested masks: IoS 1 where IoU is not"
