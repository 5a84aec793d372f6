"""Static-shape Matrix NMS (matrixnms.export) against matrix_nms: eager, TorchScript, torch.compile, ONNX.

Every path is compared with the loop reference (``tests/reference.py``, float64) and with
``matrix_nms(..., backend="generic")`` on the same Torch inputs without the padding: the first ``num_valid``
rows must hold the same indices in the same order (as the reference's up to float32 rounding of ties) and
the same decayed scores, the rest the documented fill (-1 and 0). Inputs are padded to the static shape with
garbage rows (high scores, random masks / boxes) marked ``valid = False``, placed among the real rows, so a
padding row that leaked into the result would show. ONNX graphs are exported once per configuration (module-scoped
fixture) and many hypothesis inputs go through the same onnxruntime session.
"""

from __future__ import annotations

import math
import sys
from importlib.util import find_spec

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import strategies
from helpers import assert_close, borderline

torch = pytest.importorskip("torch")

from matrixnms import _onnx_ops, cli, matrix_nms  # noqa: E402
from matrixnms.scenes import mask_scene  # noqa: E402
from matrixnms.export import (  # noqa: E402
    OUTPUT_NAMES, MatrixNMS, export_onnx, matrix_nms_static, script_module, to_onnx,
)

needs_onnx = pytest.mark.skipif(
    any(find_spec(package) is None for package in ("onnx", "onnxscript", "onnxruntime")),
    reason="ONNX export needs onnx, onnxscript and onnxruntime")

# the static shape every padded problem is brought to: up to 12 real rows (as drawn) among 16, masks up to
# 24 x 24 padded with zeros
N_MAX = 16
SIDE = 24


# ---------------------------------------------------------------------------------------------- helpers


@st.composite
def padded_problems(draw, kind: str, with_options: bool = True):
    """A Matrix NMS problem and its padding to N_MAX rows (and SIDE x SIDE masks).

    Returns a dict: ``scores`` / ``items`` / ``labels`` (unpadded NumPy, labels maybe None), ``options``,
    ``padded`` (scores float32, items, labels int64 or None, valid bool, all with N_MAX rows) and ``rows``,
    the padded position of each real row (increasing, so ties by lower index mean the same thing).
    """
    items = draw(strategies.masks(max_n=12, max_side=SIDE) if kind == "masks" else strategies.boxes(max_n=12))
    n = len(items)
    scores = draw(strategies.scores(n)).astype(np.float32)
    labels = draw(strategies.optional_labels(n))
    options = draw(strategies.nms_options(n)) if with_options else {}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = np.sort(rng.choice(N_MAX, n, replace=False))
    padded_scores = rng.uniform(0, 1.5, N_MAX).astype(np.float32)  # padding may outscore every real row
    padded_scores[rows] = scores
    if kind == "masks":
        padded_items = rng.random((N_MAX, SIDE, SIDE)) < 0.5
        padded_items[rows] = False
        padded_items[rows, : items.shape[1], : items.shape[2]] = items
    else:
        xy = rng.uniform(0, 50, (N_MAX, 2))
        padded_items = np.concatenate([xy, xy + rng.uniform(0, 30, (N_MAX, 2))], axis=1)
        padded_items[rows] = items
        padded_items = padded_items.astype(np.float32)
        items = items.astype(np.float32)
    padded_labels = None
    if labels is not None:
        padded_labels = rng.integers(0, 4, N_MAX).astype(np.int64)
        padded_labels[rows] = labels
    valid = np.zeros(N_MAX, dtype=bool)
    valid[rows] = True
    return {
        "kind": kind, "scores": scores, "items": items, "labels": labels, "options": options,
        "padded": {"scores": padded_scores, "items": padded_items, "labels": padded_labels, "valid": valid},
        "rows": rows,
    }


def tensors(padded: dict) -> dict:
    return {k: None if v is None else torch.from_numpy(np.ascontiguousarray(v)) for k, v in padded.items()}


def expected_rows(options: dict, n: int) -> int:
    """P, the static number of output rows."""
    if options.get("post_top_k") is not None:
        return options["post_top_k"]
    return n if options.get("pre_top_k") is None else min(options["pre_top_k"], n)


