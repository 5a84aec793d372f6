"""nms, batched_nms, mask_nms and soft_nms against plain-Python loops, hand-worked cases, edge cases, errors."""

from __future__ import annotations

import math
from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_baselines as ref
import strategies
from helpers import assert_close, requires
from matrixnms import _config, batched_nms, mask_nms, nms, soft_nms


def _put(backend, labels):
    return None if labels is None else backend.asarray(labels)


def greedy(backend, scores, iou_threshold, masks=None, boxes=None, labels=None):
    """The greedy baseline on ``backend`` (mask_nms, batched_nms or nms); NumPy keep after type checks."""
    s = backend.asarray(scores)
    if masks is not None:
        keep = mask_nms(backend.asarray(masks), s, iou_threshold, _put(backend, labels),
                        backend=backend.for_op("mask_iou_sorted", "greedy_iou"))
    elif labels is not None:
        keep = batched_nms(backend.asarray(boxes), s, backend.asarray(labels), iou_threshold,
                           backend=backend.for_op("greedy_boxes"))
    else:
        keep = nms(backend.asarray(boxes), s, iou_threshold, backend=backend.for_op("greedy_boxes"))
    assert backend.same_place(keep)
    assert str(keep.dtype).endswith("int64")
    return backend.to_numpy(keep)


SOFT_OPS = {"masks": ("mask_iou_sorted", "soft_nms_iou"), "boxes": ("soft_nms_boxes",)}


def soft(backend, scores, masks=None, boxes=None, labels=None, **options):
    """soft_nms on ``backend``; NumPy keep and decayed after type, device and dtype checks."""
    s = backend.asarray(scores)
    keep, decayed = soft_nms(s, None if masks is None else backend.asarray(masks),
                             boxes=None if boxes is None else backend.asarray(boxes), labels=_put(backend, labels),
                             backend=backend.for_op(*SOFT_OPS["masks" if masks is not None else "boxes"]),
                             **options)
    assert backend.same_place(keep) and backend.same_place(decayed)
    assert str(keep.dtype).endswith("int64")
    assert decayed.dtype == s.dtype
    return backend.to_numpy(keep), backend.to_numpy(decayed)


@st.composite
def thresholds(draw, ious: list[list[float]]):
    """An IoU threshold: often exactly one of the IoUs present (the boundary case), else any value in [0, 1]."""
    present = sorted({v for row in ious for v in row})
    if present and draw(st.booleans()):
        return draw(st.sampled_from(present))
    return draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1))


@st.composite
def greedy_problems(draw, kind: str):
    """(scores, masks or None, boxes or None, labels or None, iou_threshold) with ties and IoUs at the threshold."""
    if kind == "masks":
        masks, boxes = draw(strategies.masks(max_n=12, max_side=16)), None
        n = len(masks)
    else:
        # integer corners make many IoUs exactly equal, so a threshold drawn from them is hit several times
        masks, boxes = None, draw(strategies.boxes(max_n=14, integer=draw(st.booleans())))
        n = len(boxes)
    scores = draw(strategies.scores(n))
    labels = draw(strategies.optional_labels(n))
    ious = ref.pairwise_iou(masks, boxes, labels)
    return scores, masks, boxes, labels, draw(thresholds(ious))


@given(greedy_problems("boxes"))
def test_box_nms_matches_the_reference_loop(backend, problem):
    scores, _, boxes, labels, threshold = problem
    expected = ref.greedy_nms(ref.pairwise_iou(boxes=boxes, labels=labels), scores, threshold)
    assert greedy(backend, scores, threshold, boxes=boxes, labels=labels).tolist() == expected


