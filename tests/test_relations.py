"""Properties that tie Matrix NMS to greedy NMS and Soft-NMS, and invariances every method must have.

With f(x) = exp(-x^2 / sigma) (gaussian) or 1 - x (linear), and Soft-NMS run without a score threshold
(linear with iou_threshold = 0, so that it also decays by 1 - iou at every positive IoU):

- two items: Matrix NMS decays the lower one by exactly f(iou), and so does Soft-NMS;
- star-shaped overlap (items overlap only the top one): Matrix NMS equals Soft-NMS, and greedy NMS at t keeps
  exactly the items with Matrix-NMS decay >= f(t);
- in general, decay[j] <= f(IoU of j with the top item of its class), and the top item keeps its score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import strategies
from helpers import ATOL, RTOL, assert_close
from matrixnms import batched_nms, mask_nms, matrix_nms, nms, soft_nms

KERNELS = st.sampled_from(["gaussian", "linear"])
SIGMAS = st.sampled_from([0.5, 0.1, 1.0, 2.0])
KINDS = st.sampled_from(["boxes", "masks"])
# translating by ~100 or scaling by 10 perturbs a float64 IoU by far less than float32 rounding does
TRANSFORM_RTOL, TRANSFORM_ATOL = RTOL["float32"], ATOL["float32"]
# keep drawn thresholds this far from every IoU when a transformation may move an IoU across them
MARGIN = 1e-6


def f(kernel: str, sigma: float, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-(x * x) / sigma) if kernel == "gaussian" else 1 - x


class Methods:
    """The three methods on one backend, each returning NumPy (keep, decayed); greedy decayed = scores."""

    def __init__(self, backend, scores, masks=None, boxes=None, labels=None):
        self.backend, self.scores = backend, np.asarray(scores)
        put = backend.asarray
        self.s = put(scores)
        self.masks = None if masks is None else put(masks)
        self.boxes = None if boxes is None else put(boxes)
        self.labels = None if labels is None else put(labels)

    def _out(self, keep, decayed=None):
        b = self.backend
        assert b.same_place(keep) and str(keep.dtype).endswith("int64")
        keep = b.to_numpy(keep)
        if decayed is None:
            return keep, self.scores[keep]
        assert b.same_place(decayed) and decayed.dtype == self.s.dtype
        return keep, b.to_numpy(decayed)

    def greedy(self, iou_threshold):
        if self.masks is not None:
            k = self.backend.for_op("mask_iou_sorted", "greedy_iou")
            return self._out(mask_nms(self.masks, self.s, iou_threshold, self.labels, backend=k))
        k = self.backend.for_op("greedy_boxes")
        if self.labels is not None:
            return self._out(batched_nms(self.boxes, self.s, self.labels, iou_threshold, backend=k))
        return self._out(nms(self.boxes, self.s, iou_threshold, backend=k))

    def matrix(self, kernel="gaussian", sigma=0.5):
        return self._out(*matrix_nms(self.s, self.masks, boxes=self.boxes, labels=self.labels, kernel=kernel,
                                     sigma=sigma,
                                     backend=self.backend.for_op("mask_decay" if self.masks is not None
                                                                 else "box_decay")))

    def soft(self, kernel="gaussian", sigma=0.5, iou_threshold=0.3, score_threshold=0.001):
        return self._out(*soft_nms(self.s, self.masks, boxes=self.boxes, labels=self.labels, kernel=kernel,
                                   sigma=sigma, iou_threshold=iou_threshold, score_threshold=score_threshold,
                                   backend=self.backend.for_op(*(("mask_iou_sorted", "soft_nms_iou")
                                                                 if self.masks is not None
                                                                 else ("soft_nms_boxes",)))))

    def soft_like_matrix(self, kernel, sigma):
        """Soft-NMS with the settings under which it equals Matrix NMS on two items or a star."""
        return self.soft(kernel, sigma, iou_threshold=0.0, score_threshold=None)

    def all(self, kernel, sigma, iou_threshold):
        return {"greedy": self.greedy(iou_threshold), "matrix": self.matrix(kernel, sigma),
                "soft": self.soft(kernel, sigma)}


def assert_same_ranking(a, b, rtol, atol):
    """Same kept indices with close decayed scores, and the same order wherever the scores are not tied."""
    (keep_a, dec_a), (keep_b, dec_b) = a, b
    assert sorted(keep_a.tolist()) == sorted(keep_b.tolist())
    by_index = dict(zip(keep_b.tolist(), dec_b.tolist()))
    np.testing.assert_allclose(dec_a, [by_index[i] for i in keep_a.tolist()], rtol=rtol, atol=atol)
    rank_b = {i: r for r, i in enumerate(keep_b.tolist())}
    for x in range(len(keep_a)):
        for y in range(x + 1, len(keep_a)):
            if dec_a[x] - dec_a[y] > atol + rtol * abs(dec_a[x]):
                assert rank_b[keep_a[x]] < rank_b[keep_a[y]]


def items(kind, boxes):
    """Integer boxes and the equivalent axis-aligned rectangle masks ([x1, x2) x [y1, y2) pixels)."""
    boxes = np.asarray(boxes, dtype=np.int64)
    if kind == "boxes":
        return {"boxes": boxes.astype(np.float64)}
    side = int(boxes.max(initial=0)) + 1
    masks = np.zeros((len(boxes), side, side), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return {"masks": masks}


def reference_iou(masks=None, boxes=None):
    return reference.mask_iou(masks, masks) if masks is not None else reference.box_iou(boxes, boxes)


@st.composite
def distinct_scores(draw, n):
    """Scores in (0, 1) at least 0.2 / n apart, so that permuting the input cannot reorder ties."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / max(n, 1)