def check_agreement(problem: dict, outputs, options: dict | None = None) -> None:
    """outputs = (keep, decayed, num_valid) of the static formulation on ``problem["padded"]``."""
    options = problem["options"] if options is None else options
    keep, decayed, num_valid = (np.asarray(o.numpy() if isinstance(o, torch.Tensor) else o) for o in outputs)
    items = torch.from_numpy(problem["items"])
    ref_keep, ref_decayed = matrix_nms(
        torch.from_numpy(problem["scores"]), **{problem["kind"]: items},
        labels=None if problem["labels"] is None else torch.from_numpy(problem["labels"]),
        backend="generic", **options)
    count = len(ref_keep)
    rows = expected_rows(options, N_MAX)
    assert keep.shape == (rows,) and decayed.shape == (rows,) and num_valid.shape == ()
    assert keep.dtype == np.int64 and decayed.dtype == np.float32 and num_valid.dtype == np.int64
    assert int(num_valid) == count
    np.testing.assert_array_equal(keep[:count], problem["rows"][ref_keep.numpy()])
    assert_close(decayed[:count], ref_decayed.numpy(), "float32")
    assert np.all(keep[count:] == -1) and np.all(decayed[count:] == 0)
    check_reference(problem, keep[:count], decayed[:count], options, "float32")


def check_reference(problem: dict, keep: np.ndarray, decayed: np.ndarray, options: dict, dtype: str) -> None:
    """``keep`` (padded rows) and ``decayed`` of the real rows against the float64 loop reference."""
    items = {problem["kind"]: problem["items"]}
    exact = problem["scores"].astype(np.float64)  # the very values the library saw
    ref_keep, ref_decayed = reference.matrix_nms(exact, labels=problem["labels"], **items, **options)
    if dtype == "float32":
        unfiltered = {k: v for k, v in options.items() if k not in ("post_threshold", "post_top_k")}
        assume(not borderline(reference.matrix_nms(exact, labels=problem["labels"], **items, **unfiltered)[1],
                              options))
    assert len(keep) == len(ref_keep)
    expected = problem["rows"][np.asarray(ref_keep, dtype=np.int64)]
    assert_close(decayed, np.asarray(ref_decayed), dtype)
    if dtype == "float64":
        np.testing.assert_array_equal(keep, expected)
    else:  # equal float64 decayed scores may round apart in float32, and the reverse: compare the sets
        assert sorted(keep.tolist()) == sorted(expected.tolist())


def run_static(problem: dict, **options):
    t = tensors(problem["padded"])
    item = {"masks": t["items"]} if problem["kind"] == "masks" else {"boxes": t["items"]}
    return matrix_nms_static(t["scores"], **item, labels=t["labels"], valid=t["valid"], **options)


# ------------------------------------------------------------------------------------- eager Torch


@pytest.mark.parametrize("kind", ["masks", "boxes"])
@given(data=st.data())
def test_static_formulation_matches_matrix_nms_on_padded_input(kind, data):
    problem = data.draw(padded_problems(kind))
    check_agreement(problem, run_static(problem, **problem["options"]))


@given(padded_problems("masks"), st.sampled_from(["uint8", "float32"]))
def test_float64_scores_and_mask_dtypes_match_matrix_nms(problem, mask_dtype):
    t = tensors(problem["padded"])
    keep, decayed, num_valid = matrix_nms_static(
        t["scores"].double(), t["items"].to(getattr(torch, mask_dtype)), labels=t["labels"], valid=t["valid"],
        **problem["options"])
    assert decayed.dtype == torch.float64
    ref_keep, ref_decayed = matrix_nms(
        torch.from_numpy(problem["scores"]).double(), torch.from_numpy(problem["items"]),
        labels=None if problem["labels"] is None else torch.from_numpy(problem["labels"]),
        backend="generic", **problem["options"])
    count = int(num_valid)
    assert count == len(ref_keep)
    np.testing.assert_array_equal(keep[:count].numpy(), problem["rows"][ref_keep.numpy()])
    assert_close(decayed[:count].numpy(), ref_decayed.numpy(), "float64")
    check_reference(problem, keep[:count].numpy(), decayed[:count].numpy(), problem["options"], "float64")


