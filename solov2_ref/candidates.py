"""The reference model's pre-NMS candidates as a ``matrixnms`` candidate file, with COCO ground truth.

    python -m solov2_ref.candidates --split val --images 500 --out val.parquet   # + val_gt.json beside it

Each row holds exactly what ``postprocess.suppress`` receives from steps 1-3 (``postprocess.candidates``),
in the same order: the scores (category score x maskness, float32), the labels (as COCO category ids,
``label + 1``) and the binary 1/4-scale masks the NMS sees (``masks`` at ``mask_height`` x ``mask_width``).
Step 5 upsamples the probabilities of the kept candidates to the input size; that cannot be recovered from
binary masks, so every candidate's final mask is stored too (``result_masks``, the bilinear upsampling of its
probabilities thresholded at ``mask_thr``, at ``height`` x ``width``), with its xywh box (``boxes``).
Applying an NMS variant to the file and reporting the kept ``result_masks`` therefore gives exactly the
detections, and the COCO mask AP, of ``solov2_ref.evaluate`` on the same images (image ``i`` has id ``i + 1``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from matrixnms import masks_to_boxes
from matrixnms.tuning.candidates import CandidateWriter, encode_masks

from .data import SPLITS, Scene, SyntheticScenes
from .evaluate import EVAL_SEED, coco_ground_truth, run_candidates
from .postprocess import Candidates, PostprocessConfig


def result_masks(cands: Candidates, image_size: tuple[int, int], cfg: PostprocessConfig = PostprocessConfig()) -> torch.Tensor:
    """Step 5 (``postprocess.finalize``) for every candidate: (K, H, W) bool masks at the input size."""
    if not len(cands):
        return torch.zeros((0, *image_size), dtype=torch.bool)
    probs = F.interpolate(cands.probs[None], size=image_size, mode="bilinear", align_corners=False)[0]
    return probs > cfg.mask_thr


def ground_truth_json(scenes: Sequence[Scene]) -> dict[str, Any]:
    """The COCO ground truth of ``coco_ground_truth(scenes)`` as a JSON-ready dict (RLE counts as str)."""
    dataset = coco_ground_truth(scenes).dataset
    annotations = [{**a, "segmentation": {**a["segmentation"], "counts": a["segmentation"]["counts"].decode("ascii")}}
                   for a in dataset["annotations"]]
    return {**dataset, "annotations": annotations}


def write_candidates(model: Any, scenes: Sequence[Scene], out: str | Path, gt_out: str | Path | None = None,
                     cfg: PostprocessConfig = PostprocessConfig(), batch_size: int = 16, progress: bool = False,
                     cands: Sequence[Candidates] | None = None) -> Path:
    """Run the network and steps 1-3 on ``scenes`` and write their candidates to ``out`` (and the ground truth
    to ``gt_out``, default ``<out stem>_gt.json``); image ``i`` gets id ``i + 1``. Returns the GT path.

    ``cands``: the scenes' candidates already computed (``evaluate.run_candidates``); the model is not run."""
    from tqdm import tqdm

    out = Path(out)
    gt_out = Path(gt_out) if gt_out is not None else out.with_name(out.stem + "_gt.json")
    with CandidateWriter(out) as writer, tqdm(total=len(scenes), desc="candidates", unit="image",
                                              disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start:start + batch_size]
            chunk_cands = (run_candidates(model, chunk, batch_size=batch_size, cfg=cfg)[0] if cands is None
                           else cands[start:start + batch_size])
            for offset, (scene, cand) in enumerate(zip(chunk, chunk_cands)):
                size = tuple(scene.image.shape[:2])
                final = result_masks(cand, size, cfg)
                boxes = masks_to_boxes(final, format="xywh").numpy() if len(cand) else np.zeros((0, 4), np.float32)
                writer.write(start + offset + 1, size[0], size[1], cand.scores.numpy(), cand.labels.numpy() + 1,
                             encode_masks(cand.masks.numpy()), mask_size=tuple(cand.masks.shape[1:]),
                             result_masks=encode_masks(final.numpy()), boxes=boxes)
            bar.update(len(chunk))
    gt_out.write_text(json.dumps(ground_truth_json(scenes)))
    return gt_out


def main(argv: list[str] | None = None) -> int:
    from .train import DEFAULT_CHECKPOINT, load_model

    parser = argparse.ArgumentParser(prog="python -m solov2_ref.candidates", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--split", choices=[s for s in SPLITS if s != "train"], default="val")
    parser.add_argument("--images", type=int, default=500, help="scenes of the split (default 500)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--out", type=Path, required=True, help="the candidate file (.parquet)")
    parser.add_argument("--gt", type=Path, default=None, help="ground-truth JSON (default <out stem>_gt.json)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images must be >= 1, got {args.images}")
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    scenes = list(SyntheticScenes(args.split, args.images, seed=args.seed))
    gt = write_candidates(model, scenes, args.out, args.gt, progress=True)
    print(f"wrote {args.out} ({args.images} images) and {gt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
