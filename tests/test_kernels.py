"""The fast kernels (Numba on NumPy and Torch CPU, Torch, CuPy) against the loop-by-loop float64 reference.

test_matrix_nms.py and test_masks.py run every backend on the core strategies. This file adds what can break
in a kernel that packs masks into 64-pixel words, prunes pairs by box and label, blocks the decay and chunks
the pixels: widths around word boundaries (1, 7, 63, 64, 65, 129 and more than 64 words), H = 1, masks at
any offset inside a word, bool / uint8 / float and non-contiguous masks, several decay blocks, several pixel
chunks and conversion slices, the parallel path, exact duplicates, and IoU equal to the reference to the
last bit. Only the kernel backends run here; the GPU ones skip without a device.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import array_api_compat
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import strategies
from helpers import BACKENDS, assert_close, make_backend, requires
from matrixnms import _config, mask_iou, masks_to_boxes, matrix_nms
from matrixnms._dispatch import resolve

KERNEL_BACKENDS = [p for p in BACKENDS if make_backend(p.values[0]).kernel != "generic"]
on_kernels = pytest.mark.parametrize("backend", KERNEL_BACKENDS, indirect=True)

WIDTHS = [1, 7, 8, 63, 64, 65, 129, 64 * 66 + 3]
HEIGHTS = [1, 2, 9, 17]
FORMATS = ["xyxy", "xywh", "xyxy_inclusive"]


@st.composite
def word_masks(draw, max_n: int = 10):
    """strategies.masks() stretched and placed at any offset on canvases of word-boundary widths."""
    base = draw(strategies.masks(max_n=max_n, max_side=12))
    stretch = draw(st.sampled_from([1, 5, 23]))  # spans 1 to several 64-pixel words
    base = np.repeat(base, stretch, axis=2)
    h, w = draw(st.sampled_from(HEIGHTS)), draw(st.sampled_from(WIDTHS))
    hh, ww = min(h, base.shape[1]), min(w, base.shape[2])
    y, x = draw(st.integers(0, h - hh)), draw(st.integers(0, w - ww))
    out = np.zeros((len(base), h, w), dtype=bool)
    out[:, y:y + hh, x:x + ww] = base[:, :hh, :ww]
    return out


def as_input(backend, masks: np.ndarray, dtype: str = "bool", contiguous: bool = True):
    """``masks`` in the backend's library as ``dtype``; a transposed (non-contiguous) view if asked."""
    if contiguous:
        return backend.asarray(masks.astype(dtype))
    x = backend.asarray(np.ascontiguousarray(masks.astype(dtype).transpose(0, 2, 1)))
    return array_api_compat.array_namespace(x).permute_dims(x, (0, 2, 1))


def iou_of(backend, a, b=None) -> np.ndarray:
    result = mask_iou(a, b, backend=backend.kernel)
    assert backend.same_place(result)
    return backend.to_numpy(result)


def assert_exact_iou(actual: np.ndarray, expected: np.ndarray) -> None:
    # the kernels divide exact integer counts in float64 and round once to the output dtype
    np.testing.assert_array_equal(actual, expected.astype(actual.dtype))


def nms_against_reference(backend, scores, masks, labels=None, mask_dtype="bool", contiguous=True,
                          expected=None, **options):
    """matrix_nms on the backend (float64 scores) vs the reference (or its ``expected`` result): same
    keep, decayed within RTOL."""
    kwargs = dict(options)
    if labels is not None:
        kwargs["labels"] = backend.asarray(labels)
    if options.get("mask_areas") is not None:
        kwargs["mask_areas"] = backend.asarray(options["mask_areas"])
    keep, decayed = matrix_nms(backend.asarray(scores), as_input(backend, masks, mask_dtype, contiguous),
                               backend=backend.kernel, **kwargs)
    assert backend.same_place(keep) and backend.same_place(decayed)
    keep, decayed = backend.to_numpy(keep), backend.to_numpy(decayed)
    ref_keep, ref_decayed = expected or reference.matrix_nms(scores, masks, labels=labels, **options)
    assert not np.any(np.isnan(decayed))
    assert keep.tolist() == ref_keep
    assert_close(decayed, np.asarray(ref_decayed), "float64")


