"""multiclass_matrix_nms (PaddlePaddle's matrix_nms) against a plain-loop reference, hand-worked cases, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference_paddle
from helpers import ATOL, RTOL, assert_close, requires
from matrixnms import multiclass_matrix_nms, multiclass_matrix_nms_padded

# Keeps the loop reference fast: about this many (candidate, candidate) pairs per drawn batch at most
# (float32 runs on NumPy scalars, several times slower than Python floats).
PAIR_BUDGET = {"float64": 8_000, "float32": 2_000}


@st.composite
def batch_boxes(draw, n_img: int, m: int) -> np.ndarray:
    """(B, M, 4) boxes: jittered copies of a few objects, exact duplicates, zero-area and inverted boxes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    integer = draw(st.booleans())  # integer corners make touching boxes and exact IoU ties common
    p_inverted = draw(st.sampled_from([0.0, 0.05]))
    out = np.zeros((n_img, m, 4))
    for b in range(n_img):
        objects = rng.uniform(0, 60, (rng.integers(1, 6), 2))
        sizes = rng.uniform(2, 30, (len(objects), 2))
        for k in range(m):
            r = rng.random()
            if k and r < 0.15:
                out[b, k] = out[b, rng.integers(k)]  # exact duplicate
                continue
            if r < 0.7:
                o = rng.integers(len(objects))
                xy = objects[o] + rng.normal(0, 1.5, 2)
                wh = sizes[o] * np.exp(rng.normal(0, 0.15, 2))
            else:
                xy, wh = rng.uniform(0, 80, 2), rng.uniform(0, 25, 2)
            if rng.random() < 0.05:
                wh[rng.integers(2)] = 0.0  # zero width or height
            box = np.concatenate([xy, xy + wh])
            if integer:
                box = np.round(box)
            if rng.random() < p_inverted:
                box = box[[2, 3, 0, 1]] if rng.random() < 0.5 else box[[2, 1, 0, 3]]
            out[b, k] = box
    return out