@given(greedy_problems("boxes"))
def test_float32_inputs_give_the_same_keep_as_their_float64_values(backend, problem):
    scores, _, boxes, labels, threshold = problem
    scores32, boxes32 = scores.astype(np.float32), boxes.astype(np.float32)
    # the reference sees exactly the values the library saw; the library computes IoU in float64 too
    expected = ref.greedy_nms(ref.pairwise_iou(boxes=boxes32.astype(np.float64), labels=labels),
                              scores32.astype(np.float64), threshold)
    assert greedy(backend, scores32, threshold, boxes=boxes32, labels=labels).tolist() == expected


@given(greedy_problems("masks"), st.sampled_from(["bool", "uint8", "float32"]))
def test_mask_nms_matches_the_reference_loop(backend, problem, mask_dtype):
    scores, masks, _, labels, threshold = problem
    expected = ref.greedy_nms(ref.pairwise_iou(masks=masks, labels=labels), scores, threshold)
    assert greedy(backend, scores, threshold, masks=masks.astype(mask_dtype), labels=labels).tolist() == expected


@st.composite
def soft_problems(draw, kind: str):
    """(scores, masks, boxes, labels, options) for Soft-NMS.

    The gaussian kernel gets distinct continuous scores: its exp() may differ in the last bit between NumPy,
    Torch and libm, which could reorder two candidates whose scores are mathematically equal. The linear
    kernel only multiplies and subtracts (exact in every backend), so it gets the tie-heavy scores.
    """
    kernel = draw(st.sampled_from(["gaussian", "linear"]))
    if kind == "masks":
        masks, boxes = draw(strategies.masks(max_n=12, max_side=16)), None
        n = len(masks)
    else:
        masks, boxes = None, draw(strategies.boxes(max_n=14, integer=kernel == "linear"))
        n = len(boxes)
    if kernel == "gaussian":
        seed = draw(st.integers(0, 2**32 - 1))
        scores = np.random.default_rng(seed).random(n)
    else:
        scores = draw(strategies.scores(n))
    labels = draw(strategies.optional_labels(n))
    options = {
        "kernel": kernel,
        "sigma": draw(st.sampled_from([0.5, 0.1, 1.0, 2.0])),
        "iou_threshold": draw(st.sampled_from([0.3, 0.0, 0.5, 1.0])),
        "score_threshold": draw(st.sampled_from([0.001, None, 0.0, 0.3])),
    }
    return scores, masks, boxes, labels, options


@pytest.mark.parametrize("kind", ["boxes", "masks"])
@given(data=st.data())
def test_soft_nms_matches_the_reference_loop(backend, kind, data):
    scores, masks, boxes, labels, options = data.draw(soft_problems(kind))
    keep, decayed = soft(backend, scores, masks, boxes, labels, **options)
    ref_keep, ref_decayed = ref.soft_nms(ref.pairwise_iou(masks, boxes, labels), scores, **options)
    assert keep.tolist() == ref_keep
    assert_close(decayed, np.asarray(ref_decayed), "float64")


@given(soft_problems("boxes"))
def test_soft_nms_float32_scores_round_only_at_the_end(backend, problem):
    scores, masks, boxes, labels, options = problem
    scores = scores.astype(np.float32)
    keep, decayed = soft(backend, scores, masks, boxes, labels, **options)
    ref_keep, ref_decayed = ref.soft_nms(ref.pairwise_iou(masks, boxes, labels), scores, **options)
    assert sorted(keep.tolist()) == sorted(ref_keep)
    by_index = dict(zip(ref_keep, ref_decayed))
    assert_close(decayed, np.array([by_index[i] for i in keep.tolist()]), "float32")
    # the order is by float32 decayed score, equal ones by lower index
    ranked = sorted(zip(keep.tolist(), decayed.tolist()), key=lambda r: (-r[1], r[0]))
    assert keep.tolist() == [i for i, _ in ranked]


@given(soft_problems("boxes"), greedy_problems("boxes"))
def test_a_tiny_memory_budget_changes_nothing(backend, soft_problem, greedy_problem):
    # one IoU row at a time: Soft-NMS recomputes each row on the fly, greedy NMS works one row block at a time
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_config, "CHUNK_BYTES", 64)
        check_soft_and_greedy(backend, soft_problem, greedy_problem)