@on_kernels
@given(word_masks(), st.sampled_from(["bool", "uint8", "float32"]), st.booleans())
def test_mask_iou_equals_reference_exactly(backend, masks, dtype, contiguous):
    ious = iou_of(backend, as_input(backend, masks, dtype, contiguous))
    assert_exact_iou(ious, reference.mask_iou(masks, masks))


@on_kernels
@given(word_masks(max_n=12), st.data())
def test_mask_iou_between_two_sets_equals_reference_exactly(backend, masks, data):
    split = data.draw(st.integers(0, len(masks)))
    a, b = masks[:split], masks[split:][::-1]
    ious = iou_of(backend, as_input(backend, a), as_input(backend, b, "uint8"))
    assert ious.shape == (len(a), len(b))
    assert_exact_iou(ious, reference.mask_iou(a, b))


@on_kernels
@given(word_masks(), st.sampled_from(FORMATS), st.sampled_from(["bool", "float64"]), st.booleans())
def test_masks_to_boxes_equals_reference(backend, masks, fmt, dtype, contiguous):
    boxes = masks_to_boxes(as_input(backend, masks, dtype, contiguous), fmt, backend=backend.for_op("masks_to_boxes"))
    assert backend.same_place(boxes) and str(boxes.dtype).endswith("float32")
    np.testing.assert_array_equal(backend.to_numpy(boxes), reference.masks_to_boxes(masks, fmt))


@on_kernels
@given(word_masks(), st.data())
def test_matrix_nms_on_word_boundaries_agrees_with_reference(backend, masks, data):
    n = len(masks)
    scores = data.draw(strategies.scores(n))
    labels = data.draw(strategies.optional_labels(n))
    options = data.draw(strategies.nms_options(n))
    if data.draw(st.booleans()):
        # areas at least the true ones: the union grows, every IoU shrinks
        options["mask_areas"] = masks.sum(axis=(1, 2)) + data.draw(st.sampled_from([0.0, 2.0]))
    dtype = data.draw(st.sampled_from(["bool", "uint8", "float32"]))
    nms_against_reference(backend, scores, masks, labels, dtype, data.draw(st.booleans()), **options)


@on_kernels
@given(strategies.masks(max_n=10), st.data())
def test_mask_iou_sorted_kernel_equals_reference(backend, masks, data):
    """The op behind the greedy and Soft-NMS baselines: IoU of masks[order], 0 across labels."""
    n = len(masks)
    order = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)[:data.draw(st.integers(0, n))]
    labels = data.draw(strategies.labels(n))[order] if data.draw(st.booleans()) else None
    metric = data.draw(st.sampled_from(["iou", "ios"]))
    x = backend.asarray(masks)
    _, kernel = resolve("mask_iou_sorted", x, backend.kernel)
    ious = kernel(x, backend.asarray(order), None if labels is None else backend.asarray(labels), metric)
    assert backend.same_place(ious) and str(ious.dtype).endswith("float64")
    expected = (reference.mask_iou if metric == "iou" else reference.mask_ios)(masks[order], masks[order])
    if labels is not None:
        expected[labels[:, None] != labels[None, :]] = 0
    np.testing.assert_array_equal(backend.to_numpy(ious), expected)


