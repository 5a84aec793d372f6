"""matrix_nms against the loop-by-loop float64 reference, hand-worked cases and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import strategies
from helpers import RTOL, assert_close, borderline
from matrixnms import matrix_nms


def run(backend, scores, masks=None, boxes=None, labels=None, **options):
    """matrix_nms on ``backend``; returns NumPy keep and decayed after checking type, device and dtype."""
    s = backend.asarray(scores)
    kwargs = dict(options)
    if masks is not None:
        kwargs["masks"] = backend.asarray(masks)
    if boxes is not None:
        kwargs["boxes"] = backend.asarray(boxes)
    if labels is not None:
        kwargs["labels"] = backend.asarray(labels)
    if kwargs.get("mask_areas") is not None:
        kwargs["mask_areas"] = backend.asarray(kwargs["mask_areas"])
    keep, decayed = matrix_nms(s, backend=backend.for_op("mask_decay" if masks is not None else "box_decay"), **kwargs)
    assert backend.same_place(keep) and backend.same_place(decayed)
    assert str(keep.dtype).endswith("int64")
    assert decayed.dtype == s.dtype
    return backend.to_numpy(keep), backend.to_numpy(decayed)


def check_against_reference(backend, scores, masks=None, boxes=None, labels=None, **options):
    keep, decayed = run(backend, scores, masks, boxes, labels, **options)
    # the reference sees the very values the library saw (float32 scores widened exactly)
    exact_scores = np.asarray(scores, dtype=np.float64)
    ref_keep, ref_decayed = reference.matrix_nms(exact_scores, masks, boxes, labels, **options)
    dtype = str(np.asarray(scores).dtype)
    if dtype == "float32":
        unfiltered = {k: v for k, v in options.items() if k not in ("post_threshold", "post_top_k")}
        assume(not borderline(reference.matrix_nms(exact_scores, masks, boxes, labels, **unfiltered)[1], options))
    assert not np.any(np.isnan(decayed))
    # equal decayed scores may be ordered either way by float rounding; compare the set at each rank
    assert_close(decayed, np.asarray(ref_decayed), dtype)
    if dtype == "float64":
        assert keep.tolist() == ref_keep
    else:
        assert sorted(keep.tolist()) == sorted(ref_keep)


@given(strategies.mask_problems())
def test_masks_agree_with_reference(backend, problem):
    scores, masks, labels, options = problem
    check_against_reference(backend, scores, masks=masks, labels=labels, **options)


@given(strategies.mask_problems(), st.sampled_from(["bool", "uint8", "float32"]))
def test_float32_scores_and_mask_dtypes_agree_with_reference(backend, problem, mask_dtype):
    scores, masks, labels, options = problem
    check_against_reference(backend, scores.astype(np.float32), masks=masks.astype(mask_dtype), labels=labels,
                            **options)


@given(strategies.box_problems())
def test_boxes_agree_with_reference(backend, problem):
    scores, boxes, labels, options = problem
    check_against_reference(backend, scores, boxes=boxes, labels=labels, **options)
    check_against_reference(backend, scores.astype(np.float32), boxes=boxes.astype(np.float32), labels=labels,
                            **options)


@given(strategies.masks(max_n=10), st.data())
def test_mask_areas_are_used_for_the_union(backend, masks, data):
    n = len(masks)
    scores = data.draw(strategies.scores(n))
    # areas larger than the true ones shrink every IoU
    areas = masks.sum(axis=(1, 2)).astype(np.float64) + data.draw(st.sampled_from([0.0, 3.0]))
    check_against_reference(backend, scores, masks=masks, mask_areas=areas)


@given(strategies.mask_problems())
def test_decay_lies_in_unit_interval_and_top_item_keeps_its_score(backend, problem):
    scores, masks, labels, options = problem
    options = {k: v for k, v in options.items() if k in ("kernel", "sigma")}
    keep, decayed = run(backend, scores, masks, labels=labels, **options)
    assert sorted(keep.tolist()) == list(range(len(scores)))
    ratio = decayed / scores[keep]
    assert np.all(ratio >= 0) and np.all(ratio <= 1 + 1e-12)
    if len(scores):
        top = int(np.argmax(scores))  # first index among equal maxima
        assert decayed[keep.tolist().index(top)] == scores[top]


def two_masks():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :, :2] = True  # 8 pixels
    masks[1, :, 1:3] = True  # 8 pixels, 4 shared: IoU 4 / 12
    return masks


def test_two_masks_hand_worked(backend):
    iou = 4 / 12
    for kernel, factor in [("gaussian", math.exp(-iou**2 / 0.5)), ("linear", 1 - iou)]:
        keep, decayed = run(backend, np.array([0.9, 0.6]), two_masks(), kernel=kernel)
        assert keep.tolist() == [0, 1]
        np.testing.assert_allclose(decayed, [0.9, 0.6 * factor], rtol=1e-12)


def test_unsorted_input_decays_the_lower_score(backend):
    keep, decayed = run(backend, np.array([0.6, 0.9]), two_masks(), kernel="linear")
    assert keep.tolist() == [1, 0]
    np.testing.assert_allclose(decayed, [0.9, 0.6 * (1 - 4 / 12)], rtol=1e-12)


def chain_of_three():
    """A overlaps B heavily, B overlaps C a little, A and C are disjoint."""
    masks = np.zeros((3, 10, 30), dtype=bool)
    masks[0, :, 0:10] = True
    masks[1, :, 1:11] = True  # IoU(A, B) = 9 / 11
    masks[2, :, 9:19] = True  # IoU(B, C) = 2 / 18, IoU(A, C) = 1/19... make A, C disjoint:
    masks[0, :, 9] = False  # A = columns 0..8: IoU(A, B) = 8 / 11, IoU(A, C) = 0
    return masks


def test_chain_of_three_compensation_leaves_the_third_undecayed(backend):
    masks = chain_of_three()
    assert reference.mask_iou(masks[[0]], masks[[2]])[0, 0] == 0
    for kernel in ("gaussian", "linear"):
        keep, decayed = run(backend, np.array([0.9, 0.8, 0.7]), masks, kernel=kernel)
        by_index = dict(zip(keep.tolist(), decayed.tolist()))
        # C's only overlap is with B, and B's own overlap with A is larger, so f(iou_BC)/f(cmax_B) > 1
        assert by_index[2] == pytest.approx(0.7, rel=1e-12)
        assert by_index[1] < 0.8 * 0.5


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("copies", [2, 3, 7])
def test_exact_duplicates_never_give_nan(backend, kernel, copies):
    masks = np.zeros((copies, 6, 6), dtype=bool)
    masks[:, 1:4, 1:4] = True
    scores = np.linspace(0.9, 0.5, copies)
    keep, decayed = run(backend, scores, masks, kernel=kernel, labels=np.zeros(copies, dtype=np.int64))
    assert keep.tolist()[0] == 0 and decayed[0] == 0.9
    assert np.all(np.isfinite(decayed))
    expected = 0.0 if kernel == "linear" else math.exp(-1 / 0.5)
    np.testing.assert_allclose(decayed[1:], scores[1:] * expected, atol=1e-12)


def test_linear_kernel_zeroes_an_exact_duplicate(backend):
    masks = np.ones((2, 3, 3), dtype=bool)
    keep, decayed = run(backend, np.array([0.8, 0.7]), masks, kernel="linear")
    assert keep.tolist() == [0, 1] and decayed.tolist() == [0.8, 0.0]


@pytest.mark.parametrize("empties", [2, 3])
def test_empty_masks_keep_their_scores(backend, empties):
    masks = np.zeros((empties + 1, 5, 5), dtype=bool)
    masks[0, 1:3, 1:3] = True
    scores = np.array([0.5] + [0.9] * empties)
    for kernel in ("gaussian", "linear"):
        keep, decayed = run(backend, scores, masks, kernel=kernel)
        assert keep.tolist() == list(range(1, empties + 1)) + [0]
        np.testing.assert_array_equal(decayed, sorted(scores, reverse=True))


def test_disjoint_masks_keep_their_scores(backend):
    masks = np.zeros((4, 8, 8), dtype=bool)
    for k in range(4):
        masks[k, 2 * k:2 * k + 2, :] = True
    scores = np.array([0.3, 0.9, 0.5, 0.7])
    keep, decayed = run(backend, scores, masks)
    assert keep.tolist() == [1, 3, 2, 0]
    np.testing.assert_array_equal(decayed, [0.9, 0.7, 0.5, 0.3])


def test_labels_make_it_class_aware(backend):
    masks = np.ones((2, 4, 4), dtype=bool)
    scores = np.array([0.9, 0.8])
    _, same = run(backend, scores, masks, labels=np.array([1, 1]))
    _, different = run(backend, scores, masks, labels=np.array([1, 2]))
    assert same[1] < 0.8 and different.tolist() == [0.9, 0.8]


def test_all_equal_scores_break_ties_by_input_index(backend):
    masks = np.ones((3, 2, 2), dtype=bool)
    keep, decayed = run(backend, np.full(3, 0.5), masks, kernel="linear")
    assert keep.tolist() == [0, 1, 2]
    assert decayed.tolist() == [0.5, 0.0, 0.0]


def test_order_of_operations(backend):
    masks = np.zeros((5, 10, 10), dtype=bool)
    for k in range(5):
        masks[k, k:k + 4, k:k + 4] = True
    scores = np.array([0.05, 0.9, 0.8, 0.6, 0.7])
    options = dict(score_threshold=0.1, pre_top_k=3, post_threshold=0.2, post_top_k=2)
    keep, decayed = run(backend, scores, masks, **options)
    ref_keep, ref_decayed = reference.matrix_nms(scores, masks, **options)
    assert keep.tolist() == ref_keep
    np.testing.assert_allclose(decayed, ref_decayed, rtol=1e-12)
    assert 3 not in keep  # dropped by pre_top_k (0.6 is the 4th highest above the threshold)
    assert 0 not in keep  # dropped by score_threshold


def test_empty_input(backend):
    keep, decayed = run(backend, np.zeros(0), np.zeros((0, 5, 7), dtype=bool))
    assert keep.shape == (0,) and decayed.shape == (0,)
    keep, decayed = run(backend, np.zeros(0, dtype=np.float32), boxes=np.zeros((0, 4)))
    assert keep.shape == (0,) and decayed.shape == (0,)


def test_everything_filtered_gives_empty(backend):
    keep, decayed = run(backend, np.array([0.1, 0.2]), np.ones((2, 3, 3), bool), score_threshold=0.5)
    assert keep.shape == (0,) and decayed.shape == (0,)


def test_one_item_is_returned_unchanged(backend):
    keep, decayed = run(backend, np.array([0.42]), np.zeros((1, 3, 3), bool))
    assert keep.tolist() == [0] and decayed.tolist() == [0.42]
    keep, decayed = run(backend, np.array([0.42]), boxes=np.array([[0.0, 0.0, 2.0, 2.0]]))
    assert keep.tolist() == [0] and decayed.tolist() == [0.42]


@given(strategies.box_problems(max_n=10), st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_sigma_matches_the_mmdetection_form(problem, sigma):
    """SOLO / mmdetection compute exp(-sigma' (iou^2 - cmax^2)) with sigma' = 1 / sigma (paper form)."""
    scores, boxes, _, _ = problem
    order = np.argsort(-scores, kind="stable")
    iou = np.triu(reference.box_iou(boxes[order], boxes[order]), k=1)
    cmax = iou.max(axis=0, initial=0.0)
    mmdet_sigma = 1.0 / sigma
    decay_matrix = np.exp(-mmdet_sigma * iou**2) / np.exp(-mmdet_sigma * cmax[:, None] ** 2)
    mmdet = scores[order] * decay_matrix.min(axis=0, initial=np.inf).clip(max=1.0) if len(scores) else scores
    keep, decayed = matrix_nms(scores, boxes=boxes, sigma=sigma)
    by_index = dict(zip(keep.tolist(), decayed.tolist()))
    np.testing.assert_allclose([by_index[i] for i in order], mmdet, rtol=1e-9)
