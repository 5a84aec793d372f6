"""The documented rejections the older error tables missed: one case per message (or per branch of a check).

Each case is a bad argument that only one condition of one check catches: NaN mask areas, boxes inverted in
y alone, a bool where a number or a top-k is expected, infinite sigma and thresholds, labels and areas of
the right length but the wrong ndim, Paddle-style cutoffs that are not finite, and the ONNX export's
options. Every message is matched with its text, so a check that raised for the wrong reason would show.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import needs_cuda, requires
from matrixnms import (
    box_iou, mask_iou, mask_nms, matrix_nms, multiclass_matrix_nms, multiclass_matrix_nms_padded, nms, soft_nms,
)

S = np.array([0.9, 0.8])
M = np.zeros((2, 4, 4), dtype=bool)
B = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
Y_INVERTED = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 3.0, 2.0, 2.0]])  # x2 >= x1 holds, y2 < y1 only

MATRIX_NMS = [
    # (keyword arguments of matrix_nms(S, ...), exception, message)
    (dict(masks=M, mask_areas=np.array([1.0, np.nan])), ValueError, "mask_areas must be >= 0 and not NaN"),
    (dict(masks=M, mask_areas=np.array([[1.0], [1.0]])), ValueError, r"mask_areas must have shape \(2,\), got \(2, 1\)"),
    (dict(masks=M, mask_areas=np.array([1 + 0j, 1 + 0j])), TypeError, "mask_areas must be real numbers, got complex128"),
    (dict(boxes=Y_INVERTED), ValueError, r"boxes must satisfy x2 >= x1 and y2 >= y1, got \[0.0, 3.0, 2.0, 2.0\] at index 1"),
    (dict(boxes=np.where(B == 2.0, np.inf, B)), ValueError, "boxes must be finite, got NaN or inf"),
    (dict(masks=M, labels=np.array([[0], [1]])), ValueError, r"labels must have shape \(2,\), got \(2, 1\)"),
    (dict(masks=M, post_top_k=True), TypeError, "post_top_k must be an int or None, got bool"),
    (dict(masks=M, pre_top_k=False), TypeError, "pre_top_k must be an int or None, got bool"),
    (dict(masks=M, pre_top_k=2.0), TypeError, "pre_top_k must be an int or None, got float"),
    (dict(masks=M, post_top_k=-3), ValueError, r"post_top_k must be >= 0 \(None means no limit\), got -3"),
    (dict(masks=M, sigma=math.inf), ValueError, "sigma must be > 0 and finite, got inf"),
    (dict(masks=M, sigma=math.nan), ValueError, "sigma must be > 0 and finite, got nan"),
    (dict(masks=M, sigma=True), TypeError, "sigma must be a real number, got bool"),
    (dict(masks=M, score_threshold=math.inf), ValueError, "score_threshold must be >= 0 and finite, got inf"),
    (dict(masks=M, score_threshold=True), TypeError, "score_threshold must be a real number or None, got bool"),
    (dict(masks=M, post_threshold=-1e-9), ValueError, "post_threshold must be >= 0 and finite, got -1e-09"),
    (dict(masks=M, kernel=None), ValueError, r"kernel must be one of \('gaussian', 'linear'\), got None"),
    (dict(masks=M, labels=np.array([True, False])), TypeError, "labels must be integers, got bool"),
    (dict(masks=np.full((2, 4, 4), -1, np.int8)), ValueError, "masks must hold only 0 and 1"),
]


@pytest.mark.parametrize("kwargs, error, message", MATRIX_NMS, ids=[m for _, _, m in MATRIX_NMS])
def test_matrix_nms_rejects(kwargs, error, message):
    with pytest.raises(error, match=message):
        matrix_nms(S, **kwargs)


def test_bool_mask_areas_are_not_real_numbers():
    # bool is neither integer nor floating in the array API: the dtype check names it
    with pytest.raises(TypeError, match="mask_areas must be real numbers, got bool"):
        matrix_nms(S, M, mask_areas=np.array([True, True]))


OTHERS = [
    # (call, exception, message)
    (lambda: nms(Y_INVERTED, S, 0.5), ValueError, r"boxes must satisfy x2 >= x1 and y2 >= y1, got \[0.0, 3.0"),
    (lambda: soft_nms(S, boxes=Y_INVERTED), ValueError, "boxes must satisfy x2 >= x1 and y2 >= y1"),
    (lambda: box_iou(Y_INVERTED), ValueError, "boxes_a must satisfy x2 >= x1 and y2 >= y1"),
    (lambda: box_iou(B, Y_INVERTED), ValueError, "boxes_b must satisfy x2 >= x1 and y2 >= y1"),
    (lambda: box_iou(B[:, :3]), ValueError, r"boxes_a must have shape \(N, 4\), got \(2, 3\)"),
    (lambda: mask_iou(M, M[0, 0]), ValueError,
     r"masks_b must have shape \(N, \*S\) with at least one trailing dimension, got \(4,\)"),
    (lambda: mask_iou(M, np.full((1, 4, 4), 3)), ValueError, "masks_b must hold only 0 and 1"),
    (lambda: nms(None, None, 0.5), TypeError, "no array given"),
    (lambda: nms(B, S, math.inf), ValueError, "iou_threshold must be >= 0 and finite, got inf"),
    (lambda: nms(B, S, True), TypeError, "iou_threshold must be a real number, got bool"),
    (lambda: mask_nms(M, S, math.nan), ValueError, "iou_threshold must be >= 0 and finite, got nan"),
    (lambda: soft_nms(S, boxes=B, sigma=math.inf), ValueError, "sigma must be > 0 and finite, got inf"),
    (lambda: soft_nms(S, boxes=B, score_threshold=math.inf), ValueError, "score_threshold must be >= 0 and finite"),
    (lambda: soft_nms(S, boxes=B, iou_threshold=None), TypeError, "iou_threshold must be a real number, got NoneType"),
    (lambda: soft_nms(S, M, labels=np.array([0, 1, 2])), ValueError, r"labels must have shape \(2,\), got \(3,\)"),
]


@pytest.mark.parametrize("call, error, message", OTHERS, ids=[m[:50] for _, _, m in OTHERS])
def test_baselines_and_ious_reject(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------------------------- multiclass

GOOD = dict(score_threshold=0.1, post_threshold=0.1, nms_top_k=10, keep_top_k=10)
BOXES = np.zeros((2, 5, 4))
SCORES = np.zeros((2, 3, 5))

MULTICLASS = [
    ({"score_threshold": math.inf}, ValueError, "score_threshold must be finite, got inf"),
    ({"score_threshold": -math.inf}, ValueError, "score_threshold must be finite, got -inf"),
    ({"post_threshold": math.inf}, ValueError, "post_threshold must be finite, got inf"),
    ({"post_threshold": -math.inf}, ValueError, "post_threshold must be finite, got -inf"),
    ({"post_threshold": math.nan}, ValueError, "post_threshold must be finite, got nan"),
    ({"score_threshold": True}, TypeError, "score_threshold must be a real number, got bool"),
    ({"score_threshold": None}, TypeError, "score_threshold must be a real number, got NoneType"),
    ({"nms_top_k": True}, TypeError, r"nms_top_k must be an int \(-1 for no limit\), got bool"),
    ({"keep_top_k": -5}, ValueError, "keep_top_k must be >= 0, or -1 for no limit, got -5"),
    ({"sigma": math.inf}, ValueError, "sigma must be > 0 and finite, got inf"),
    ({"sigma": "2"}, TypeError, "sigma must be a real number, got str"),
    ({"background_label": -2}, ValueError, r"background_label must be -1 \(none\) or a class index in \[0, 3\), got -2"),
    ({"background_label": True}, TypeError, "background_label must be an int, got bool"),
    ({"normalized": None}, TypeError, "normalized must be a bool, got NoneType"),
]


@pytest.mark.parametrize("options, error, message", MULTICLASS, ids=[m for _, _, m in MULTICLASS])
def test_multiclass_rejects(options, error, message):
    for fn in (multiclass_matrix_nms, multiclass_matrix_nms_padded):
        with pytest.raises(error, match=message):
            fn(BOXES, SCORES, **{**GOOD, **options})


@pytest.mark.parametrize("boxes, scores, message", [
    (np.full((2, 5, 4), np.nan), SCORES, "boxes must be finite, got NaN"),
    (BOXES, np.full((2, 3, 5), -np.inf), "scores must be finite, got inf"),
    (np.zeros((2, 5, 3)), SCORES, r"boxes must have shape \(B, M, 4\), got \(2, 5, 3\)"),
])
def test_multiclass_rejects_values_and_shapes(boxes, scores, message):
    for fn in (multiclass_matrix_nms, multiclass_matrix_nms_padded):
        with pytest.raises(ValueError, match=message):
            fn(boxes, scores, **GOOD)


def test_multiclass_accepts_what_its_checks_allow():
    # a negative finite cutoff, -1 / None / 0 top-k and background -1 are all valid
    out, rois_num, _ = multiclass_matrix_nms(BOXES, SCORES, score_threshold=-0.5, post_threshold=-1.0,
                                             nms_top_k=-1, keep_top_k=None, background_label=-1,
                                             normalized=False)
    assert rois_num.tolist() == [15, 15] and out.shape == (30, 6)
    _, rois_num, _ = multiclass_matrix_nms(BOXES, SCORES, score_threshold=-0.5, post_threshold=-1.0,
                                           nms_top_k=0, keep_top_k=-1, background_label=2)
    assert rois_num.tolist() == [0, 0]


def test_multiclass_accepts_numpy_bool_for_normalized():
    _, rois_num, _ = multiclass_matrix_nms(BOXES, SCORES, **GOOD, normalized=np.bool_(True))
    assert rois_num.tolist() == [0, 0]


# ---------------------------------------------------------------------------------------------- export


def _export_cases():
    import torch

    from matrixnms.export import MatrixNMS, export_onnx, matrix_nms_static, to_onnx

    scores = torch.tensor([0.9, 0.5])
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 3, 2, 2]])  # inverted in y only
    good = torch.tensor([[0.0, 0, 1, 1], [0, 0, 2, 2]])
    return [
        (lambda: matrix_nms_static(scores, boxes=boxes), ValueError, "boxes must satisfy x2 >= x1 and y2 >= y1"),
        (lambda: matrix_nms_static(scores, boxes=good.bool()), TypeError, "boxes must be real numbers, got bool"),
        (lambda: matrix_nms_static(scores, boxes=good, labels=torch.tensor([True, False])), TypeError,
         "labels must be integers, got bool"),
        (lambda: matrix_nms_static(scores, boxes=good, labels=np.array([0, 1])), TypeError,
         "labels must be a torch.Tensor, got ndarray"),
        (lambda: matrix_nms_static(scores, boxes=good, post_top_k=True), TypeError,
         "post_top_k must be an int or None, got bool"),
        (lambda: matrix_nms_static(scores, boxes=good, sigma=math.inf), ValueError, "sigma must be > 0 and finite"),
        (lambda: matrix_nms_static(torch.tensor([0.5, math.inf]), boxes=good), ValueError,
         "scores must be finite, got inf"),
        (lambda: MatrixNMS(sigma=math.inf), ValueError, "sigma must be > 0 and finite, got inf"),
        (lambda: MatrixNMS(post_top_k=True), TypeError, "post_top_k must be an int or None, got bool"),
        (lambda: to_onnx("x.onnx", True, boxes=True), TypeError, "num_candidates must be an int, got bool"),
        (lambda: to_onnx("x.onnx", 2, (0, 3)), ValueError, r"mask_size must be >= 1 each with H \* W <= 2\*\*24, got \(0, 3\)"),
        (lambda: to_onnx("x.onnx", 2, (3, True)), TypeError, r"mask_size must be a pair of ints \(H, W\), got \(3, True\)"),
        (lambda: to_onnx("x.onnx", 2, (3, 3, 3)), TypeError, "mask_size must be a pair of ints"),
        (lambda: to_onnx("x.onnx", 2, boxes=True, pre_top_k=0), ValueError,
         "pre_top_k and post_top_k must be >= 1 for an ONNX graph, got 0, None"),
        (lambda: to_onnx("x.onnx", 2, boxes=True, opset="18"), TypeError, "opset must be an int, got str"),
        (lambda: to_onnx("x.onnx", 2, boxes=True, opset=True), TypeError, "opset must be an int, got bool"),
        (lambda: export_onnx(torch.nn.Identity(), [scores], "x.onnx"), TypeError,
         "args must be a tuple of example inputs, got list"),
        (lambda: export_onnx(torch.nn.Identity(), (scores,), "x.onnx", opset=17), ValueError, "opset must be >= 18"),
    ]


EXPORT_IDS = [
    "static y-inverted boxes", "static bool boxes", "static bool labels", "static numpy labels",
    "static post_top_k=True", "static sigma=inf", "static inf score", "module sigma=inf", "module post_top_k=True",
    "to_onnx num_candidates=True", "to_onnx mask_size (0, 3)", "to_onnx mask_size (3, True)",
    "to_onnx mask_size of three", "to_onnx pre_top_k=0", "to_onnx opset str", "to_onnx opset bool",
    "export_onnx args list", "export_onnx opset 17",
]


@requires("torch")
@pytest.mark.parametrize("case", range(len(EXPORT_IDS)), ids=EXPORT_IDS)
def test_export_rejects(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, error, message = _export_cases()[case]
    with pytest.raises(error, match=message):
        call()
    assert not (tmp_path / "x.onnx").exists()


@requires("torch")
def test_export_onnx_names_a_missing_package(tmp_path, monkeypatch):
    import builtins

    import torch

    from matrixnms.export import export_onnx

    real_import = builtins.__import__

    def without_onnxscript(name, *args, **kwargs):
        if name == "onnxscript":
            raise ImportError("pretend onnxscript is missing")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxscript)
    with pytest.raises(ImportError, match=r"ONNX export needs the package 'onnxscript' \(pip install onnx onnxscript\)"):
        export_onnx(torch.nn.Identity(), (torch.zeros(1),), tmp_path / "x.onnx")


@needs_cuda
def test_arrays_on_different_devices_are_a_type_error():
    import torch

    from matrixnms.export import matrix_nms_static

    scores, masks = torch.tensor(S), torch.from_numpy(M).cuda()
    with pytest.raises(TypeError, match="masks is on cuda:0 but scores is on cpu"):
        matrix_nms(scores, masks)
    with pytest.raises(TypeError, match="masks is on cuda:0 but scores is on cpu"):
        matrix_nms_static(scores.float(), masks)