@st.composite
def batch_scores(draw, n_img: int, n_cls: int, m: int, per_class: int) -> np.ndarray:
    """(B, C, M) scores with about ``per_class`` nonzero entries per class; random, tied or all equal."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = draw(st.sampled_from(["random", "ties", "all_equal"]))
    if style == "random":
        values = rng.random((n_img, n_cls, m))
    elif style == "ties":
        values = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9], size=(n_img, n_cls, m))
    else:
        values = np.full((n_img, n_cls, m), 0.5)
    active = rng.random((n_img, n_cls, m)) < min(1.0, per_class / max(m, 1))
    return np.where(active, values, 0.0)


def limits(values: list) -> st.SearchStrategy:
    """A top-k from ``values``, or 0 (legal, but it empties everything) about one time in twenty."""
    return st.sampled_from(values * (20 // len(values)) + [0])


@st.composite
def problems(draw, max_img: int = 4, max_cls: int = 21, max_boxes: int = 300, pairs: int = PAIR_BUDGET["float64"]):
    """(boxes, scores, options) for multiclass_matrix_nms; options use this library's names."""
    n_img = draw(st.integers(1, max_img))
    n_cls = draw(st.integers(1, max_cls))
    m = draw(st.one_of(st.integers(1, 12), st.integers(13, max_boxes)))  # M = 0: a hand-written test
    # the reference is quadratic per class: bound the candidates so that a batch stays within PAIR_BUDGET
    cap = max(1, int(math.sqrt(pairs / (n_img * n_cls))))
    per_class = draw(st.integers((cap + 1) // 2, cap))
    boxes = draw(batch_boxes(n_img, m))
    scores = draw(batch_scores(n_img, n_cls, m, per_class))
    options = {
        "kernel": draw(st.sampled_from(["linear", "gaussian"])),
        "sigma": draw(st.sampled_from([0.5, 0.25, 1.0, 2.0, 0.3])),
        "score_threshold": draw(st.sampled_from([0.0, 0.05, 0.3, 0.5])),
        "post_threshold": draw(st.sampled_from([0.0, 0.01, 0.1, 0.3])),
        "nms_top_k": draw(limits([-1, None, 1, 2, 5, 10, 50])),
        "keep_top_k": draw(limits([-1, None, 1, 3, 10, 100])),
        "background_label": draw(st.sampled_from(sorted({-1, 0, n_cls - 1}))),
        "normalized": draw(st.booleans()),
    }
    return boxes, scores, options


def run(backend, boxes, scores, padded=False, **options):
    """The library on ``backend``; NumPy results after checking library, device and dtypes."""
    fn = multiclass_matrix_nms_padded if padded else multiclass_matrix_nms
    b, s = backend.asarray(boxes), backend.asarray(scores)
    out, rois_num, index = fn(b, s, backend=backend.for_op("multiclass_matrix_nms"), **options)
    for x in (out, rois_num, index):
        assert backend.same_place(x)
    assert out.dtype == s.dtype
    assert str(rois_num.dtype).endswith("int64") and str(index.dtype).endswith("int64")
    return backend.to_numpy(out), backend.to_numpy(rois_num), backend.to_numpy(index)


def reference(boxes, scores, dtype=np.float64, **options):
    """The Paddle reference, called with Paddle's parameter names."""
    limit = {None: -1}
    return reference_paddle.matrix_nms(
        boxes, scores, options["score_threshold"], options["post_threshold"],
        limit.get(options["nms_top_k"], options["nms_top_k"]), limit.get(options["keep_top_k"], options["keep_top_k"]),
        use_gaussian=options.get("kernel", "linear") == "gaussian", gaussian_sigma=1.0 / options.get("sigma", 0.5),
        background_label=options.get("background_label", 0), normalized=options.get("normalized", True),
        dtype=dtype)


def check_flat_shapes(out, rois_num, index, n_img):
    assert out.ndim == 2 and out.shape[1] == 6 and index.shape == (out.shape[0], 1)
    assert rois_num.shape == (n_img,) and rois_num.sum() == out.shape[0]
    assert not np.any(np.isnan(out))


@given(problems())
def test_float64_batches_agree_with_the_paddle_reference(backend, problem):
    boxes, scores, options = problem
    out, rois_num, index = run(backend, boxes, scores, **options)
    ref_out, ref_num, ref_index = reference(boxes, scores, **options)
    check_flat_shapes(out, rois_num, index, len(scores))
    np.testing.assert_array_equal(rois_num, ref_num)
    np.testing.assert_array_equal(index, ref_index)  # same detections in the same order
    np.testing.assert_allclose(out, ref_out, rtol=RTOL["float64"], atol=ATOL["float64"])


def borderline(boxes, scores, options) -> bool:
    """True when float32 rounding may flip a post_threshold or keep_top_k decision of the reference."""
    unfiltered = dict(options, post_threshold=-math.inf, keep_top_k=-1)
    out, rois_num, _ = reference(boxes, scores, np.float32, **unfiltered)
    tol = 4 * RTOL["float32"]
    if np.any(np.abs(out[:, 1] - options["post_threshold"]) <= tol):
        return True
    k = options["keep_top_k"]
    if k is None or k < 0:
        return False
    start = 0
    for n in rois_num:
        kept = np.sort(out[start:start + n, 1])[::-1]
        kept = kept[kept > options["post_threshold"]]
        start += n
        if 0 < k < len(kept) and kept[k - 1] - kept[k] <= tol:
            return True
    return False


@given(problems(pairs=PAIR_BUDGET["float32"]))
def test_float32_batches_agree_with_the_float32_reference(backend, problem):
    boxes, scores, options = problem
    boxes, scores = boxes.astype(np.float32), scores.astype(np.float32)
    assume(not borderline(boxes, scores, options))
    out, rois_num, index = run(backend, boxes, scores, **options)
    ref_out, ref_num, ref_index = reference(boxes, scores, np.float32, **options)
    check_flat_shapes(out, rois_num, index, len(scores))
    np.testing.assert_array_equal(rois_num, ref_num)
    # exp may differ by an ulp between libraries, which can swap near-equal scores: compare each image's
    # detections as a set, and check the order by score
    start = 0
    for n in rois_num:
        rows = slice(start, start + n)
        mine = np.lexsort((index[rows, 0], out[rows, 0]))
        theirs = np.lexsort((ref_index[rows, 0], ref_out[rows, 0]))
        np.testing.assert_array_equal(index[rows][mine], ref_index[rows][theirs])
        np.testing.assert_allclose(out[rows][mine], ref_out[rows][theirs], rtol=RTOL["float32"],
                                   atol=ATOL["float32"])
        assert np.all(np.diff(out[rows, 1]) <= 0)
        start += n


@given(problems(max_img=3, max_cls=8, max_boxes=60))
def test_padded_variant_holds_the_flat_results_then_padding(backend, problem):
    boxes, scores, options = problem
    out, rois_num, index = run(backend, boxes, scores, **options)
    p_out, p_num, p_index = run(backend, boxes, scores, padded=True, **options)
    n_img, n_cls, m = scores.shape
    classes = n_cls - (options["background_label"] >= 0)
    k = options["keep_top_k"]
    per_class = m if options["nms_top_k"] in (None, -1) else min(m, options["nms_top_k"])
    width = classes * per_class if k in (None, -1) else k
    assert p_out.shape == (n_img, width, 6) and p_index.shape == (n_img, width)
    np.testing.assert_array_equal(p_num, rois_num)
    valid = np.arange(width)[None, :] < p_num[:, None]
    np.testing.assert_array_equal(p_out[valid], out)
    np.testing.assert_array_equal(p_index[valid], index[:, 0])
    np.testing.assert_array_equal(p_out[~valid], np.tile([-1.0, 0, 0, 0, 0, 0], ((~valid).sum(), 1)))
    assert np.all(p_index[~valid] == -1)


# ---------------------------------------------------------------------------------------------- hand-worked


def two_clusters():
    """Image 0: cluster A (class 1), cluster B (class 2) and a distant box (class 1); image 1: nothing."""
    boxes = np.zeros((2, 5, 4))
    boxes[0] = [
        [0, 0, 10, 10],  # A0
        [1, 0, 11, 10],  # A1: IoU(A0, A1) = 90 / 110
        [20, 20, 30, 30],  # B0
        [20, 22, 30, 32],  # B1: IoU(B0, B1) = 80 / 120
        [100, 100, 110, 110],  # D, far from everything
    ]
    boxes[1] = boxes[0]
    scores = np.zeros((2, 3, 5))
    scores[0, 0] = 0.99  # background, skipped
    scores[0, 1, [0, 1, 4]] = [0.9, 0.8, 0.5]
    scores[0, 2, [2, 3]] = [0.7, 0.6]
    return boxes, scores


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_two_clusters_and_a_distant_box_across_two_classes(backend, kernel):
    boxes, scores = two_clusters()
    iou_a, iou_b = 90 / 110, 80 / 120
    if kernel == "linear":
        a1, b1 = 0.8 * (1 - iou_a), 0.6 * (1 - iou_b)
    else:
        a1, b1 = 0.8 * math.exp(-2.0 * iou_a**2), 0.6 * math.exp(-2.0 * iou_b**2)
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.1, nms_top_k=10,
                               keep_top_k=10, kernel=kernel)
    assert rois_num.tolist() == [5, 0]
    expected = sorted([(0.9, 1, 0), (a1, 1, 1), (0.7, 2, 2), (b1, 2, 3), (0.5, 1, 4)], reverse=True)
    assert index[:, 0].tolist() == [m for _, _, m in expected]
    np.testing.assert_allclose(out[:, 1], [s for s, _, _ in expected], rtol=1e-12)
    assert out[:, 0].tolist() == [float(c) for _, c, _ in expected]
    np.testing.assert_array_equal(out[:, 2:], boxes[0][index[:, 0]])


def test_background_label_minus_one_keeps_every_class(backend):
    boxes, scores = two_clusters()
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.1, nms_top_k=10,
                               keep_top_k=-1, background_label=-1)
    # class 0 scores every box 0.99: equal scores rank by box index, so A1 and B1 are decayed by A0 and B0
    assert rois_num.tolist() == [10, 0]
    assert index[:, 0].tolist() == [0, 2, 4, 0, 2, 4, 3, 3, 1, 1]
    assert out[:, 0].tolist() == [0, 0, 0, 1, 2, 1, 0, 2, 0, 1]
    np.testing.assert_allclose(out[:, 1], [0.99, 0.99, 0.99, 0.9, 0.7, 0.5, 0.99 / 3, 0.6 / 3, 0.99 * 2 / 11,
                                           0.8 * 2 / 11], rtol=1e-12)


