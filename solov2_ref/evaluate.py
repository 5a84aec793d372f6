"""COCO evaluation of the compact SOLOv2 for every NMS choice, like the paper's Table 3(c).

    python -m solov2_ref.evaluate --val 500 --crowded 300

The network runs once per image; steps 1-3 of the post-processing (``postprocess.candidates``) do not
depend on the NMS, so each NMS choice re-uses the same candidates. For every split and NMS choice:

- mask AP, AP50, AP75: pycocotools ``COCOeval`` with ``iouType="segm"`` on RLE-encoded masks;
- box AP: ``COCOeval`` ``"bbox"`` on boxes derived from the predicted masks with
  ``matrixnms.masks_to_boxes(format="xywh")`` (the appendix's section D: boxes without box supervision);
- ``nms ms``: median per image of the NMS call alone (step 4);
- ``post ms``: median per image of the whole post-processing, steps 1-5: point NMS, candidate masks by
  dynamic convolution, maskness, the NMS, and the upsampling of the kept masks to the input size. It
  excludes the network and the COCO encoding.

Each row names the method as the paper's Table 3(c) does (Hard-NMS, Soft-NMS, Fast NMS, Matrix NMS; plus
Cluster-NMS and no NMS) and shows the paper's COCO figures beside it (ResNet-50, V100). The model here has a
few dozen candidates per image, so every NMS is fast; :func:`scale_timings` times the same ``suppress``
calls on candidates as many as the paper's (``matrixnms.scenes.mask_scene``: N = 500 masks of 200 x 336,
1/4 of 800 x 1344, 80 labels), where the cost of each method shows.

Annotation and detection ids start at 1 (COCOeval treats id 0 as unmatched).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from matrixnms import masks_to_boxes
from matrixnms.scenes import mask_scene

from .data import CLASSES, Scene, SyntheticScenes
from .model import SOLOv2, images_to_tensor
from .postprocess import NMS_CHOICES, Candidates, Detections, PostprocessConfig, candidates, finalize, suppress
from .postprocess import suppress_batch

EVAL_SEED = 0

# Each choice as the paper's Table 3(c) names it, and the paper's figures there (COCO, ResNet-50, V100):
# (mask AP, NMS time).
METHOD_NAMES = {"matrix-gaussian": "Matrix NMS", "matrix-linear": "Matrix NMS (linear)", "greedy": "Hard-NMS",
                "soft": "Soft-NMS", "fast": "Fast NMS", "cluster": "Cluster-NMS", "none": "no NMS"}
PAPER_TABLE_3C = {"greedy": ("36.3", "9 ms"), "soft": ("36.5", "22 ms"), "fast": ("36.2", "< 1 ms"),
                  "matrix-gaussian": ("36.6", "< 1 ms")}


@dataclass
class NMSResult:
    """Metrics of one NMS choice on one split (AP values in [0, 1], times in milliseconds)."""

    split: str
    nms: str
    images: int
    mask_ap: float
    mask_ap50: float
    mask_ap75: float
    box_ap: float
    nms_ms: float
    post_ms: float
    detections: list[Detections] = field(default_factory=list, repr=False)


def _rle(masks: np.ndarray) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    if masks.shape[0] == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def coco_ground_truth(scenes: Sequence[Scene]) -> Any:
    """A pycocotools ``COCO`` object for ``scenes``; image ``i`` has id ``i + 1``, categories ``label + 1``."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    images, annotations = [], []
    for i, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        images.append({"id": i + 1, "height": h, "width": w})
        for rle, label, mask in zip(_rle(scene.masks), scene.labels, scene.masks):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                                "segmentation": rle, "area": float(mask.sum()),
                                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_detections(detections: Sequence[Detections]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO result lists (segm, bbox) for per-image detections; image ``i`` has id ``i + 1``."""
    segm, bbox = [], []
    for i, det in enumerate(detections):
        masks = det.masks.numpy()
        boxes = masks_to_boxes(det.masks, format="xywh").tolist() if len(det) else []
        for rle, box, score, label in zip(_rle(masks), boxes, det.scores.tolist(), det.labels.tolist()):
            common = {"image_id": i + 1, "category_id": int(label) + 1, "score": float(score)}
            segm.append({**common, "segmentation": rle})
            bbox.append({**common, "bbox": [float(v) for v in box]})
    return segm, bbox


def coco_ap(gt: Any, results: list[dict[str, Any]], iou_type: str) -> tuple[float, float, float]:
    """(AP, AP50, AP75) of ``results`` against ``gt``; 0 when there are no results."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0, 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 when a metric is undefined (no ground truth): count it as 0
    return tuple(max(0.0, float(v)) for v in ev.stats[:3])


@torch.no_grad()
def run_candidates(model: SOLOv2, scenes: Sequence[Scene], batch_size: int = 16,
                   cfg: PostprocessConfig = PostprocessConfig(),
                   on_batch: Callable[[int], None] | None = None) -> tuple[list[Candidates], list[float]]:
    """The network and post-processing steps 1-3 for every scene.

    Returns:
        (candidates per scene, seconds of steps 1-3 per scene).
    """
    model.eval()
    cands, seconds = [], []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start:start + batch_size]
        outputs = model(images_to_tensor(np.stack([s.image for s in chunk])))
        for b in range(len(chunk)):
            t0 = time.perf_counter()
            cands.append(candidates(outputs, b, model.cfg.strides, cfg))
            seconds.append(time.perf_counter() - t0)
        if on_batch is not None:
            on_batch(len(chunk))
    return cands, seconds