def test_hand_worked_boxes_pad_to_post_top_k():
    scores = torch.tensor([0.9, 0.8, 0.7])
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    # linear: box 1 duplicates box 0 (decay 1 - 1 = 0) and, being a duplicate, no longer suppresses box 2
    keep, decayed, num_valid = matrix_nms_static(scores, boxes=boxes, kernel="linear", post_top_k=5)
    assert keep.tolist() == [0, 2, 1, -1, -1]
    assert decayed.tolist() == pytest.approx([0.9, 0.7, 0.0, 0.0, 0.0])
    assert int(num_valid) == 3
    # gaussian, sigma 0.5: box 1 keeps exp(-1 / 0.5) of its score; the post threshold drops it
    keep, decayed, num_valid = matrix_nms_static(scores, boxes=boxes, post_threshold=0.2, post_top_k=3)
    assert keep.tolist() == [0, 2, -1]
    assert decayed.tolist() == pytest.approx([0.9, 0.7, 0.0])
    assert int(num_valid) == 2
    keep, decayed, _ = matrix_nms_static(scores, boxes=boxes, post_top_k=3)
    assert decayed[2].item() == pytest.approx(0.8 * math.exp(-1 / 0.5))


def test_identical_and_empty_masks_never_give_nan():
    # the failure modes of other implementations: three identical same-label masks under the linear kernel
    # (0 / 0) and two empty masks (union 0)
    masks = torch.zeros((5, 4, 4), dtype=torch.bool)
    masks[:3, 1:3, 1:3] = True
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    for kernel in ("linear", "gaussian"):
        keep, decayed, num_valid = matrix_nms_static(scores, masks, labels=torch.zeros(5, dtype=torch.int64),
                                                     kernel=kernel)
        assert not torch.isnan(decayed).any() and int(num_valid) == 5
        assert keep.tolist()[:3] == [0, 3, 4] and decayed[:3].tolist() == pytest.approx([0.9, 0.6, 0.5])
        if kernel == "linear":
            assert keep.tolist() == [0, 3, 4, 1, 2] and decayed[3:].tolist() == [0.0, 0.0]


def test_empty_input_gives_only_padding():
    keep, decayed, num_valid = matrix_nms_static(torch.zeros(0), torch.zeros((0, 5, 5), dtype=torch.bool),
                                                 post_top_k=4)
    assert keep.tolist() == [-1] * 4 and decayed.tolist() == [0.0] * 4 and int(num_valid) == 0
    keep, decayed, num_valid = matrix_nms_static(torch.zeros(0), boxes=torch.zeros((0, 4)))
    assert keep.shape == (0,) and int(num_valid) == 0


def test_padding_rows_never_appear_even_when_they_outscore_real_rows():
    scores = torch.tensor([0.99, 0.3, 0.98, 0.2])
    boxes = torch.tensor([[0, 0, 4, 4], [10, 10, 14, 14], [0, 0, 4, 4], [20, 20, 24, 24]], dtype=torch.float32)
    valid = torch.tensor([False, True, False, True])
    keep, decayed, num_valid = matrix_nms_static(scores, boxes=boxes, valid=valid, post_top_k=4)
    assert keep.tolist() == [1, 3, -1, -1] and int(num_valid) == 2
    assert decayed[:2].tolist() == pytest.approx([0.3, 0.2])


# ------------------------------------------------------------------------------------- TorchScript


# torch.jit is deprecated and, per torch, may break on Python 3.14+
needs_torchscript = pytest.mark.skipif(sys.version_info >= (3, 14), reason="TorchScript needs Python < 3.14")


@pytest.fixture(scope="module")
def scripted():
    """One scripted module per kernel: TorchScript keeps them shape-generic, so any N, H, W goes through."""
    return {
        "gaussian": script_module(MatrixNMS(kernel="gaussian", sigma=0.5, score_threshold=0.2,
                                            post_threshold=0.05, pre_top_k=10, post_top_k=7)),
        "linear": script_module(MatrixNMS(kernel="linear")),
    }


