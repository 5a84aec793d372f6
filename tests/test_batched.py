"""batched_matrix_nms: every row against matrix_nms on that image and the float64 reference, on every place;
the static batched form (TorchScript, torch.compile, ONNX) against the eager call; padding, empties, errors."""

from __future__ import annotations

import warnings
from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
import strategies
from helpers import assert_close, make_backend, requires
from matrixnms import _config, batched_matrix_nms, matrix_nms

ITEMS = {"masks": "batched_mask_decay", "boxes": "batched_box_decay"}
SINGLE = {"masks": "mask_decay", "boxes": "box_decay"}


@st.composite
def batches(draw, kind: str, max_b: int = 3, max_n: int = 7):
    """(scores (B, N), masks (B, N, H, W) or boxes (B, N, 4), valid (B, N) or None, labels or None, options);
    invalid slots sometimes hold NaN scores (and inverted boxes), which must be ignored."""
    b, n = draw(st.integers(0, max_b)), draw(st.integers(0, max_n))
    if kind == "masks":
        flat = draw(strategies.masks(n=b * n, max_side=12))
        items = flat.reshape(b, n, *flat.shape[1:])
    else:
        items = draw(strategies.boxes(n=b * n)).reshape(b, n, 4)
    scores = draw(strategies.scores(b * n)).reshape(b, n)
    labels = draw(strategies.optional_labels(b * n))
    labels = None if labels is None else labels.reshape(b, n)
    valid = None
    if draw(st.booleans()):
        share = draw(st.sampled_from([1.0, 0.7, 0.3, 0.0]))
        valid = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random((b, n)) < share
        if draw(st.booleans()):
            scores[~valid] = np.nan
            if kind == "boxes":
                items[~valid] = [5.0, 5.0, 1.0, 1.0]  # inverted: never read
    return scores, items, valid, labels, draw(strategies.nms_options(n))


def call(backend, kind, scores, items, valid, labels, **options):
    """batched_matrix_nms on ``backend``; NumPy results after checking type, device, dtype and shape."""
    s = backend.asarray(scores)
    keep, decayed, num_kept = batched_matrix_nms(
        s, **{kind: backend.asarray(items)}, valid=None if valid is None else backend.asarray(valid),
        labels=None if labels is None else backend.asarray(labels), backend=backend.for_op(ITEMS[kind]), **options)
    b, n = scores.shape
    width = options.get("post_top_k", n)
    for x in (keep, decayed, num_kept):
        assert backend.same_place(x)
    assert str(keep.dtype).endswith("int64") and str(num_kept.dtype).endswith("int64")
    assert decayed.dtype == s.dtype
    assert tuple(keep.shape) == tuple(decayed.shape) == (b, width) and tuple(num_kept.shape) == (b,)
    return backend.to_numpy(keep), backend.to_numpy(decayed), backend.to_numpy(num_kept)


def image(scores, items, valid, labels, b):
    """Image b's valid candidates: (indices into N, scores, items, labels)."""
    idx = np.arange(scores.shape[1]) if valid is None else np.flatnonzero(valid[b])
    return idx, scores[b, idx], items[b, idx], None if labels is None else labels[b, idx]


def check_padding(keep, decayed, num_kept, b):
    assert np.all(keep[b, num_kept[b]:] == -1) and np.all(decayed[b, num_kept[b]:] == 0)


def check_rows(backend, kind, problem):
    """Every row equals the float64 reference and matrix_nms on the same place (float64 scores)."""
    scores, items, valid, labels, options = problem
    keep, decayed, num_kept = call(backend, kind, scores, items, valid, labels, **options)
    for b in range(scores.shape[0]):
        idx, s, x, lab = image(scores, items, valid, labels, b)
        ref_keep, ref_decayed = reference.matrix_nms(s, **{kind: x}, labels=lab, **options)
        count = int(num_kept[b])
        assert count == len(ref_keep)
        assert keep[b, :count].tolist() == idx[ref_keep].tolist()
        assert_close(decayed[b, :count], np.asarray(ref_decayed), "float64")
        check_padding(keep, decayed, num_kept, b)
        single_keep, single_decayed = matrix_nms(
            backend.asarray(s), **{kind: backend.asarray(x)}, labels=None if lab is None else backend.asarray(lab),
            backend=backend.for_op(SINGLE[kind]), **options)
        assert keep[b, :count].tolist() == idx[backend.to_numpy(single_keep)].tolist()
        assert_close(decayed[b, :count], backend.to_numpy(single_decayed), "float64")


