"""Exported graphs in OpenVINO beside onnxruntime, exact under any precision setting.

What each check proves:

- ``test_openvino_matches_matrix_nms``: every ONNX configuration of ``tests/test_export.py`` gives
  ``matrix_nms``'s rows in OpenVINO's CPU plugin with its default settings, with ``INFERENCE_PRECISION_HINT``
  "f32", and with "bf16" / "f16" where the CPU lists them in ``OPTIMIZATION_CAPABILITIES`` (skipped, with the
  reason, elsewhere: asking a CPU without them silently runs f32, which would prove nothing).
- ``test_mask_counts_are_integer_arithmetic``: precision-independent and true on any machine: in the ONNX
  file every op between the ``masks`` input and the overlap counts is integer or boolean (uint8 / int8 into
  ``MatMulInteger`` -> int32), and the graph holds no float MatMul, Gemm, Einsum or Conv at all. So no
  runtime setting that lowers float ops can round a count, and OpenVINO's CPU plugin, which runs bf16 / f16
  only up to the last such compute-heavy float node and keeps the graph's tail in f32, has none to start
  from: the IoU, decay and ranking stay f32 (that last part is the plugin's rule, not re-proved here).
- ``test_multiclass_*``: the multiclass graph against ``multiclass_matrix_nms`` in both runtimes (heavy ties:
  the stable sort's lowering), and ``multiclass_matrix_nms`` against OpenVINO's own ``MatrixNms-8``
  operator, an independent implementation of Paddle's semantics, on 30 random batches per setting.
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_export import N_MAX, ONNX_CONFIGS, SIDE, check_agreement, exported_file, graph_feed

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
ov = pytest.importorskip("openvino")

import onnx  # noqa: E402

from matrixnms import _onnx_ops, export, multiclass_matrix_nms, multiclass_matrix_nms_padded  # noqa: E402
from matrixnms.export import (  # noqa: E402
    MULTICLASS_OUTPUT_NAMES, OUTPUT_NAMES, onnx_runner, openvino_precisions, to_onnx, to_onnx_multiclass,
)

# default settings, then each hint; bf16 / f16 only where this CPU executes them
HINTS = [None, "f32", "bf16", "f16"]


def _hint_param(hint):
    reason = None
    if hint in ("bf16", "f16") and hint not in openvino_precisions():
        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        reason = f"this CPU's OpenVINO OPTIMIZATION_CAPABILITIES {capabilities} lack {hint}"
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(hint, id=hint or "default", marks=marks)


HINT_PARAMS = [_hint_param(h) for h in HINTS]


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """The files of tests/test_export.py's ONNX_CONFIGS (exported once per session, shared with it)."""
    return {name: exported_file(name, tmp_path_factory)[0] for name in ONNX_CONFIGS}


@pytest.fixture(scope="module")
def runners(onnx_files):
    """OpenVINO compiled models, one per (configuration, hint), compiled on first use."""
    cache = {}

    def get(name, hint):
        if (name, hint) not in cache:
            cache[name, hint] = onnx_runner(onnx_files[name], "openvino", precision=hint)
        return cache[name, hint]

    return get


def test_precision_hints_are_reported():
    core = ov.Core()
    print(f"OpenVINO {ov.__version__}: CPU INFERENCE_PRECISION_HINT default "
          f"{core.get_property('CPU', 'INFERENCE_PRECISION_HINT')}, OPTIMIZATION_CAPABILITIES "
          f"{core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}; executes {openvino_precisions()}")
    assert "f32" in openvino_precisions()