# --- two items ----------------------------------------------------------------------------------------------


@given(KINDS, st.data(), KERNELS, SIGMAS, st.sampled_from(["float64", "float32"]))
def test_two_items_decay_by_f_of_their_iou_in_matrix_and_soft_nms(backend, kind, data, kernel, sigma, dtype):
    if kind == "masks":
        things = {"masks": data.draw(strategies.masks(n=2))}
    else:
        things = {"boxes": data.draw(strategies.boxes(n=2))}
    scores = data.draw(strategies.scores(2)).astype(dtype)
    iou = reference_iou(**things)[0, 1]
    top, other = (0, 1) if scores[0] >= scores[1] else (1, 0)
    expected = {top: float(scores[top]), other: float(scores[other]) * float(f(kernel, sigma, iou))}
    run = Methods(backend, scores, **things)
    for name, result in [("matrix", run.matrix(kernel, sigma)), ("soft", run.soft_like_matrix(kernel, sigma))]:
        keep, decayed = result
        assert sorted(keep.tolist()) == [0, 1], name
        assert keep[0] == top or decayed[0] == decayed[1], name
        assert_close(decayed, np.array([expected[i] for i in keep.tolist()]), dtype)
    # the gaussian Soft-NMS kernel has no IoU threshold: any Nt gives the same decay
    if kernel == "gaussian":
        nt = data.draw(st.floats(0, 1))
        assert_same_ranking(run.soft("gaussian", sigma, nt, None), run.soft_like_matrix(kernel, sigma),
                            RTOL[dtype], ATOL[dtype])


# --- no overlaps --------------------------------------------------------------------------------------------