def check_soft_and_greedy(backend, soft_problem, greedy_problem):
    scores, masks, boxes, labels, options = soft_problem
    keep, decayed = soft(backend, scores, masks, boxes, labels, **options)
    ref_keep, ref_decayed = ref.soft_nms(ref.pairwise_iou(masks, boxes, labels), scores, **options)
    assert keep.tolist() == ref_keep
    assert_close(decayed, np.asarray(ref_decayed), "float64")
    scores, _, boxes, labels, threshold = greedy_problem
    expected = ref.greedy_nms(ref.pairwise_iou(boxes=boxes, labels=labels), scores, threshold)
    assert greedy(backend, scores, threshold, boxes=boxes, labels=labels).tolist() == expected


# --- hand-worked cases -------------------------------------------------------------------------------------


def two_clusters():
    """Six boxes in two clusters, listed out of score order.

    Cluster A around [0, 0, 10, 10]: head 0.9, and 0.8 / 0.7 at IoU 9/11 with it (0.68 with each other).
    Cluster B around [20, 20, 30, 30]: head 0.85, and 0.75 at IoU 2/3, 0.6 at IoU 81/119 with it.
    """
    boxes = np.array([
        [1, 0, 11, 10],     # 0: A, 0.8
        [20, 22, 30, 32],   # 1: B, 0.75
        [0, 0, 10, 10],     # 2: A head, 0.9
        [21, 21, 31, 31],   # 3: B, 0.6
        [20, 20, 30, 30],   # 4: B head, 0.85
        [0, 1, 10, 11],     # 5: A, 0.7
    ], dtype=np.float64)
    scores = np.array([0.8, 0.75, 0.9, 0.6, 0.85, 0.7])
    return boxes, scores


def rectangle_masks(boxes, size=40):
    masks = np.zeros((len(boxes), size, size), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=int)):
        masks[k, y1:y2, x1:x2] = True
    return masks


def test_two_clusters_keep_their_heads_at_half(backend):
    boxes, scores = two_clusters()
    assert greedy(backend, scores, 0.5, boxes=boxes).tolist() == [2, 4]
    assert greedy(backend, scores, 0.5, masks=rectangle_masks(boxes)).tolist() == [2, 4]
    # every pairwise IoU is below 0.85, so nothing is suppressed there: all six, by score
    assert greedy(backend, scores, 0.85, boxes=boxes).tolist() == [2, 4, 0, 1, 5, 3]


def test_batched_nms_never_suppresses_across_labels(backend):
    boxes, scores = two_clusters()
    labels = np.array([1, 0, 0, 0, 0, 0])  # box 0 (IoU 9/11 with the head of A) gets its own class
    assert greedy(backend, scores, 0.5, boxes=boxes, labels=labels).tolist() == [2, 4, 0]
    assert greedy(backend, scores, 0.5, masks=rectangle_masks(boxes), labels=labels).tolist() == [2, 4, 0]


def test_threshold_is_strict_at_an_exact_iou(backend):
    boxes = np.array([[0, 0, 4, 4], [2, 0, 6, 4]], dtype=np.float64)  # IoU 8 / 24 = 1/3 exactly
    iou = 8 / 24
    assert greedy(backend, np.array([0.9, 0.8]), iou, boxes=boxes).tolist() == [0, 1]  # not > threshold
    assert greedy(backend, np.array([0.9, 0.8]), np.nextafter(iou, 0), boxes=boxes).tolist() == [0]


