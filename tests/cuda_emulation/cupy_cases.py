"""The CuPy-path cases of tests/test_cuda_emulation.py, run in one subprocess on the stand-in CuPy.

``python tests/cuda_emulation/cupy_cases.py OUT.json`` (with the stand-in first on PYTHONPATH and
MATRIXNMS_CUPY_STAND_IN=1) runs every case and writes ``{name: null | failure text}``; the test file
parametrizes over ``CASES`` (importable without CuPy) and asserts each entry. Kernels are compared with
``tests/reference.py``: IoU to the last bit, decay within the float64 / float32 tolerances.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

CASES: dict[str, Callable[[Any], None]] = {}


def case(f: Callable[[Any], None]) -> Callable[[Any], None]:
    CASES[f.__name__] = f
    return f


def _masks(n: int, h: int, w: int, seed: int = 0, density: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random((n, h, w)) < density


def _no_transfer(cp: Any, f: Callable[[], Any]) -> Any:
    """f() with no device-to-host transfer (the stand-in counts them) and a stand-in array back."""
    before = cp.host_transfers
    out = f()
    assert cp.host_transfers == before, f"{cp.host_transfers - before} device-to-host transfers in the kernel"
    assert isinstance(out, cp.ndarray), type(out)
    return out


def _kernels() -> Any:
    from matrixnms.backends import _cupy

    return _cupy


# --- the two CUDA kernels, launched directly -------------------------------------------------------------


def _pack_check(cp: Any, n: int, h: int, w: int, threads: int) -> None:
    masks = _masks(n + 2, h, w, seed=n)
    rows = np.arange(n + 2)[::-1][:n].copy()
    pixels, words = h * w, -(-h * w // 32)
    packed = cp.zeros((n, words), dtype=cp.uint32)
    function = _kernels()._module().get_function("pack_bits")
    total = n * words * 32
    function(((total + threads - 1) // threads,), (threads,),
             (cp.asarray(masks.reshape(n + 2, pixels).view(np.uint8)), cp.asarray(rows), cp.int64(n),
              cp.int64(pixels), cp.int64(words), packed))
    bits = np.zeros((n, words * 32), dtype=bool)
    bits[:, :pixels] = masks[rows].reshape(n, pixels)
    expected = np.packbits(bits, axis=1, bitorder="little").view(np.uint32)
    np.testing.assert_array_equal(packed.get(), expected)


# (n rows, H, W, threads a block), as named
for _name, _shape in {"pack_bits_one_pixel": (1, 1, 1, 256), "pack_bits_odd_sizes": (5, 3, 11, 256),
                      "pack_bits_two_chunks_of_words": (3, 33, 33, 256),
                      "pack_bits_with_1024_thread_blocks": (9, 7, 33, 1024)}.items():
    CASES[_name] = lambda cp, shape=_shape: _pack_check(cp, *shape)


def _gram_check(cp: Any, n_a: int, n_b: int, words: int) -> None:
    rng = np.random.default_rng(words)
    a = rng.integers(0, 2**32, (n_a, words), dtype=np.uint32)
    b = rng.integers(0, 2**32, (n_b, words), dtype=np.uint32)
    out = cp.full((n_a, n_b), -1, dtype=cp.int32)
    grid = ((n_b + 15) // 16, (n_a + 15) // 16)
    _kernels()._module().get_function("popcount_gram")(
        grid, (16, 16), (cp.asarray(a), cp.int64(n_a), cp.asarray(b), cp.int64(n_b), cp.int64(words), out))
    expected = np.bitwise_count(a[:, None, :] & b[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(out.get(), expected)


# (rows of a, rows of b, words), as named
for _name, _shape in {"popcount_gram_one_word": (1, 1, 1), "popcount_gram_partial_tiles": (5, 20, 7),
                      "popcount_gram_several_word_chunks": (17, 3, 70)}.items():
    CASES[_name] = lambda cp, shape=_shape: _gram_check(cp, *shape)


# --- _cupy.py's registered kernels against the reference -------------------------------------------------


def _iou_check(cp: Any, a: np.ndarray, b: np.ndarray | None, dtype: str = "bool") -> None:
    import reference

    cupy_kernels = _kernels()
    da = cp.asarray(a.astype(dtype))
    db = None if b is None else cp.asarray(b.astype(dtype))
    ious = _no_transfer(cp, lambda: cupy_kernels.mask_iou(da, db, "iou"))
    assert ious.dtype == np.float64
    np.testing.assert_array_equal(ious.get(), reference.mask_iou(a, a if b is None else b))


@case
def mask_iou_odd_sizes_bool(cp):
    _iou_check(cp, _masks(7, 5, 13), None)


@case
def mask_ios_two_sets(cp):
    import reference

    a, b = _masks(5, 6, 45, seed=11), _masks(9, 6, 45, seed=12, density=0.1)
    ios = _no_transfer(cp, lambda: _kernels().mask_iou(cp.asarray(a), cp.asarray(b), "ios"))
    np.testing.assert_allclose(ios.get(), reference.mask_ios(a, b), rtol=1e-12, atol=0)


@case
def mask_iou_float_masks(cp):
    _iou_check(cp, _masks(6, 9, 37, seed=1), None, "float32")


@case
def mask_iou_uint8_two_sets(cp):
    _iou_check(cp, _masks(3, 4, 70, seed=2), _masks(18, 4, 70, seed=3), "uint8")


@case
def mask_iou_empty_sets(cp):
    _iou_check(cp, _masks(0, 4, 9), None)
    _iou_check(cp, _masks(0, 4, 9), _masks(3, 4, 9))
    _iou_check(cp, _masks(3, 4, 9), _masks(0, 4, 9))


@case
def mask_iou_one_mask_and_empty_masks(cp):
    _iou_check(cp, _masks(1, 3, 3), None)
    _iou_check(cp, np.zeros((4, 6, 7), bool), None)  # IoU 0 where both are empty


@case
def mask_iou_identical_masks_over_two_word_chunks(cp):
    _iou_check(cp, np.repeat(_masks(1, 40, 41, seed=4), 19, axis=0), None)


@case
def mask_iou_non_contiguous_float64_masks(cp):
    import reference

    masks = _masks(5, 11, 6, seed=5)
    view = cp.asarray(np.ascontiguousarray(masks.transpose(0, 2, 1)).astype(np.float64)).transpose(0, 2, 1)
    ious = _no_transfer(cp, lambda: _kernels().mask_iou(view, None, "iou"))
    np.testing.assert_array_equal(ious.get(), reference.mask_iou(masks, masks))


@case
def mask_iou_conversion_in_several_slices(cp):
    from matrixnms import _config

    previous = _config.CHUNK_BYTES
    _config.CHUNK_BYTES = 100  # float masks converted a few candidates at a time
    try:
        _iou_check(cp, _masks(11, 5, 9, seed=6), None, "float32")
    finally:
        _config.CHUNK_BYTES = previous


def _sorted_check(cp: Any, masks: np.ndarray, order: np.ndarray, labels: np.ndarray | None) -> None:
    import reference

    dl = None if labels is None else cp.asarray(labels)
    ious = _no_transfer(cp, lambda: _kernels().mask_iou_sorted(cp.asarray(masks), cp.asarray(order), dl, "iou"))
    expected = reference.mask_iou(masks[order], masks[order])
    if labels is not None:
        expected[labels[:, None] != labels[None, :]] = 0
    np.testing.assert_array_equal(ious.get(), expected)


@case
def mask_iou_sorted_subset_of_candidates(cp):
    _sorted_check(cp, _masks(9, 5, 7, seed=7), np.array([4, 0, 8, 2, 7], dtype=np.int64), None)


@case
def mask_iou_sorted_with_labels(cp):
    order = np.random.default_rng(8).permutation(13).astype(np.int64)
    _sorted_check(cp, _masks(13, 6, 6, seed=8), order, np.arange(13) % 3)


@case
def mask_iou_sorted_empty_order(cp):
    _sorted_check(cp, _masks(4, 3, 3), np.zeros(0, dtype=np.int64), None)


def _decay_check(cp: Any, masks: np.ndarray, kernel: str, labels: bool, areas: bool, dtype: str,
                 mask_dtype: str = "bool") -> None:
    import reference
    from helpers import assert_close

    n = len(masks)
    order = np.random.default_rng(n).permutation(n).astype(np.int64)
    sorted_labels = (np.arange(n) % 2)[order] if labels else None
    sorted_areas = masks[order].sum(axis=(1, 2)).astype(np.float64) + 1.0 if areas else None
    ious = reference.mask_iou(masks[order], masks[order])
    if areas:  # the union with the given areas
        inter = masks[order].reshape(n, -1).astype(np.int64) @ masks[order].reshape(n, -1).T.astype(np.int64)
        union = sorted_areas[:, None] + sorted_areas[None, :] - inter
        ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    if labels:
        ious[sorted_labels[:, None] != sorted_labels[None, :]] = 0
    expected = np.asarray(reference.decay(ious, kernel, 0.5)) if n else np.zeros(0)
    decay = _no_transfer(cp, lambda: _kernels().mask_decay(
        cp.asarray(masks.astype(mask_dtype)), cp.asarray(order),
        None if sorted_labels is None else cp.asarray(sorted_labels),
        None if sorted_areas is None else cp.asarray(sorted_areas), kernel, 0.5, getattr(cp, dtype), "iou"))
    assert decay.dtype == np.dtype(dtype) and decay.shape == (n,)
    assert_close(decay.get(), expected, dtype)


def _crowd(n: int, h: int, w: int) -> np.ndarray:
    """Jittered copies of a few rectangles and exact duplicates: decays well away from 1."""
    rng = np.random.default_rng(n)
    masks = np.zeros((n, h, w), bool)
    for k in range(n):
        y, x = rng.integers(0, 3, 2)
        masks[k, y:y + h // 2, x + (k % 3) * 4:x + (k % 3) * 4 + w // 2] = True
    masks[n - 1] = masks[0]
    return masks


@case
def mask_decay_gaussian(cp):
    _decay_check(cp, _crowd(11, 9, 21), "gaussian", False, False, "float64")


@case
def mask_decay_linear_with_exact_duplicates(cp):
    _decay_check(cp, _crowd(11, 9, 21), "linear", False, False, "float64")


@case
def mask_decay_gaussian_labels_float32(cp):
    _decay_check(cp, _crowd(17, 8, 40), "gaussian", True, False, "float32")


@case
def mask_decay_linear_labels_given_areas(cp):
    _decay_check(cp, _crowd(9, 7, 33), "linear", True, True, "float64", "uint8")


@case
def mask_decay_float_masks_several_word_chunks(cp):
    _decay_check(cp, _crowd(6, 40, 30), "gaussian", False, True, "float64", "float32")


@case
def mask_decay_one_mask_and_none(cp):
    _decay_check(cp, _crowd(1, 4, 4), "gaussian", False, False, "float64")
    _decay_check(cp, np.zeros((0, 4, 4), bool), "linear", True, False, "float32")


# --- the public functions route stand-in arrays to the CuPy kernels --------------------------------------


@case
def stand_in_arrays_are_cupy_to_dispatch(cp):
    from matrixnms._dispatch import library_of, resolve

    x = cp.asarray(_masks(2, 3, 3))
    assert library_of(x) == "cupy"
    assert resolve("mask_decay", x)[0] == "cupy" and resolve("mask_iou", x)[0] == "cupy"


@case
def public_matrix_nms_on_cupy_equals_reference(cp):
    import reference
    from helpers import assert_close
    from matrixnms import matrix_nms

    masks = _crowd(14, 9, 37)
    rng = np.random.default_rng(9)
    scores, labels = rng.random(14), rng.integers(0, 3, 14)
    for kernel in ("gaussian", "linear"):
        launched = len(cp.launches)
        keep, decayed = matrix_nms(cp.asarray(scores), cp.asarray(masks), labels=cp.asarray(labels),
                                   kernel=kernel, post_top_k=9, backend="cupy")
        assert {name for name, _, _ in cp.launches[launched:]} == {"pack_bits", "popcount_gram"}
        assert isinstance(keep, cp.ndarray) and isinstance(decayed, cp.ndarray)
        ref_keep, ref_decayed = reference.matrix_nms(scores, masks, labels=labels, kernel=kernel, post_top_k=9)
        assert keep.get().tolist() == ref_keep
        assert_close(decayed.get(), np.asarray(ref_decayed), "float64")


# --- the stand-in refuses what CuPy or the GPU would get wrong -------------------------------------------


def _refuses(exception: type, f: Callable[[], Any], text: str) -> None:
    try:
        f()
    except exception as error:
        assert text in str(error), str(error)
    else:
        raise AssertionError(f"no {exception.__name__} ({text})")


@case
def launches_are_checked_against_the_c_signature(cp):
    function = _kernels()._module().get_function("popcount_gram")
    a = cp.zeros((4, 2), dtype=cp.uint32)
    out = cp.zeros((4, 4), dtype=cp.int32)

    def launch(*args, block=(16, 16)):
        return lambda: function((1, 1), block, args)

    _refuses(TypeError, launch(a.astype(cp.int32), cp.int64(4), a, cp.int64(4), cp.int64(2), out), "dtype uint32")
    _refuses(TypeError, launch(a, 4, a, cp.int64(4), cp.int64(2), out), "cupy.int64 scalar")
    _refuses(TypeError, launch(a, cp.int32(4), a, cp.int64(4), cp.int64(2), out), "cupy.int64 scalar")
    _refuses(ValueError, launch(a, cp.int64(4), a, cp.int64(4), cp.int64(2), out.T), "C-contiguous")
    _refuses(ValueError, launch(a, cp.int64(4), a, cp.int64(4), cp.int64(2), out, block=(32, 33)), "1024")
    _refuses(TypeError, launch(np.zeros((4, 2), np.uint32), cp.int64(4), a, cp.int64(4), cp.int64(2), out),
             "cupy.ndarray")
    _refuses(TypeError, launch(a, cp.int64(4), a, cp.int64(4), cp.int64(2)), "takes 6 arguments")


@case
def stand_in_arrays_refuse_implicit_host_copies(cp):
    x = cp.zeros(3)
    _refuses(TypeError, lambda: np.asarray(x), "Implicit conversion")
    _refuses(TypeError, lambda: cp.where(np.zeros(3, bool), x, x), "NumPy array")
    _refuses(NotImplementedError, lambda: cp.ReductionKernel("float32 x", "float32 y", "x", "a + b", "y = a",
                                                             "0", "total"), "emulates only")


def main(out: str) -> None:
    import cupy

    assert getattr(cupy, "STAND_IN", False), f"not the stand-in: {cupy.__file__}"
    results: dict[str, str | None] = {}
    for name, f in CASES.items():
        try:
            f(cupy)
            results[name] = None
        except Exception:  # every failure goes back to its test
            results[name] = traceback.format_exc()
    Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
