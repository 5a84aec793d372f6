"""SOLOv2 end to end in one static graph (solov2_ref.deploy): against eager PyTorch, in onnxruntime, in the demo.

The reference is ``postprocess.postprocess(..., "matrix-gaussian")`` on the shipped checkpoint's outputs. The
static module must give the same detections in eager Torch (scores to float rounding, identical masks), and
the exported ONNX file the same in onnxruntime within the issue's bounds (mask IoU >= 0.99, scores within
1e-4, same count and labels in the same order).
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pycocotools")

from solov2_ref import deploy  # noqa: E402
from solov2_ref.data import IMAGE_SIZE, SyntheticScenes  # noqa: E402
from solov2_ref.demo import main as demo_main  # noqa: E402
from solov2_ref.deploy import (  # noqa: E402
    DEFAULT_MAX_CANDIDATES, OUTPUT_NAMES, Agreement, OnnxSOLOv2, SOLOv2Deploy, eager_detections, export, verify,
)
from solov2_ref.evaluate import EVAL_SEED  # noqa: E402
from solov2_ref.postprocess import Detections  # noqa: E402
from solov2_ref.train import load_model  # noqa: E402

needs_onnx = pytest.mark.skipif(
    any(find_spec(package) is None for package in ("onnx", "onnxscript", "onnxruntime")),
    reason="ONNX export needs onnx, onnxscript and onnxruntime")


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.fixture(scope="module")
def images():
    """Val and crowded scenes: the crowded ones have the most candidates and the most overlap."""
    val = [s.image for s in SyntheticScenes("val", 16, seed=EVAL_SEED)]
    crowded = [s.image for s in SyntheticScenes("crowded", 8, seed=EVAL_SEED)]
    return val + crowded


@pytest.fixture(scope="module")
def onnx_file(shipped, tmp_path_factory):
    if any(find_spec(package) is None for package in ("onnx", "onnxscript", "onnxruntime")):
        pytest.skip("ONNX export needs onnx, onnxscript and onnxruntime")
    return export(shipped, tmp_path_factory.mktemp("deploy") / "solov2.onnx", (IMAGE_SIZE, IMAGE_SIZE))


def _static_detections(module: SOLOv2Deploy, image: np.ndarray) -> tuple[Detections, dict[str, torch.Tensor]]:
    with torch.no_grad():
        out = dict(zip(OUTPUT_NAMES, module(torch.from_numpy(image))))
    count = int(out["num_detections"])
    return Detections(out["masks"][:count], out["scores"][:count], out["labels"][:count]), out


def _assert_padding(out: dict, max_per_img: int) -> None:
    """Rows after num_detections: empty masks, score 0, label -1."""
    count = int(out["num_detections"])
    assert out["masks"].shape[0] == out["scores"].shape[0] == out["labels"].shape[0] == max_per_img
    assert not out["masks"][count:].any()
    assert (out["scores"][count:] == 0).all() and (out["labels"][count:] == -1).all()


# --- the static module in eager Torch ---------------------------------------------------------------------


@pytest.mark.parametrize("max_candidates", [DEFAULT_MAX_CANDIDATES, None], ids=["topk-500", "every-row"])
def test_static_module_gives_the_eager_detections(shipped, images, max_candidates):
    module = SOLOv2Deploy(shipped, max_candidates=max_candidates)
    agreement = Agreement()
    for image in images:
        static, out = _static_detections(module, image)
        eager = eager_detections(shipped, image)
        agreement.add(eager, static)
        assert torch.equal(static.masks, eager.masks)
        _assert_padding(out, module.cfg.max_per_img)
    assert agreement.count_mismatches == 0 and agreement.label_mismatches == 0
    assert agreement.min_mask_iou == 1.0 and agreement.max_score_diff <= 1e-6
    assert agreement.detections > 200  # the comparison covers many instances, not a few


def test_static_module_handles_other_image_sizes(shipped, images):
    # any H, W that are multiples of 32: crops and a tiling of the scenes
    module = SOLOv2Deploy(shipped)
    agreement = Agreement()
    for image in (images[0][:96], images[1][32:, :64], np.concatenate([images[2], images[3]], axis=1)):
        image = np.ascontiguousarray(image)
        static, out = _static_detections(module, image)
        assert tuple(out["masks"].shape[1:]) == image.shape[:2]
        agreement.add(eager_detections(shipped, image), static)
    assert agreement.ok and agreement.min_mask_iou == 1.0 and agreement.detections > 0


def test_candidate_cap_is_exact_down_to_the_valid_count(shipped, images):
    crowded = images[-1]
    full, out = _static_detections(SOLOv2Deploy(shipped, max_candidates=None), crowded)
    valid = int(out["num_candidates"])
    assert 0 < valid < DEFAULT_MAX_CANDIDATES
    capped, capped_out = _static_detections(SOLOv2Deploy(shipped, max_candidates=valid), crowded)
    assert int(capped_out["num_candidates"]) == valid
    assert torch.equal(capped.labels, full.labels) and torch.equal(capped.masks, full.masks)
    assert torch.allclose(capped.scores, full.scores, rtol=0, atol=1e-6)


def test_static_module_checks_its_arguments(shipped):
    with pytest.raises(ValueError, match="nms must be one of"):
        SOLOv2Deploy(shipped, nms="greedy")
    with pytest.raises(ValueError, match="max_candidates must be an int >= 1 or None, got 0"):
        SOLOv2Deploy(shipped, max_candidates=0)
    with pytest.raises(ValueError, match=r"image must be uint8 with shape \(H, W, 3\)"):
        SOLOv2Deploy(shipped)(torch.zeros((IMAGE_SIZE, IMAGE_SIZE, 3)))
    with pytest.raises(ValueError, match="image_size must be positive multiples of 32, got"):
        export(shipped, "unused.onnx", (100, 128))


def test_linear_kernel_is_deployable_too(shipped, images):
    module = SOLOv2Deploy(shipped, nms="matrix-linear")
    agreement = Agreement()
    for image in images[:6]:
        agreement.add(eager_detections(shipped, image, "matrix-linear"), _static_detections(module, image)[0])
    assert agreement.ok and agreement.detections > 0


# --- ONNX in onnxruntime ----------------------------------------------------------------------------------


@needs_onnx
def test_onnx_graph_agrees_with_pytorch_on_val_and_crowded_images(shipped, images, onnx_file):
    runtime = OnnxSOLOv2(onnx_file, threads=2)
    assert runtime.image_size == (IMAGE_SIZE, IMAGE_SIZE)
    agreement, ms = verify(shipped, runtime, images)
    print(f"\nonnxruntime vs PyTorch: {agreement}; ms per image {ms}")
    assert agreement.ok, str(agreement)
    assert agreement.images == len(images) and agreement.detections > 200
    for image in images:
        out = runtime.run(image)
        assert int(out["num_candidates"]) <= DEFAULT_MAX_CANDIDATES  # the cap was exact here
        _assert_padding(out, 100)
    with pytest.raises(ValueError, match="image must be uint8 with shape"):
        runtime.run(np.zeros((64, 64, 3), np.uint8))


@needs_onnx
def test_agreement_flags_a_disagreement():
    a = Detections(torch.ones((2, 4, 4), dtype=torch.bool), torch.tensor([0.9, 0.5]), torch.tensor([0, 1]))
    shifted = Detections(a.masks.clone(), a.scores + torch.tensor([0.0, 2e-4]), a.labels.clone())
    eroded = Detections(a.masks.clone(), a.scores.clone(), a.labels.clone())
    eroded.masks[1, 0] = False  # IoU 0.75
    for other, problem in ((shifted, "score"), (eroded, "mask"), (Detections(a.masks[:1], a.scores[:1],
                                                                             a.labels[:1]), "count")):
        agreement = Agreement()
        agreement.add(a, other)
        assert not agreement.ok, problem
    same = Agreement()
    same.add(a, a)
    assert same.ok and same.min_mask_iou == 1.0


@needs_onnx
def test_demo_runs_from_the_onnx_file(onnx_file, tmp_path, capsys):
    assert demo_main(["--onnx", str(onnx_file), "--out", str(tmp_path), "--val", "6", "--crowded", "3",
                      "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| val | 6 | solov2.onnx (onnxruntime) |" in printed and "| crowded | 3 |" in printed
    for name in ("overlays_val_onnx.png", "overlays_crowded_onnx.png", "results_onnx.md"):
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(SystemExit):
        demo_main(["--onnx", str(tmp_path / "missing.onnx"), "--out", str(tmp_path)])


@needs_onnx
def test_command_line_exports_and_verifies(tmp_path, capsys):
    path = tmp_path / "cli.onnx"
    assert deploy.main(["--out", str(path), "--verify", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert path.stat().st_size > 2**20
    assert "0 count and 0 label mismatches" in printed and "verified" in printed


# --- OpenVINO -----------------------------------------------------------------------------------------------


@needs_onnx
@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino not installed")
@pytest.mark.parametrize("precision", [None, "f32"], ids=["default-settings", "f32"])
def test_openvino_agrees_with_pytorch_on_val_and_crowded_images(shipped, images, onnx_file, precision):
    # a subset of the scenes (both splits) per setting, to keep the test quick; the counts of the exported
    # graph's Matrix NMS are MatMulInteger (integer) whatever the precision hint
    import onnx

    assert any(n.op_type == "MatMulInteger" for n in onnx.load(str(onnx_file)).graph.node)
    runtime = OnnxSOLOv2(onnx_file, threads=2, runtime="openvino", precision=precision)
    assert runtime.image_size == (IMAGE_SIZE, IMAGE_SIZE)
    subset = images[:6] + images[-4:]
    agreement, ms = verify(shipped, runtime, subset)
    print(f"\n{runtime.name} vs PyTorch: {agreement}; ms per image {ms}")
    assert agreement.ok, str(agreement)
    assert agreement.images == len(subset) and agreement.detections > 50