def evaluate_split(split: str, scenes: Sequence[Scene], cands: Sequence[Candidates],
                   cand_seconds: Sequence[float], nms_choices: Iterable[str] = NMS_CHOICES,
                   cfg: PostprocessConfig = PostprocessConfig(), gt: Any = None,
                   on_choice: Callable[[str], None] | None = None, batch_size: int = 1) -> list[NMSResult]:
    """Apply each NMS choice to the shared candidates and score the results with COCOeval.

    ``batch_size`` > 1 runs step 4 for that many images at once (``postprocess.suppress_batch``: one
    ``batched_matrix_nms`` call for the Matrix NMS choices); each image's NMS time is its share of the call.
    """
    gt = coco_ground_truth(scenes) if gt is None else gt
    nms_choices = list(nms_choices)
    # first calls load or compile the NMS kernels (Numba): keep that out of the timings
    busiest = max(cands, key=len, default=None)
    if busiest is not None and len(busiest):
        for nms in nms_choices:
            suppress(busiest, nms, cfg)
            if batch_size > 1:
                suppress_batch([busiest], nms, cfg)
    rows = []
    for nms in nms_choices:
        detections, nms_times, post_times = [], [], []
        batched = suppress_in_batches(cands, nms, cfg, batch_size) if batch_size > 1 else None
        for i, (scene, cand, t_cand) in enumerate(zip(scenes, cands, cand_seconds)):
            t0 = time.perf_counter()
            keep, scores = suppress(cand, nms, cfg) if batched is None else batched[i][:2]
            t1 = time.perf_counter()
            if batched is not None:
                t0 = t1 - batched[i][2]  # this image's share of its batch's call
            det = finalize(cand, keep, scores, tuple(scene.image.shape[:2]), cfg)
            t2 = time.perf_counter()
            det.nms_seconds = t1 - t0
            detections.append(det)
            nms_times.append(t1 - t0)
            post_times.append(t_cand + (t2 - t0))
        segm, bbox = coco_detections(detections)
        mask_ap = coco_ap(gt, segm, "segm")
        box_ap = coco_ap(gt, bbox, "bbox")[0]
        rows.append(NMSResult(split, nms, len(scenes), *mask_ap, box_ap,
                              1e3 * statistics.median(nms_times), 1e3 * statistics.median(post_times), detections))
        if on_choice is not None:
            on_choice(nms)
    return rows


