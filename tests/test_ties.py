"""Order among exact ties, at sizes where only a stable sort gives it: 40 to 200 candidates.

Equal scores rank by lower input index (matrix_nms, the greedy baselines, Soft-NMS), equal labels keep score
order in the Numba kernels' per-class sorts, and equal decayed scores of ``multiclass_matrix_nms`` rank by
lower class, then by rank within the class. NumPy's and Numba's quicksorts sort runs of up to 16 elements by
insertion, which is stable, so every problem here has dozens of exact ties per label: replacing any stable
sort by an unstable one changes a result. Each problem runs on every CPU place, against the loop references.
"""

from __future__ import annotations

import math
from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
import reference_baselines as ref_base
import reference_paddle
import strategies
from helpers import assert_close, make_backend
from matrixnms import batched_nms, mask_nms, matrix_nms, multiclass_matrix_nms, nms, soft_nms

CPU_PLACES = [make_backend(key) for key in ("numpy-generic", "numpy-numba", "torch-generic", "torch-torch",
                                            "torch-numba")
              if all(find_spec(p) for p in {"numpy-generic": (), "numpy-numba": ("numba",)}.get(
                  key, ("torch",) + (("numba",) if key.endswith("numba") else ())))]


def places(*ops: str):
    """The CPU places, each with the ``backend=`` argument that runs its kernels for ``ops``."""
    return [(place, place.for_op(*ops)) for place in CPU_PLACES]


def numpy_of(place, x):
    return place.to_numpy(x)


def labelled(labels, n):
    """The labels the per-label reference needs: one class for a class-agnostic problem."""
    return np.zeros(n, np.int64) if labels is None else labels


# ---------------------------------------------------------------------------------------------- matrix_nms


@settings(max_examples=15)
@given(strategies.many_tie_mask_problems(max_n=150))
def test_mask_matrix_nms_ranks_long_runs_of_ties_by_lower_index(problem):
    scores, masks, labels, options = problem
    ref_keep, ref_decayed = reference.matrix_nms_by_label(scores, masks, labels=labelled(labels, len(scores)),
                                                          **options)
    for place, name in places("mask_decay"):
        keep, decayed = matrix_nms(place.asarray(scores), place.asarray(masks), backend=name,
                                   labels=None if labels is None else place.asarray(labels), **options)
        assert numpy_of(place, keep).tolist() == ref_keep, place.name
        assert_close(numpy_of(place, decayed), np.asarray(ref_decayed), "float64")


@settings(max_examples=40)
@given(strategies.many_tie_box_problems())
def test_box_matrix_nms_ranks_long_runs_of_ties_by_lower_index(problem):
    scores, boxes, labels, options = problem
    ref_keep, ref_decayed = reference.matrix_nms_by_label(scores, boxes=boxes, labels=labelled(labels, len(scores)),
                                                          **options)
    for place, name in places("box_decay"):
        keep, decayed = matrix_nms(place.asarray(scores), boxes=place.asarray(boxes), backend=name,
                                   labels=None if labels is None else place.asarray(labels), **options)
        assert numpy_of(place, keep).tolist() == ref_keep, place.name
        assert_close(numpy_of(place, decayed), np.asarray(ref_decayed), "float64")


@pytest.mark.parametrize("kind", ["masks", "boxes"])
def test_two_hundred_equal_isolated_scores_come_back_in_index_order(kind):
    n = 200
    boxes = np.array([[3.0 * k, 0.0, 3.0 * k + 2.0, 2.0] for k in range(n)])  # pairwise disjoint
    masks = np.zeros((n, 2, 3 * n), dtype=bool)
    for k in range(n):
        masks[k, :, 3 * k:3 * k + 2] = True
    scores = np.full(n, 0.5)
    scores[::7] = 0.75
    expected = list(range(0, n, 7)) + [k for k in range(n) if k % 7]
    for place, name in places("mask_decay" if kind == "masks" else "box_decay"):
        items = {"masks": place.asarray(masks)} if kind == "masks" else {"boxes": place.asarray(boxes)}
        keep, decayed = matrix_nms(place.asarray(scores), **items, backend=name)
        assert numpy_of(place, keep).tolist() == expected, place.name
        # a top-k through the run of 0.5s takes its lowest indices, before and after the decay
        keep, _ = matrix_nms(place.asarray(scores), **items, pre_top_k=60, backend=name)
        assert numpy_of(place, keep).tolist() == expected[:60], place.name
        keep, _ = matrix_nms(place.asarray(scores), **items, post_top_k=60, backend=name)
        assert numpy_of(place, keep).tolist() == expected[:60], place.name


# ---------------------------------------------------------------------------------------------- baselines