@settings(max_examples=40)
@given(batches("masks"))
def test_every_mask_row_equals_matrix_nms_and_the_reference(backend, problem):
    check_rows(backend, "masks", problem)


@settings(max_examples=40)
@given(batches("boxes"))
def test_every_box_row_equals_matrix_nms_and_the_reference(backend, problem):
    check_rows(backend, "boxes", problem)


@settings(max_examples=30)
@given(batches("masks"), st.sampled_from(["bool", "uint8", "float32"]))
def test_float32_rows_are_matrix_nms_on_the_same_kernels(backend, problem, mask_dtype):
    scores, items, valid, labels, options = problem
    scores, items = scores.astype(np.float32), items.astype(mask_dtype)
    keep, decayed, num_kept = call(backend, "masks", scores, items, valid, labels, **options)
    for b in range(scores.shape[0]):
        idx, s, x, lab = image(scores, items, valid, labels, b)
        # the batched kernels compute operation for operation what the single-image ones do
        single_keep, single_decayed = matrix_nms(
            backend.asarray(s), backend.asarray(x), labels=None if lab is None else backend.asarray(lab),
            backend=backend.for_op(ITEMS["masks"]), **options)
        count = int(num_kept[b])
        assert keep[b, :count].tolist() == idx[backend.to_numpy(single_keep)].tolist()
        np.testing.assert_array_equal(decayed[b, :count], backend.to_numpy(single_decayed))


@requires("numba")
@pytest.mark.parametrize("kind", ["masks", "boxes"])
@pytest.mark.parametrize("num_classes", [None, 80])
def test_numba_batches_large_enough_for_threads_equal_the_loop(kind, num_classes):
    """Sizes past the serial limit: the threaded packing and both decay passes (blocked for a few class-agnostic
    images, per group with 80 labels) against matrix_nms image by image, bit for bit."""
    from matrixnms.scenes import box_scene, mask_scene

    scene = mask_scene if kind == "masks" else box_scene
    images = [scene(24 if kind == "masks" else 1500, num_classes=num_classes, seed=b) for b in range(3)]
    inputs = {"scores": np.stack([s.scores for s in images]), kind: np.stack([getattr(s, kind) for s in images]),
              "labels": None if num_classes is None else np.stack([s.labels for s in images])}
    keep, decayed, num_kept = batched_matrix_nms(**inputs, post_threshold=0.05, backend="numba")
    for b in range(3):
        single = matrix_nms(*(None if x is None else x[b] for x in (inputs["scores"], inputs.get("masks"))),
                            boxes=None if kind == "masks" else inputs["boxes"][b],
                            labels=None if num_classes is None else inputs["labels"][b], post_threshold=0.05,
                            backend="numba")
        np.testing.assert_array_equal(keep[b, :num_kept[b]], single[0])
        np.testing.assert_array_equal(decayed[b, :num_kept[b]], single[1])


