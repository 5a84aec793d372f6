"""The benchmark scaffolding: scene generator, the paper's transcription, greedy baselines, ratios, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from matrixnms import bench, cli, mask_iou, mask_nms, matrix_nms
from matrixnms.scenes import MASK_HEIGHT, MASK_WIDTH, box_scene, mask_scene, multiclass_scene
from matrixnms.bench.transcription import (
    greedy_mask_nms_numpy, greedy_mask_nms_torch, paper_matrix_nms_numpy, paper_matrix_nms_torch,
)

from helpers import requires

ROOT = Path(cli.__file__).resolve().parents[1]  # the checkout whose matrixnms is under test


def _decayed_by_index(n, keep, decayed):
    out = np.full(n, np.nan)
    out[np.asarray(keep)] = np.asarray(decayed, dtype=np.float64)
    return out


def _torch(x):
    import torch

    return None if x is None else torch.from_numpy(np.ascontiguousarray(x))


# --- scenes ---------------------------------------------------------------------------------------------


def test_mask_scene_has_the_documented_shapes_and_dtypes():
    s = mask_scene(120, num_classes=80, seed=3)
    assert s.masks.shape == (120, MASK_HEIGHT, MASK_WIDTH) and s.masks.dtype == bool and s.masks.flags.c_contiguous
    assert s.scores.shape == (120,) and s.scores.dtype == np.float32
    assert np.all((s.scores > 0) & (s.scores < 1))
    assert s.labels.dtype == np.int64 and s.labels.min() >= 0 and s.labels.max() < 80
    assert s.objects.shape == (120,) and len(s) == 120
    assert s.masks.reshape(120, -1).any(axis=1).all(), "no mask may be empty"
    assert mask_scene(10).labels is None


def test_mask_scene_is_deterministic_per_seed():
    a, b, c = mask_scene(60, num_classes=5, seed=7), mask_scene(60, num_classes=5, seed=7), mask_scene(60, seed=8)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.masks, c.masks)


def test_mask_scene_predicts_objects_several_times_plus_strays():
    s = mask_scene(400, seed=1)
    strays = s.objects < 0
    assert 0.2 < strays.mean() < 0.3
    counts = np.bincount(s.objects[~strays])
    assert counts.mean() > 3, "objects are predicted several times, as SOLO's grid cells do"
    iou = mask_iou(s.masks)
    same = (s.objects[:, None] == s.objects[None, :]) & ~strays[:, None]
    np.fill_diagonal(same, False)
    assert np.median(iou[same]) > 0.6, "duplicates of one object overlap strongly"
    # detectors emit candidates in grid order, not by score
    assert not np.all(np.diff(s.scores) <= 0)
    # realistic areas: small, medium and large objects at 1/4 scale
    area = s.masks.reshape(400, -1).sum(axis=1)
    assert (area < 64).mean() > 0.2 and (area > 24 * 24).mean() > 0.1


def test_scene_labels_mostly_follow_their_object():
    s = mask_scene(600, num_classes=80, seed=2)
    dup = s.objects >= 0
    first = {}
    agree = 0
    for obj, lab in zip(s.objects[dup], s.labels[dup]):
        first.setdefault(obj, lab)
        agree += first[obj] == lab
    assert agree / dup.sum() > 0.8


def test_box_scene_boxes_are_valid_and_inside_the_image():
    s = box_scene(1000, seed=0)
    assert s.boxes.shape == (1000, 4) and s.boxes.dtype == np.float32
    assert s.labels is not None and s.labels.max() < 80
    assert np.all(s.boxes[:, 2] > s.boxes[:, 0]) and np.all(s.boxes[:, 3] > s.boxes[:, 1])
    assert np.all(s.boxes[:, :2] >= 0) and np.all(s.boxes[:, 2] <= 1344) and np.all(s.boxes[:, 3] <= 800)
    assert box_scene(30, num_classes=None).labels is None


def test_multiclass_scene_has_the_documented_shapes_and_is_deterministic():
    dense, sparse = multiclass_scene(2, num_boxes=300, seed=4), multiclass_scene(2, dense=False, num_boxes=300, seed=4)
    assert dense.boxes.shape == (2, 300, 4) and dense.boxes.dtype == np.float32
    assert dense.scores.shape == (2, 80, 300) and dense.scores.dtype == np.float32
    assert np.all(dense.boxes[..., 2:] > dense.boxes[..., :2])
    assert np.all(dense.scores > 0.01), "dense: every class of every box passes a 0.01 threshold"
    candidates = (sparse.scores > 0.01).sum(axis=2).mean()
    assert 1 < candidates < 30, "sparse: a few candidates per class"
    again = multiclass_scene(2, num_boxes=300, seed=4)
    np.testing.assert_array_equal(dense.boxes, again.boxes)
    np.testing.assert_array_equal(dense.scores, again.scores)
    with pytest.raises(ValueError, match="objects must be >= 1, got 0"):
        multiclass_scene(objects=0)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_scenes(n):
    s = mask_scene(n, height=8, width=9)
    assert s.masks.shape == (n, 8, 9) and s.scores.shape == (n,)
    assert box_scene(n).boxes.shape == (n, 4)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n": -1}, ValueError, "n must be >= 0, got -1"),
    ({"n": 2.5}, TypeError, "n must be an int, got float"),
    ({"n": 3, "height": 0}, ValueError, "height must be >= 1, got 0"),
    ({"n": 3, "num_classes": 0}, ValueError, "num_classes must be >= 1, got 0"),
])
def test_scene_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        mask_scene(**kwargs)


# --- the paper's transcription ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [None, 4])
def test_numpy_transcription_agrees_with_matrix_nms(num_classes):
    s = mask_scene(50, height=60, width=80, num_classes=num_classes, seed=5)
    order, decayed = paper_matrix_nms_numpy(s.scores, s.masks, s.labels)
    assert decayed.dtype == np.float32
    np.testing.assert_array_equal(order, np.argsort(-s.scores, kind="stable"))
    keep, expected = matrix_nms(s.scores, s.masks, labels=s.labels)
    np.testing.assert_allclose(_decayed_by_index(50, order, decayed), _decayed_by_index(50, keep, expected),
                               rtol=1e-5, atol=1e-6)
    assert np.any(decayed < s.scores[order] * 0.9), "the scene must actually decay some scores"


@requires("torch")
@pytest.mark.parametrize("num_classes", [None, 4])
def test_torch_transcription_agrees_with_matrix_nms(num_classes):
    s = mask_scene(50, height=60, width=80, num_classes=num_classes, seed=6)
    order, decayed = paper_matrix_nms_torch(_torch(s.scores), _torch(s.masks), _torch(s.labels))
    keep, expected = matrix_nms(s.scores, s.masks, labels=s.labels)
    np.testing.assert_allclose(_decayed_by_index(50, order.numpy(), decayed.numpy()),
                               _decayed_by_index(50, keep, expected), rtol=1e-5, atol=1e-6)


def test_transcription_linear_kernel_agrees_without_exact_duplicates():
    s = mask_scene(60, height=60, width=80, seed=9)
    # small objects can be predicted twice pixel for pixel: keep one of each, where the paper divides by 0
    _, first = np.unique(s.masks.reshape(60, -1), axis=0, return_index=True)
    masks, scores = s.masks[np.sort(first)], s.scores[np.sort(first)]
    n = len(scores)
    order, decayed = paper_matrix_nms_numpy(scores, masks, method="linear")
    keep, expected = matrix_nms(scores, masks, kernel="linear")
    np.testing.assert_allclose(_decayed_by_index(n, order, decayed), _decayed_by_index(n, keep, expected),
                               rtol=1e-5, atol=1e-6)


def test_transcription_keeps_the_papers_division_by_zero_on_exact_duplicates():
    # three identical masks: cmax = 1 for the second and third, and (1 - iou) / (1 - cmax) is 0 / 0
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[:, 1:3, 1:3] = True
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    _, decayed = paper_matrix_nms_numpy(scores, masks, method="linear")
    assert not np.all(np.isfinite(decayed))
    assert np.all(np.isfinite(matrix_nms(scores, masks, kernel="linear")[1]))


def test_transcription_rejects_unknown_method_and_bad_shapes():
    s = mask_scene(4, height=5, width=5)
    with pytest.raises(ValueError, match="method must be 'gauss' or 'linear'"):
        paper_matrix_nms_numpy(s.scores, s.masks, method="gaussian")
    with pytest.raises(ValueError, match=r"masks must have shape \(4, H, W\), got \(3, 5, 5\)"):
        paper_matrix_nms_numpy(s.scores, s.masks[:3])


# --- greedy mask NMS as detectors write it ------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [None, 3])
def test_greedy_detector_agrees_with_mask_nms(num_classes):
    s = mask_scene(80, height=60, width=80, num_classes=num_classes, seed=11)
    expected = mask_nms(s.masks, s.scores, 0.5, labels=s.labels)
    keep = greedy_mask_nms_numpy(s.scores, s.masks, 0.5, s.labels)
    np.testing.assert_array_equal(keep, expected)
    assert 0 < len(keep) < 80


@requires("torch")
@pytest.mark.parametrize("num_classes", [None, 3])
def test_torch_greedy_detector_agrees_with_mask_nms(num_classes):
    s = mask_scene(80, height=60, width=80, num_classes=num_classes, seed=12)
    expected = mask_nms(s.masks, s.scores, 0.5, labels=s.labels)
    keep = greedy_mask_nms_torch(_torch(s.scores), _torch(s.masks), 0.5, _torch(s.labels))
    np.testing.assert_array_equal(keep.numpy(), expected)


def test_greedy_detector_rejects_a_threshold_outside_0_1():
    s = mask_scene(3, height=5, width=5)
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        greedy_mask_nms_numpy(s.scores, s.masks, 1.5)


# --- bench: cases, checks, ratios, targets -------------------------------------------------------------------


def test_cases_cover_the_design_sizes():
    masks = bench.cases("masks")
    assert {c.n for c in masks} == {100, 500, 1000, 2000}
    assert {c.num_classes for c in masks} == {None, 80}
    assert {(c.height, c.width) for c in masks} == {(200, 336)}
    assert {c.n for c in bench.cases("boxes") if c.num_classes == 80} >= {1000}
    with pytest.raises(ValueError, match="family must be one of"):
        bench.cases("segments")
    with pytest.raises(ValueError, match="mode must be one of"):
        bench.cases("masks", "slow")


def test_every_available_matrix_nms_path_is_benchmarked():
    case = bench.cases("masks", "smoke")[0]
    runnable = {m.key for m in bench.methods("masks") if m.skip_reason(case) is None}
    assert {"numpy-generic", "paper-numpy", "greedy-numpy", "read-floor"} <= runnable
    if "numba" in bench.auto_backend("mask_decay", "numpy", "cpu"):
        assert "numpy-numba" in runnable
    if bench.has_torch():
        assert {"torch-generic", "paper-torch", "greedy-torch"} <= runnable


def _smoke_case(family, **kw):
    return bench.Case(family, kw.pop("n", 24), kw.pop("num_classes", None), 40, 56)


def test_checks_reject_wrong_results():
    case = _smoke_case("masks")
    method = next(m for m in bench.methods("masks") if m.key == "numpy-generic")
    keep, decayed = method.build(case)()
    method.check(case, (keep, decayed))
    with pytest.raises(AssertionError):
        method.check(case, (keep, decayed * np.float32(0.9)))
    greedy = next(m for m in bench.methods("masks") if m.key == "greedy-numpy")
    kept = greedy.build(case)()
    greedy.check(case, kept)
    with pytest.raises(AssertionError):
        greedy.check(case, kept[:-1])


def _rows(group, family, **medians):
    roles = {"paper-numpy": "paper", "greedy-numpy": "greedy", "read-floor": "floor", "numpy-numba": "library",
             "numpy-generic": "library", "paper-torch": "paper", "torch-numba": "library"}
    return [{"group": group, "family": family, "n": 500, "num_classes": None, "height": 200, "width": 336,
             "method": key, "role": roles[key], "library": key.split("-")[0] if "torch" in key else "numpy",
             "device": "cpu", "place": "torch" if "torch" in key else "numpy", "median_s": t,
             "auto": key in ("numpy-numba", "torch-numba")} for key, t in medians.items()]


def test_summarize_compares_within_the_same_library():
    rows = _rows("g", "masks", **{"paper-numpy": 0.2, "greedy-numpy": 1.0, "read-floor": 0.002,
                                  "numpy-numba": 0.004, "paper-torch": 0.3, "torch-numba": 0.006})
    bench.summarize(rows)
    by = {r["method"]: r for r in rows}
    assert by["numpy-numba"]["ratios"]["vs paper"] == pytest.approx(50.0)
    assert by["numpy-numba"]["ratios"]["vs greedy"] == pytest.approx(250.0)
    assert by["numpy-numba"]["ratios"]["x floor"] == pytest.approx(2.0)
    # Torch rows are compared with the Torch transcription, and with NumPy's greedy only for want of Torch's
    assert by["torch-numba"]["ratios"]["vs paper"] == pytest.approx(50.0)
    assert by["torch-numba"]["compared_with"]["vs paper"] == "paper-torch"
    # the targets are the repository's (benchmarks/targets.py), found from this source checkout
    targets = {t["target"]: t for t in bench.check_targets(rows, bench.repository_targets())}
    first = targets["masks N=500 agnostic: NumPy matrix_nms >= 20x the NumPy f32 transcription"]
    assert first["value"] == pytest.approx(50.0) and first["passed"]
    floor = targets["masks N=500 agnostic: NumPy matrix_nms within 3x of the read floor (np.packbits)"]
    assert floor["value"] == pytest.approx(2.0) and floor["passed"]
    torch_target = targets["masks N=500 agnostic: Torch CPU matrix_nms >= 10x the Torch f32 transcription"]
    assert torch_target["passed"]


def test_fixed_rounds_spend_little_on_slow_baselines():
    assert bench.fixed_rounds(40.0) == 1
    assert bench.fixed_rounds(5.0) == 3
    assert bench.fixed_rounds(0.5) == 5
    assert bench.fixed_rounds(3.0, "quick") == 1
    assert bench.measure(lambda: None, 0.001, "smoke") == [0.001]
    assert len(bench.measure(lambda: None, 1e-6, "quick")) >= 3


def test_peak_memory_rejects_unknown_methods():
    with pytest.raises(ValueError, match="method must be one of"):
        bench.peak_memory("greedy", 10)


# --- the CLI -------------------------------------------------------------------------------------------------


def test_cli_bench_quick_on_a_tiny_config(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    status = cli.main(["bench", "--quick", "--sizes", "12", "--image", "24x32", "--no-progress",
                       "--json", str(out_json), "--plot", str(out_png)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "masks N=12 agnostic 24x32" in printed and "boxes N=12 80 classes" in printed
    assert "vs paper" in printed and "What each method times:" in printed
    data = json.loads(out_json.read_text())
    assert data["mode"] == "quick" and data["machine"]["cores"] >= 1
    results = data["results"]
    assert {r["family"] for r in results} == set(bench.FAMILIES)
    paper = [r for r in results if r["method"] == "paper-numpy"]
    assert paper and all(r["ratios"]["vs paper"] == pytest.approx(1.0) for r in paper)
    for r in results:
        assert r["median_s"] > 0 and r["what"] and r["threads"]
        if r["family"] == "masks" and r["device"] == "cpu":
            peer = next(p for p in results if p["group"] == r["group"] and p["method"] == r["compared_with"]["vs paper"])
            assert r["ratios"]["vs paper"] == pytest.approx(peer["median_s"] / r["median_s"])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--sizes", "ten"])
    assert exit_info.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_cli_demo_passes_its_arguments_through(monkeypatch):
    seen = []
    fake = types.ModuleType(cli.DEMO_MODULE)
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, cli.DEMO_MODULE, fake)
    assert cli.main(["demo", "--val", "2"]) == 3
    assert seen == [["--val", "2"]]


def test_cli_demo_explains_when_the_demo_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(cli, "DEMO_MODULE", "solov2_ref._no_such_demo")
    assert cli.main(["demo"]) == 2
    assert "solov2_ref.demo" in capsys.readouterr().err


def test_cli_demo_without_solov2_ref_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "solov2_ref", None)  # as if the package were not installed
    monkeypatch.delitem(sys.modules, cli.DEMO_MODULE, raising=False)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "solov2_ref.demo" in err and 'pip install -e ".[demo]"' in err


def test_cli_demo_names_a_missing_dependency_and_its_extra(monkeypatch, tmp_path, capsys):
    (tmp_path / "demo_needing_a_package.py").write_text("import no_such_package_for_the_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "DEMO_MODULE", "demo_needing_a_package")
    assert cli.main(["demo"]) == 2
    assert "'no_such_package_for_the_demo': pip install \"matrixnms[demo]\"" in capsys.readouterr().err


def test_cli_export_names_a_missing_package_and_its_extra(monkeypatch, capsys):
    import matrixnms

    # as without torch: matrixnms.export imports afresh and finds no torch
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "matrixnms.export", raising=False)
    monkeypatch.delattr(matrixnms, "export", raising=False)
    assert cli.main(["export", "x.onnx", "-n", "4", "--boxes"]) == 2
    err = capsys.readouterr().err
    assert "matrixnms export needs the package 'torch': pip install \"matrixnms[export]\"" in err


def test_importing_the_cli_loads_neither_torch_nor_solov2_ref():
    code = "import sys, matrixnms.cli; print(sorted({'torch', 'solov2_ref'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_python_m_matrixnms_export_runs_the_export_command():
    done = subprocess.run([sys.executable, "-m", "matrixnms.export", "--help"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0 and "usage: matrixnms export" in done.stdout and "--mask-size" in done.stdout


def test_cli_without_a_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "bench" in capsys.readouterr().out