@st.composite
def greedy_tie_problems(draw, kind: str):
    problem = draw(strategies.many_tie_mask_problems(max_n=120) if kind == "masks"
                   else strategies.many_tie_box_problems())
    return problem[:3] + (draw(st.sampled_from([0.0, 0.3, 0.5, 0.9])),)


@settings(max_examples=20)
@given(greedy_tie_problems("boxes"))
def test_greedy_box_nms_visits_long_runs_of_ties_in_index_order(problem):
    scores, boxes, labels, threshold = problem
    expected = ref_base.greedy_nms(ref_base.pairwise_iou(boxes=boxes, labels=labels), scores, threshold)
    for place, name in places("greedy_boxes"):
        b, s = place.asarray(boxes), place.asarray(scores)
        keep = nms(b, s, threshold, backend=name) if labels is None else batched_nms(
            b, s, place.asarray(labels), threshold, backend=name)
        assert numpy_of(place, keep).tolist() == expected, place.name


@settings(max_examples=12)
@given(greedy_tie_problems("masks"))
def test_greedy_mask_nms_visits_long_runs_of_ties_in_index_order(problem):
    scores, masks, labels, threshold = problem
    expected = ref_base.greedy_nms(ref_base.pairwise_iou(masks=masks, labels=labels), scores, threshold)
    for place, name in places("mask_iou_sorted", "greedy_iou"):
        keep = mask_nms(place.asarray(masks), place.asarray(scores), threshold,
                        None if labels is None else place.asarray(labels), backend=name)
        assert numpy_of(place, keep).tolist() == expected, place.name


def test_batched_nms_keeps_the_lowest_index_of_each_label_among_two_hundred_duplicates():
    n = 200
    boxes = np.tile([[0.0, 0.0, 10.0, 10.0]], (n, 1))
    labels = np.arange(n) % 3  # interleaved: the per-class visit order comes from sorting the labels
    scores = np.full(n, 0.5)
    for place, name in places("greedy_boxes"):
        keep = batched_nms(place.asarray(boxes), place.asarray(scores), place.asarray(labels), 0.5, backend=name)
        assert numpy_of(place, keep).tolist() == [0, 1, 2], place.name
        keep = nms(place.asarray(boxes), place.asarray(scores), 0.5, backend=name)
        assert numpy_of(place, keep).tolist() == [0], place.name


@settings(max_examples=15)
@given(st.sampled_from(["masks", "boxes"]).flatmap(greedy_tie_problems), st.sampled_from(["gaussian", "linear"]))
def test_soft_nms_selects_long_runs_of_ties_by_lower_index(problem, kernel):
    scores, items, labels, _ = problem
    kind = "masks" if items.ndim == 3 else "boxes"
    ious = ref_base.pairwise_iou(**{kind: items}, labels=labels)
    ref_keep, ref_decayed = ref_base.soft_nms(ious, scores, kernel=kernel)
    ops = ("mask_iou_sorted", "soft_nms_iou") if kind == "masks" else ("soft_nms_boxes",)
    for place, name in places(*ops):
        item = place.asarray(items)
        keep, decayed = soft_nms(place.asarray(scores), item if kind == "masks" else None,
                                 boxes=item if kind == "boxes" else None, kernel=kernel, backend=name,
                                 labels=None if labels is None else place.asarray(labels))
        assert numpy_of(place, keep).tolist() == ref_keep, place.name
        assert_close(numpy_of(place, decayed), np.asarray(ref_decayed), "float64")


# ---------------------------------------------------------------------------------------------- multiclass


@st.composite
def multiclass_tie_problems(draw):
    """(boxes (B, M, 4), scores (B, C, M), options) with 40-120 boxes and few distinct scores per class."""
    n_img = draw(st.integers(1, 2))
    n_cls = draw(st.integers(2, 3))
    m = draw(st.integers(40, 120))
    boxes = np.stack([draw(strategies.tie_boxes(m)) for _ in range(n_img)])
    scores = np.stack([np.stack([draw(strategies.tie_scores(m)) for _ in range(n_cls)]) for _ in range(n_img)])
    options = {
        "kernel": draw(st.sampled_from(["linear", "gaussian"])),
        "score_threshold": draw(st.sampled_from([0.0, 0.3])),
        "post_threshold": draw(st.sampled_from([0.0, 0.1])),
        "nms_top_k": draw(st.sampled_from([-1, 30, 60])),
        "keep_top_k": draw(st.sampled_from([-1, 50, 100])),
        "background_label": draw(st.sampled_from([-1, 0])),
    }
    return boxes, scores, options


def paddle_reference(boxes, scores, options):
    return reference_paddle.matrix_nms(
        boxes, scores, options["score_threshold"], options["post_threshold"], options["nms_top_k"],
        options["keep_top_k"], use_gaussian=options["kernel"] == "gaussian", gaussian_sigma=2.0,
        background_label=options["background_label"])