@pytest.mark.parametrize("hint", HINT_PARAMS)
@pytest.mark.parametrize("name", list(ONNX_CONFIGS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_openvino_matches_matrix_nms(runners, name, hint, data):
    options = {k: v for k, v in ONNX_CONFIGS[name].items() if k not in ("kind", "labels")}
    problem, feed = graph_feed(name, data)
    out = runners(name, hint)(feed)
    check_agreement(problem, [out[n] for n in OUTPUT_NAMES], options)


# ------------------------------------------------------------------------ precision-independent structure

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
               onnx.TensorProto.DOUBLE}
HEAVY_FLOAT_OPS = {"MatMul", "Gemm", "Einsum", "Conv", "ConvTranspose", "MatMulNBits"}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    return {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}


def integer_count_report(model: onnx.ModelProto, source: str = "masks") -> dict:
    """Walk the graph from ``source``: the ops whose inputs derive from it up to (and including) the counts.

    Returns ``{"counts": [MatMulInteger nodes], "float_on_path": [(op, tensor)], "heavy_float": [ops]}``.
    """
    types = _types(model)
    derived, after, on_path, counts = {source}, set(), [], []
    for node in model.graph.node:  # nodes are topologically sorted in an ONNX graph
        if node.op_type == "MatMulInteger" and any(i in derived for i in node.input):
            counts.append(node)
            after.update(node.output)
            continue
        if any(i in after for i in node.input):
            after.update(node.output)  # the counts (int32: summed, sliced) and what follows are not the path
            continue
        if any(i in derived for i in node.input):
            on_path.append(node)
            derived.update(node.output)
    float_on_path = [(n.op_type, o) for n in on_path for o in n.output if types.get(o) in FLOAT_TYPES]
    heavy = [n.op_type for n in model.graph.node if n.op_type in HEAVY_FLOAT_OPS
             and any(types.get(i) in FLOAT_TYPES for i in n.input)]
    return {"counts": counts, "float_on_path": float_on_path, "heavy_float": heavy}


@pytest.mark.parametrize("name", [n for n, c in ONNX_CONFIGS.items() if c["kind"] == "masks"])
def test_mask_counts_are_integer_arithmetic(onnx_files, name):
    model = onnx.load(str(onnx_files[name]))
    report = integer_count_report(model)
    assert report["counts"], "no MatMulInteger counts the mask overlaps"
    assert report["float_on_path"] == [], f"float ops on the masks' path: {report['float_on_path']}"
    assert report["heavy_float"] == []
    types = _types(model)
    for node in report["counts"]:
        assert {types[i] for i in node.input} <= {onnx.TensorProto.UINT8, onnx.TensorProto.INT8}
        assert types[node.output[0]] == onnx.TensorProto.INT32


def test_box_graphs_have_no_float_matmul(onnx_files):
    for name, config in ONNX_CONFIGS.items():
        if config["kind"] == "boxes":
            assert integer_count_report(onnx.load(str(onnx_files[name])), "boxes")["heavy_float"] == []


@pytest.mark.parametrize("grid", [8, 1])
def test_solo_sized_counts_exceed_bf16_and_still_match(tmp_path, monkeypatch, grid):
    # overlap counts above 256 (where bf16 rounds integers): the documented failure of a float matmul under
    # bf16, exact here, with the default grid of cells and with one cell (the whole frame)
    from matrixnms import matrix_nms
    from matrixnms.scenes import mask_scene

    n, h, w = 300, 64, 96
    scene = mask_scene(n, height=h, width=w, num_classes=80, seed=5)
    assert scene.masks.reshape(n, -1).sum(1).max() > 256
    options = dict(kernel="gaussian", sigma=0.5, post_threshold=0.05, post_top_k=100)
    monkeypatch.setattr(export, "COUNT_GRID", grid)
    path = to_onnx(tmp_path / "solo.onnx", n, (h, w), labels=True, valid=False, **options)
    scatters = [node for node in onnx.load(str(path)).graph.node if node.op_type == "ScatterElements"]
    sy, sx = _onnx_ops._cell_grid(h, w, n, grid)  # 64 x 96: 4 x 6 cells of 16 x 16 (8 x 8 would hold 96 pixels)
    assert (sy, sx) == ((4, 6) if grid == 8 else (1, 1))
    assert len(scatters) == sy * sx  # one per cell
    ref_keep, ref_decayed = matrix_nms(torch.from_numpy(scene.scores), torch.from_numpy(scene.masks),
                                       labels=torch.from_numpy(scene.labels), backend="generic", **options)
    feed = {"scores": scene.scores, "masks": scene.masks, "labels": scene.labels}
    for runtime, hint in [("onnxruntime", None)] + [("openvino", h) for h in (None, *openvino_precisions())]:
        out = onnx_runner(path, runtime, precision=hint)(feed)
        count = int(out["num_valid"])
        assert count == len(ref_keep), (runtime, hint)
        np.testing.assert_array_equal(out["keep"][:count], ref_keep.numpy(), err_msg=f"{runtime} {hint}")
        np.testing.assert_allclose(out["decayed"][:count], ref_decayed.numpy(), rtol=1e-5, atol=1e-6)


class _Counts(torch.nn.Module):
    """The overlap counts alone, exported to check the grid-of-cells lowering against exact counts."""

    def forward(self, masks, order):
        return torch.ops.matrixnms.overlap_counts(masks, order, export.COUNT_GRID)


def _count_masks(rng, n, h, w):
    """Blobs of any size, plus an empty mask, a full one and an exact duplicate (when n allows)."""
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h, n), rng.uniform(0, w, n)
    ry, rx = rng.uniform(0.5, h, n), rng.uniform(0.5, w, n)
    masks = ((yy - cy[:, None, None]) / ry[:, None, None]) ** 2 + ((xx - cx[:, None, None]) / rx[:, None, None]) ** 2 < 1
    masks &= rng.random(masks.shape) < 0.9  # holes: counts are not areas of ellipses
    if n >= 4:
        masks[1] = False
        masks[2] = True
        masks[3] = masks[0]
    return masks.astype(np.uint8)