@needs_torchscript
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("kind", ["masks", "boxes"])
@given(data=st.data())
def test_scripted_module_matches_matrix_nms(scripted, kernel, kind, data):
    problem = data.draw(padded_problems(kind, with_options=False))
    module = scripted[kernel]
    options = {"kernel": kernel}
    if kernel == "gaussian":
        options.update(sigma=0.5, score_threshold=0.2, post_threshold=0.05, pre_top_k=10, post_top_k=7)
    t = tensors(problem["padded"])
    if kind == "masks":
        outputs = module(t["scores"], t["items"], labels=t["labels"], valid=t["valid"])
    else:
        outputs = module(t["scores"], boxes=t["items"], labels=t["labels"], valid=t["valid"])
    check_agreement(problem, outputs, options)


@needs_torchscript
def test_scripted_module_treats_non_finite_scores_as_non_candidates(scripted):
    # a graph cannot raise on values: a NaN or inf score is dropped like a padding row
    boxes = torch.tensor([[0, 0, 4, 4], [1, 1, 5, 5], [0, 0, 4, 4]], dtype=torch.float32)
    module = scripted["linear"]
    for bad in (math.nan, math.inf):
        keep, decayed, num_valid = module(torch.tensor([bad, 0.5, 0.4]), boxes=boxes)
        ref_keep, ref_decayed, ref_num = module(torch.tensor([0.0, 0.5, 0.4]), boxes=boxes,
                                                valid=torch.tensor([False, True, True]))
        assert keep.tolist() == ref_keep.tolist() and int(num_valid) == int(ref_num) == 2
        assert not torch.isnan(decayed).any()
    with pytest.raises(torch.jit.Error, match="exactly one of masks or boxes"):
        module(torch.tensor([0.5]))


# ----------------------------------------------------------------------------------- torch.compile


@pytest.fixture(scope="module")
def compiled_masks():
    """Inductor-compiled module; fullgraph=True raises on any graph break. Compiled once (same shapes)."""
    options = dict(kernel="gaussian", sigma=0.5, score_threshold=0.2, post_threshold=0.05, pre_top_k=12,
                   post_top_k=8)
    return torch.compile(MatrixNMS(**options), fullgraph=True, dynamic=False), options


@given(padded_problems("masks", with_options=False))
def test_compiled_module_matches_matrix_nms_without_graph_breaks(compiled_masks, problem):
    module, options = compiled_masks
    t = tensors(problem["padded"])
    labels = t["labels"] if t["labels"] is not None else torch.zeros(N_MAX, dtype=torch.int64)
    if problem["labels"] is None:  # all-equal labels: class-agnostic, and no second compilation
        problem = dict(problem, labels=np.zeros(len(problem["scores"]), dtype=np.int64))
    check_agreement(problem, module(t["scores"], t["items"], labels=labels, valid=t["valid"]), options)


def test_public_function_compiles_fullgraph_with_its_checks():
    # the static checks (shapes, options) run while dynamo traces; value checks are skipped, not broken on
    compiled = torch.compile(matrix_nms_static, fullgraph=True, backend="aot_eager")
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 9]], dtype=torch.float32)
    labels = torch.tensor([0, 0, 1, 0])
    eager = matrix_nms_static(scores, boxes=boxes, labels=labels, kernel="linear", post_top_k=5)
    graph = compiled(scores, boxes=boxes, labels=labels, kernel="linear", post_top_k=5)
    for a, b in zip(eager, graph):
        assert torch.equal(a, b)
    # fullgraph=True reports an exception raised while tracing as dynamo's Unsupported, message included
    with pytest.raises(Exception, match=r"boxes must have shape \(N, 4\)"):
        compiled(scores, boxes=boxes[:, :3], kernel="linear", post_top_k=5)


# -------------------------------------------------------------------------------------------- ONNX

ONNX_CONFIGS = {
    "masks-gaussian-labels": dict(kind="masks", labels=True, kernel="gaussian", sigma=0.5, score_threshold=0.2,
                                  post_threshold=0.05, pre_top_k=9, post_top_k=7),
    "masks-linear": dict(kind="masks", labels=False, kernel="linear"),
    "boxes-linear-labels": dict(kind="boxes", labels=True, kernel="linear", score_threshold=0.1, post_top_k=20),
    "boxes-gaussian": dict(kind="boxes", labels=False, kernel="gaussian", sigma=2.0, post_threshold=0.3,
                           pre_top_k=6),
}


# the exported files, shared with tests/test_export_openvino.py (which imports this module): each
# configuration is exported once per test session
_EXPORTED: dict = {}