@pytest.mark.parametrize("equal_scores", [True, False])
def test_ten_identical_boxes_keep_one(backend, equal_scores):
    boxes = np.tile([[3.0, 4.0, 13.0, 9.0]], (10, 1))
    scores = np.full(10, 0.5) if equal_scores else np.linspace(0.1, 0.9, 10)[::-1].copy()
    scores[7] = 0.95 if not equal_scores else scores[7]
    top = 0 if equal_scores else 7
    for threshold in (0.0, 0.5, np.nextafter(1.0, 0)):
        assert greedy(backend, scores, threshold, boxes=boxes).tolist() == [top]
        assert greedy(backend, scores, threshold, masks=rectangle_masks(boxes, 16)).tolist() == [top]
    # IoU 1 is not > 1: a threshold of 1 suppresses nothing
    assert greedy(backend, scores, 1.0, boxes=boxes).tolist() == sorted(range(10), key=lambda i: (-scores[i], i))
    # linear Soft-NMS zeroes exact duplicates, which the score threshold then drops
    keep, decayed = soft(backend, scores, boxes=boxes, kernel="linear")
    assert keep.tolist() == [top] and decayed.tolist() == [scores[top]]


def test_a_single_item_is_kept(backend):
    boxes, scores = np.array([[1.0, 2.0, 3.0, 5.0]]), np.array([0.25])
    assert greedy(backend, scores, 0.5, boxes=boxes).tolist() == [0]
    assert greedy(backend, scores, 0.5, boxes=boxes, labels=np.array([3])).tolist() == [0]
    assert greedy(backend, scores, 0.0, masks=rectangle_masks(boxes, 8)).tolist() == [0]
    for kernel in ("gaussian", "linear"):
        keep, decayed = soft(backend, scores, boxes=boxes, kernel=kernel)
        assert keep.tolist() == [0] and decayed.tolist() == [0.25]
        keep, decayed = soft(backend, scores, rectangle_masks(boxes, 8), kernel=kernel)
        assert keep.tolist() == [0] and decayed.tolist() == [0.25]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_empty_input_gives_empty_results(backend, dtype):
    scores = np.zeros(0, dtype=dtype)
    boxes, masks, labels = np.zeros((0, 4), dtype=dtype), np.zeros((0, 5, 7), dtype=bool), np.zeros(0, np.int64)
    assert greedy(backend, scores, 0.5, boxes=boxes).shape == (0,)
    assert greedy(backend, scores, 0.5, boxes=boxes, labels=labels).shape == (0,)
    assert greedy(backend, scores, 0.5, masks=masks, labels=labels).shape == (0,)
    for items in ({"boxes": boxes}, {"masks": masks}):
        keep, decayed = soft(backend, scores, labels=labels, **items)
        assert keep.shape == decayed.shape == (0,)


def test_soft_nms_hand_worked_pair(backend):
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float64)  # IoU 50 / 150 = 1/3
    scores, iou = np.array([0.6, 0.9]), 1 / 3
    cases = [
        ({"kernel": "gaussian"}, 0.6 * math.exp(-iou**2 / 0.5)),
        ({"kernel": "gaussian", "iou_threshold": 0.9}, 0.6 * math.exp(-iou**2 / 0.5)),  # gaussian ignores it
        ({"kernel": "gaussian", "sigma": 2 * 0.25}, 0.6 * math.exp(-0.5 * iou**2 / 0.25)),  # TF form, s = 0.25
        ({"kernel": "linear"}, 0.6 * (1 - iou)),  # 1/3 > Nt = 0.3
        ({"kernel": "linear", "iou_threshold": 0.5}, 0.6),  # 1/3 <= 0.5: untouched
        ({"kernel": "linear", "iou_threshold": 1 / 3}, 0.6),  # not strictly greater
    ]
    for options, second in cases:
        for items in ({"boxes": boxes}, {"masks": rectangle_masks(boxes, 16)}):
            keep, decayed = soft(backend, scores, **items, **options)
            assert keep.tolist() == [1, 0], options
            np.testing.assert_allclose(decayed, [0.9, second], rtol=1e-12)