@requires("numba")
@pytest.mark.parametrize("labelled", [False, True])
def test_numba_batches_over_many_blocks_threads_and_conversion_slices_equal_the_reference(monkeypatch, labelled):
    numba_kernels = pytest.importorskip("matrixnms.backends._numba")
    monkeypatch.setattr(numba_kernels, "BLOCK_BYTES", 1)  # column blocks of the minimum 64
    monkeypatch.setattr(numba_kernels, "SERIAL_BYTES", 0)  # the threaded path even for this small input
    monkeypatch.setattr(numba_kernels, "CONVERT_BYTES", 500)  # float masks converted a few at a time
    rng = np.random.default_rng(5)
    masks = np.zeros((3, 45, 12, 70), np.float32)
    for b, k in np.ndindex(3, 45):
        y, x = rng.integers(0, 8), rng.integers(0, 60)
        masks[b, k, y:y + rng.integers(2, 5), x:x + rng.integers(3, 12)] = 1
    masks = masks[:, :, :, ::-1]  # strided, not contiguous
    scores, labels = rng.random((3, 45)), rng.integers(0, 3, (3, 45)) if labelled else None
    keep, decayed, num_kept = batched_matrix_nms(scores, masks, labels=labels, backend="numba")
    for b in range(3):
        ref_keep, ref_decayed = reference.matrix_nms(scores[b], masks[b], labels=None if labels is None else labels[b])
        assert keep[b, :num_kept[b]].tolist() == ref_keep
        assert_close(decayed[b, :num_kept[b]], np.asarray(ref_decayed), "float64")


def test_chunked_generic_path_equals_one_chunk(monkeypatch):
    rng = np.random.default_rng(3)
    masks = rng.random((3, 9, 11, 13)) < 0.4
    scores, labels = rng.random((3, 9)), rng.integers(0, 2, (3, 9))
    whole = batched_matrix_nms(scores, masks, labels=labels, backend="generic")
    monkeypatch.setattr(_config, "CHUNK_BYTES", 64)  # many pixel chunks and one column per block
    for got, expected in zip(batched_matrix_nms(scores, masks, labels=labels, backend="generic"), whole):
        np.testing.assert_array_equal(got, expected)


def test_hand_worked_batch_of_two_with_padding():
    masks = np.zeros((2, 3, 2, 4), bool)
    masks[0, 0, :, :2] = masks[0, 1, :, :2] = True  # image 0: a duplicate pair
    masks[0, 1, :, 2] = True  # IoU 4 / 6
    masks[1, 0, :, :] = True
    scores = np.array([[0.9, 0.8, np.nan], [0.5, 0.7, 0.6]])
    valid = np.array([[True, True, False], [True, False, False]])
    keep, decayed, num_kept = batched_matrix_nms(scores, masks, valid=valid, sigma=0.5)
    assert num_kept.tolist() == [2, 1]
    assert keep.tolist() == [[0, 1, -1], [0, -1, -1]]
    np.testing.assert_allclose(decayed, [[0.9, 0.8 * np.exp(-(4 / 6) ** 2 / 0.5), 0], [0.5, 0, 0]])


