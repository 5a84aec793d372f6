"""Deployable SOLOv2: the network and its whole post-processing as one static-shape graph, exported to ONNX.

    python -m solov2_ref.deploy --out solov2_synth.onnx --verify 100
    matrixnms demo --onnx solov2_synth.onnx

``SOLOv2Deploy`` wraps a trained ``SOLOv2`` and computes what ``postprocess.postprocess(..., nms=
"matrix-gaussian")`` computes, with every shape fixed by the image size and the model's configuration, so
that ``torch.onnx.export`` captures it as one graph (``matrixnms.export.export_onnx``):

1. category and kernel heads, unified mask features (the network, unchanged);
2. point NMS on the category probabilities; **every** (level, class, cell) is a candidate row, in the
   order the eager ``candidates`` walks them (level, then class, then cell), and ``valid`` marks the rows
   that eager code would keep (``score > score_thr`` and mask area ``> stride``) instead of removing the rest;
3. masks come from the dynamic convolution of each *cell* once (a mask does not depend on the class), then
   are shared by the cell's class rows; maskness re-scoring as in eager code;
4. ``matrixnms.export.MatrixNMS`` (class-aware gaussian, sigma 0.5, ``nms_pre`` 500, ``decayed >=
   update_thr``, ``max_per_img`` 100) on those rows, with ``valid``;
5. the kept rows' probabilities are upsampled (bilinear) to the input size and thresholded at ``mask_thr``.

Because the candidate rows keep the eager order and Matrix NMS breaks ties by the lower row, the graph
selects the same instances in the same order as eager code: the first ``num_detections`` rows of its outputs
are the eager ``Detections`` (up to float rounding of another runtime). Rows after them are padding: empty
masks, score 0, label -1.

Graph input: ``image`` uint8 (H, W, 3) RGB, H and W multiples of 32 (fixed at export). Outputs: ``masks`` bool
(P, H, W), ``scores`` float32 (P,), ``labels`` int64 (P,), ``num_detections`` int64 (), ``num_candidates``
int64 () (the valid candidates before the NMS, for diagnostics); P = ``max_per_img``.

Candidate rows: the reference model has 5 classes and 16² + 12² + 8² = 464 cells, so 2,320 rows of 32 x 32
masks (a COCO-sized SOLOv2: 80 classes x 3,872 cells = 309,760). Ranking every row costs O(rows²) in the
static Matrix NMS, so the graph first keeps the ``max_candidates`` (M, default ``nms_pre`` = 500) best
*valid* rows with ONNX ``TopK`` and puts them back in eager order. Eager code decays the ``nms_pre`` best
valid candidates, which are among them, so the result is the same unless more than M rows are valid *and*
two of them tie exactly at the M-th place (TopK may then pick either). ``num_candidates`` says how many
rows were valid; ``tests/test_deploy.py`` checks it stays within M on the val and crowded scenes it runs, so
the cap is exact there. ``max_candidates=None`` ranks every row: exact in all cases, at the O(rows²) cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matrixnms.export import MatrixNMS, export_onnx, installed_runtimes, onnx_runner

from .losses import dynamic_masks
from .model import SOLOv2, images_to_tensor
from .postprocess import Detections, PostprocessConfig, point_nms, postprocess

INPUT_NAMES = ("image",)
OUTPUT_NAMES = ("masks", "scores", "labels", "num_detections", "num_candidates")
DEPLOY_CHOICES = ("matrix-gaussian", "matrix-linear")
# the agreement required of the exported graph against eager PyTorch (Agreement.ok, tests/test_deploy.py)
MIN_MASK_IOU = 0.99
MAX_SCORE_DIFF = 1e-4
DEFAULT_MAX_CANDIDATES = PostprocessConfig().nms_pre


class SOLOv2Deploy(nn.Module):
    """A SOLOv2 and its post-processing with Matrix NMS, static shapes: one image in, fixed-size rows out.

    Args:
        model: a trained ``SOLOv2`` (put in eval mode).
        cfg: thresholds, as for ``postprocess.postprocess``.
        nms: ``"matrix-gaussian"`` (SOLOv2's) or ``"matrix-linear"``.
        max_candidates: keep the M best valid candidate rows before the NMS (see the module docstring); default
            ``cfg.nms_pre``; None ranks every row.
    """

    def __init__(self, model: SOLOv2, cfg: PostprocessConfig = PostprocessConfig(),
                 nms: str = "matrix-gaussian", max_candidates: Optional[int] = DEFAULT_MAX_CANDIDATES) -> None:
        super().__init__()
        if nms not in DEPLOY_CHOICES:
            raise ValueError(f"nms must be one of {DEPLOY_CHOICES} (greedy NMS has no static form), got {nms!r}")
        if max_candidates is not None and (not isinstance(max_candidates, int) or max_candidates < 1):
            raise ValueError(f"max_candidates must be an int >= 1 or None, got {max_candidates!r}")
        self.model = model.eval()
        self.cfg = cfg
        self.nms_choice = nms
        self.nms = MatrixNMS(kernel=nms.removeprefix("matrix-"), sigma=cfg.sigma, pre_top_k=cfg.nms_pre,
                             post_threshold=cfg.update_thr, post_top_k=cfg.max_per_img)
        # row r of the candidates is (level, class, cell) in eager order; these say which cell, class and
        # minimum mask area each row has (constants of the model's configuration)
        cells, labels, min_area, first_cell = [], [], [], 0
        num_classes = model.cfg.num_classes
        for grid, stride in zip(model.cfg.num_grids, model.cfg.strides):
            count = grid * grid
            cells.append((first_cell + torch.arange(count)).repeat(num_classes))
            labels.append(torch.arange(num_classes).repeat_interleave(count))
            min_area.append(torch.full((num_classes * count,), float(stride)))
            first_cell += count
        self.register_buffer("row_cell", torch.cat(cells), persistent=False)
        self.register_buffer("row_label", torch.cat(labels), persistent=False)
        self.register_buffer("row_min_area", torch.cat(min_area), persistent=False)
        rows = int(self.row_cell.shape[0])
        self.max_candidates = rows if max_candidates is None else min(max_candidates, rows)

    @property
    def num_rows(self) -> int:
        """Candidate rows per image: classes x cells over all grid levels."""
        return int(self.row_cell.shape[0])

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Args: image (Tensor[H, W, 3], uint8 RGB). Returns masks, scores, labels, num_detections,
        num_candidates (see the module docstring)."""
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != torch.uint8:
            raise ValueError(f"image must be uint8 with shape (H, W, 3), got {image.dtype} {tuple(image.shape)}")
        height, width = image.shape[0], image.shape[1]
        outputs = self.model(images_to_tensor(image))
        cfg = self.cfg

        # steps 1-2: point NMS; every (level, class, cell) in eager order
        category = torch.cat([point_nms(torch.sigmoid(p[:1].float()))[0].reshape(-1) for p in outputs.cls_preds])
        kernels = torch.cat([k[0].float().reshape(k.shape[1], -1).t() for k in outputs.kernel_preds])

        # step 3: one mask per cell; its class rows share it
        cell_probs = torch.sigmoid(dynamic_masks(kernels, outputs.mask_feats[0].float()))
        cell_masks = cell_probs > cfg.mask_thr
        cell_areas = cell_masks.flatten(1).sum(1).float()
        inside = (cell_probs * cell_masks).flatten(1).sum(1)
        maskness = torch.where(cell_areas > 0, inside / cell_areas.clamp(min=1), torch.zeros_like(inside))

        row_cell, row_label = self.row_cell, self.row_label
        valid = (category > cfg.score_thr) & (cell_areas.index_select(0, row_cell) > self.row_min_area)
        scores = category * maskness.index_select(0, row_cell)
        num_candidates = valid.sum()
        if self.max_candidates < self.num_rows:
            # the M best valid rows, back in eager order (ascending row): ties still resolve as eager code does
            ranked = torch.where(valid, scores, torch.full_like(scores, -1.0))
            picked = torch.sort(torch.topk(ranked, self.max_candidates, sorted=False).indices).values
            row_cell, row_label = row_cell.index_select(0, picked), row_label.index_select(0, picked)
            valid, scores = valid.index_select(0, picked), scores.index_select(0, picked)

        # step 4: Matrix NMS on the rows
        keep, decayed, num_detections = self.nms(scores, cell_masks.index_select(0, row_cell), labels=row_label,
                                                 valid=valid)

        # step 5: upsample the kept probabilities; padding rows get empty masks and label -1
        rows = keep.clamp(min=0)
        present = torch.arange(keep.shape[0], device=keep.device) < num_detections
        probs = cell_probs.index_select(0, row_cell.index_select(0, rows))
        probs = F.interpolate(probs[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        masks = (probs > cfg.mask_thr) & present[:, None, None]
        labels = torch.where(present, row_label.index_select(0, rows), torch.full_like(rows, -1))
        return masks, decayed, labels, num_detections, num_candidates


def export(model: SOLOv2, path: str | Path, image_size: tuple[int, int] = (128, 128),
           cfg: PostprocessConfig = PostprocessConfig(), nms: str = "matrix-gaussian",
           max_candidates: Optional[int] = DEFAULT_MAX_CANDIDATES) -> Path:
    """Write ``SOLOv2Deploy(model, cfg, nms, max_candidates)`` for ``image_size`` (H, W) images to one ONNX
    file (opset 18, weights inside). Needs ``onnx`` and ``onnxscript``."""
    height, width = image_size
    if height % 32 or width % 32 or height < 32 or width < 32:
        raise ValueError(f"image_size must be positive multiples of 32, got {tuple(image_size)}")
    deploy = SOLOv2Deploy(model, cfg, nms, max_candidates)
    example = torch.zeros((height, width, 3), dtype=torch.uint8)
    return export_onnx(deploy, (example,), path, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES)


class OnnxSOLOv2:
    """An exported ``SOLOv2Deploy`` in onnxruntime or OpenVINO (CPU): one image in, ``Detections`` out.

    Args:
        path: the .onnx file.
        threads: intra-op threads (0: the runtime's default).
        runtime: ``"onnxruntime"`` or ``"openvino"`` (``matrixnms.export.RUNTIMES``).
        precision: OpenVINO's ``INFERENCE_PRECISION_HINT`` (None: the plugin's default).
    """

    def __init__(self, path: str | Path, threads: int = 0, runtime: str = "onnxruntime",
                 precision: Optional[str] = None) -> None:
        import onnx

        self.runtime = runtime
        self.name = runtime if precision is None else f"{runtime} ({precision})"
        self._run = onnx_runner(path, runtime, precision=precision, threads=threads)
        shape = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape
        self.image_size = (int(shape.dim[0].dim_value), int(shape.dim[1].dim_value))

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's raw outputs (every row, padding included) for one uint8 (H, W, 3) image."""
        if image.shape != (*self.image_size, 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 with shape {(*self.image_size, 3)} (the exported size), "
                             f"got {image.dtype} {image.shape}")
        out = self._run({"image": image})
        return {name: out[name] for name in OUTPUT_NAMES}

    def __call__(self, image: np.ndarray) -> Detections:
        """Detections of one uint8 (H, W, 3) image: the graph's first ``num_detections`` rows."""
        out = self.run(image)
        count = int(out["num_detections"])
        return Detections(torch.from_numpy(out["masks"][:count]), torch.from_numpy(out["scores"][:count]),
                          torch.from_numpy(out["labels"][:count]))


@torch.no_grad()
def eager_detections(model: SOLOv2, image: np.ndarray, nms: str = "matrix-gaussian",
                     cfg: PostprocessConfig = PostprocessConfig()) -> Detections:
    """The reference: ``postprocess.postprocess`` on the PyTorch model's outputs for one image."""
    return postprocess(model(images_to_tensor(image)), model.cfg.strides, tuple(image.shape[:2]), nms, cfg)[0]


@dataclass
class Agreement:
    """How far a deployed model's detections are from eager PyTorch's on a set of images.

    Attributes:
        images: images compared.
        detections: eager detections in all (the deployed ones must match them one to one, in order).
        count_mismatches: images whose number of detections differs.
        label_mismatches: detections whose class differs.
        min_mask_iou: the smallest IoU of a detection's mask with its counterpart (1.0 without detections).
        max_score_diff: the largest absolute score difference.
    """

    images: int = 0
    detections: int = 0
    count_mismatches: int = 0
    label_mismatches: int = 0
    min_mask_iou: float = 1.0
    max_score_diff: float = 0.0

    def add(self, eager: Detections, deployed: Detections) -> None:
        self.images += 1
        self.detections += len(eager)
        if len(eager) != len(deployed):
            self.count_mismatches += 1
            return
        self.label_mismatches += int((eager.labels != deployed.labels).sum())
        if len(eager):
            a, b = eager.masks.flatten(1), deployed.masks.flatten(1)
            inter = (a & b).sum(1).double()
            union = (a | b).sum(1).double()
            # two empty masks agree perfectly
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            self.min_mask_iou = min(self.min_mask_iou, float(iou.min()))
            self.max_score_diff = max(self.max_score_diff, float((eager.scores - deployed.scores).abs().max()))

    @property
    def ok(self) -> bool:
        """True when the graph agrees: same instances, mask IoU >= MIN_MASK_IOU, scores within MAX_SCORE_DIFF."""
        return (self.count_mismatches == 0 and self.label_mismatches == 0 and self.min_mask_iou >= MIN_MASK_IOU
                and self.max_score_diff <= MAX_SCORE_DIFF)

    def __str__(self) -> str:
        return (f"{self.images} images, {self.detections} detections: {self.count_mismatches} count and "
                f"{self.label_mismatches} label mismatches, min mask IoU {self.min_mask_iou:.4f} "
                f"(>= {MIN_MASK_IOU}), max |score diff| {self.max_score_diff:.2e} (<= {MAX_SCORE_DIFF:g})")


def verify(model: SOLOv2, runtime: OnnxSOLOv2, images: Sequence[np.ndarray], nms: str = "matrix-gaussian",
           cfg: PostprocessConfig = PostprocessConfig(), progress: bool = False,
           detections: Optional[dict] = None) -> tuple[Agreement, dict[str, float]]:
    """Compare ``runtime`` with eager PyTorch on ``images``; returns the agreement and the median ms per image
    of each (``runtime.name``, e.g. ``"onnxruntime"``: the whole graph; ``"pytorch"``: network +
    ``postprocess``, batch 1). ``detections``, when given, receives both sides' ``Detections`` per image.

    Each side runs over all images on its own, after one warm-up call, so neither's threads slow the other.
    """
    from tqdm import tqdm

    images = list(images)
    results: dict[str, list[Detections]] = {}
    times: dict[str, float] = {}
    runners = {"pytorch": lambda image: eager_detections(model, image, nms, cfg), runtime.name: runtime}
    with tqdm(total=2 * len(images), desc="verify", unit="image", disable=not progress, dynamic_ncols=True) as bar:
        for name, run in runners.items():
            if images:
                run(images[0])
            seconds, results[name] = [], []
            for image in images:
                start = time.perf_counter()
                results[name].append(run(image))
                seconds.append(time.perf_counter() - start)
                bar.update(1)
            times[name] = 1e3 * statistics.median(seconds) if seconds else float("nan")
    agreement = Agreement()
    for eager, deployed in zip(results["pytorch"], results[runtime.name]):
        agreement.add(eager, deployed)
    if detections is not None:
        detections.update(results)
    return agreement, times


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .data import IMAGE_SIZE, SyntheticScenes
    from .evaluate import EVAL_SEED
    from .train import DEFAULT_CHECKPOINT, load_model

    parser = argparse.ArgumentParser(
        prog="python -m solov2_ref.deploy",
        description="Export the SOLOv2 reference model with its post-processing (point NMS, dynamic masks, "
                    "maskness, Matrix NMS, upsampling) to one ONNX file and check it against PyTorch.")
    parser.add_argument("--out", type=Path, default=Path("solov2_synth.onnx"), help="ONNX file to write")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--nms", choices=DEPLOY_CHOICES, default="matrix-gaussian")
    parser.add_argument("--max-candidates", type=int, default=DEFAULT_MAX_CANDIDATES,
                        help=f"valid candidates kept before the NMS (default {DEFAULT_MAX_CANDIDATES} = nms_pre; "
                             "0: every row)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="compare onnxruntime and (when installed) OpenVINO with PyTorch on the first N val "
                             "and N crowded scenes: detections and COCO mask AP (exit 1 on disagreement)")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.verify < 0 or args.threads < 1 or args.max_candidates < 0:
        parser.error(f"--verify and --max-candidates must be >= 0 and --threads >= 1, got {args.verify}, "
                     f"{args.max_candidates} and {args.threads}")
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint not found: {args.checkpoint}")
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    start = time.perf_counter()
    try:
        path = export(model, args.out, (IMAGE_SIZE, IMAGE_SIZE), nms=args.nms,
                      max_candidates=args.max_candidates or None)
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - start:.0f} s: "
          f"input image uint8 ({IMAGE_SIZE}, {IMAGE_SIZE}, 3); outputs {', '.join(OUTPUT_NAMES)}")
    if args.verify:
        from .evaluate import coco_ap, coco_detections, coco_ground_truth

        failed = False
        for split in ("val", "crowded"):
            scenes = list(SyntheticScenes(split, args.verify, seed=EVAL_SEED))
            gt = coco_ground_truth(scenes)
            for name in installed_runtimes():
                runtime = OnnxSOLOv2(path, threads=args.threads, runtime=name)
                found: dict = {}
                agreement, ms = verify(model, runtime, [s.image for s in scenes], args.nms,
                                       progress=not args.no_progress, detections=found)
                ap = {side: coco_ap(gt, coco_detections(found[side])[0], "segm")[0]
                      for side in ("pytorch", runtime.name)}
                same_ap = ap["pytorch"] == ap[runtime.name]
                print(f"{split}: {runtime.name} vs PyTorch: {agreement}; mask AP {100 * ap[runtime.name]:.2f} vs "
                      f"{100 * ap['pytorch']:.2f} ({'equal' if same_ap else 'DIFFERENT'})")
                print(f"{split}: median per image, network + post-processing, batch 1, {args.threads} threads: "
                      f"{runtime.name} {ms[runtime.name]:.2f} ms, PyTorch eager {ms['pytorch']:.2f} ms")
                failed |= not (agreement.ok and same_ap)
        if failed:
            print("verification FAILED", file=sys.stderr)
            return 1
        print("verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