def test_soft_nms_reselects_the_current_maximum(backend):
    # A (0.9) overlaps B (0.8) at IoU 9/11; C (0.7) is alone. Gaussian decays B to 0.8 * exp(-2 * (9/11)^2)
    # = 0.209, below C, so C is selected second: selection follows current, not original, scores.
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], dtype=np.float64)
    keep, decayed = soft(backend, np.array([0.9, 0.8, 0.7]), boxes=boxes)
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(decayed, [0.9, 0.7, 0.8 * math.exp(-(9 / 11) ** 2 / 0.5)], rtol=1e-12)
    # the score threshold drops what falls below it, and what starts below it
    keep, _ = soft(backend, np.array([0.9, 0.8, 0.0005]), boxes=boxes, score_threshold=0.25)
    assert keep.tolist() == [0]


def test_soft_nms_labels_keep_classes_apart(backend):
    boxes = np.tile([[0.0, 0.0, 4.0, 4.0]], (3, 1))
    keep, decayed = soft(backend, np.array([0.9, 0.8, 0.7]), boxes=boxes, labels=np.array([0, 1, 0]),
                         kernel="linear")
    assert keep.tolist() == [0, 1] and decayed.tolist() == [0.9, 0.8]  # 2 duplicates 0 and is dropped


@requires("torch")
def test_torch_inputs_that_require_grad_are_accepted():
    import torch

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]], requires_grad=True)
    scores = torch.tensor([0.9, 0.8], requires_grad=True)
    for kernel in ("auto", "generic") + (("numba",) if find_spec("numba") else ()):
        assert nms(boxes, scores, 0.5, backend=kernel).tolist() == [0]
        keep, decayed = soft_nms(scores, boxes=boxes, backend=kernel)
        assert keep.tolist() == [0, 1]
        np.testing.assert_allclose(decayed.detach().numpy(), [0.9, 0.8 * math.exp(-(9 / 11) ** 2 / 0.5)], rtol=1e-6)


# --- errors: one per message --------------------------------------------------------------------------------

BOXES = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
SCORES = np.array([0.9, 0.8])
MASKS = rectangle_masks(BOXES, 4)