def tied_box_batch(b: int = 3, n: int = 64, labelled: bool = False):
    """(scores, boxes, labels) with exact ties: per image 40 disjoint unit boxes scoring 1, 0.5 or 0.25 (decay 1,
    so their decayed scores tie too) and 12 pairs, a 2x1 box scoring 1 over a unit box scoring 0.5 (IoU 1/2:
    the linear decay gives the unit box 0.25 exactly, tying the disjoint 0.25s), in shuffled slots."""
    rng = np.random.default_rng(11)
    scores = np.empty((b, n), np.float32)
    boxes = np.empty((b, n, 4), np.float32)
    for image_ in range(b):
        slots = rng.permutation(n)
        for c in range(40):
            x, y = 3.0 * (c % 10), 3.0 * (c // 10)
            scores[image_, slots[c]] = rng.choice([1.0, 0.5, 0.25])
            boxes[image_, slots[c]] = [x, y, x + 1, y + 1]
        for c in range(12):
            x, y = 3.0 * c, 20.0
            scores[image_, slots[40 + 2 * c]], scores[image_, slots[41 + 2 * c]] = 1.0, 0.5
            boxes[image_, slots[40 + 2 * c]] = [x, y, x + 2, y + 1]
            boxes[image_, slots[41 + 2 * c]] = [x, y, x + 1, y + 1]
    labels = (np.arange(b * n).reshape(b, n) // 7 % 2) if labelled else None
    if labelled:  # a pair shares its label
        for image_ in range(b):
            order = np.argsort(boxes[image_, :, 0] + 100 * boxes[image_, :, 1], kind="stable")
            labels[image_, order] = np.arange(n) // 2 % 2
    return scores, boxes, labels


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
@pytest.mark.parametrize("labelled", [False, True])
@pytest.mark.parametrize("options", [{}, {"pre_top_k": 30, "post_top_k": 25}, {"post_threshold": 0.3}])
def test_box_batches_keep_the_tie_order_of_matrix_nms(backend, kernel, labelled, options):
    """Exact score ties and equal decayed scores across 40+ candidates per image: the sort by score and the
    final ranking break ties by lower index, as matrix_nms (pre_top_k and post_top_k cut inside tie blocks)."""
    scores, boxes, labels = tied_box_batch(labelled=labelled)
    keep, decayed, num_kept = call(backend, "boxes", scores, boxes, None, labels, kernel=kernel, **options)
    for b in range(scores.shape[0]):
        count = int(num_kept[b])
        if not options:
            assert count == 64 and np.sum(decayed[b] == 0.25) >= (20 if kernel == "linear" else 8)
        for r in range(count - 1):  # descending, equal decayed scores by lower index
            assert decayed[b, r] > decayed[b, r + 1] or (decayed[b, r] == decayed[b, r + 1]
                                                         and keep[b, r] < keep[b, r + 1])
        lab = None if labels is None else labels[b]
        single_keep, single_decayed = matrix_nms(
            backend.asarray(scores[b]), boxes=backend.asarray(boxes[b]),
            labels=None if lab is None else backend.asarray(lab), kernel=kernel, backend=backend.for_op(SINGLE["boxes"]),
            **options)
        assert keep[b, :count].tolist() == backend.to_numpy(single_keep).tolist()
        np.testing.assert_array_equal(decayed[b, :count], backend.to_numpy(single_decayed))
        ref_keep, _ = reference.matrix_nms(scores[b].astype(np.float64), boxes=boxes[b], labels=lab, kernel=kernel,
                                           **options)
        assert keep[b, :count].tolist() == list(ref_keep)


@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_empty_batches_and_images_give_padding_of_the_right_type(backend, shape):
    scores = backend.asarray(np.zeros(shape))
    masks = backend.asarray(np.zeros((*shape, 3, 4), bool))
    for post_top_k in (None, 3):
        keep, decayed, num_kept = batched_matrix_nms(scores, masks, post_top_k=post_top_k,
                                                     backend=backend.for_op(ITEMS["masks"]))
        width = shape[1] if post_top_k is None else post_top_k
        assert tuple(keep.shape) == (shape[0], width) and tuple(num_kept.shape) == (shape[0],)
        assert backend.same_place(keep) and decayed.dtype == scores.dtype
        assert np.all(backend.to_numpy(keep) == -1)


def test_a_row_without_valid_candidates_is_all_padding(backend):
    boxes = backend.asarray(np.tile([0.0, 0.0, 2.0, 2.0], (2, 4, 1)))
    valid = backend.asarray(np.array([[False] * 4, [True, False, True, False]]))
    keep, decayed, num_kept = batched_matrix_nms(backend.asarray(np.full((2, 4), 0.5)), boxes=boxes, valid=valid,
                                                 backend=backend.for_op(ITEMS["boxes"]))
    assert backend.to_numpy(num_kept).tolist() == [0, 2]
    assert backend.to_numpy(keep).tolist() == [[-1] * 4, [0, 2, -1, -1]]
    np.testing.assert_allclose(backend.to_numpy(decayed)[1, :2], [0.5, 0.5 * np.exp(-1 / 0.5)])


@requires("torch")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_dtype_and_device_round_trip(dtype):
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rng = np.random.default_rng(0)
    for device in devices:
        scores = torch.tensor(rng.random((2, 6)), dtype=getattr(torch, dtype), device=device)
        masks = torch.tensor(rng.random((2, 6, 5, 5)) < 0.5, device=device)
        keep, decayed, num_kept = batched_matrix_nms(scores, masks, post_top_k=4)
        assert {keep.device.type, decayed.device.type, num_kept.device.type} == {device}
        assert decayed.dtype == scores.dtype and keep.dtype == num_kept.dtype == torch.int64


# ------------------------------------------------------------------------------------------------ errors


def _arrays(b=2, n=5):
    return np.random.default_rng(0).random((b, n)), np.zeros((b, n, 4, 4), bool)


def test_valid_of_the_wrong_shape_is_named():
    scores, masks = _arrays()
    with pytest.raises(ValueError, match=r"valid must have shape \(B, N\) = \(2, 5\), got \(2, 4\)"):
        batched_matrix_nms(scores, masks, valid=np.ones((2, 4), bool))


def test_valid_must_be_bool():
    scores, masks = _arrays()
    with pytest.raises(TypeError, match="valid must be bool, got int64"):
        batched_matrix_nms(scores, masks, valid=np.ones((2, 5), np.int64))


def test_masks_of_another_batch_shape_are_named():
    scores, _ = _arrays()
    with pytest.raises(ValueError, match=r"masks must have shape \(B, N, H, W\) = \(2, 5, H, W\), got \(3, 5, 4, 4\)"):
        batched_matrix_nms(scores, np.zeros((3, 5, 4, 4), bool))


def test_boxes_of_another_batch_shape_are_named():
    scores, _ = _arrays()
    with pytest.raises(ValueError, match=r"boxes must have shape \(B, N, 4\) = \(2, 5, 4\), got \(2, 5, 3\)"):
        batched_matrix_nms(scores, boxes=np.zeros((2, 5, 3)))


def test_labels_of_another_batch_shape_are_named():
    scores, masks = _arrays()
    with pytest.raises(ValueError, match=r"labels must have shape \(B, N\) = \(2, 5\), got \(5,\)"):
        batched_matrix_nms(scores, masks, labels=np.zeros(5, np.int64))


def test_scores_must_be_two_dimensional():
    _, masks = _arrays()
    with pytest.raises(ValueError, match=r"scores must have shape \(B, N\), got \(5,\)"):
        batched_matrix_nms(np.ones(5), masks)


def test_nan_in_a_valid_slot_is_an_error_and_ignored_in_an_invalid_one():
    scores, masks = _arrays()
    scores[1, 3] = np.nan
    with pytest.raises(ValueError, match="scores must be finite, got NaN"):
        batched_matrix_nms(scores, masks)
    valid = np.ones((2, 5), bool)
    valid[1, 3] = False
    keep, _, num_kept = batched_matrix_nms(scores, masks, valid=valid)
    assert num_kept.tolist() == [5, 4] and 3 not in keep[1].tolist()


def test_inverted_valid_box_is_named_by_image_and_candidate():
    boxes = np.tile([0.0, 0.0, 1.0, 1.0], (2, 3, 1))
    boxes[1, 2] = [3.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"x2 >= x1 and y2 >= y1, got \[3.0, 0.0, 1.0, 1.0\] at \[1, 2\]"):
        batched_matrix_nms(np.ones((2, 3)), boxes=boxes)


@requires("torch")
def test_mixed_libraries_are_a_type_error():
    import torch

    scores, masks = _arrays()
    with pytest.raises(TypeError, match="masks is numpy but scores is torch"):
        batched_matrix_nms(torch.from_numpy(scores), masks)


def test_masks_and_boxes_together_are_an_error():
    scores, masks = _arrays()
    with pytest.raises(ValueError, match="batched_matrix_nms needs exactly one of masks or boxes, got both"):
        batched_matrix_nms(scores, masks, boxes=np.zeros((2, 5, 4)))


# ------------------------------------------------------------------------------------ static / graphs

needs_export = pytest.mark.skipif(find_spec("torch") is None, reason="torch not installed")
needs_onnx = pytest.mark.skipif(
    any(find_spec(package) is None for package in ("torch", "onnx", "onnxscript", "onnxruntime")),
    reason="ONNX export needs torch, onnx, onnxscript and onnxruntime")


def _torch_problem(problem, kind):
    import torch

    scores, items, valid, labels, options = problem
    valid = np.ones(scores.shape, bool) if valid is None else valid
    scores = np.where(valid, scores, 0.0).astype(np.float32)  # the static form rejects NaN in any slot
    items = np.where(valid[..., None], items, 0.0) if kind == "boxes" else items
    tensors = {"scores": torch.from_numpy(scores), kind: torch.from_numpy(np.ascontiguousarray(items)),
               "labels": None if labels is None else torch.from_numpy(labels), "valid": torch.from_numpy(valid)}
    return tensors, options


def check_static_rows(got, expected):
    keep, decayed, count = (x.numpy() for x in got)
    e_keep, e_decayed, e_count = (x.numpy() for x in expected)
    np.testing.assert_array_equal(count, e_count)
    for b in range(count.shape[0]):
        c = int(count[b])
        assert keep[b, :c].tolist() == e_keep[b, :c].tolist()
        assert_close(decayed[b, :c], e_decayed[b, :c], "float32")


@needs_export
@settings(max_examples=25)
@given(st.sampled_from(["masks", "boxes"]).flatmap(lambda kind: st.tuples(st.just(kind), batches(kind))))
def test_batched_static_module_equals_the_eager_call(case):
    from matrixnms.export import BatchedMatrixNMS

    kind, problem = case
    tensors, options = _torch_problem(problem, kind)
    module = BatchedMatrixNMS(**options)
    got = module(tensors["scores"], tensors.get("masks"), tensors.get("boxes"), tensors["labels"], tensors["valid"])
    assert got[0].shape[1] == module.width(tensors["scores"].shape[1])
    check_static_rows(got, batched_matrix_nms(**tensors, **options, backend="generic"))


@needs_export
def test_scripted_batched_module_equals_eager():
    import torch
    from matrixnms.export import BatchedMatrixNMS

    rng = np.random.default_rng(1)
    scores = torch.tensor(rng.random((3, 8)), dtype=torch.float32)
    masks = torch.tensor(rng.random((3, 8, 6, 7)) < 0.5)
    labels, valid = torch.tensor(rng.integers(0, 2, (3, 8))), torch.tensor(rng.random((3, 8)) < 0.8)
    module = BatchedMatrixNMS(kernel="linear", post_top_k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    check_static_rows(scripted(scores, masks, None, labels, valid), module(scores, masks, None, labels, valid))
    check_static_rows(module(scores, masks, None, labels, valid),
                      batched_matrix_nms(scores, masks, labels=labels, valid=valid, kernel="linear", post_top_k=5))


@needs_export
@pytest.mark.filterwarnings("ignore::UserWarning")  # dynamo's notes on array-api-compat's lru_cache helpers
def test_generic_batched_path_compiles_fullgraph_without_host_syncs():
    """fullgraph=True raises on any graph break: no .item(), no data-dependent branch on the whole path."""
    import torch

    rng = np.random.default_rng(2)
    xy = rng.random((2, 6, 2)) * 10
    boxes = torch.tensor(np.concatenate([xy, xy + rng.random((2, 6, 2)) * 5], -1), dtype=torch.float32)
    scores, valid = torch.tensor(rng.random((2, 6)), dtype=torch.float32), torch.tensor(rng.random((2, 6)) < 0.8)

    def run(scores, boxes, valid):
        return batched_matrix_nms(scores, boxes=boxes, valid=valid, backend="generic", post_top_k=4)

    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    for got, expected in zip(compiled(scores, boxes, valid), run(scores, boxes, valid)):
        assert torch.equal(got, expected)


@pytest.fixture(scope="module")
def batched_onnx_session(tmp_path_factory):
    """BatchedMatrixNMS (B = 2, N = 8, 10 x 12 masks, labels and valid) exported once, in onnxruntime."""
    import onnxruntime
    import torch
    from matrixnms.export import BatchedMatrixNMS, export_onnx

    options = {"post_threshold": 0.05, "post_top_k": 6}
    args = (torch.rand(2, 8), torch.zeros((2, 8, 10, 12), dtype=torch.bool), None, torch.zeros((2, 8), dtype=torch.int64),
            torch.ones((2, 8), dtype=torch.bool))
    path = export_onnx(BatchedMatrixNMS(**options), args, tmp_path_factory.mktemp("onnx") / "batched.onnx",
                       input_names=["scores", "masks", "labels", "valid"], output_names=["keep", "decayed", "num_valid"])
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), options


@needs_onnx
@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1))
def test_onnxruntime_batched_graph_equals_batched_matrix_nms(batched_onnx_session, seed):
    import torch

    session, options = batched_onnx_session
    rng = np.random.default_rng(seed)
    masks = np.zeros((2, 8, 10, 12), bool)
    for b, k in np.ndindex(2, 8):
        y, x = rng.integers(0, 6, 2)
        masks[b, k, y:y + rng.integers(2, 6), x:x + rng.integers(2, 8)] = True
    feed = {"scores": rng.random((2, 8)).astype(np.float32), "masks": masks,
            "labels": rng.integers(0, 2, (2, 8)), "valid": rng.random((2, 8)) < 0.75}
    got = [torch.from_numpy(x) for x in session.run(["keep", "decayed", "num_valid"], feed)]
    expected = batched_matrix_nms(**{k: torch.from_numpy(v) for k, v in feed.items()}, **options)
    check_static_rows(got, expected)