@pytest.mark.parametrize("grid", [8, 3, 1])
@pytest.mark.parametrize("n, h, w, k", [(40, 24, 40, 40), (30, 13, 17, 12), (25, 12, 17, 25), (1, 1, 1, 1),
                                        (60, 64, 96, 45)])
def test_grid_counts_are_exact_and_repeatable(tmp_path, monkeypatch, grid, n, h, w, k):
    # sides that split evenly, prime sides (one cell along them), 1 x 1 masks; K < N rows in a shuffled order
    rng = np.random.default_rng(n * h + w + grid)
    masks = _count_masks(rng, n, h, w)
    order = rng.permutation(n)[:k].astype(np.int64)
    monkeypatch.setattr(export, "COUNT_GRID", grid)
    monkeypatch.setattr(_onnx_ops, "_MIN_CELL_PIXELS", 1)  # cells of a few pixels: many borders to cross
    path = export.export_onnx(_Counts(), (torch.from_numpy(masks), torch.from_numpy(order)), tmp_path / "c.onnx",
                              input_names=["masks", "order"], output_names=["counts"])
    rows = masks.reshape(n, -1)[order].astype(np.int64)
    expected = rows @ rows.T
    feed = {"masks": masks, "order": order}
    for runtime, hint in [("onnxruntime", None)] + [("openvino", p) for p in (None, *openvino_precisions())]:
        run = onnx_runner(path, runtime, precision=hint)
        for _ in range(4):  # a scatter whose targets repeat within one call races in onnxruntime's threads
            np.testing.assert_array_equal(run(feed)["counts"], expected, err_msg=f"{runtime} {hint}")


@pytest.fixture(scope="module")
def uint8_graph(tmp_path_factory):
    """"masks-gaussian-labels" exported with a uint8 masks input (3 x 3-pixel cells, as the bool files)."""
    options = {k: v for k, v in ONNX_CONFIGS["masks-gaussian-labels"].items() if k not in ("kind", "labels")}
    default, _onnx_ops._MIN_CELL_PIXELS = _onnx_ops._MIN_CELL_PIXELS, 1
    try:
        path = to_onnx(tmp_path_factory.mktemp("uint8") / "uint8.onnx", N_MAX, (SIDE, SIDE), labels=True,
                       mask_dtype="uint8", **options)
    finally:
        _onnx_ops._MIN_CELL_PIXELS = default
    return path, options, {runtime: onnx_runner(path, runtime) for runtime in ("onnxruntime", "openvino")}


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_uint8_masks_graph_matches_matrix_nms(uint8_graph, data):
    # the same rows as matrix_nms and the float64 reference (check_agreement), in both runtimes
    _, options, runners = uint8_graph
    problem, feed = graph_feed("masks-gaussian-labels", data)
    feed = dict(feed, masks=feed["masks"].astype(np.uint8))
    for run in runners.values():
        out = run(feed)
        check_agreement(problem, [out[n] for n in OUTPUT_NAMES], options)