def suppress_in_batches(cands: Sequence[Candidates], nms: str, cfg: PostprocessConfig,
                        batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Step 4 for ``batch_size`` images per call: per image (keep, scores, its share of the call's seconds)."""
    out = []
    for start in range(0, len(cands), batch_size):
        chunk = list(cands[start:start + batch_size])
        t0 = time.perf_counter()
        kept = suppress_batch(chunk, nms, cfg)
        share = (time.perf_counter() - t0) / len(chunk)
        out += [(keep, scores, share) for keep, scores in kept]
    return out


def format_table(rows: Sequence[NMSResult]) -> str:
    """A markdown table of the results (AP in percent, as COCO papers write it)."""
    lines = ["| split | images | NMS | method | mask AP | AP50 | AP75 | box AP | NMS ms | post-proc ms | "
             "paper: AP / NMS time |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        paper = " / ".join(PAPER_TABLE_3C.get(r.nms, ("-",)))
        lines.append(f"| {r.split} | {r.images} | {r.nms} | {METHOD_NAMES.get(r.nms, r.nms)} | "
                     f"{100 * r.mask_ap:.1f} | {100 * r.mask_ap50:.1f} | {100 * r.mask_ap75:.1f} | "
                     f"{100 * r.box_ap:.1f} | {r.nms_ms:.2f} | {r.post_ms:.2f} | {paper} |")
    return "\n".join(lines)


@dataclass
class ScaleResult:
    """NMS time of one choice on paper-sized candidate sets (milliseconds per image, median)."""

    nms: str
    images: int
    candidates: int
    nms_ms: float


def scale_candidates(n: int = 500, height: int = 200, width: int = 336, num_classes: int = 80,
                     seed: int = 0) -> Candidates:
    """Paper-sized candidates from ``matrixnms.scenes.mask_scene``: SOLO-like duplicates, 1/4-scale masks."""
    s = mask_scene(n, height=height, width=width, num_classes=num_classes, seed=seed)
    masks = torch.from_numpy(s.masks)
    # probs are only read by finalize (the upsampling), which this timing does not run: the masks stand in
    return Candidates(masks, masks, masks.flatten(1).sum(1).float(), torch.from_numpy(s.scores),
                      torch.from_numpy(s.labels), torch.zeros(n, dtype=torch.int64), torch.arange(n))


def scale_timings(nms_choices: Iterable[str] = NMS_CHOICES, images: int = 5, n: int = 500, repeats: int = 3,
                  cfg: PostprocessConfig = PostprocessConfig()) -> list[ScaleResult]:
    """Median time of ``suppress`` (the NMS step alone, as in :func:`evaluate_split`) on ``images`` scenes of
    ``n`` candidates (200 x 336, 80 labels), each timed ``repeats`` times after one warm-up call."""
    scenes = [scale_candidates(n, seed=seed) for seed in range(images)]
    rows = []
    for nms in nms_choices:
        suppress(scenes[0], nms, cfg)  # first calls load or compile kernels
        seconds = []
        for cand in scenes:
            for _ in range(repeats):
                t0 = time.perf_counter()
                suppress(cand, nms, cfg)
                seconds.append(time.perf_counter() - t0)
        rows.append(ScaleResult(nms, images, n, 1e3 * statistics.median(seconds)))
    return rows


SCALE_NOTE = ("NMS time at the paper's scale: N = 500 candidates per image (matrixnms.scenes.mask_scene, "
              "200x336 masks = 1/4 of 800x1344, 80 labels), the same suppress() call as above, on this CPU.")


def format_scale_table(rows: Sequence[ScaleResult]) -> str:
    """A markdown table of :func:`scale_timings`, with the paper's NMS times beside."""
    lines = ["| NMS | method | candidates | images | NMS ms / image (median) | paper NMS time |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        paper = PAPER_TABLE_3C.get(r.nms, ("-", "-"))[1]
        lines.append(f"| {r.nms} | {METHOD_NAMES.get(r.nms, r.nms)} | {r.candidates} | {r.images} | "
                     f"{r.nms_ms:.2f} | {paper} |")
    return "\n".join(lines)


def evaluate(model: SOLOv2, splits: dict[str, int], nms_choices: Sequence[str] = NMS_CHOICES,
             seed: int = EVAL_SEED, progress: bool = True, batch_size: int = 1) -> list[NMSResult]:
    """Evaluate ``model`` on the first ``splits[name]`` scenes of each split, for every NMS choice
    (``batch_size``: images per network call, at least 16, and per NMS call, see ``evaluate_split``)."""
    from tqdm import tqdm

    rows: list[NMSResult] = []
    total = sum(splits.values()) + len(nms_choices) * len(splits)
    with tqdm(total=total, desc="evaluate", unit="step", disable=not progress, dynamic_ncols=True) as bar:
        for split, count in splits.items():
            scenes = list(SyntheticScenes(split, count, seed=seed))
            cands, seconds = run_candidates(model, scenes, batch_size=max(16, batch_size), on_batch=bar.update)
            rows += evaluate_split(split, scenes, cands, seconds, nms_choices, on_choice=lambda _: bar.update(1),
                                   batch_size=batch_size)
    return rows


def main(argv: list[str] | None = None) -> int:
    from .train import DEFAULT_CHECKPOINT, load_model

    parser = argparse.ArgumentParser(prog="python -m solov2_ref.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--val", type=int, default=500, help="val scenes (default 500)")
    parser.add_argument("--crowded", type=int, default=300, help="crowded scenes (default 300)")
    parser.add_argument("--nms", nargs="+", choices=NMS_CHOICES, default=list(NMS_CHOICES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale-images", type=int, default=5,
                        help="N = 500 candidate scenes (200x336, 80 labels) to time each NMS on (default 5; 0: skip)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per NMS call (default 1: matrix_nms per image; more: batched_matrix_nms)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.val < 0 or args.crowded < 0 or args.scale_images < 0:
        parser.error(f"--val, --crowded and --scale-images must be >= 0, got {args.val}, {args.crowded} and "
                     f"{args.scale_images}")
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    splits = {k: v for k, v in (("val", args.val), ("crowded", args.crowded)) if v}
    rows = evaluate(model, splits, args.nms, batch_size=args.batch_size)
    print(format_table(rows))
    print(f"\n{args.threads} torch threads; NMS ms = the NMS call alone; post-proc ms = point NMS, candidate masks, "
          "maskness, NMS and upsampling (no network, no COCO encoding); medians per image.")
    if args.scale_images:
        print(f"\n{SCALE_NOTE}\n")
        print(format_scale_table(scale_timings(args.nms, args.scale_images)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
