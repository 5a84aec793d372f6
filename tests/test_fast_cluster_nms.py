"""fast_nms and cluster_nms: Cluster-NMS equals greedy NMS, Fast NMS is its definition and keeps a subset of
greedy's, on every backend; hand-worked chains, edge cases, a tiny memory budget, dtypes and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_baselines as ref
from helpers import requires
from matrixnms import _config, batched_nms, cluster_nms, fast_nms, mask_nms, nms
from matrixnms.scenes import mask_scene
from test_greedy_nms import greedy, greedy_problems, rectangle_masks

METHODS = {"fast": fast_nms, "cluster": cluster_nms}


def matrix(backend, method, scores, iou_threshold, masks=None, boxes=None, labels=None):
    """fast_nms or cluster_nms on ``backend``; NumPy keep after type and place checks."""
    ops = ("mask_iou_sorted", f"{method}_nms_iou") if masks is not None else (f"{method}_nms_boxes",)
    keep = METHODS[method](backend.asarray(scores), None if masks is None else backend.asarray(masks),
                           boxes=None if boxes is None else backend.asarray(boxes),
                           labels=None if labels is None else backend.asarray(labels),
                           iou_threshold=iou_threshold, backend=backend.for_op(*ops))
    assert backend.same_place(keep)
    assert str(keep.dtype).endswith("int64")
    return backend.to_numpy(keep)


def fast_reference(ious: list[list[float]], scores, iou_threshold: float) -> list[int]:
    """YOLACT's definition, the slow way: by descending score (ties: lower index), keep j unless its IoU with
    any higher-ranked candidate, kept or not, is strictly greater than the threshold."""
    scores = [float(s) for s in np.asarray(scores, dtype=np.float64)]
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [j for r, j in enumerate(ranked) if all(ious[i][j] <= iou_threshold for i in ranked[:r])]


@st.composite
def tied_problems(draw, kind: str):
    """Labelled problems where most scores tie exactly (two or three values) and items are often duplicates."""
    scores, masks, boxes, _, threshold = draw(greedy_problems(kind))
    n = len(scores)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = rng.choice(np.array([0.3, 0.6, 0.9])[:draw(st.integers(1, 3))], size=n)
    labels = rng.integers(0, draw(st.integers(1, 3)), n).astype(np.int64)
    if n and draw(st.booleans()):
        # exact duplicates of the first item, with its score and label
        copies = rng.integers(0, n, size=max(1, n // 3))
        items = masks if masks is not None else boxes
        items[copies] = items[0]
        scores[copies], labels[copies] = scores[0], labels[0]
    return scores, masks, boxes, labels, threshold


def check_against_greedy(backend, problem):
    scores, masks, boxes, labels, threshold = problem
    ious = ref.pairwise_iou(masks, boxes, labels)
    expected = ref.greedy_nms(ious, scores, threshold)
    assert matrix(backend, "cluster", scores, threshold, masks, boxes, labels).tolist() == expected
    # the library's own greedy NMS on the same place agrees too (nms / batched_nms / mask_nms)
    assert greedy(backend, scores, threshold, masks, boxes, labels).tolist() == expected
    fast = matrix(backend, "fast", scores, threshold, masks, boxes, labels).tolist()
    assert fast == fast_reference(ious, scores, threshold)
    assert set(fast) <= set(expected)  # Fast NMS suppresses at least as much as greedy NMS


@pytest.mark.parametrize("kind", ["boxes", "masks"])
@given(data=st.data())
def test_cluster_nms_is_greedy_and_fast_nms_a_subset(backend, kind, data):
    check_against_greedy(backend, data.draw(greedy_problems(kind)))


@pytest.mark.parametrize("kind", ["boxes", "masks"])
@given(data=st.data())
def test_labelled_ties_and_duplicates_change_nothing(backend, kind, data):
    check_against_greedy(backend, data.draw(tied_problems(kind)))


@pytest.mark.parametrize("kind", ["boxes", "masks"])
@settings(max_examples=40)
@given(data=st.data())
def test_ios_cluster_nms_is_greedy_ios_and_fast_nms_a_subset(backend, kind, data):
    scores, masks, boxes, labels, threshold = data.draw(tied_problems(kind))
    s = backend.asarray(scores)
    items = {"masks": backend.asarray(masks)} if masks is not None else {"boxes": backend.asarray(boxes)}
    lab = None if labels is None else backend.asarray(labels)
    if masks is not None:
        expected = mask_nms(items["masks"], s, threshold, lab, metric="ios",
                            backend=backend.for_op("mask_iou_sorted", "greedy_iou"))
    else:
        expected = batched_nms(items["boxes"], s, lab, threshold, metric="ios", backend=backend.for_op("greedy_boxes"))
    expected = backend.to_numpy(expected).tolist()
    ops = ("mask_iou_sorted", "cluster_nms_iou", "fast_nms_iou") if masks is not None else (
        "cluster_nms_boxes", "fast_nms_boxes")
    cluster = cluster_nms(s, labels=lab, iou_threshold=threshold, metric="ios", backend=backend.for_op(*ops), **items)
    fast = fast_nms(s, labels=lab, iou_threshold=threshold, metric="ios", backend=backend.for_op(*ops), **items)
    assert backend.to_numpy(cluster).tolist() == expected
    assert set(backend.to_numpy(fast).tolist()) <= set(expected)


@pytest.mark.parametrize("kind", ["boxes", "masks"])
@given(data=st.data())
def test_a_tiny_memory_budget_changes_nothing(backend, kind, data):
    # one row per block, and Cluster-NMS recomputes its blocks at every step (the (K, K) bools do not fit)
    problem = data.draw(greedy_problems(kind))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_config, "CHUNK_BYTES", 64)
        check_against_greedy(backend, problem)


def test_cluster_nms_equals_mask_nms_on_a_crowded_scene():
    # SOLO-like duplicates: many candidates per object, long suppression chains; backend="auto" (Numba IoU)
    for num_classes in (None, 80):
        s = mask_scene(300, height=50, width=84, num_classes=num_classes, seed=3)
        for threshold in (0.3, 0.5, 0.7):
            greedy_keep = mask_nms(s.masks, s.scores, threshold, labels=s.labels)
            np.testing.assert_array_equal(cluster_nms(s.scores, s.masks, labels=s.labels, iou_threshold=threshold),
                                          greedy_keep)
            fast_keep = fast_nms(s.scores, s.masks, labels=s.labels, iou_threshold=threshold)
            assert set(fast_keep.tolist()) <= set(greedy_keep.tolist())


# --- hand-worked cases -------------------------------------------------------------------------------------


def chain(length):
    """Boxes [5k, 0, 5k + 10, 10] by decreasing score: neighbours overlap at IoU 50 / 150 = 1/3, the next but
    one not at all."""
    boxes = np.array([[5 * k, 0, 5 * k + 10, 10] for k in range(length)], dtype=np.float64)
    return boxes, np.linspace(0.9, 0.5, length)


def test_a_chain_of_three_keeps_the_third_in_greedy_but_not_in_fast_nms(backend):
    boxes, scores = chain(3)
    for items in ({"boxes": boxes}, {"masks": rectangle_masks(boxes, 24)}):
        # A suppresses B (1/3 > 0.3); C overlaps only B: greedy keeps it, Fast NMS lets the suppressed B drop it
        assert matrix(backend, "cluster", scores, 0.3, **items).tolist() == [0, 2]
        assert matrix(backend, "fast", scores, 0.3, **items).tolist() == [0]
        # 1/3 is not > 1/3: nothing is suppressed
        for method in METHODS:
            assert matrix(backend, method, scores, 1 / 3, **items).tolist() == [0, 1, 2]


def test_cluster_nms_follows_a_long_chain_to_greedy(backend):
    boxes, scores = chain(9)  # greedy keeps every other box: Cluster-NMS needs several steps
    assert matrix(backend, "cluster", scores, 0.3, boxes=boxes).tolist() == [0, 2, 4, 6, 8]
    assert matrix(backend, "fast", scores, 0.3, boxes=boxes).tolist() == [0]
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0])  # neighbours of different labels never suppress
    for method in METHODS:
        assert matrix(backend, method, scores, 0.3, boxes=boxes, labels=labels).tolist() == list(range(9))


def test_thresholds_zero_and_one(backend):
    boxes, scores = chain(4)
    boxes = np.concatenate([boxes, [[100.0, 100.0, 101.0, 101.0]]])  # touches nothing
    scores = np.append(scores, 0.95)
    for items in ({"boxes": boxes}, {"masks": rectangle_masks(boxes, 104)}):
        # 0: any overlap suppresses; 1: IoU is never > 1, everything is kept by score
        assert matrix(backend, "cluster", scores, 0.0, **items).tolist() == [4, 0, 2]
        assert matrix(backend, "fast", scores, 0.0, **items).tolist() == [4, 0]
        for method in METHODS:
            assert matrix(backend, method, scores, 1.0, **items).tolist() == [4, 0, 1, 2, 3]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_empty_input_and_one_item(backend, dtype):
    empty = {"boxes": np.zeros((0, 4), dtype=dtype), "masks": np.zeros((0, 5, 7), dtype=bool)}
    one = {"boxes": np.array([[1.0, 2.0, 3.0, 5.0]], dtype=dtype), "masks": rectangle_masks([[1, 2, 3, 5]], 8)}
    for method in METHODS:
        for kind in ("boxes", "masks"):
            for labels in (None, "labels"):
                got = matrix(backend, method, np.zeros(0, dtype=dtype), 0.5, labels=None if labels is None else
                             np.zeros(0, np.int64), **{kind: empty[kind]})
                assert got.shape == (0,)
                got = matrix(backend, method, np.array([0.25], dtype=dtype), 0.0, labels=None if labels is None
                             else np.array([3]), **{kind: one[kind]})
                assert got.tolist() == [0]


@pytest.mark.parametrize("score_dtype", ["float16", "float32", "float64"])
def test_dtypes_round_trip(backend, score_dtype):
    boxes, scores = chain(5)
    scores = scores.astype(score_dtype)
    masks = rectangle_masks(boxes, 32)
    for method, expected in (("cluster", [0, 2, 4]), ("fast", [0])):
        for items in ({"boxes": boxes.astype(np.float32)}, {"boxes": boxes.astype(np.int32)},
                      {"masks": masks.astype(np.uint8)}, {"masks": masks.astype(np.float32)}):
            assert matrix(backend, method, scores, 0.3, **items).tolist() == expected


@requires("torch")
def test_torch_inputs_that_require_grad_are_accepted():
    import torch

    boxes, scores = chain(3)
    scores = torch.tensor(scores, requires_grad=True)
    for method, expected in (("cluster", [0, 2]), ("fast", [0])):
        assert METHODS[method](scores, boxes=torch.tensor(boxes), iou_threshold=0.3).tolist() == expected


def test_defaults_are_the_usual_half():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])  # IoU exactly 0.5: not suppressed
    scores = np.array([0.9, 0.8])
    assert fast_nms(scores, boxes=boxes).tolist() == cluster_nms(scores, boxes=boxes).tolist() == [0, 1]
    assert cluster_nms(scores, boxes=boxes).tolist() == nms(boxes, scores, 0.5).tolist()
    labels = np.array([2, 2])
    assert cluster_nms(scores, boxes=boxes, labels=labels).tolist() == batched_nms(boxes, scores, labels, 0.5).tolist()


# --- errors: one per message --------------------------------------------------------------------------------

BOXES = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
SCORES = np.array([0.9, 0.8])
MASKS = rectangle_masks(BOXES, 4)

ERRORS = [
    # (call, exception, message fragment); each for both functions
    (lambda f: f(SCORES[:, None], boxes=BOXES), ValueError, r"scores must have shape \(N,\), got \(2, 1\)"),
    (lambda f: f(SCORES, boxes=BOXES[:, :3]), ValueError, r"boxes must have shape \(N, 4\), got \(2, 3\)"),
    (lambda f: f(SCORES, MASKS[0, 0]), ValueError,
     r"masks must have shape \(N, \*S\) with at least one trailing dimension, got \(4,\)"),
    (lambda f: f(SCORES, MASKS[:1]), ValueError, "masks must have one mask per score: expected 2, got 1"),
    (lambda f: f(SCORES, boxes=BOXES, labels=np.array([0, 1, 2])), ValueError, r"labels must have shape \(2,\)"),
    (lambda f: f(np.array([0.5, np.nan]), boxes=BOXES), ValueError, "scores must be finite, got NaN"),
    (lambda f: f(SCORES, MASKS, iou_threshold=1.5), ValueError, r"iou_threshold must be in \[0, 1\], got 1.5"),
    (lambda f: f(SCORES, boxes=BOXES, iou_threshold=-0.1), ValueError, "iou_threshold must be >= 0 and finite"),
    (lambda f: f(SCORES, MASKS, boxes=BOXES), ValueError, "needs exactly one of masks or boxes, got both"),
    (lambda f: f(SCORES), ValueError, "needs exactly one of masks or boxes, got neither"),
    (lambda f: f(SCORES, MASKS, metric="giou"), ValueError, r"metric must be one of \('iou', 'ios'\), got 'giou'"),
    (lambda f: f(SCORES, boxes=BOXES, backend="torch"), ValueError, "backend 'torch' cannot run on numpy arrays"),
]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("call, exception, message", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_bad_input_raises_a_named_error(method, call, exception, message):
    with pytest.raises(exception, match=message):
        call(METHODS[method])


@requires("numba")
@requires("torch")
@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_named_backend_without_the_operation_raises(method):
    import torch

    # strict dispatch refuses a named backend without the operation, naming it: Torch has the mask IoU but
    # not the decision step, Numba the decision step on masks but nothing for boxes
    with pytest.raises(ValueError, match=f"backend 'torch' has no kernel for {method}_nms_iou"):
        METHODS[method](torch.from_numpy(SCORES), torch.from_numpy(MASKS), backend="torch")
    with pytest.raises(ValueError, match=f"backend 'numba' has no kernel for {method}_nms_boxes"):
        METHODS[method](SCORES, boxes=BOXES, backend="numba")


@requires("torch")
@pytest.mark.parametrize("method", sorted(METHODS))
def test_mixed_array_libraries_raise_type_error(method):
    import torch

    with pytest.raises(TypeError, match="masks is numpy but scores is torch"):
        METHODS[method](torch.from_numpy(SCORES), MASKS)