def test_uint8_masks_input_and_bad_mask_dtype(uint8_graph, tmp_path):
    path, _, _ = uint8_graph
    masks = next(i for i in onnx.load(str(path)).graph.input if i.name == "masks")
    assert masks.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    with pytest.raises(ValueError, match=r"mask_dtype must be 'bool' or 'uint8', got 'int8'"):
        to_onnx(tmp_path / "bad.onnx", 4, (4, 4), mask_dtype="int8")


def test_grid_counts_are_repeatable_at_solo_scale(tmp_path):
    # the export benchmark's scene (SOLOv2's 500 candidates at 200 x 336): enough updates for onnxruntime to
    # split a scatter over threads, where one ScatterND over all cells (targets repeating) gave wrong counts
    # in about half the runs
    from matrixnms.scenes import mask_scene

    scene = mask_scene(500, height=200, width=336, num_classes=80, seed=0)
    masks = scene.masks.astype(np.uint8)
    order = np.argsort(-scene.scores, kind="stable").astype(np.int64)
    path = export.export_onnx(_Counts(), (torch.from_numpy(masks), torch.from_numpy(order)), tmp_path / "c.onnx",
                              input_names=["masks", "order"], output_names=["counts"])
    rows = torch.from_numpy(masks.reshape(500, -1)[order]).to(torch.float32)
    expected = (rows @ rows.T).to(torch.int32).numpy()
    feed = {"masks": masks, "order": order}
    run = onnx_runner(path, "onnxruntime")
    for attempt in range(8):
        np.testing.assert_array_equal(run(feed)["counts"], expected, err_msg=f"onnxruntime, run {attempt}")
    np.testing.assert_array_equal(onnx_runner(path, "openvino")(feed)["counts"], expected)


# ------------------------------------------------------------------------------------------ multiclass

B, C, M = 2, 4, 24
MULTICLASS_CONFIGS = {
    "linear-pixels": dict(score_threshold=0.05, post_threshold=0.05, nms_top_k=12, keep_top_k=15,
                          kernel="linear", background_label=0, normalized=False),
    "gaussian-normalized": dict(score_threshold=0.1, post_threshold=0.02, nms_top_k=None, keep_top_k=None,
                                kernel="gaussian", sigma=0.5, background_label=-1, normalized=True),
}