def test_places_cover_the_numba_batched_kernels():
    """The numba place runs the batched Numba kernels themselves (not the generic fallback)."""
    if find_spec("numba") is None:
        pytest.skip("numba not installed")
    numba_place = make_backend("numpy-numba")
    assert numba_place.for_op(*ITEMS.values()) == "numba"


# ------------------------------------------------------------------------------------ solov2_ref batches


@requires("torch")
@pytest.mark.usefixtures("two_torch_threads")
def test_solov2_batched_post_processing_gives_the_per_image_detections():
    import torch
    from solov2_ref import postprocess
    from solov2_ref.data import SyntheticScenes
    from solov2_ref.evaluate import EVAL_SEED, evaluate_split, run_candidates
    from solov2_ref.model import images_to_tensor
    from solov2_ref.train import load_model

    model = load_model()
    scenes = list(SyntheticScenes("val", 4, seed=EVAL_SEED))
    with torch.no_grad():
        outputs = model(images_to_tensor(np.stack([s.image for s in scenes])))
    for nms in ("matrix-gaussian", "matrix-linear"):
        one = postprocess.postprocess(outputs, model.cfg.strides, (128, 128), nms=nms)
        batch = postprocess.postprocess_batched(outputs, model.cfg.strides, (128, 128), nms=nms)
        assert sum(len(det) for det in one) > 0
        for a, b in zip(one, batch, strict=True):
            assert torch.equal(a.masks, b.masks) and torch.equal(a.scores, b.scores) and torch.equal(a.labels, b.labels)
    cands, seconds = run_candidates(model, scenes)
    rows = {size: evaluate_split("val", scenes, cands, seconds, ["matrix-gaussian", "greedy"], batch_size=size)
            for size in (1, 3)}
    for a, b in zip(rows[1], rows[3], strict=True):
        assert a.mask_ap == b.mask_ap and a.box_ap == b.box_ap
        for x, y in zip(a.detections, b.detections, strict=True):
            assert torch.equal(x.scores, y.scores) and torch.equal(x.labels, y.labels) and torch.equal(x.masks, y.masks)