@st.composite
def disjoint_boxes(draw, max_n=12):
    """Integer boxes that never overlap: each lies in its own 6 x 6 cell (neighbours may touch, IoU 0)."""
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cols = 4
    cells = rng.permutation(16)[:n]
    out = np.zeros((n, 4), dtype=np.int64)
    for k, cell in enumerate(cells):
        x0, y0 = 6 * (cell % cols), 6 * (cell // cols)
        x1, x2 = sorted(rng.integers(0, 7, 2))
        y1, y2 = sorted(rng.integers(0, 7, 2))
        out[k] = [x0 + x1, y0 + y1, x0 + x2, y0 + y2]  # may be empty (zero width or height)
    return out


@given(disjoint_boxes(), KINDS, KERNELS, SIGMAS, st.floats(0, 1), st.data())
def test_without_overlaps_every_method_keeps_everything_unchanged(backend, boxes, kind, kernel, sigma, t, data):
    n = len(boxes)
    scores = data.draw(strategies.scores(n))
    labels = data.draw(strategies.optional_labels(n))
    run = Methods(backend, scores, labels=labels, **items(kind, boxes))
    by_score = sorted(range(n), key=lambda i: (-scores[i], i))
    results = {"greedy": run.greedy(t), "matrix": run.matrix(kernel, sigma),
               "soft": run.soft(kernel, sigma, t, None)}
    for name, (keep, decayed) in results.items():
        assert keep.tolist() == by_score, name
        assert decayed.tolist() == scores[keep].tolist(), name


def _draw_problem(data, kind: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
    """({"masks": ...} or {"boxes": ...}, scores, labels or None) of a random problem of that kind."""
    if kind == "masks":
        things = {"masks": data.draw(strategies.masks(max_n=10, max_side=16))}
    else:
        things = {"boxes": data.draw(strategies.boxes(max_n=12))}
    n = len(next(iter(things.values())))
    return things, data.draw(strategies.scores(n)), data.draw(strategies.optional_labels(n))


# --- the top item ------------------------------------------------------------------------------------------


@given(KINDS, st.data(), KERNELS, SIGMAS, st.floats(0, 1))
def test_the_top_item_of_each_class_survives_with_its_score(backend, kind, data, kernel, sigma, t):
    things, scores, labels = _draw_problem(data, kind)
    n = len(scores)
    score_threshold = data.draw(st.sampled_from([None, 0.001, 0.3]))
    run = Methods(backend, scores, labels=labels, **things)
    results = {"greedy": run.greedy(t), "matrix": run.matrix(kernel, sigma),
               "soft": run.soft(kernel, sigma, t, score_threshold)}
    classes = np.zeros(n, np.int64) if labels is None else labels
    overall = min(range(n), key=lambda i: (-scores[i], i), default=None)
    for name, (keep, decayed) in results.items():
        kept = dict(zip(keep.tolist(), decayed.tolist()))
        for c in set(classes.tolist()):
            top = min(np.flatnonzero(classes == c), key=lambda i: (-scores[i], i))
            if name == "soft" and scores[top] < (score_threshold or 0):
                continue
            assert kept.get(int(top)) == scores[top], (name, c)
        if overall is not None and not (name == "soft" and scores[overall] < (score_threshold or 0)):
            assert keep[0] == overall and decayed[0] == scores[overall], name


# --- star-shaped overlap -----------------------------------------------------------------------------------


@st.composite
def stars(draw):
    """(boxes, top): integer boxes where every item overlaps at most the top item.

    The top item T = [10, 0, 20, 4m] spans m horizontal bands of height 4; satellite k lies inside band k
    (so satellites touch at most: IoU 0 with each other) and straddles T's columns by a random amount.
    """
    m = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    boxes = [[10, 0, 20, 4 * m]]
    for k in range(m):
        y1, y2 = sorted(rng.choice(5, 2, replace=False))
        x1 = int(rng.integers(0, 20))
        x2 = int(rng.integers(max(x1, 10) + 1, 31))
        boxes.append([x1, 4 * k + y1, x2, 4 * k + y2])
    order = rng.permutation(m + 1)  # the top item goes anywhere in the input
    return np.array(boxes, dtype=np.int64)[order], int(np.flatnonzero(order == 0)[0])


@given(stars(), KINDS, KERNELS, SIGMAS, st.floats(0, 1), st.data())
def test_star_greedy_keeps_exactly_the_items_decayed_at_least_f_t(backend, star, kind, kernel, sigma, t, data):
    boxes, top = star
    n = len(boxes)
    scores = 0.9 * data.draw(strategies.scores(n))
    scores[top] = 0.95
    things = items(kind, boxes)
    iou_top = reference_iou(**things)[top]
    assume(np.all(np.abs(iou_top - t) > MARGIN))  # f(iou) and f(t) must compare like iou and t
    run = Methods(backend, scores, **things)

    keep, decayed = run.matrix(kernel, sigma)
    decay = dict(zip(keep.tolist(), (decayed / scores[keep]).tolist()))
    expected = [i for i in sorted(range(n), key=lambda i: (-scores[i], i)) if decay[i] >= f(kernel, sigma, t)]
    assert run.greedy(t)[0].tolist() == expected

    # Matrix NMS equals Soft-NMS here, and both decay item j by exactly f(IoU(top, j))
    assert_same_ranking(run.matrix(kernel, sigma), run.soft_like_matrix(kernel, sigma), RTOL["float64"],
                        ATOL["float64"])
    expected_decay = f(kernel, sigma, iou_top)
    expected_decay[top] = 1.0
    np.testing.assert_allclose([decay[i] for i in range(n)], expected_decay, rtol=RTOL["float64"],
                               atol=ATOL["float64"])


# --- the decay bound ---------------------------------------------------------------------------------------


@given(KINDS, st.data(), KERNELS, SIGMAS)
def test_matrix_decay_is_at_most_f_of_the_iou_with_the_top_item(backend, kind, data, kernel, sigma):
    things, scores, labels = _draw_problem(data, kind)
    n = len(scores)
    keep, decayed = Methods(backend, scores, labels=labels, **things).matrix(kernel, sigma)
    got = dict(zip(keep.tolist(), decayed.tolist()))
    iou = reference_iou(**things)
    classes = np.zeros(n, np.int64) if labels is None else labels
    for j in range(n):
        same = np.flatnonzero(classes == classes[j])
        top = min(same, key=lambda i: (-scores[i], i))
        if top == j:
            continue
        bound = scores[j] * f(kernel, sigma, iou[top, j])
        assert got[j] <= bound + ATOL["float64"] + RTOL["float64"] * bound


# --- invariances -------------------------------------------------------------------------------------------


@st.composite
def invariance_problems(draw):
    kind = draw(KINDS)
    if kind == "masks":
        things = {"masks": draw(strategies.masks(max_n=10, max_side=16))}
    else:
        things = {"boxes": draw(strategies.boxes(max_n=12))}
    n = len(next(iter(things.values())))
    labels = draw(strategies.optional_labels(n))
    return things, draw(distinct_scores(n)), labels, draw(KERNELS), draw(SIGMAS), draw(st.floats(0, 1))


@given(invariance_problems(), st.data())
def test_permuting_the_input_permutes_keep(backend, problem, data):
    things, scores, labels, kernel, sigma, t = problem
    n = len(scores)
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    permuted = {k: v[perm] for k, v in things.items()}
    base = Methods(backend, scores, labels=labels, **things).all(kernel, sigma, t)
    moved = Methods(backend, scores[perm], labels=None if labels is None else labels[perm], **permuted)
    for name, (keep, decayed) in moved.all(kernel, sigma, t).items():
        # moved index i is original index perm[i]
        assert_same_ranking(base[name], (perm[keep], decayed), RTOL["float64"], ATOL["float64"])
        if name == "greedy":
            assert perm[keep].tolist() == base[name][0].tolist()


@given(strategies.boxes(max_n=12), st.data(), KERNELS, SIGMAS, st.floats(0, 1))
def test_translating_or_scaling_boxes_changes_nothing(backend, boxes, data, kernel, sigma, t):
    n = len(boxes)
    scores = data.draw(distinct_scores(n))
    labels = data.draw(strategies.optional_labels(n))
    scale = data.draw(st.sampled_from([1.0, 0.1, 3.0, 10.0]) | st.floats(0.05, 20))
    shift = np.array(data.draw(st.tuples(st.floats(-100, 100), st.floats(-100, 100))) * 2)
    iou = reference.box_iou(boxes, boxes)
    # the greedy threshold and the linear Soft-NMS Nt (0.3 by default) are the only places where a tiny IoU
    # change can flip a decision
    assume(np.all(np.abs(iou - t) > MARGIN) and (kernel == "gaussian" or np.all(np.abs(iou - 0.3) > MARGIN)))
    base = Methods(backend, scores, boxes=boxes, labels=labels).all(kernel, sigma, t)
    moved = Methods(backend, scores, boxes=boxes * scale + shift, labels=labels).all(kernel, sigma, t)
    for name in base:
        if name == "greedy":
            assert moved[name][0].tolist() == base[name][0].tolist()
        assert_same_ranking(base[name], moved[name], TRANSFORM_RTOL, TRANSFORM_ATOL)


@given(strategies.boxes(max_n=12, integer=True), st.data(), KERNELS, SIGMAS, st.floats(0, 1))
def test_boxes_and_their_rectangle_masks_give_identical_results(backend, boxes, data, kernel, sigma, t):
    n = len(boxes)
    boxes = boxes - boxes.min(initial=0)  # rasterise on a canvas starting at 0
    scores = data.draw(strategies.scores(n))
    labels = data.draw(strategies.optional_labels(n))
    as_boxes = Methods(backend, scores, labels=labels, **items("boxes", boxes)).all(kernel, sigma, t)
    as_masks = Methods(backend, scores, labels=labels, **items("masks", boxes)).all(kernel, sigma, t)
    for name in as_boxes:
        # integer corners: both IoU paths compute the same exact ratio of integers, so the sequential methods
        # take identical decisions; Matrix NMS's box and mask decay kernels may round differently (ties)
        if name == "matrix":
            assert_same_ranking(as_masks[name], as_boxes[name], RTOL["float64"], ATOL["float64"])
        else:
            assert as_masks[name][0].tolist() == as_boxes[name][0].tolist(), name
            assert_close(as_masks[name][1], as_boxes[name][1], "float64")


# --- hand-worked: the chain of three ----------------------------------------------------------------------


def test_chain_of_three_greedy_drops_the_middle_matrix_only_decays_it(backend):
    """A = [0, 0, 10, 10] overlaps B = [2, 0, 12, 10] at IoU 80/120; B overlaps C = [10, 0, 20, 10] at 20/180;
    A and C are disjoint. Greedy removes B and keeps C; Matrix NMS keeps B at a decayed score and, because B is
    itself suppressed (compensation by f(cmax_B)), leaves C undecayed since IoU(B, C) < IoU(A, B)."""
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [10, 0, 20, 10]], dtype=np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    iou_ab, iou_bc = 80 / 120, 20 / 180
    for kind in ("boxes", "masks"):
        run = Methods(backend, scores, **items(kind, boxes))
        assert run.greedy(0.5)[0].tolist() == [0, 2]
        keep, decayed = run.matrix("gaussian", 0.5)
        assert keep.tolist() == [0, 2, 1]
        np.testing.assert_allclose(decayed, [0.9, 0.7, 0.8 * math.exp(-iou_ab**2 / 0.5)], rtol=1e-12)
        # Soft-NMS selects C before B (0.7 > 0.8 f(iou_ab)) and then decays B once more, by f(iou_bc)
        keep, decayed = run.soft("gaussian", 0.5)
        assert keep.tolist() == [0, 2, 1]
        np.testing.assert_allclose(decayed[2], 0.8 * math.exp(-iou_ab**2 / 0.5) * math.exp(-iou_bc**2 / 0.5),
                                   rtol=1e-12)
        # with labels [0, 1, 1], A no longer suppresses B: greedy keeps all three (IoU(B, C) < 0.5) and
        # Matrix NMS, with B now unsuppressed, decays C by the full f(IoU(B, C))
        run = Methods(backend, scores, labels=np.array([0, 1, 1]), **items(kind, boxes))
        assert run.greedy(0.5)[0].tolist() == [0, 1, 2]
        keep, decayed = run.matrix("gaussian", 0.5)
        np.testing.assert_allclose(decayed, [0.9, 0.8, 0.7 * math.exp(-iou_bc**2 / 0.5)], rtol=1e-12)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_star_hand_worked(backend, kernel):
    """T overlaps S1 at IoU 1/3 and S2 at IoU 1/6, S1 and S2 are disjoint: greedy at 0.3 drops S1 only."""
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [-2, 0, 2, 10]], dtype=np.float64)
    # IoU(T, S1) = 50 / 150 = 1/3, IoU(T, S2) = 20 / 120 = 1/6; S1 and S2 disjoint
    scores = np.array([0.9, 0.8, 0.7])
    run = Methods(backend, scores, boxes=boxes)
    assert run.greedy(0.3)[0].tolist() == [0, 2]
    keep, decayed = run.matrix(kernel, 0.5)
    factors = f(kernel, 0.5, [1 / 3, 1 / 6])
    expected = sorted([(0.9, 0), (0.8 * factors[0], 1), (0.7 * factors[1], 2)], key=lambda r: (-r[0], r[1]))
    assert keep.tolist() == [i for _, i in expected]
    np.testing.assert_allclose(decayed, [d for d, _ in expected], rtol=1e-12)
    # greedy keeps exactly the items whose Matrix-NMS decay is >= f(0.3)
    decay = dict(zip(keep.tolist(), (decayed / scores[keep]).tolist()))
    assert sorted(i for i in range(3) if decay[i] >= f(kernel, 0.5, 0.3)) == [0, 2]