@settings(max_examples=12)
@given(multiclass_tie_problems())
def test_multiclass_ranks_long_runs_of_ties_by_box_index_then_class(problem):
    boxes, scores, options = problem
    ref_out, ref_num, ref_index = paddle_reference(boxes, scores, options)
    for place, name in places("multiclass_matrix_nms"):
        out, rois_num, index = (numpy_of(place, x) for x in multiclass_matrix_nms(
            place.asarray(boxes), place.asarray(scores), backend=name, **options))
        np.testing.assert_array_equal(rois_num, ref_num)
        np.testing.assert_array_equal(index, ref_index, err_msg=place.name)
        assert_close(out, ref_out, "float64")


def test_multiclass_sixty_equal_isolated_boxes_rank_by_class_then_box_index():
    m = 60
    boxes = np.array([[[3.0 * k, 0.0, 3.0 * k + 2.0, 2.0] for k in range(m)]])
    scores = np.full((1, 3, m), 0.5)
    options = dict(score_threshold=0.1, post_threshold=0.1, nms_top_k=-1, keep_top_k=-1, kernel="linear",
                   background_label=0)
    for place, name in places("multiclass_matrix_nms"):
        out, _, index = (numpy_of(place, x) for x in multiclass_matrix_nms(
            place.asarray(boxes), place.asarray(scores), backend=name, **options))
        assert out[:, 0].tolist() == [1.0] * m + [2.0] * m, place.name
        assert index[:, 0].tolist() == list(range(m)) * 2, place.name
        # a top-k through the run of equal scores keeps the lowest box indices of each class
        out, _, index = (numpy_of(place, x) for x in multiclass_matrix_nms(
            place.asarray(boxes), place.asarray(scores), backend=name, **{**options, "nms_top_k": 25,
                                                                           "keep_top_k": 40}))
        assert out[:, 0].tolist() == [1.0] * 25 + [2.0] * 15, place.name
        assert index[:, 0].tolist() == list(range(25)) + list(range(15)), place.name


# ---------------------------------------------------------------------------------------------- Soft-NMS, float32


def float32_tie():
    """float32 scores whose float64 decayed values differ but round to the same float32.

    Candidate 2 (0.9) overlaps candidate 0 (0.75) at an IoU chosen so that 0.75's decayed value is 2**-27
    below 0.5 in float64, a quarter of float32's spacing there; candidate 1 (0.5) overlaps nothing. Selection
    in float64 is 2, 1, 0; in float32 candidates 0 and 1 tie at 0.5, and ties go to the lower index: 2, 0, 1.
    """
    target = 0.5 - 2.0**-27
    iou = math.sqrt(-0.5 * math.log(target / 0.75))  # gaussian, sigma 0.5: 0.75 * exp(-iou^2 / 0.5) = target
    boxes = np.array([[0.0, 0.0, 1.0, iou], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 1.0, 1.0]])
    return np.array([0.75, 0.5, 0.9], dtype=np.float32), boxes, target


def test_soft_nms_float32_rounding_ties_go_to_the_lower_index():
    scores, boxes, target = float32_tie()
    ref_keep, ref_decayed = ref_base.soft_nms(ref_base.pairwise_iou(boxes=boxes), scores)
    assert ref_keep == [2, 1, 0] and ref_decayed[2] < 0.5 and np.float32(ref_decayed[2]) == np.float32(0.5)
    for place, name in places("soft_nms_boxes"):
        keep, decayed = soft_nms(place.asarray(scores), boxes=place.asarray(boxes), backend=name)
        assert numpy_of(place, keep).tolist() == [2, 0, 1], place.name
        assert numpy_of(place, decayed).tolist() == [np.float32(0.9), 0.5, 0.5], place.name


def test_soft_nms_many_float32_rounding_ties_go_to_the_lower_index():
    # 50 copies of the pattern side by side: 50 decayed candidates tie in float32 with 50 undecayed ones
    scores, boxes, _ = float32_tie()
    n = 50
    shift = np.array([10.0, 0.0, 10.0, 0.0])
    all_boxes = np.concatenate([boxes[[0]] + shift * k for k in range(n)] + [boxes[[1]] + shift * k
                               for k in range(n)] + [boxes[[2]] + shift * k for k in range(n)])
    all_scores = np.repeat(scores, n)
    expected = list(range(2 * n, 3 * n)) + list(range(2 * n))
    for place, name in places("soft_nms_boxes"):
        keep, _ = soft_nms(place.asarray(all_scores), boxes=place.asarray(all_boxes), backend=name)
        assert numpy_of(place, keep).tolist() == expected, place.name