def exported_file(name: str, tmp_path_factory) -> tuple:
    """(path, options) of ONNX_CONFIGS[name] exported with to_onnx (opset 18), once per session."""
    if name not in _EXPORTED:
        config = dict(ONNX_CONFIGS[name])
        kind, labels = config.pop("kind"), config.pop("labels")
        size = {"mask_size": (SIDE, SIDE)} if kind == "masks" else {"boxes": True}
        # cells of 3 x 3 pixels (the default keeps 24 x 24 masks whole): the drawn masks cross cell borders
        default, _onnx_ops._MIN_CELL_PIXELS = _onnx_ops._MIN_CELL_PIXELS, 1
        try:
            path = to_onnx(tmp_path_factory.mktemp("onnx") / f"{name}.onnx", N_MAX, labels=labels, **size, **config)
        finally:
            _onnx_ops._MIN_CELL_PIXELS = default
        _EXPORTED[name] = (path, config)
    return _EXPORTED[name]


@pytest.fixture(scope="module")
def onnx_sessions(tmp_path_factory):
    """Each configuration exported once to ONNX (opset 18) and loaded into an onnxruntime CPU session."""
    onnxruntime = pytest.importorskip("onnxruntime")
    sessions = {}
    for name in ONNX_CONFIGS:
        path, config = exported_file(name, tmp_path_factory)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        sessions[name] = (session, config)
    return sessions


def graph_feed(name: str, data) -> tuple:
    """(problem, feed): a padded problem drawn for ONNX_CONFIGS[name] and the exported graph's inputs."""
    kind, with_labels = ONNX_CONFIGS[name]["kind"], ONNX_CONFIGS[name]["labels"]
    problem = data.draw(padded_problems(kind, with_options=False))
    padded = problem["padded"]
    if with_labels and problem["labels"] is None:
        problem = dict(problem, labels=np.zeros(len(problem["scores"]), dtype=np.int64))
        padded = dict(padded, labels=np.zeros(N_MAX, dtype=np.int64))
    if not with_labels:
        problem = dict(problem, labels=None)
    feed = {"scores": padded["scores"], kind: padded["items"], "valid": padded["valid"]}
    if with_labels:
        feed["labels"] = padded["labels"]
    return problem, feed


@needs_onnx
@pytest.mark.parametrize("name", list(ONNX_CONFIGS))
@given(data=st.data())
def test_onnxruntime_matches_matrix_nms(onnx_sessions, name, data):
    session, options = onnx_sessions[name]
    problem, feed = graph_feed(name, data)
    check_agreement(problem, session.run(list(OUTPUT_NAMES), feed), options)


@needs_onnx
def test_onnx_graph_has_the_documented_interface(onnx_sessions):
    session, _ = onnx_sessions["masks-gaussian-labels"]
    inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    assert inputs == [("scores", "tensor(float)", [N_MAX]), ("masks", "tensor(bool)", [N_MAX, SIDE, SIDE]),
                      ("labels", "tensor(int64)", [N_MAX]), ("valid", "tensor(bool)", [N_MAX])]
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    assert outputs == [("keep", "tensor(int64)", [7]), ("decayed", "tensor(float)", [7]),
                       ("num_valid", "tensor(int64)", [])]


@needs_onnx
def test_onnxruntime_matches_matrix_nms_on_a_solo_like_scene(tmp_path):
    # SOLOv2's post-processing (class-aware gaussian, filter 0.05, 100 out) on a smaller scene than its
    # 500 candidates at 200 x 336, to keep the test quick; no valid input (every row is real)
    import onnxruntime

    n, h, w = 200, 100, 168
    scene = mask_scene(n, height=h, width=w, num_classes=80, seed=3)
    scores, masks, labels = scene.scores, scene.masks, scene.labels
    options = dict(kernel="gaussian", sigma=0.5, post_threshold=0.05, post_top_k=100)
    path = to_onnx(tmp_path / "solo.onnx", n, (h, w), labels=True, valid=False, **options)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(OUTPUT_NAMES), {"scores": scores, "masks": masks, "labels": labels})
    keep, decayed, num_valid = outputs
    ref_keep, ref_decayed = matrix_nms(torch.from_numpy(scores), torch.from_numpy(masks),
                                       labels=torch.from_numpy(labels), backend="generic", **options)
    assert 0 < int(num_valid) == len(ref_keep) <= 100
    np.testing.assert_array_equal(keep[: len(ref_keep)], ref_keep.numpy())
    assert_close(decayed[: len(ref_keep)], ref_decayed.numpy(), "float32")
    loop_keep, loop_decayed = reference.matrix_nms_by_label(scores, masks, labels=labels, **options)
    assert len(loop_keep) == len(ref_keep)
    assert_close(decayed[: len(ref_keep)], np.asarray(loop_decayed), "float32")
    assert sorted(keep[: len(ref_keep)].tolist()) == sorted(loop_keep)