def test_keep_top_k_and_the_flat_index_span_the_batch(backend):
    boxes, scores = two_clusters()
    scores[1] = scores[0]
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.1, nms_top_k=10,
                               keep_top_k=2)
    assert rois_num.tolist() == [2, 2]
    assert index[:, 0].tolist() == [0, 2, 5 + 0, 5 + 2]


def test_nms_top_k_limits_each_class_before_the_decay(backend):
    boxes, scores = two_clusters()
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.0, nms_top_k=1,
                               keep_top_k=-1)
    # only A0 and B0 enter: nothing is decayed
    assert index[:, 0].tolist() == [0, 2] and out[:, 1].tolist() == [0.9, 0.7]


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_ten_identical_boxes_with_a_post_threshold(backend, kernel):
    boxes = np.tile([[[5.0, 5.0, 25.0, 15.0]]], (1, 10, 1))
    scores = np.linspace(0.9, 0.45, 10)[None, None, :]
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.0, post_threshold=0.08, nms_top_k=-1,
                               keep_top_k=-1, kernel=kernel, background_label=-1)
    assert not np.any(np.isnan(out))
    if kernel == "linear":
        # IoU 1 with the top box: (1 - 1) / (1 - 0) = 0; the other duplicates (cmax = 1) are ignored
        assert rois_num.tolist() == [1] and out[0, 1] == 0.9
    else:
        # every lower copy decays by exp(-2 * 1^2); kept while score * e^-2 > 0.08, i.e. score > 0.591
        kept = [s for s in scores[0, 0, 1:] if s * math.exp(-2.0) > 0.08]
        assert rois_num.tolist() == [1 + len(kept)] == [7]
        np.testing.assert_allclose(out[1:, 1], np.array(kept) * math.exp(-2.0), rtol=1e-12)
        assert index[:, 0].tolist() == list(range(7))