def _boxes(rng, batch=B, m=M):
    xy = rng.uniform(0, 60, (batch, m, 2))
    return np.concatenate([xy, xy + rng.uniform(2, 40, (batch, m, 2))], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def multiclass_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    return {name: to_onnx_multiclass(folder / f"{name}.onnx", B, C, M, **config)
            for name, config in MULTICLASS_CONFIGS.items()}


@pytest.mark.parametrize("runtime, hint", [("onnxruntime", None), ("openvino", None), ("openvino", "f32")],
                         ids=["onnxruntime", "openvino-default", "openvino-f32"])
@pytest.mark.parametrize("name", list(MULTICLASS_CONFIGS))
def test_multiclass_graph_matches_multiclass_matrix_nms(multiclass_files, name, runtime, hint):
    run = onnx_runner(multiclass_files[name], runtime, precision=hint)
    rng = np.random.default_rng(7)
    options = MULTICLASS_CONFIGS[name]
    for trial in range(20):
        boxes = _boxes(rng)
        scores = rng.uniform(0, 1, (B, C, M)).astype(np.float32)
        if trial % 2:  # heavy ties: equal scores within and across classes, duplicate boxes
            scores = (np.round(scores * 4) / 4).astype(np.float32)
            boxes[:, 1::3] = boxes[:, ::3][:, : boxes[:, 1::3].shape[1]]
        out = run({"boxes": boxes, "scores": scores})
        ref_out, ref_num, ref_index = multiclass_matrix_nms(boxes, scores, **options)
        padded = [x.numpy() for x in multiclass_matrix_nms_padded(torch.from_numpy(boxes), torch.from_numpy(scores),
                                                                   backend="generic", **options)]
        np.testing.assert_array_equal(out["rois_num"], ref_num)
        np.testing.assert_allclose(out["out"][:, :, 1], padded[0][:, :, 1], rtol=1e-5, atol=1e-6)
        if runtime == "openvino" and trial % 2:
            # OpenVINO's exp differs by an ulp between vector lanes and the scalar tail: rows whose decayed
            # scores are exactly equal in Torch (duplicate boxes with equal scores) may swap places
            _assert_same_up_to_ties(out, padded)
            continue
        np.testing.assert_array_equal(out["index"], padded[2])
        np.testing.assert_allclose(out["out"], padded[0], rtol=1e-5, atol=1e-6)
        valid = np.arange(out["index"].shape[1])[None, :] < out["rois_num"][:, None]
        np.testing.assert_array_equal(out["index"][valid], ref_index[:, 0])
        np.testing.assert_allclose(out["out"][valid], ref_out, rtol=1e-5, atol=1e-6)
    assert set(MULTICLASS_OUTPUT_NAMES) == set(out)


def _assert_same_up_to_ties(out: dict, padded: list) -> None:
    """Same rows (label, index, box) per image, in the same order except within runs of equal scores."""
    for b in range(out["index"].shape[0]):
        ref_scores = padded[0][b, :, 1]
        runs = np.concatenate([[0], np.cumsum(ref_scores[1:] != ref_scores[:-1])])
        for run in np.unique(runs):
            at = runs == run
            got = sorted(zip(out["index"][b, at], out["out"][b, at, 0]))
            want = sorted(zip(padded[2][b, at], padded[0][b, at, 0]))
            assert got == want, (b, run)


def _native_matrix_nms(batch, classes, boxes_per_image, options):
    """OpenVINO's MatrixNms-8 in a one-op model with the same options (gaussian_sigma = 1 / sigma)."""
    from openvino import opset8

    boxes = opset8.parameter([batch, boxes_per_image, 4], np.float32, name="boxes")
    scores = opset8.parameter([batch, classes, boxes_per_image], np.float32, name="scores")
    nms = opset8.matrix_nms(
        boxes, scores, sort_result_type="score", sort_result_across_batch=False, output_type="i64",
        score_threshold=options["score_threshold"],
        nms_top_k=-1 if options["nms_top_k"] is None else options["nms_top_k"],
        keep_top_k=-1 if options["keep_top_k"] is None else options["keep_top_k"],
        background_class=options["background_label"], decay_function=options["kernel"],
        gaussian_sigma=1.0 / options.get("sigma", 0.5), post_threshold=options["post_threshold"],
        normalized=options["normalized"])
    model = ov.Model(nms.outputs(), [boxes, scores], "matrix_nms_8")
    return ov.Core().compile_model(model, "CPU")


@pytest.mark.parametrize("name", list(MULTICLASS_CONFIGS))
def test_multiclass_matrix_nms_equals_openvino_matrix_nms_8(name):
    options = MULTICLASS_CONFIGS[name]
    batch, classes, m = 3, 5, 40
    compiled = _native_matrix_nms(batch, classes, m, options)
    rng = np.random.default_rng(11)
    for _ in range(30):
        boxes = _boxes(rng, batch, m)
        scores = rng.uniform(0, 1, (batch, classes, m)).astype(np.float32)
        result = compiled({"boxes": boxes, "scores": scores})
        selected, indices, counts = (np.array(result[compiled.output(i)]) for i in range(3))
        out, rois_num, index = multiclass_matrix_nms(boxes, scores, **options)
        np.testing.assert_array_equal(counts, rois_num)
        total = int(counts.sum())
        np.testing.assert_array_equal(indices[:total, 0], index[:, 0])
        np.testing.assert_array_equal(selected[:total, 0], out[:, 0])
        # OpenVINO adds an epsilon to the linear divisor: decayed scores agree to float rounding
        np.testing.assert_allclose(selected[:total, 1], out[:, 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(selected[:total, 2:], out[:, 2:], rtol=0, atol=0)


def test_multiclass_export_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="num_boxes must be an int >= 1"):
        to_onnx_multiclass(tmp_path / "x.onnx", 1, 2, 0, score_threshold=0.1, post_threshold=0.1,
                           nms_top_k=None, keep_top_k=None)
    assert find_spec("onnx") is not None
