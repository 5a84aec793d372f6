"""matrixnms sweep / rescore and the candidate format (matrixnms.tuning) on the reference model's candidates.

One session fixture writes 12 val images' candidates from the shipped checkpoint; one local Ray cluster
(2 CPUs) serves every Ray test and is shut down at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import requires

pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install \"matrixnms[ray]\")")
pytest.importorskip("pycocotools", reason="pycocotools not installed")

from matrixnms.cli import main  # noqa: E402
from matrixnms.tuning.candidates import (CandidateError, CandidateWriter, encode_masks, iter_images,  # noqa: E402
                                         rle_pixels)
from matrixnms.tuning.sweep import ap_table, rescore, sweep  # noqa: E402
from matrixnms.tuning.variants import Variant, grid  # noqa: E402

IMAGES = 12
GRID = [("matrix", {"kernel": ["gaussian", "linear"], "sigma": [0.25, 0.5]}), ("greedy", {"iou": [0.5]})]


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """(candidate file, GT JSON, {nms choice: mask AP of solov2_ref.evaluate}) for 12 val images."""
    torch = pytest.importorskip("torch")
    from solov2_ref.candidates import write_candidates
    from solov2_ref.data import SyntheticScenes
    from solov2_ref.evaluate import evaluate_split, run_candidates
    from solov2_ref.train import load_model

    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    try:
        model = load_model()
        scenes = list(SyntheticScenes("val", IMAGES))
        cands, seconds = run_candidates(model, scenes)
        rows = evaluate_split("val", scenes, cands, seconds, ["matrix-gaussian", "matrix-linear", "greedy"])
        path = tmp_path_factory.mktemp("candidates") / "val.parquet"
        gt = write_candidates(model, scenes, path, cands=cands)
    finally:
        torch.set_num_threads(previous)
    return path, gt, {r.nms: r.mask_ap for r in rows}


@pytest.fixture(scope="session")
def ray_cluster():
    pytest.importorskip("ray", reason="ray not installed (pip install \"matrixnms[ray]\")")
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_rle_pixels_counts_every_run():
    rng = np.random.default_rng(0)
    masks = rng.random((6, 37, 23)) < rng.random((6, 1, 1))
    masks[0], masks[1] = False, True
    counts = encode_masks(masks)
    assert (rle_pixels(counts) == 37 * 23).all()
    assert rle_pixels([counts[2][:-1]])[0] != 37 * 23  # a truncated RLE
    assert rle_pixels([]).shape == (0,)


def test_file_round_trip(reference):
    path, _, _ = reference
    images = list(iter_images(path, batch_size=5))
    assert [im.image_id for im in images] == list(range(1, IMAGES + 1))
    first = images[0]
    assert first.mask_size == (32, 32) and (first.height, first.width) == (128, 128)
    assert len(first.masks) == len(first.result_masks) == len(first) == first.boxes.shape[0]
    assert first.scores.dtype == np.float32 and set(first.labels.tolist()) <= set(range(1, 6))


def test_sweep_matches_solov2_evaluate(reference):
    """Matrix NMS (both kernels) and greedy NMS on the file give exactly solov2_ref.evaluate's mask AP."""
    path, gt, expected = reference
    variants = [Variant(), Variant(kernel="linear", sigma=None), Variant("greedy", kernel=None, sigma=None, iou=0.5)]
    rows = {r["grid_index"]: r for r in sweep(path, gt, variants, engine="local", progress=False)}
    assert rows[0]["AP"] == expected["matrix-gaussian"]
    assert rows[1]["AP"] == expected["matrix-linear"]
    assert rows[2]["AP"] == expected["greedy"]


@requires("ray")
def test_ray_engine_gives_the_local_table(reference, ray_cluster):
    path, gt, _ = reference
    variants = grid(GRID)
    local = sweep(path, gt, variants, engine="local", progress=False)
    distributed = sweep(path, gt, variants, engine="ray", progress=False)
    assert len(local) == len(variants) == 4 + 1 - 1  # linear ignores sigma: one linear variant
    assert ap_table(local) == ap_table(distributed)
    assert all(r["images"] == IMAGES for r in distributed)


def test_cli_sweep_writes_table_json_and_plot(reference, tmp_path, capsys):
    path, gt, expected = reference
    status = main(["sweep", str(path), "--gt", str(gt), "--engine", "local", "--no-progress", "--out", str(tmp_path),
                   "--method", "matrix", "--sigma", "0.5", "1", "--post-threshold", "0.05",
                   "--method", "greedy", "--iou", "0.5"])
    assert status == 0
    out = capsys.readouterr().out
    assert "best: " in out and "| rank | variant | AP |" in out
    results = json.loads((tmp_path / "sweep.json").read_text())
    assert len(results) == 3 and {"AP", "AP50", "AP75", "AR100", "nms_ms", "sigma", "kernel"} <= set(results[0])
    default = next(r for r in results if r["method"] == "matrix" and r["sigma"] == 0.5)
    assert default["AP"] == expected["matrix-gaussian"]
    assert (tmp_path / "sweep.png").stat().st_size > 1000 and (tmp_path / "results.md").exists()