def test_a_single_box_is_returned_for_each_class_that_scores_it(backend):
    boxes = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    scores = np.array([[[0.4], [0.7], [0.01]]])
    out, rois_num, index = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.0, nms_top_k=-1,
                               keep_top_k=-1, background_label=-1)
    assert rois_num.tolist() == [2] and index[:, 0].tolist() == [0, 0]
    np.testing.assert_array_equal(out, [[1, 0.7, 1, 2, 3, 4], [0, 0.4, 1, 2, 3, 4]])


@pytest.mark.parametrize("padded", [False, True])
def test_a_threshold_that_removes_everything_gives_empty_outputs(backend, padded):
    boxes, scores = two_clusters()
    out, rois_num, index = run(backend, boxes, scores, padded=padded, score_threshold=0.995, post_threshold=0.0,
                               nms_top_k=10, keep_top_k=4)
    assert rois_num.tolist() == [0, 0]
    if padded:
        assert out.shape == (2, 4, 6) and np.all(out[..., 0] == -1) and np.all(index == -1)
    else:
        assert out.shape == (0, 6) and index.shape == (0, 1)


@pytest.mark.parametrize("shape", [(0, 3, 5), (2, 3, 0), (2, 0, 5)])
def test_empty_batches_classes_or_boxes_give_empty_outputs(backend, shape):
    n_img, n_cls, m = shape
    out, rois_num, index = run(backend, np.zeros((n_img, m, 4)), np.zeros(shape), score_threshold=-1.0,
                               post_threshold=-1.0, nms_top_k=-1, keep_top_k=-1, background_label=-1)
    assert out.shape == (0, 6) and index.shape == (0, 1) and rois_num.tolist() == [0] * n_img


