"""Every mask form gives the dense (N, H, W) results: dense masks of any trailing shape, COCO RLE, crops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import BACKENDS, assert_close, make_backend
from matrixnms import mask_iou, mask_nms, masks_to_boxes, matrix_nms, soft_nms
from strategies import mask_problems, masks

CPU_PLACES = [p for p in BACKENDS if p.values[0] in ("numpy-generic", "numpy-numba", "torch-torch", "torch-numba")]


def _reshapes(m: np.ndarray) -> list[np.ndarray]:
    """The same masks as (N, P), (N, 1, P), (N, H, W, 1), (N, 1, H, W) and a strided 4-D view."""
    n, h, w = m.shape
    strided = np.zeros((n, 2, h, w), bool)
    strided[:, 1] = m
    return [m.reshape(n, h * w), m.reshape(n, 1, h * w), m[..., None], m[:, None], strided[:, 1:]]


# --- dense masks of any trailing shape ----------------------------------------------------------------------


@pytest.mark.parametrize("place", CPU_PLACES)
@settings(max_examples=30)
@given(problem=mask_problems(max_n=8, max_side=12))
def test_matrix_nms_on_any_trailing_shape_equals_the_frames(place, problem):
    backend = make_backend(place)
    scores, m, labels, options = problem
    kw = dict(options, backend=backend.for_op("mask_decay"))
    lab = None if labels is None else backend.asarray(labels)
    keep, decayed = matrix_nms(backend.asarray(scores), backend.asarray(m), labels=lab, **kw)
    for shaped in _reshapes(m):
        k, d = matrix_nms(backend.asarray(scores), backend.asarray(shaped), labels=lab, **kw)
        np.testing.assert_array_equal(backend.to_numpy(k), backend.to_numpy(keep))
        assert_close(backend.to_numpy(d), backend.to_numpy(decayed), "float64")


@pytest.mark.parametrize("place", CPU_PLACES)
@settings(max_examples=20)
@given(m=masks(max_n=8, max_side=12), threshold=st.sampled_from([0.0, 0.3, 0.7]))
def test_iou_greedy_and_soft_nms_on_any_trailing_shape_equal_the_frames(place, m, threshold):
    backend = make_backend(place)
    scores = backend.asarray(np.linspace(1.0, 0.1, len(m)))
    dense = backend.asarray(m)
    iou = backend.to_numpy(mask_iou(dense, backend=backend.for_op("mask_iou")))
    loops = backend.for_op("mask_iou_sorted", "greedy_iou", "soft_nms_iou")
    keep = backend.to_numpy(mask_nms(dense, scores, threshold, backend=loops))
    soft = soft_nms(scores, dense, backend=loops)
    for shaped in _reshapes(m):
        x = backend.asarray(shaped)
        np.testing.assert_array_equal(backend.to_numpy(mask_iou(x, x, backend=backend.for_op("mask_iou"))), iou)
        got = mask_nms(x, scores, threshold, backend=loops)
        np.testing.assert_array_equal(backend.to_numpy(got), keep)
        k, d = soft_nms(scores, x, backend=loops)
        np.testing.assert_array_equal(backend.to_numpy(k), backend.to_numpy(soft[0]))
        assert_close(backend.to_numpy(d), backend.to_numpy(soft[1]), "float64")


def test_point_masks_count_every_point():
    points = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 1]], bool)
    np.testing.assert_allclose(mask_iou(points), [[1.0, 0.5], [0.5, 1.0]])


def test_masks_to_boxes_still_needs_frames():
    with pytest.raises(ValueError, match=r"masks must have shape \(N, H, W\), got \(2, 5\)"):
        masks_to_boxes(np.zeros((2, 5), bool))


def test_mask_iou_needs_the_same_trailing_shape():
    with pytest.raises(ValueError, match=r"masks_b must have the same trailing shape as masks_a \(2, 3, 4\)"):
        mask_iou(np.zeros((1, 2, 3, 4), bool), np.zeros((1, 6, 4), bool))


# --- COCO RLE and cropped masks ------------------------------------------------------------------------------

from pycocotools import mask as coco_mask  # noqa: E402  (a test dependency)

from matrixnms import CroppedMasks  # noqa: E402

FORMS = ["bytes", "str", "list", "crops"]


def _uncompressed(m: np.ndarray) -> list[int]:
    flat = m.T.reshape(-1).astype(np.int8)  # column-major
    edges = np.flatnonzero(np.diff(np.r_[0, flat, 0]))
    bounds = np.r_[0, edges, flat.size]
    runs = np.diff(bounds).tolist()
    return runs[:-1] if len(runs) > 1 and runs[-1] == 0 else runs


def as_form(m: np.ndarray, form: str):
    """Dense (N, H, W) masks as pycocotools RLEs (compressed bytes / str, uncompressed list) or crops."""
    if form == "crops":
        return CroppedMasks.from_dense(m)
    if form == "list":
        return [{"size": list(m.shape[1:]), "counts": _uncompressed(x)} for x in m]
    rles = coco_mask.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8))) if len(m) else []
    if form == "str":
        return [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
    return list(rles)


@pytest.mark.parametrize("place", CPU_PLACES)
@pytest.mark.parametrize("form", FORMS)
@settings(max_examples=15)
@given(problem=mask_problems(max_n=8, max_side=70), metric=st.sampled_from(["iou", "ios"]))
def test_every_function_on_rle_and_crops_equals_the_dense_results(place, form, problem, metric):
    backend = make_backend(place)
    scores, m, labels, options = problem
    s = backend.asarray(scores)
    lab = None if labels is None else backend.asarray(labels)
    sparse = as_form(m, form)
    dense = backend.asarray(m)
    kb = backend.kernel if backend.kernel in ("generic", "numba") else "auto"
    keep, decayed = matrix_nms(s, dense, labels=lab, metric=metric, backend=backend.for_op("mask_decay"), **options)
    k, d = matrix_nms(s, sparse, labels=lab, metric=metric, backend=kb, **options)
    assert backend.same_place(k) and backend.same_place(d)
    np.testing.assert_array_equal(backend.to_numpy(k), backend.to_numpy(keep))
    assert_close(backend.to_numpy(d), backend.to_numpy(decayed), "float64")
    expected = mask_iou(m, metric=metric)
    np.testing.assert_array_equal(mask_iou(sparse, metric=metric, backend=kb), expected)
    np.testing.assert_array_equal(mask_iou(sparse, m, metric=metric, backend=kb), expected)
    np.testing.assert_array_equal(masks_to_boxes(sparse), masks_to_boxes(m))
    loops = backend.for_op("greedy_iou", "soft_nms_iou")
    for threshold in (0.2, 0.6):
        np.testing.assert_array_equal(
            backend.to_numpy(mask_nms(sparse, s, threshold, labels=lab, metric=metric, backend=loops)),
            backend.to_numpy(mask_nms(dense, s, threshold, labels=lab, metric=metric, backend=loops)))
    ks, ds = soft_nms(s, sparse, labels=lab, metric=metric, backend=loops)
    kd, dd = soft_nms(s, dense, labels=lab, metric=metric, backend=loops)
    np.testing.assert_array_equal(backend.to_numpy(ks), backend.to_numpy(kd))
    assert_close(backend.to_numpy(ds), backend.to_numpy(dd), "float64")


@settings(max_examples=20)
@given(m=masks(max_n=6, max_side=80))
def test_rle_matches_pycocotools_and_crops_round_trip(m):
    rles = as_form(m, "bytes")
    if len(m):
        np.testing.assert_array_equal(mask_iou(rles), coco_mask.iou(rles, rles, [0] * len(m)))
    crops = CroppedMasks.from_dense(m)
    np.testing.assert_array_equal(crops.to_dense(), m)
    assert [r["counts"] for r in crops.to_rle()] == [r["counts"] for r in rles]
    if len(m):  # an empty RLE sequence carries no frame size
        np.testing.assert_array_equal(CroppedMasks.from_rle(rles).to_dense(), m)
        np.testing.assert_array_equal(CroppedMasks.from_rle(as_form(m, "list")).to_dense(), m)


def test_empty_rle_masks_and_an_empty_set():
    m = np.zeros((3, 5, 4), bool)
    m[2, 1:3, 1:3] = True
    rles = as_form(m, "bytes")
    np.testing.assert_array_equal(mask_iou(rles), [[0, 0, 0], [0, 0, 0], [0, 0, 1.0]])
    keep, decayed = matrix_nms(np.array([0.9, 0.8, 0.7]), rles)
    np.testing.assert_array_equal(keep, [0, 1, 2])
    np.testing.assert_allclose(decayed, [0.9, 0.8, 0.7])
    keep, decayed = matrix_nms(np.zeros(0), [])
    assert keep.shape == (0,) and decayed.shape == (0,)


def test_crops_need_not_be_tight():
    crop = np.zeros((4, 5), np.uint8)
    crop[1:3, 2:4] = 1
    masks = CroppedMasks([crop, np.ones((2, 2), bool)], np.array([[1, 1, 6, 5], [3, 2, 5, 4]]), (6, 7))
    np.testing.assert_array_equal(masks_to_boxes(masks), [[3, 2, 5, 4], [3, 2, 5, 4]])
    np.testing.assert_array_equal(mask_iou(masks), np.ones((2, 2)))


GOOD = {"size": [2, 2], "counts": [1, 2, 1]}


@pytest.mark.parametrize("rles, message", [
    ([GOOD, {"size": [2, 2]}], r"masks\[1\] must be a COCO RLE dict with 'size' and 'counts'"),
    ([GOOD, "abc"], r"masks\[1\] must be a COCO RLE dict"),
    ([GOOD, {"size": [2], "counts": [4]}], r"masks\[1\] 'size' must be \[H, W\]"),
    ([GOOD, {"size": [2, 3], "counts": [6]}], r"masks\[1\] has size \[2, 3\] but masks\[0\] has \[2, 2\]"),
    ([GOOD, {"size": [2, 2], "counts": [1, 2]}], r"masks\[1\] runs must sum to H \* W = 4, got 3"),
    ([GOOD, {"size": [2, 2], "counts": [5, -1]}], r"masks\[1\] 'counts' must be non-negative run lengths, got -1"),
    ([GOOD, {"size": [2, 2], "counts": b"1\x7f"}], r"masks\[1\] 'counts' is not a valid compressed RLE string"),
    ([GOOD, {"size": [2, 2], "counts": b"1o"}], r"masks\[1\] 'counts' is not a valid compressed RLE string "
                                                 r"\(it ends inside a run\)"),
    ([GOOD, {"size": [2, 2], "counts": [[1, 3]]}], r"masks\[1\] 'counts' must be a flat list of ints"),
    ([GOOD, {"size": [2, 2], "counts": 4}], r"masks\[1\] 'counts' must be bytes, str or a list of ints"),
    ([GOOD], r"masks must have one mask per score: expected 2, got 1"),
    # the first bad mask is reported, whether its problem is found in its dict or in the batch over the counts
    ([GOOD, {"size": [2, 2], "counts": [1, 2]}, "abc"], r"masks\[1\] runs must sum to H \* W = 4, got 3"),
    ([GOOD, {"size": [2, 2], "counts": b"1o"}, {"size": [2, 2], "counts": [5, -1]}],
     r"masks\[1\] 'counts' is not a valid compressed RLE string"),
])
def test_malformed_rle_is_a_value_error_naming_the_index(rles, message):
    with pytest.raises(ValueError, match=message):
        matrix_nms(np.array([0.5, 0.4]), rles)


@pytest.mark.parametrize("args, message", [
    (([np.ones((2, 2))], [[0, 0, 3, 2]], (4, 4)), r"crops\[0\] must have the shape \(y2 - y1, x2 - x1\) = \(2, 3\)"),
    (([np.ones((2, 2))], [[3, 0, 5, 2]], (4, 4)), r"boxes\[0\] = \[3, 0, 5, 2\] reaches outside the frame"),
    (([np.ones((2, 2))], [[-1, 0, 1, 2]], (4, 4)), r"reaches outside the frame \(H, W\) = \(4, 4\)"),
    (([np.full((2, 2), 2)], [[0, 0, 2, 2]], (4, 4)), r"crops\[0\] must hold only 0 and 1"),
    (([np.ones((2, 2))], [[0.5, 0, 2.5, 2]], (4, 4)), r"boxes must be integer pixel edges"),
    (([np.ones((2, 2))], [[2, 0, 0, 2]], (4, 4)), r"x2 >= x1 and y2 >= y1"),
    (([np.ones((2, 2))], [[0, 0, 2, 2], [0, 0, 2, 2]], (4, 4)), r"crops must have one crop per box"),
    (([np.ones((2, 2))], [[0, 0, 2, 2]], (4,)), r"size must be \(H, W\)"),
])
def test_bad_crops_are_value_errors(args, message):
    with pytest.raises(ValueError, match=message):
        CroppedMasks(*args)


def test_mask_iou_rejects_sets_of_different_sizes():
    a = CroppedMasks.from_dense(np.ones((1, 3, 3), bool))
    with pytest.raises(ValueError, match=r"masks_b must have the same size \(H, W\) as masks_a \(3, 3\)"):
        mask_iou(a, [{"size": [3, 4], "counts": [12]}])


# --- the high-resolution scene ------------------------------------------------------------------------------


def test_highres_scene_gives_the_same_masks_as_rle_and_crops_without_frames():
    from matrixnms.scenes import highres_scene

    s = highres_scene(80, height=300, width=400, num_classes=5, seed=3)
    assert len(s) == 80 and s.size == (300, 400) and s.scores.dtype == np.float32
    assert all(isinstance(r["counts"], bytes) and r["size"] == [300, 400] for r in s.rles)
    dense = s.crops.to_dense()
    np.testing.assert_array_equal(coco_mask.decode(s.rles).transpose(2, 0, 1).astype(bool), dense)
    area = dense.reshape(80, -1).sum(axis=1) / (300 * 400)
    assert area.min() >= 0.0008 and area.max() <= 0.18, "0.1-15 % of the frame, up to rim and jitter"
    copies = np.flatnonzero(s.copies >= 0)
    assert copies.size == 4 and all(np.array_equal(dense[i], dense[s.copies[i]]) for i in copies)
    assert np.all(s.labels[copies] == s.labels[s.copies[copies]])
    iou = mask_iou(s.rles)
    same = (s.objects[:, None] == s.objects[None, :]) & (s.objects >= 0)[:, None]
    np.fill_diagonal(same, False)
    assert np.median(iou[same]) > 0.6 and 0.15 < (s.objects < 0).mean() < 0.25
    again = highres_scene(80, height=300, width=400, num_classes=5, seed=3)
    assert [r["counts"] for r in again.rles] == [r["counts"] for r in s.rles]


def test_to_rle_without_numba_writes_the_same_counts(monkeypatch):
    from matrixnms import _sparse

    m = np.zeros((3, 7, 5), bool)
    m[0, 2:, 1:4] = True
    m[1, :, 2:] = True  # runs that continue into the next column
    m[2, -1, -1] = True  # a mask ending on the last pixel
    crops = CroppedMasks.from_dense(m)
    compiled = [r["counts"] for r in crops.to_rle()]
    monkeypatch.setattr(_sparse, "COMPILED", False)
    assert [r["counts"] for r in crops.to_rle()] == compiled == [r["counts"] for r in as_form(m, "bytes")]
