"""mask_iou, box_iou and masks_to_boxes against pycocotools and the loop reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

import reference
import strategies
from matrixnms import box_iou, mask_iou, masks_to_boxes


def encode(masks: np.ndarray) -> list:
    """pycocotools RLEs of (N, H, W) masks (it wants uint8, Fortran order, (H, W, N))."""
    return mask_utils.encode(np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1)))


def same_shape_pair(data, max_n=8, max_side=20):
    a = data.draw(strategies.masks(max_n=max_n, max_side=max_side))
    b = data.draw(strategies.masks(max_n=max_n, max_side=max_side))
    h, w = a.shape[1:]
    b2 = np.zeros((len(b), h, w), dtype=bool)
    hh, ww = min(h, b.shape[1]), min(w, b.shape[2])
    b2[:, :hh, :ww] = b[:, :hh, :ww]
    return a, b2


@given(st.data())
def test_mask_iou_equals_pycocotools(backend, data):
    a, b = same_shape_pair(data)
    ious = backend.to_numpy(mask_iou(backend.asarray(a), backend.asarray(b), backend=backend.kernel))
    assert ious.shape == (len(a), len(b))
    if len(a) and len(b):
        expected = mask_utils.iou(encode(a), encode(b), [0] * len(b))
        np.testing.assert_allclose(ious, expected, rtol=1e-6 if ious.dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(ious, reference.mask_iou(a, b), rtol=1e-6 if ious.dtype == np.float32 else 0)


@given(strategies.masks(max_n=10))
def test_mask_iou_with_itself_is_symmetric_with_unit_diagonal(backend, masks):
    ious = backend.to_numpy(mask_iou(backend.asarray(masks), backend=backend.kernel))
    np.testing.assert_array_equal(ious, ious.T)
    nonempty = masks.reshape(len(masks), -1).any(axis=1) if len(masks) else np.zeros(0, bool)
    np.testing.assert_array_equal(np.diag(ious)[nonempty], 1.0)
    np.testing.assert_array_equal(np.diag(ious)[~nonempty], 0.0)


def test_mask_iou_of_two_empty_masks_is_zero(backend):
    ious = backend.to_numpy(mask_iou(backend.asarray(np.zeros((2, 4, 4), bool)), backend=backend.kernel))
    np.testing.assert_array_equal(ious, np.zeros((2, 2)))


def test_mask_iou_dtype_and_place(backend):
    masks = backend.asarray(np.ones((2, 3, 3), dtype=np.uint8))
    ious = mask_iou(masks, backend=backend.kernel)
    assert backend.same_place(ious)
    assert str(ious.dtype).endswith("float64" if backend.library != "torch" else "float32")


def test_mask_iou_empty_sets(backend):
    a = backend.asarray(np.zeros((0, 5, 5), bool))
    b = backend.asarray(np.ones((3, 5, 5), bool))
    assert tuple(mask_iou(a, b, backend=backend.kernel).shape) == (0, 3)
    assert tuple(mask_iou(b, a, backend=backend.kernel).shape) == (3, 0)


@given(strategies.masks(max_n=10), st.sampled_from(["xyxy", "xywh", "xyxy_inclusive"]))
def test_masks_to_boxes_equals_reference(backend, masks, fmt):
    boxes = backend.to_numpy(masks_to_boxes(backend.asarray(masks), fmt, backend=backend.for_op("masks_to_boxes")))
    assert boxes.dtype == np.float32 and boxes.shape == (len(masks), 4)
    np.testing.assert_array_equal(boxes, reference.masks_to_boxes(masks, fmt))


@given(strategies.masks(max_n=10))
def test_masks_to_boxes_xywh_equals_pycocotools_to_bbox(masks):
    if len(masks) == 0:
        return
    np.testing.assert_array_equal(masks_to_boxes(masks, "xywh"), mask_utils.toBbox(encode(masks)))


def test_masks_to_boxes_hand_worked(backend):
    masks = np.zeros((2, 5, 6), dtype=bool)
    masks[0, 1:3, 2:5] = True  # rows 1..2, columns 2..4
    out = {fmt: backend.to_numpy(masks_to_boxes(backend.asarray(masks), fmt, backend=backend.for_op("masks_to_boxes")))
           for fmt in ("xyxy", "xywh", "xyxy_inclusive")}
    assert out["xyxy"].tolist() == [[2, 1, 5, 3], [0, 0, 0, 0]]
    assert out["xywh"].tolist() == [[2, 1, 3, 2], [0, 0, 0, 0]]
    assert out["xyxy_inclusive"].tolist() == [[2, 1, 4, 2], [0, 0, 0, 0]]


@given(strategies.boxes(max_n=10), strategies.boxes(max_n=10))
def test_box_iou_equals_reference(backend, a, b):
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        ious = backend.to_numpy(box_iou(backend.asarray(a.astype(dtype)), backend.asarray(b.astype(dtype))))
        assert ious.dtype == dtype and ious.shape == (len(a), len(b))
        assert not np.any(np.isnan(ious))
        np.testing.assert_allclose(ious, reference.box_iou(a.astype(dtype), b.astype(dtype)), rtol=rtol,
                                   atol=1e-6 if dtype == np.float32 else 0)


def test_box_iou_hand_worked_and_zero_area(backend):
    boxes = backend.asarray(np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0]]))
    ious = backend.to_numpy(box_iou(boxes))
    np.testing.assert_allclose(ious[0, 1], 1 / 7)
    assert ious[2, 2] == 0.0  # zero-area box: 0, not NaN as torchvision gives
    assert ious[0, 0] == 1.0


def test_box_iou_integer_boxes_give_default_float(backend):
    ious = box_iou(backend.asarray(np.array([[0, 0, 2, 2], [1, 1, 3, 3]])))
    assert str(ious.dtype).endswith("float64" if backend.library != "torch" else "float32")
