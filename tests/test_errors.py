"""One test per error message: bad input raises ValueError / TypeError naming the argument."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

from helpers import requires
from matrixnms import box_iou, mask_iou, masks_to_boxes, matrix_nms, nms

S = np.array([0.9, 0.8])
M = np.zeros((2, 4, 4), dtype=bool)
B = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(), ValueError, "exactly one of masks or boxes, got neither"),
        (dict(masks=M, boxes=B), ValueError, "exactly one of masks or boxes, got both"),
        (dict(scores=np.zeros((2, 1)), masks=M), ValueError, r"scores must have shape \(N,\), got \(2, 1\)"),
        (dict(scores=np.array([1, 2]), masks=M), TypeError, "scores must be floating, got int64"),
        (dict(scores=np.array([0.5, np.nan]), masks=M), ValueError, "scores must be finite, got NaN"),
        (dict(scores=np.array([0.5, np.inf]), masks=M), ValueError, "scores must be finite, got inf"),
        (dict(masks=np.zeros((3,), bool)), ValueError,
         r"masks must have shape \(N, \*S\) with at least one trailing dimension, got \(3,\)"),
        (dict(masks=np.zeros((3, 4, 4), bool)), ValueError, "masks must have one mask per score: expected 2, got 3"),
        (dict(masks=np.full((2, 4, 4), 2, np.uint8)), ValueError, "masks must hold only 0 and 1"),
        (dict(masks=np.full((2, 4, 4), 0.5)), ValueError, "masks must hold only 0 and 1"),
        (dict(masks=np.zeros((2, 4, 4), complex)), TypeError, "masks must be bool, integer or floating 0/1, got complex128"),
        (dict(boxes=np.zeros((2, 3))), ValueError, r"boxes must have shape \(N, 4\), got \(2, 3\)"),
        (dict(boxes=np.zeros((3, 4))), ValueError, "boxes must have one box per score: expected 2, got 3"),
        (dict(boxes=np.array([[0.0, 0, 1, 1], [2.0, 0, 1, 1]])), ValueError, r"x2 >= x1 and y2 >= y1, got \[2.0, 0.0, 1.0, 1.0\] at index 1"),
        (dict(boxes=np.array([[0.0, 0, 1, 1], [0.0, np.nan, 1, 1]])), ValueError, "boxes must be finite"),
        (dict(boxes=B.astype(complex)), TypeError, "boxes must be real numbers, got complex128"),
        (dict(masks=M, labels=np.array([0, 1, 2])), ValueError, r"labels must have shape \(2,\), got \(3,\)"),
        (dict(masks=M, labels=np.array([0.0, 1.0])), TypeError, "labels must be integers, got float64"),
        (dict(masks=M, mask_areas=np.array([1.0])), ValueError, r"mask_areas must have shape \(2,\), got \(1,\)"),
        (dict(masks=M, mask_areas=np.array([1.0, -1.0])), ValueError, "mask_areas must be >= 0"),
        (dict(boxes=B, mask_areas=np.array([1.0, 1.0])), ValueError, "mask_areas applies to masks"),
        (dict(masks=M, kernel="gauss"), ValueError, r"kernel must be one of \('gaussian', 'linear'\), got 'gauss'"),
        (dict(masks=M, sigma=0.0), ValueError, "sigma must be > 0 and finite, got 0.0"),
        (dict(masks=M, sigma=-1.0), ValueError, "sigma must be > 0 and finite, got -1.0"),
        (dict(masks=M, sigma="2"), TypeError, "sigma must be a real number, got str"),
        (dict(masks=M, score_threshold=-0.1), ValueError, "score_threshold must be >= 0 and finite, got -0.1"),
        (dict(masks=M, post_threshold=float("nan")), ValueError, "post_threshold must be >= 0 and finite, got nan"),
        (dict(masks=M, post_threshold="0.1"), TypeError, "post_threshold must be a real number or None, got str"),
        (dict(masks=M, pre_top_k=-1), ValueError, r"pre_top_k must be >= 0 \(None means no limit\), got -1"),
        (dict(masks=M, post_top_k=2.5), TypeError, "post_top_k must be an int or None, got float"),
        (dict(masks=M, backend="fast"), ValueError, "backend must be one of"),
        (dict(masks=M, backend="torch"), ValueError, "backend 'torch' cannot run on numpy arrays"),
        (dict(scores=[0.9, 0.8], masks=M), TypeError, "scores must be a NumPy, Torch or CuPy array, got list"),
    ],
)
def test_matrix_nms_rejects_bad_input(kwargs, error, message):
    kwargs = dict(kwargs)
    scores = kwargs.pop("scores", S)
    with pytest.raises(error, match=message):
        matrix_nms(scores, **kwargs)


@requires("torch")
def test_mixed_libraries_are_a_type_error():
    import torch

    with pytest.raises(TypeError, match="masks is torch but scores is numpy"):
        matrix_nms(S, torch.from_numpy(M))


@pytest.mark.skipif(find_spec("cupy") is not None, reason="cupy is installed")
def test_backend_that_is_not_installed_names_the_package():
    pytest.importorskip("torch")  # cupy on numpy input is refused first as the wrong device
    with pytest.raises(ValueError, match="backend 'cupy' cannot run on numpy arrays"):
        matrix_nms(S, M, backend="cupy")


def test_named_backend_that_is_not_installed_raises_import_error(monkeypatch):
    from matrixnms import _dispatch

    # pretend numba is missing, whether or not it is installed here
    monkeypatch.setattr(_dispatch, "find_spec", lambda name: None if name == "numba" else find_spec(name))
    with pytest.raises(ImportError, match="backend 'numba' needs the package 'numba'"):
        matrix_nms(S, M, backend="numba")


def test_mask_iou_rejects_different_sizes():
    with pytest.raises(ValueError, match=r"masks_b must have the same trailing shape as masks_a \(4, 4\), got \(4, 5\)"):
        mask_iou(M, np.zeros((1, 4, 5), bool))


def test_mask_iou_rejects_wrong_ndim():
    with pytest.raises(ValueError, match=r"masks_a must have shape \(N, \*S\) with at least one trailing "
                                         r"dimension, got \(4,\)"):
        mask_iou(M[0, 0])


def test_masks_to_boxes_rejects_unknown_format():
    with pytest.raises(ValueError, match="format must be one of"):
        masks_to_boxes(M, "cxcywh")


def test_box_iou_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"boxes_b must have shape \(N, 4\), got \(4,\)"):
        box_iou(B, B[0])


@requires("torch")
def test_named_backend_without_the_operation_raises_naming_both():
    import torch

    scores, boxes = torch.from_numpy(S), torch.from_numpy(B)
    with pytest.raises(ValueError, match="backend 'torch' has no kernel for box_decay"):
        matrix_nms(scores, boxes=boxes, backend="torch")
    with pytest.raises(ValueError, match="backend 'torch' has no kernel for greedy_boxes"):
        nms(boxes, scores, 0.5, backend="torch")
    # auto still runs: the best installed path (Numba on CPU tensors, else the generic one)
    assert matrix_nms(scores, boxes=boxes)[0].shape == (2,)


def test_register_rejects_an_unknown_operation_backend_or_signature():
    from matrixnms._dispatch import register

    with pytest.raises(ValueError, match="op must be one of .*, got 'mask_ious'"):
        register("mask_ious", "numba")
    with pytest.raises(ValueError, match="backend must be one of .*, got 'jax'"):
        register("mask_iou", "jax")
    with pytest.raises(ValueError, match="a 'mask_iou' kernel takes \\('masks_a', 'masks_b', 'metric'\\)"):
        register("mask_iou", "numba")(lambda masks: masks)


def test_resolve_rejects_an_unknown_operation():
    from matrixnms._dispatch import resolve

    with pytest.raises(ValueError, match="op must be one of .*, got 'decay'"):
        resolve("decay", S)