def crowd(n: int, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small SOLO-like scene: rectangles predicted several times with jitter, exact copies, strays."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), dtype=bool)
    objects = [(rng.integers(0, h - 2), rng.integers(0, w - 8), rng.integers(2, h), rng.integers(8, w))
               for _ in range(max(1, n // 8))]
    for k in range(n):
        y, x, hh, ww = objects[rng.integers(len(objects))]
        if k and rng.random() < 0.15:
            masks[k] = masks[rng.integers(k)]
            continue
        dy, dx = rng.integers(-1, 2, 2) if rng.random() < 0.8 else rng.integers(0, [h, w])
        masks[k, max(0, y + dy):y + dy + hh, max(0, x + dx):x + dx + ww] = True
    return rng.random(n), masks, rng.integers(0, 3, n)


@on_kernels
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("labelled", [False, True])
def test_many_blocks_chunks_and_threads_agree_with_reference(backend, monkeypatch, kernel, labelled):
    # small budgets force several decay column blocks (Numba), pixel chunks (Torch) and conversion
    # slices, and the parallel path even for this small input
    monkeypatch.setattr(_config, "CHUNK_BYTES", 4096)
    if backend.kernel == "numba":
        numba_kernels = importlib.import_module("matrixnms.backends._numba")
        monkeypatch.setattr(numba_kernels, "BLOCK_BYTES", 1)
        monkeypatch.setattr(numba_kernels, "SERIAL_BYTES", 0)
        monkeypatch.setattr(numba_kernels, "CONVERT_BYTES", 3000)
    scores, masks, labels = crowd(100, 9, 70)  # 100 columns: two blocks of the minimum 64
    labels = labels if labelled else None
    expected = reference.matrix_nms(scores, masks, labels=labels, kernel=kernel)
    for dtype, contiguous in [("bool", True), ("float32", False)]:
        nms_against_reference(backend, scores, masks, labels, dtype, contiguous, expected, kernel=kernel)
    if not labelled:
        ious = iou_of(backend, as_input(backend, masks, "uint8", False))
        assert_exact_iou(ious, reference.mask_iou(masks, masks))
        a, b = masks[:60], masks[60:]
        assert_exact_iou(iou_of(backend, as_input(backend, a), as_input(backend, b, "float32")),
                         reference.mask_iou(a, b))


@on_kernels
@pytest.mark.parametrize("labelled", [False, True])
def test_box_decay_over_several_blocks_agrees_with_reference(backend, monkeypatch, labelled):
    if backend.kernel == "numba":
        monkeypatch.setattr(importlib.import_module("matrixnms.backends._numba"), "BLOCK_BYTES", 1)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 60, (200, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 25, (200, 2))], axis=1)
    boxes[150:] = boxes[:50]  # exact duplicates
    scores, labels = rng.random(200), rng.integers(0, 4, 200) if labelled else None
    for kernel in ("gaussian", "linear"):
        keep, decayed = matrix_nms(backend.asarray(scores), boxes=backend.asarray(boxes),
                                   labels=None if labels is None else backend.asarray(labels),
                                   kernel=kernel, backend=backend.for_op("box_decay"))
        ref_keep, ref_decayed = reference.matrix_nms(scores, boxes=boxes, labels=labels, kernel=kernel)
        assert backend.to_numpy(keep).tolist() == ref_keep
        assert_close(backend.to_numpy(decayed), np.asarray(ref_decayed), "float64")


def edge_case(name: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    if name == "no masks":
        return np.zeros((0, 5, 70), bool)
    if name == "one mask":
        return rng.random((1, 5, 70)) < 0.5
    if name == "all empty":
        return np.zeros((6, 5, 70), bool)
    if name == "identical":
        return np.repeat(rng.random((1, 6, 130)) < 0.4, 40, axis=0)
    if name == "single pixel":
        return rng.random((8, 1, 1)) < 0.6
    if name == "one row":
        return rng.random((9, 1, 200)) < 0.1
    if name == "wide":  # rows of 70 words; masks end in the last, partial word
        masks = np.zeros((5, 3, 64 * 70 - 5), bool)
        for k in range(5):
            masks[k, k % 3:, 64 * 3 + 10 * k:] = True
        return masks
    raise ValueError(name)


@on_kernels
@pytest.mark.parametrize("name", ["no masks", "one mask", "all empty", "identical", "single pixel", "one row",
                                  "wide"])
def test_edge_cases_agree_with_reference(backend, name):
    masks = edge_case(name)
    n = len(masks)
    scores = np.linspace(0.9, 0.1, n)
    for kernel in ("gaussian", "linear"):
        nms_against_reference(backend, scores, masks, kernel=kernel)
        nms_against_reference(backend, scores, masks, np.arange(n) % 2, kernel=kernel, post_top_k=3)
    assert_exact_iou(iou_of(backend, backend.asarray(masks)), reference.mask_iou(masks, masks))
    for fmt in FORMATS:
        boxes = masks_to_boxes(backend.asarray(masks), fmt, backend=backend.for_op("masks_to_boxes"))
        np.testing.assert_array_equal(backend.to_numpy(boxes), reference.masks_to_boxes(masks, fmt))


@on_kernels
def test_exact_duplicates_with_linear_kernel_never_give_nan(backend):
    masks = np.repeat(np.ones((1, 4, 70), bool), 5, axis=0)
    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.6])
    keep, decayed = matrix_nms(backend.asarray(scores), backend.asarray(masks), kernel="linear",
                               backend=backend.kernel)
    # the top mask keeps its score; each copy is fully suppressed by it, and suppresses nothing itself
    np.testing.assert_array_equal(backend.to_numpy(decayed), [0.9, 0.0, 0.0, 0.0, 0.0])
    assert backend.to_numpy(keep).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("backend", [p for p in KERNEL_BACKENDS if p.values[0] in ("numpy-numba", "torch-numba")],
                         indirect=True)
def test_concurrent_calls_from_threads_agree(backend, monkeypatch):
    # the parallel path even for this small input: several calls share the helper threads
    monkeypatch.setattr(importlib.import_module("matrixnms.backends._numba"), "SERIAL_BYTES", 0)
    scores, masks, labels = crowd(120, 12, 90, seed=3)
    expected = reference.matrix_nms(scores, masks, labels=labels)

    def run(_):
        keep, decayed = matrix_nms(backend.asarray(scores), backend.asarray(masks),
                                   labels=backend.asarray(labels), backend=backend.kernel)
        return backend.to_numpy(keep).tolist(), backend.to_numpy(decayed)

    with ThreadPoolExecutor(4) as pool:
        for keep, decayed in pool.map(run, range(8)):
            assert keep == expected[0]
            assert_close(decayed, np.asarray(expected[1]), "float64")


@requires("numba")
def test_numba_kernels_use_the_thread_count_numba_set_num_threads_sets():
    import numba

    numba_kernels = importlib.import_module("matrixnms.backends._numba")
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert numba_kernels._threads(10 * numba_kernels.SERIAL_BYTES) == 1
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert numba_kernels._threads(10 * numba_kernels.SERIAL_BYTES) == numba.config.NUMBA_NUM_THREADS
        assert numba_kernels._threads(0) == 1  # small work stays on the calling thread
    finally:
        numba.set_num_threads(previous)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) not installed")