ERRORS = [
    # (call, exception, message fragment)
    (lambda: nms(BOXES[:, :3], SCORES, 0.5), ValueError, r"boxes must have shape \(N, 4\), got \(2, 3\)"),
    (lambda: nms(BOXES[:1], SCORES, 0.5), ValueError, "boxes must have one box per score: expected 2, got 1"),
    (lambda: nms(BOXES[:, [2, 1, 0, 3]], SCORES, 0.5), ValueError, "boxes must satisfy x2 >= x1"),
    (lambda: nms(np.where(BOXES == 3, np.nan, BOXES), SCORES, 0.5), ValueError, "boxes must be finite"),
    (lambda: nms(BOXES > 1, SCORES, 0.5), TypeError, "boxes must be real numbers, got bool"),
    (lambda: nms(BOXES, SCORES[:, None], 0.5), ValueError, r"scores must have shape \(N,\), got \(2, 1\)"),
    (lambda: nms(BOXES, np.array([1, 2]), 0.5), TypeError, "scores must be floating, got int64"),
    (lambda: nms(BOXES, np.array([0.5, np.nan]), 0.5), ValueError, "scores must be finite, got NaN"),
    (lambda: nms(BOXES, SCORES, 1.5), ValueError, r"iou_threshold must be in \[0, 1\], got 1.5"),
    (lambda: nms(BOXES, SCORES, -0.1), ValueError, "iou_threshold must be >= 0 and finite, got -0.1"),
    (lambda: nms(BOXES, SCORES, None), TypeError, "iou_threshold must be a real number, got NoneType"),
    (lambda: nms(BOXES, SCORES, "0.5"), TypeError, "iou_threshold must be a real number, got str"),
    (lambda: nms(BOXES.tolist(), SCORES, 0.5), TypeError, "boxes must be a NumPy, Torch or CuPy array, got list"),
    (lambda: nms(BOXES, SCORES, 0.5, backend="cuda"), ValueError, "backend must be one of"),
    (lambda: nms(BOXES, SCORES, 0.5, backend="torch"), ValueError, "backend 'torch' cannot run on numpy arrays"),
    (lambda: batched_nms(BOXES, SCORES, None, 0.5), TypeError, "labels must be an integer array for batched_nms"),
    (lambda: batched_nms(BOXES, SCORES, np.array([0.0, 1.0]), 0.5), TypeError, "labels must be integers, got float64"),
    (lambda: batched_nms(BOXES, SCORES, np.array([0, 1, 2]), 0.5), ValueError, r"labels must have shape \(2,\)"),
    (lambda: mask_nms(MASKS[0, 0], SCORES, 0.5), ValueError,
     r"masks must have shape \(N, \*S\) with at least one trailing dimension, got \(4,\)"),
    (lambda: mask_nms(MASKS[:1], SCORES, 0.5), ValueError, "masks must have one mask per score: expected 2, got 1"),
    (lambda: mask_nms(MASKS * 2, SCORES, 0.5), ValueError, "masks must hold only 0 and 1"),
    (lambda: mask_nms(MASKS.astype(np.complex64), SCORES, 0.5), TypeError, "masks must be bool, integer or floating"),
    (lambda: mask_nms(MASKS, SCORES, 2), ValueError, r"iou_threshold must be in \[0, 1\], got 2"),
    (lambda: mask_nms(MASKS, SCORES, 0.5, np.array([0, 1, 2])), ValueError, r"labels must have shape \(2,\)"),
    (lambda: soft_nms(SCORES), ValueError, "soft_nms needs exactly one of masks or boxes, got neither"),
    (lambda: soft_nms(SCORES, MASKS, boxes=BOXES), ValueError, "needs exactly one of masks or boxes, got both"),
    (lambda: soft_nms(SCORES, boxes=BOXES, kernel="gauss"), ValueError, "kernel must be one of"),
    (lambda: soft_nms(SCORES, boxes=BOXES, sigma=0), ValueError, "sigma must be > 0 and finite, got 0"),
    (lambda: soft_nms(SCORES, boxes=BOXES, sigma="1"), TypeError, "sigma must be a real number, got str"),
    (lambda: soft_nms(SCORES, boxes=BOXES, iou_threshold=1.2), ValueError, r"iou_threshold must be in \[0, 1\]"),
    (lambda: soft_nms(SCORES, boxes=BOXES, score_threshold=-1.0), ValueError, "score_threshold must be >= 0"),
    (lambda: soft_nms(SCORES, boxes=BOXES[:1]), ValueError, "boxes must have one box per score"),
    (lambda: soft_nms(SCORES, MASKS[:, 0, 0]), ValueError, r"masks must have shape \(N, \*S\) with at least one"),
    (lambda: soft_nms(SCORES, boxes=BOXES, labels=np.array([0.0, 1.0])), TypeError, "labels must be integers"),
    (lambda: soft_nms(np.array([0.5, np.inf]), boxes=BOXES), ValueError, "scores must be finite, got inf"),
]


@pytest.mark.parametrize("call, exception, message", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_bad_input_raises_a_named_error(call, exception, message):
    with pytest.raises(exception, match=message):
        call()


@requires("torch")
@pytest.mark.parametrize("function", ["nms", "batched_nms", "mask_nms", "soft_nms"])
def test_mixed_array_libraries_raise_type_error(function):
    import torch

    scores = torch.from_numpy(SCORES)
    call = {
        "nms": lambda: nms(BOXES, scores, 0.5),
        "batched_nms": lambda: batched_nms(torch.from_numpy(BOXES), scores, np.array([0, 1]), 0.5),
        "mask_nms": lambda: mask_nms(MASKS, scores, 0.5),
        "soft_nms": lambda: soft_nms(scores, boxes=BOXES),
    }[function]
    with pytest.raises(TypeError, match="is (numpy|torch) but .* is (torch|numpy)"):
        call()