def test_inverted_boxes_are_kept_and_neither_suppress_nor_are_suppressed(backend):
    boxes = np.array([[[0.0, 0, 10, 10], [10, 10, 0, 0], [10, 10, 0, 0], [0, 10, 10, 0], [1, 0, 11, 10]]])
    scores = np.array([[[0.9, 0.8, 0.7, 0.6, 0.5]]])
    for normalized in (True, False):
        out, rois_num, index = run(backend, boxes, scores, score_threshold=0.0, post_threshold=0.0, nms_top_k=-1,
                                   keep_top_k=-1, background_label=-1, normalized=normalized)
        assert index[:, 0].tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_array_equal(out[:4, 1], [0.9, 0.8, 0.7, 0.6])  # inverted duplicates: IoU 0
        np.testing.assert_array_equal(out[:, 2:], boxes[0])  # returned as given
        inter, area = (90.0, 100.0) if normalized else (110.0, 121.0)
        np.testing.assert_allclose(out[4, 1], 0.5 * (1 - inter / (2 * area - inter)), rtol=1e-12)


def test_unnormalized_boxes_that_touch_share_a_pixel_row(backend):
    boxes = np.array([[[0.0, 0, 10, 10], [10, 0, 20, 10], [11, 0, 21, 10]]])
    scores = np.array([[[0.9, 0.8, 0.7]]])
    options = dict(score_threshold=0.0, post_threshold=0.0, nms_top_k=-1, keep_top_k=-1, background_label=-1)
    out, _, _ = run(backend, boxes, scores, normalized=False, **options)
    # (w + 1)(h + 1) areas: 121; touching boxes share 1 x 11 pixels; boxes 0 and 2 do not meet
    iou_01 = 11 / (121 + 121 - 11)
    iou_12 = 10 * 11 / (121 + 121 - 110)
    np.testing.assert_allclose(out[:, 1], [0.9, 0.8 * (1 - iou_01), 0.7 * (1 - iou_12) / (1 - iou_01)],
                               rtol=1e-12)
    out, _, _ = run(backend, boxes, scores, normalized=True, **options)
    np.testing.assert_allclose(out[:, 1], [0.9, 0.8, 0.7 * (1 - 9 / 11)], rtol=1e-12)


