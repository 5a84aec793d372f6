"""The SOLOv2 reference model: shapes, targets, one training step, the NMS wiring, the shipped checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pycocotools")

import matrixnms  # noqa: E402
from solov2_ref import postprocess  # noqa: E402
from solov2_ref.data import CLASSES, MIN_VISIBLE_AREA, SyntheticScenes  # noqa: E402
from solov2_ref.evaluate import (  # noqa: E402
    EVAL_SEED, METHOD_NAMES, PAPER_TABLE_3C, coco_ap, coco_detections, coco_ground_truth, evaluate_split,
    format_scale_table, run_candidates, scale_candidates, scale_timings,
)
from solov2_ref.losses import dice_loss, sigmoid_focal_loss, solov2_loss  # noqa: E402
from solov2_ref.model import SOLOv2, SOLOv2Config, images_to_tensor  # noqa: E402
from solov2_ref.postprocess import (  # noqa: E402
    NMS_CHOICES, Candidates, Detections, PostprocessConfig, point_nms, suppress,
)
from solov2_ref.targets import assign_targets  # noqa: E402
from solov2_ref.train import (  # noqa: E402
    DEFAULT_CHECKPOINT, load_model, make_batch, make_optimizer, portable_command, train_step,
)

README = Path(__file__).resolve().parents[1] / "solov2_ref" / "README.md"


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def model() -> SOLOv2:
    torch.manual_seed(0)
    return SOLOv2().eval()


@pytest.fixture(scope="module")
def shipped() -> SOLOv2:
    return load_model()


# --- model ------------------------------------------------------------------------------------------------


def test_every_branch_has_the_documented_shape(model):
    cfg = model.cfg
    images = torch.rand(2, 3, 96, 160)
    with torch.no_grad():
        feats = model.backbone((images - 0.5) / 0.25)
        pyramid = model.features(images)
        mask_feats = model.mask_head.mask_feature_head(pyramid)
        out = model(images)
    for i, (c, p) in enumerate(zip(feats, pyramid)):
        stride = 4 * 2**i
        assert tuple(c.shape) == (2, cfg.backbone_channels[i], 96 // stride, 160 // stride)
        assert tuple(p.shape) == (2, cfg.neck_channels, 96 // stride, 160 // stride)
    assert tuple(mask_feats.shape) == (2, cfg.mask_out_channels, 24, 40)
    assert torch.equal(out.mask_feats, mask_feats)
    assert len(out.cls_preds) == len(out.kernel_preds) == len(cfg.num_grids)
    for grid, cls_pred, kernel_pred in zip(cfg.num_grids, out.cls_preds, out.kernel_preds):
        assert tuple(cls_pred.shape) == (2, cfg.num_classes, grid, grid)
        assert tuple(kernel_pred.shape) == (2, cfg.mask_out_channels, grid, grid)


def test_module_names_follow_mmdetection(model):
    names = {name for name, _ in model.named_modules()}
    for expected in ("mask_head.cls_convs.0.conv", "mask_head.kernel_convs.0.gn", "mask_head.conv_cls",
                     "mask_head.conv_kernel", "mask_head.mask_feature_head.convs_all_levels.3.conv0",
                     "mask_head.mask_feature_head.convs_all_levels.3.upsample2",
                     "mask_head.mask_feature_head.conv_pred", "neck.lateral_convs.0", "backbone.layer4"):
        assert expected in names
    # the coordinate channels enter the kernel branch and the deepest mask-feature level only
    cfg = model.cfg
    assert model.mask_head.kernel_convs[0].conv.in_channels == cfg.neck_channels + 2
    assert model.mask_head.cls_convs[0].conv.in_channels == cfg.neck_channels
    levels = model.mask_head.mask_feature_head.convs_all_levels
    assert levels[3].conv0.conv.in_channels == cfg.neck_channels + 2
    assert levels[2].conv0.conv.in_channels == cfg.neck_channels


def test_model_rejects_bad_images(model):
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 100, 128))
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        model(torch.rand(3, 128, 128))
    with pytest.raises(TypeError, match="uint8"):
        images_to_tensor(np.zeros((128, 128, 3), dtype=np.float32))


# --- data -------------------------------------------------------------------------------------------------


def test_scenes_are_deterministic_and_annotate_visible_masks():
    a, b = SyntheticScenes("crowded", 3, seed=5), SyntheticScenes("crowded", 3, seed=5)
    for s, t in zip(a, b):
        assert np.array_equal(s.image, t.image) and np.array_equal(s.masks, t.masks)
        assert np.array_equal(s.labels, t.labels)
        # visible masks never overlap and keep at least MIN_VISIBLE_AREA pixels
        assert s.masks.sum(0).max() <= 1
        assert s.masks.sum((1, 2)).min() >= MIN_VISIBLE_AREA
        assert s.labels.min() >= 0 and s.labels.max() < len(CLASSES)
    assert not np.array_equal(SyntheticScenes("val", 1)[0].image, SyntheticScenes("crowded", 1)[0].image)
    assert len(SyntheticScenes("crowded", 1)[0].labels) >= 7
    with pytest.raises(ValueError, match="split must be one of"):
        SyntheticScenes("test", 1)


# --- targets and losses -----------------------------------------------------------------------------------


def test_target_assignment_on_a_hand_made_scene():
    cfg = SOLOv2Config()  # grids 16/12/8, scale ranges (0, 36), (24, 72), (48, 256), pos_scale 0.2
    masks = torch.zeros(4, 128, 128, dtype=torch.bool)
    masks[0, 45:75, 25:55] = True  # 30 x 30 square centred at (y, x) = (60, 40): levels 0 and 1
    masks[1, 10:90, 70:120] = True  # 80 x 50 box centred at (50, 95): side 63.2, levels 1 and 2
    masks[2, 100:112, 4:20] = True  # 12 x 16, side 13.9: level 0 only
    labels = torch.tensor([2, 4, 1, 3])  # instance 3 is empty: ignored
    targets = assign_targets(masks, labels, cfg)
    positives = [{divmod(int(i), g): int(t.labels.flatten()[i]) for i in t.pos_index}
                 for t, g in zip(targets, cfg.num_grids)]
    # level 0, cells of 8 px: square rows (60 +- 3) / 8 -> 7, cols (40 +- 3) / 8 -> 4..5;
    # small box centre (106, 12): row 13, cols (12 +- 1.6) / 8 -> 1
    assert positives[0] == {(7, 4): 2, (7, 5): 2, (13, 1): 1}
    # level 1, cells of 128 / 12 px: square rows 5, cols 3..4; big box rows (50 +- 8) -> 3..5, cols (95 +- 5) -> 8..9
    expected_1 = {(5, 3): 2, (5, 4): 2}
    expected_1.update({(r, c): 4 for r in (3, 4, 5) for c in (8, 9)})
    assert positives[1] == expected_1
    # level 2, cells of 16 px: big box rows (50 +- 8) / 16 -> 2..3, cols (95 +- 5) / 16 -> 5..6
    assert positives[2] == {(r, c): 4 for r in (2, 3) for c in (5, 6)}
    # every other cell is background, and each positive's mask target is its instance at 1/4 scale
    for t, pos in zip(targets, positives):
        assert int((t.labels != cfg.num_classes).sum()) == len(pos)
        assert t.mask_targets.shape == (len(pos), 32, 32)
    square = torch.zeros(32, 32)
    square[11:19, 6:14] = 1.0
    square[11, 6:14] = square[18, 6:14] = 0.75  # rows 45..47 and 72..74 of a 4-row block
    square[11:19, 6] = square[11:19, 13] = 0.75
    square[11, 6] = square[11, 13] = square[18, 6] = square[18, 13] = 0.75 * 0.75
    assert torch.allclose(targets[0].mask_targets[0], square)


def test_a_later_instance_takes_over_shared_cells():
    cfg = SOLOv2Config()
    masks = torch.zeros(2, 128, 128, dtype=torch.bool)
    masks[0, 50:70, 50:70] = True
    masks[1, 52:72, 52:72] = True  # overlapping, same cells
    targets = assign_targets(masks, torch.tensor([0, 3]), cfg)
    level = targets[0]
    assert set(level.labels[level.labels != cfg.num_classes].tolist()) == {3}
    later = torch.nn.functional.avg_pool2d(masks[1, None, None].float(), 4)[0, 0]
    assert torch.equal(level.mask_targets[0], later)


def test_losses_on_known_values():
    logits = torch.tensor([0.0, 0.0])
    focal = sigmoid_focal_loss(logits, torch.tensor([1.0, 0.0]))
    # p = 0.5: alpha_t * 0.5**2 * log 2
    assert torch.allclose(focal, torch.tensor([0.25, 0.75]) * 0.25 * np.log(2.0))
    perfect = torch.ones(1, 4, 4)
    assert float(dice_loss(perfect, perfect)) < 1e-3
    assert float(dice_loss(torch.zeros(1, 4, 4), perfect)) == pytest.approx(1.0)


def test_one_training_step_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = SOLOv2()
    scenes = [SyntheticScenes("train", 4, seed=3)[i] for i in range(4)]
    images, targets = make_batch(scenes, model.cfg)
    # the training optimiser (AdamW); a small step so first-order descent holds
    optimizer = make_optimizer(model, lr=1e-4)
    before = train_step(model, optimizer, images, targets)
    assert before["num_pos"] > 0 and np.isfinite(before["loss"])
    with torch.no_grad():
        after = solov2_loss(model(images), targets)
    assert float(after["loss"]) < before["loss"]


# --- post-processing --------------------------------------------------------------------------------------


def _duplicates() -> Candidates:
    """Three 1/4-scale candidates: 0 and 1 are near-duplicates of one object (same class), 2 is elsewhere."""
    probs = torch.zeros(3, 32, 32)
    probs[0, 4:14, 4:14] = 0.9
    probs[1, 4:14, 5:15] = 0.8  # IoU 90 / 110 = 0.82 with candidate 0
    probs[2, 20:28, 20:28] = 0.95
    masks = probs > 0.5
    return Candidates(probs, masks, masks.flatten(1).sum(1).float(), torch.tensor([0.9, 0.8, 0.7]),
                      torch.tensor([1, 1, 1]), torch.zeros(3, dtype=torch.int64), torch.arange(3))


def test_suppress_uses_the_chosen_nms():
    cands = _duplicates()
    keep, scores = suppress(cands, "none")
    assert keep.tolist() == [0, 1, 2] and torch.allclose(scores, cands.scores)
    keep, _ = suppress(cands, "greedy")
    assert keep.tolist() == [0, 2]  # IoU 0.82 > 0.5: the duplicate goes
    for hard in ("fast", "cluster"):
        keep, scores = suppress(cands, hard)
        assert keep.tolist() == [0, 2] and scores.tolist() == pytest.approx([0.9, 0.7]), hard
    iou = 90 / 110
    keep, scores = suppress(cands, "matrix-gaussian")
    assert keep.tolist() == [0, 2, 1]  # the duplicate stays with a decayed score
    assert scores[2] == pytest.approx(0.8 * np.exp(-(iou**2) / 0.5), rel=1e-5)
    keep, scores = suppress(cands, "matrix-linear")
    assert keep.tolist() == [0, 2, 1] and scores[2] == pytest.approx(0.8 * (1 - iou), rel=1e-5)
    # a higher update threshold drops the decayed duplicate, the same way for every choice
    strict = PostprocessConfig(update_thr=0.3)
    for nms in ("matrix-gaussian", "matrix-linear", "soft"):
        assert suppress(cands, nms, strict)[0].tolist() == [0, 2], nms
    assert suppress(cands, "none", strict)[0].tolist() == [0, 1, 2]
    keep, scores = suppress(cands, "soft")
    assert keep.tolist() == [0, 2, 1] and scores[2] == pytest.approx(0.8 * np.exp(-(iou**2) / 0.5), rel=1e-5)
    # a different class never suppresses
    cands.labels = torch.tensor([1, 2, 1])
    for hard in ("greedy", "fast", "cluster"):
        assert suppress(cands, hard)[0].tolist() == [0, 1, 2], hard
    with pytest.raises(ValueError, match="nms must be one of"):
        suppress(cands, "hard")


def test_inference_calls_matrix_nms_and_the_argument_swaps_it(monkeypatch, shipped):
    calls: dict[str, list] = {"matrix_nms": [], "mask_nms": [], "soft_nms": [], "fast_nms": [], "cluster_nms": []}

    def spy(name):
        real = getattr(matrixnms, name)

        def wrapper(*args, **kwargs):
            calls[name].append(kwargs)
            return real(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(postprocess, name, spy(name))
    scene = SyntheticScenes("crowded", 1, seed=EVAL_SEED)[0]
    with torch.no_grad():
        outputs = shipped(images_to_tensor(scene.image))
    results = {}
    for nms in NMS_CHOICES:
        for v in calls.values():
            v.clear()
        (det,) = postprocess.postprocess(outputs, shipped.cfg.strides, (128, 128), nms=nms)
        results[nms] = det
        used = {k for k, v in calls.items() if v}
        expected = {"matrix-gaussian": {"matrix_nms"}, "matrix-linear": {"matrix_nms"}, "greedy": {"mask_nms"},
                    "soft": {"soft_nms"}, "fast": {"fast_nms"}, "cluster": {"cluster_nms"}, "none": set()}[nms]
        assert used == expected, nms
        if nms in ("fast", "cluster"):
            (kwargs,) = calls[f"{nms}_nms"]
            assert kwargs["labels"] is not None and kwargs["iou_threshold"] == 0.5
        if nms.startswith("matrix"):
            (kwargs,) = calls["matrix_nms"]
            # class-aware, the paper's sigma, SOLOv2's thresholds, areas passed through
            assert kwargs["kernel"] == nms.removeprefix("matrix-") and kwargs["sigma"] == 0.5
            assert kwargs["labels"] is not None and kwargs["mask_areas"] is not None
            assert (kwargs["pre_top_k"], kwargs["post_threshold"], kwargs["post_top_k"]) == (500, 0.05, 100)
    # the choices give different results on a crowded scene; Cluster-NMS is greedy NMS exactly
    assert len(results["none"]) > len(results["greedy"])
    assert torch.equal(results["cluster"].scores, results["greedy"].scores)
    assert len(results["fast"]) <= len(results["greedy"])
    assert not torch.equal(results["matrix-gaussian"].scores, results["none"].scores[:len(results["matrix-gaussian"])])
    for det in results.values():
        assert det.masks.shape[1:] == (128, 128) and det.masks.dtype == torch.bool
        assert torch.all(det.scores[:-1] >= det.scores[1:]) and float(det.scores.min()) >= 0.05


def test_point_nms_keeps_local_maxima_only():
    probs = torch.tensor([[[[0.1, 0.9, 0.2], [0.3, 0.4, 0.5], [0.6, 0.2, 0.8]]]])
    kept = point_nms(probs)
    # each cell competes with its 2 x 2 window up and to the left
    assert (kept > 0).int().tolist() == [[[[1, 1, 0], [1, 0, 0], [1, 0, 1]]]]


# --- evaluation -------------------------------------------------------------------------------------------


def test_coco_evaluation_scores_the_ground_truth_as_perfect():
    scenes = list(SyntheticScenes("val", 3, seed=1))
    gt = coco_ground_truth(scenes)
    assert min(gt.getAnnIds()) == 1  # COCOeval ignores id 0
    dets = [Detections(torch.from_numpy(s.masks), torch.linspace(0.9, 0.5, len(s.labels)), torch.from_numpy(s.labels))
            for s in scenes]
    segm, bbox = coco_detections(dets)
    assert coco_ap(gt, segm, "segm") == pytest.approx((1.0, 1.0, 1.0))
    assert coco_ap(gt, bbox, "bbox")[0] == pytest.approx(1.0)
    wrong = [Detections(d.masks, d.scores, (d.labels + 1) % len(CLASSES)) for d in dets]
    assert coco_ap(gt, coco_detections(wrong)[0], "segm")[0] == 0.0


def _readme_floor() -> tuple[float, int]:
    text = README.read_text()
    match = re.search(r"mask AP >= ([0-9.]+) on the first ([0-9]+) val scenes", text)
    assert match, "solov2_ref/README.md must state the regression floor"
    return float(match.group(1)), int(match.group(2))


def test_shipped_checkpoint_reaches_the_ap_written_in_the_readme(shipped):
    assert DEFAULT_CHECKPOINT.stat().st_size < 8 * 2**20
    floor, count = _readme_floor()
    scenes = list(SyntheticScenes("val", count, seed=EVAL_SEED))
    cands, seconds = run_candidates(shipped, scenes)
    (row,) = evaluate_split("val", scenes, cands, seconds, ["matrix-gaussian"])
    assert row.mask_ap >= floor, f"mask AP {row.mask_ap:.3f} < README floor {floor}"


def test_demo_writes_the_table_and_figures(tmp_path, capsys):
    from solov2_ref.demo import main

    assert main(["--out", str(tmp_path), "--val", "6", "--crowded", "4", "--scale-images", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for nms in NMS_CHOICES:
        assert f"| {nms} | {METHOD_NAMES[nms]} |" in printed
    # every row of the paper's Table 3(c), with the paper's figures beside ours
    for nms, (ap, ms) in PAPER_TABLE_3C.items():
        assert f"| {ap} / {ms} |" in printed
    assert {METHOD_NAMES[n] for n in PAPER_TABLE_3C} == {"Hard-NMS", "Soft-NMS", "Fast NMS", "Matrix NMS"}
    # and the NMS time of every choice at the paper's scale (N = 500 candidates)
    scale = printed.split("NMS time at the paper's scale", 1)[1]
    for nms in NMS_CHOICES:
        assert f"| {nms} | {METHOD_NAMES[nms]} | 500 | 1 |" in scale
    for name in ("overlays_val.png", "overlays_crowded.png", "overview.png", "mask_features.png", "results.md"):
        assert (tmp_path / name).stat().st_size > 1000
    # the shipped checkpoint records --out in a temporary folder of the machine that trained it
    shown = printed.split("trained with `", 1)[1].split("`", 1)[0]
    assert shown.startswith("python -m solov2_ref.train --iters 4000") and shown.endswith(" --out solov2_synth.pt")


def test_scale_timings_time_every_choice_on_paper_sized_candidates():
    cands = scale_candidates(40, height=20, width=34, num_classes=80, seed=1)
    assert len(cands) == 40 and cands.masks.shape == (40, 20, 34) and cands.labels.max() < 80
    # the same candidates as matrixnms.scenes.mask_scene draws: Cluster-NMS keeps what greedy keeps
    assert torch.equal(suppress(cands, "cluster")[0], suppress(cands, "greedy")[0])
    rows = scale_timings(["greedy", "fast", "none"], images=1, n=30, repeats=1)
    assert [r.nms for r in rows] == ["greedy", "fast", "none"] and all(r.nms_ms > 0 for r in rows)
    table = format_scale_table(rows)
    assert "| greedy | Hard-NMS | 30 | 1 |" in table and table.count("\n") == 4


def test_portable_command_keeps_only_the_file_name_of_out():
    recorded = "python -m solov2_ref.train --iters 4000 --seed 0 --save-every 1000 --out /tmp/s6/run2/solov2_synth.pt"
    assert portable_command(recorded) == ("python -m solov2_ref.train --iters 4000 --seed 0 --save-every 1000 "
                                          "--out solov2_synth.pt")
    assert portable_command("python -m solov2_ref.train --out=/home/me/runs/a.pt --lr 2e-3") == (
        "python -m solov2_ref.train --out=a.pt --lr 2e-3")
    assert portable_command("python -m solov2_ref.train --iters 3") == "python -m solov2_ref.train --iters 3"
    assert portable_command("python -m solov2_ref.train --out 'my runs/b c.pt'") == (
        "python -m solov2_ref.train --out 'b c.pt'")