@pytest.mark.parametrize("engine", ["local", pytest.param("ray", marks=requires("ray"))])
def test_rescore_streams_coco_results(reference, tmp_path, engine, request):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    path, gt, expected = reference
    out = tmp_path / "results.json"
    assert main(["rescore", str(path), "--out", str(out), "--engine", engine, "--no-progress",
                 "--method", "matrix", "--kernel", "gaussian", "--sigma", "0.5"]) == 0
    coco = COCO(str(gt))
    results = coco.loadRes(str(out))
    first = results.loadAnns(results.getAnnIds())[0]
    assert len(first["bbox"]) == 4 and first["segmentation"]["size"] == [128, 128]
    ev = COCOeval(coco, results, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == expected["matrix-gaussian"]


def _write_raw(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _row(**changes):
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4, :4] = masks[1, 2:6, 2:6] = True
    row = {"image_id": 7, "height": 8, "width": 8, "scores": [0.9, 0.8], "labels": [1, 1],
           "masks": encode_masks(masks)}
    return {**row, **changes}


def _gt(path: Path) -> Path:
    path.write_text(json.dumps({"images": [{"id": 7, "height": 8, "width": 8}], "annotations": [],
                                "categories": [{"id": 1, "name": "a"}]}))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"labels": None}, "lacks the required column(s) labels"),
    ({"scores": None}, "image_id 7: scores must not be null"),
    ({"scores": [0.9]}, "image_id 7: one entry per candidate expected, got scores 1, labels 2, masks 2"),
    ({"masks": encode_masks(np.ones((2, 4, 8), bool))}, "image_id 7: masks[0] is not an RLE of 8 x 8"),
])
def test_malformed_candidates_name_the_image(tmp_path, capsys, changes, message):
    rows = [_row(image_id=6), _row(**changes)]
    if changes.get("labels", 0) is None:  # the column missing from the file
        rows = [{k: v for k, v in r.items() if k != "labels"} for r in rows]
    path = _write_raw(tmp_path / "bad.parquet", rows)
    with pytest.raises(CandidateError) as error:
        list(iter_images(path))
    assert message in str(error.value)
    status = main(["sweep", str(path), "--gt", str(_gt(tmp_path / "gt.json")), "--engine", "local",
                   "--no-progress", "--out", str(tmp_path / "out")])
    assert status == 2 and message in capsys.readouterr().err


def test_writer_refuses_what_readers_would(tmp_path):
    with CandidateWriter(tmp_path / "c.parquet") as writer:
        with pytest.raises(CandidateError, match="image_id 3: result_masks"):
            writer.write(3, 16, 16, [0.5], [1], encode_masks(np.ones((1, 8, 8), bool)), mask_size=(8, 8),
                         result_masks=encode_masks(np.ones((1, 8, 8), bool)))
        writer.write(4, 8, 8, [], [], [])
    assert [len(im) for im in iter_images(tmp_path / "c.parquet")] == [0]


@pytest.mark.parametrize("argv, message", [
    (["--sigma", "0.5"], "--sigma must follow a --method"),
    (["--method", "greedy", "--sigma", "0.5"], "--method greedy takes --iou, --post-threshold, not --sigma"),
    (["--method", "matrix", "--kernel", "box"], "invalid choice"),
])
def test_sweep_grid_arguments_are_unambiguous(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "c.parquet", "--gt", "g.json", "--out", str(tmp_path), *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_grid_expands_each_method_group():
    variants = grid([("matrix", {"kernel": ["gaussian", "linear"], "sigma": [0.1, 1.0], "post_threshold": [0, 0.1]}),
                     ("greedy", {"iou": [0.3, 0.7]})])
    assert len(variants) == 2 * 2 + 2 + 2  # linear: one per threshold
    assert {v.method for v in variants} == {"matrix", "greedy"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
@requires("numba")
def test_numba_helper_pool_survives_fork():
    """A process forked after the helper pool started gets a fresh pool (multiprocessing / Ray-style workers)."""
    from matrixnms.backends import _numba_runtime as runtime

    assert runtime._helpers(int, [("1",)])[0].result(timeout=10) == 1
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the pool works
        try:
            ok = runtime._helpers(int, [("2",)])[0].result(timeout=10) == 2
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