def test_equal_scores_rank_by_box_index_then_by_class(backend):
    boxes = np.array([[[0.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]])
    scores = np.zeros((1, 3, 3))
    scores[0, 1] = [0.5, 0.5, 0.5]  # boxes 0 and 1 duplicate: the lower index ranks first and survives
    scores[0, 2, 2] = 0.5
    out, _, index = run(backend, boxes, scores, score_threshold=0.0, post_threshold=0.0, nms_top_k=-1,
                        keep_top_k=-1, kernel="linear")
    assert index[:, 0].tolist() == [0, 2, 2] and out[:, 0].tolist() == [1.0, 1.0, 2.0]


def test_thresholds_are_strict(backend):
    boxes = np.array([[[0.0, 0, 10, 10], [50, 50, 60, 60]]])
    scores = np.array([[[0.5, 0.25]]])
    options = dict(nms_top_k=-1, keep_top_k=-1, background_label=-1)
    _, rois_num, _ = run(backend, boxes, scores, score_threshold=0.25, post_threshold=0.0, **options)
    assert rois_num.tolist() == [1]
    _, rois_num, _ = run(backend, boxes, scores, score_threshold=0.0, post_threshold=0.25, **options)
    assert rois_num.tolist() == [1]
    # a negative score threshold keeps zero scores
    _, rois_num, _ = run(backend, boxes, np.zeros((1, 1, 2)), score_threshold=-0.5, post_threshold=-0.5, **options)
    assert rois_num.tolist() == [2]


def test_sigma_is_the_inverse_of_paddles_gaussian_sigma(backend):
    boxes, scores = two_clusters()
    for sigma in (0.5, 0.25):
        out, _, _ = run(backend, boxes, scores, score_threshold=0.05, post_threshold=0.0, nms_top_k=10,
                        keep_top_k=-1, kernel="gaussian", sigma=sigma)
        ref, _, _ = reference_paddle.matrix_nms(boxes, scores, 0.05, 0.0, 10, -1, use_gaussian=True,
                                                gaussian_sigma=1 / sigma)
        np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_integer_boxes_and_mixed_float_types(backend):
    boxes, scores = two_clusters()
    options = dict(score_threshold=0.05, post_threshold=0.1, nms_top_k=10, keep_top_k=10)
    expected, _, _ = run(backend, boxes, scores, **options)
    out, _, _ = run(backend, boxes.astype(np.int64), scores, **options)
    np.testing.assert_array_equal(out, expected)
    b, s = backend.asarray(boxes.astype(np.float64)), backend.asarray(scores.astype(np.float32))
    out = multiclass_matrix_nms(b, s, backend=backend.for_op("multiclass_matrix_nms"), **options)[0]
    assert str(out.dtype).endswith("float64")  # the boxes' precision is kept in ``out``


@requires("numba")
@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_threaded_numba_and_generic_paths_agree_with_the_reference_on_a_large_problem(kernel, monkeypatch):
    """M = 1000 boxes, C = 12 classes of ~990 candidates each, cut to nms_top_k = 120 (the top-k selection),
    with Numba's threaded path forced on, both paths against the Paddle loop reference."""
    numba_multiclass = pytest.importorskip("matrixnms.backends._numba_multiclass")
    monkeypatch.setattr(numba_multiclass, "_PARALLEL_PAIRS", 1)
    rng = np.random.default_rng(7)
    centers = rng.uniform(0, 600, (1, 1000, 2))
    sizes = rng.uniform(10, 120, (1, 1000, 2))
    boxes = np.concatenate([centers, centers + sizes], axis=2)
    scores = rng.random((1, 12, 1000))
    options = dict(score_threshold=0.01, post_threshold=0.01, nms_top_k=120, keep_top_k=300, kernel=kernel)
    ref_out, ref_num, ref_index = reference(boxes, scores, **options)
    assert ref_num[0] == 300  # keep_top_k binds
    for name in ("numba", "generic"):
        out, rois_num, index = multiclass_matrix_nms(boxes, scores, backend=name, **options)
        np.testing.assert_array_equal(rois_num, ref_num)
        np.testing.assert_array_equal(index, ref_index)
        np.testing.assert_allclose(out, ref_out, rtol=RTOL["float64"], atol=ATOL["float64"])


@requires("torch")
def test_padded_variant_is_captured_by_torch_export():
    import torch

    class PostProcess(torch.nn.Module):
        def forward(self, boxes, scores):
            return multiclass_matrix_nms_padded(boxes, scores, score_threshold=0.05, post_threshold=0.05,
                                                nms_top_k=8, keep_top_k=6, background_label=-1,
                                                backend="generic")

    generator = torch.Generator().manual_seed(0)

    def inputs():
        corner = torch.rand(2, 30, 2, generator=generator)
        boxes = torch.cat([corner, corner + 0.3 * torch.rand(2, 30, 2, generator=generator)], dim=2)
        return boxes, torch.rand(2, 3, 30, generator=generator)

    graph = torch.export.export(PostProcess(), inputs()).module()
    boxes, scores = inputs()  # new values: nothing data-dependent may be baked into the graph
    exported_results = graph(boxes, scores)
    for exported, eager in zip(exported_results, PostProcess()(boxes, scores)):
        torch.testing.assert_close(exported, eager, rtol=0, atol=0)
    # and both hold the reference's detections, image by image, then padding
    out, rois_num, index = (x.numpy() for x in exported_results)
    ref_out, ref_num, ref_index = reference(boxes.numpy(), scores.numpy(), np.float32, score_threshold=0.05,
                                            post_threshold=0.05, nms_top_k=8, keep_top_k=6, background_label=-1)
    np.testing.assert_array_equal(rois_num, ref_num)
    starts = np.concatenate([[0], np.cumsum(ref_num)])
    for b in range(2):
        rows = slice(starts[b], starts[b + 1])
        np.testing.assert_array_equal(index[b, :ref_num[b]], ref_index[rows, 0])
        assert_close(out[b, :ref_num[b]], ref_out[rows], "float32")
        assert np.all(index[b, ref_num[b]:] == -1)


# ---------------------------------------------------------------------------------------------- bad input

GOOD = dict(score_threshold=0.1, post_threshold=0.1, nms_top_k=10, keep_top_k=10)
BOXES = np.zeros((2, 5, 4))
SCORES = np.zeros((2, 3, 5))


@pytest.mark.parametrize(
    "boxes, scores, options, error, message",
    [
        (np.zeros((5, 4)), SCORES, {}, ValueError, r"boxes must have shape \(B, M, 4\), got \(5, 4\)"),
        (BOXES, np.zeros((2, 5)), {}, ValueError, r"scores must have shape \(B, C, M\), got \(2, 5\)"),
        (BOXES, np.zeros((3, 3, 5)), {}, ValueError, "one \\(C, M\\) slice per image: boxes has B = 2, scores has 3"),
        (BOXES, np.zeros((2, 3, 4)), {}, ValueError, "one column per box: boxes has M = 5, scores has 4"),
        (BOXES, SCORES.astype(np.int64), {}, TypeError, "scores must be floating, got int64"),
        (BOXES.astype(bool), SCORES, {}, TypeError, "boxes must be real numbers, got bool"),
        (BOXES, np.full((2, 3, 5), np.nan), {}, ValueError, "scores must be finite, got NaN"),
        (np.full((2, 5, 4), np.inf), SCORES, {}, ValueError, "boxes must be finite, got inf"),
        (BOXES, SCORES, {"score_threshold": math.nan}, ValueError, "score_threshold must be finite, got nan"),
        (BOXES, SCORES, {"post_threshold": "0.1"}, TypeError, "post_threshold must be a real number, got str"),
        (BOXES, SCORES, {"nms_top_k": -2}, ValueError, "nms_top_k must be >= 0, or -1 for no limit, got -2"),
        (BOXES, SCORES, {"keep_top_k": 2.5}, TypeError, "keep_top_k must be an int \\(-1 for no limit\\), got float"),
        (BOXES, SCORES, {"kernel": "box"}, ValueError, "kernel must be one of"),
        (BOXES, SCORES, {"sigma": 0.0}, ValueError, "sigma must be > 0"),
        (BOXES, SCORES, {"background_label": 3}, ValueError,
         r"background_label must be -1 \(none\) or a class index in \[0, 3\), got 3"),
        (BOXES, SCORES, {"background_label": 0.0}, TypeError, "background_label must be an int, got float"),
        (BOXES, SCORES, {"normalized": 1}, TypeError, "normalized must be a bool, got int"),
        (BOXES, SCORES, {"backend": "fast"}, ValueError, "backend must be one of"),
    ],
)
def test_bad_input_names_the_argument(boxes, scores, options, error, message):
    for fn in (multiclass_matrix_nms, multiclass_matrix_nms_padded):
        with pytest.raises(error, match=message):
            fn(boxes, scores, **{**GOOD, **options})


@requires("torch")
def test_mixed_array_libraries_are_rejected():
    import torch

    with pytest.raises(TypeError, match="scores is torch but boxes is numpy"):
        multiclass_matrix_nms(BOXES, torch.zeros(2, 3, 5), **GOOD)