@needs_onnx
def test_command_line_exports_and_verifies(tmp_path, capsys):
    opset = 20  # the fixture's graphs use the default, 18
    path = tmp_path / "boxes.onnx"
    assert cli.main(["export", str(path), "-n", "20", "--boxes", "--labels", "--kernel", "linear",
                     "--post-top-k", "10", "--opset", str(opset), "--verify"]) == 0
    out = capsys.readouterr().out
    assert path.is_file() and "verified in onnxruntime: " in out
    if find_spec("openvino") is not None:  # --verify checks OpenVINO too when it is installed
        assert "verified in openvino (default settings): " in out and "verified in openvino (f32): " in out
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {opset}


class _TinyDetector(torch.nn.Module):
    """A network with its post-processing in forward, as a detector deploys it: scores, boxes and labels
    from features, then Matrix NMS, then the kept boxes gathered (-1 padding gives zero rows)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.head = torch.nn.Linear(8, 6)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(6, 8, generator=generator))
        self.nms = MatrixNMS(kernel="gaussian", sigma=0.5, score_threshold=0.3, post_threshold=0.05, post_top_k=5)

    def forward(self, features):
        out = self.head(features)
        scores = torch.sigmoid(out[:, 0])
        xy = out[:, 1:3].abs() * 10
        boxes = torch.cat([xy, xy + out[:, 3:5].abs() * 10 + 1], dim=1)
        labels = (out[:, 5] > 0).to(torch.int64)
        keep, decayed, num_valid = self.nms(scores, boxes=boxes, labels=labels)
        kept = torch.where((keep >= 0)[:, None], boxes.index_select(0, keep.clamp(min=0)), torch.zeros(1, 4))
        return kept, decayed, num_valid


@needs_onnx
def test_a_model_with_matrix_nms_in_its_forward_exports_and_agrees(tmp_path):
    import onnxruntime

    model = _TinyDetector().eval()
    features = torch.randn(24, 8, generator=torch.Generator().manual_seed(1))
    path = export_onnx(model, (features,), tmp_path / "detector.onnx", input_names=["features"],
                       output_names=["boxes", "scores", "num_valid"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in range(5):
        x = torch.randn(24, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            eager = model(x)
        graph = session.run(None, {"features": x.numpy()})
        assert int(graph[2]) == int(eager[2]) > 0
        np.testing.assert_allclose(graph[0], eager[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(graph[1], eager[1].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        export_onnx(lambda x: x, (features,), tmp_path / "x.onnx")


def test_command_line_help_and_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--help"])
    assert exit_info.value.code == 0
    assert "--mask-size" in capsys.readouterr().out
    assert cli.main(["export", str(tmp_path / "x.onnx"), "-n", "4", "--mask-size", "0", "5"]) == 2
    assert "mask_size must be >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- errors

SCORES = torch.tensor([0.9, 0.5])
MASKS = torch.zeros((2, 3, 3), dtype=torch.bool)
BOXES = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 2]], dtype=torch.float32)


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((SCORES, MASKS), {"boxes": BOXES}, ValueError, "exactly one of masks or boxes, got both"),
    ((SCORES,), {}, ValueError, "exactly one of masks or boxes, got neither"),
    ((SCORES.numpy(), MASKS), {}, TypeError, "scores must be a torch.Tensor, got ndarray"),
    ((SCORES[None], MASKS[:1]), {}, ValueError, r"scores must have shape \(N,\), got \(1, 2\)"),
    ((torch.tensor([1, 0]), MASKS), {}, TypeError, "scores must be floating, got int64"),
    ((SCORES, MASKS[:, 0]), {}, ValueError, r"masks must have shape \(N, H, W\), got \(2, 3\)"),
    ((SCORES, MASKS[:1]), {}, ValueError, "one mask per score: expected 2, got 1"),
    ((SCORES, MASKS.to(torch.complex64)), {}, TypeError, "masks must be bool, integer or floating 0/1"),
    ((SCORES, torch.full((2, 3, 3), 2)), {}, ValueError, "masks must hold only 0 and 1"),
    ((SCORES,), {"boxes": BOXES[:, :3]}, ValueError, r"boxes must have shape \(N, 4\), got \(2, 3\)"),
    ((SCORES,), {"boxes": BOXES[:1]}, ValueError, "one box per score: expected 2, got 1"),
    ((SCORES,), {"boxes": BOXES.flip(1)}, ValueError, "x2 >= x1 and y2 >= y1"),
    ((SCORES,), {"boxes": BOXES, "labels": torch.tensor([0.0, 1.0])}, TypeError, "labels must be integers"),
    ((SCORES,), {"boxes": BOXES, "labels": torch.tensor([0])}, ValueError, r"labels must have shape \(2,\)"),
    ((SCORES,), {"boxes": BOXES, "valid": torch.tensor([1, 0])}, TypeError, "valid must be bool, got int64"),
    ((SCORES,), {"boxes": BOXES, "valid": torch.tensor([True])}, ValueError, r"valid must have shape \(2,\)"),
    ((torch.tensor([math.nan, 0.5]),), {"boxes": BOXES}, ValueError, "scores must be finite, got NaN"),
    ((SCORES,), {"boxes": BOXES, "kernel": "box"}, ValueError, "kernel must be one of"),
    ((SCORES,), {"boxes": BOXES, "sigma": 0.0}, ValueError, "sigma must be > 0"),
    ((SCORES,), {"boxes": BOXES, "score_threshold": -1.0}, ValueError, "score_threshold must be >= 0"),
    ((SCORES,), {"boxes": BOXES, "post_top_k": -1}, ValueError, "post_top_k must be >= 0"),
    ((SCORES,), {"boxes": BOXES, "pre_top_k": 1.5}, TypeError, "pre_top_k must be an int or None"),
])
def test_bad_input_raises_naming_the_argument(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        matrix_nms_static(*args, **kwargs)


def test_masks_beyond_exact_float32_counts_are_rejected():
    masks = torch.zeros((1, 4097, 4097), dtype=torch.bool)  # 16.8 M pixels > 2**24
    with pytest.raises(ValueError, match=r"H \* W <= 2\*\*24 pixels"):
        matrix_nms_static(torch.ones(1), masks)


def test_module_and_script_reject_bad_options():
    with pytest.raises(ValueError, match="kernel must be one of"):
        MatrixNMS(kernel="soft")
    with pytest.raises(TypeError, match="module must be a MatrixNMS"):
        script_module(torch.nn.Identity())
    with pytest.raises(ValueError, match="masks must have shape"):
        MatrixNMS()(SCORES, MASKS[0])


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((2,), {}, ValueError, "exactly one of mask_size=\\(H, W\\) or boxes=True, got neither"),
    ((2, (3, 3)), {"boxes": True}, ValueError, "got both"),
    ((0,), {"boxes": True}, ValueError, "num_candidates must be >= 1, got 0"),
    ((2.0,), {"boxes": True}, TypeError, "num_candidates must be an int"),
    ((2, (3,)), {}, TypeError, "mask_size must be a pair of ints"),
    ((2, (4097, 4097)), {}, ValueError, "H \\* W <= 2\\*\\*24"),
    ((2,), {"boxes": True, "opset": 17}, ValueError, "opset must be >= 18"),
    ((2,), {"boxes": True, "post_top_k": 0}, ValueError, "must be >= 1 for an ONNX graph"),
    ((2,), {"boxes": True, "sigma": -1.0}, ValueError, "sigma must be > 0"),
])
def test_to_onnx_rejects_bad_arguments_before_exporting(tmp_path, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        to_onnx(tmp_path / "x.onnx", *args, **kwargs)
    assert not (tmp_path / "x.onnx").exists()