def test_cuda_source_compiles_with_the_entry_points_cupy_looks_up(tmp_path):
    # the CuPy path compiles this file at run time (NVRTC) and only where a GPU exists: compiling it ahead
    # of time catches a broken kernel on machines without one
    source = Path(importlib.import_module("matrixnms").__file__).parent / "backends" / "cuda" / "mask_iou.cu"
    ptx = tmp_path / "mask_iou.ptx"
    result = subprocess.run(["nvcc", "-arch=sm_90", "--ptx", str(source), "-o", str(ptx)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    text = ptx.read_text()
    for entry in ("pack_bits", "popcount_gram"):
        assert f".entry {entry}(" in text


@requires("torch")
@given(word_masks(max_n=20), st.data())
def test_torch_kernels_only_make_int_mm_calls_that_cuda_accepts(masks, data):
    # torch._int_mm on CUDA (cuBLASLt) needs more than 16 rows, an inner size that is a positive multiple of
    # 8 and a column count that is a multiple of 8; the CPU accepts any shape. Running the kernels on the
    # CPU with CUDA's checks in front of _int_mm shows their padding meets them without a GPU.
    import torch

    torch_kernels = importlib.import_module("matrixnms.backends._torch")
    real_int_mm = torch._int_mm
    shapes = []

    def cuda_checked_int_mm(a, b):
        m, k = a.shape
        n = b.shape[1]
        assert a.dtype == b.dtype == torch.int8
        assert m > 16 and k > 0 and k % 8 == 0 and n % 8 == 0, f"CUDA rejects ({m}, {k}) x ({b.shape[0]}, {n})"
        shapes.append((m, k, n))
        return real_int_mm(a, b)

    labels = data.draw(strategies.labels(len(masks)))
    scores = data.draw(strategies.scores(len(masks)))
    other = masks[: data.draw(st.integers(0, len(masks)))]
    t = torch.from_numpy
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch_kernels.torch, "_int_mm", cuda_checked_int_mm)
        iou = mask_iou(t(masks), t(other), backend="torch")
        keep, decayed = matrix_nms(t(scores), t(masks), labels=t(labels), backend="torch")
    if len(masks) and len(other):
        assert shapes  # the checked path ran
    assert_exact_iou(iou.numpy(), reference.mask_iou(masks, other))
    ref_keep, ref_decayed = reference.matrix_nms(scores, masks, labels=labels)
    assert keep.tolist() == ref_keep
    assert_close(decayed.numpy(), np.asarray(ref_decayed), "float64")
