"""``matrixnms demo``: the shipped SOLOv2 checkpoint with every NMS choice, on val and crowded scenes.

Loads ``solov2_ref/checkpoints/solov2_synth.pt``, runs the network once per scene, applies each NMS choice
(``matrix-gaussian``, ``matrix-linear``, ``greedy``, ``soft``, ``fast``, ``cluster``, ``none``) to the same
candidates, prints the COCO mask AP / box AP / time table (every row of the paper's Table 3(c): Hard-NMS,
Soft-NMS, Fast NMS, Matrix NMS, plus Cluster-NMS and no NMS, with the paper's figures beside), then the NMS
time of each choice on paper-sized candidate sets (N = 500 masks of 200 x 336, ``evaluate.scale_timings``),
and writes into the output folder:

- ``overlays_val.png``, ``overlays_crowded.png``: image | ground truth | Matrix NMS | greedy NMS, for the
  three scenes of each split where the two NMS results differ most;
- ``overview.png``: the scene of each split where they differ most, smaller (the picture in the README);
- ``mask_features.png``: the E channels of the unified mask feature of one scene (appendix, Figure 3);
- ``results.md``: the tables.

With ``--onnx FILE`` (written by ``python -m solov2_ref.deploy``) the demo runs from the ONNX file instead:
onnxruntime computes the network and the whole post-processing with Matrix NMS; the table has one row per
split (COCO AP, milliseconds per image for the whole graph) and the overlays show image | ground truth |
Matrix NMS (ONNX).

Usage: ``matrixnms demo [--out DIR] [--val N] [--crowded N] [--onnx FILE]`` or ``python -m solov2_ref.demo``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .data import SyntheticScenes
from .evaluate import (
    EVAL_SEED, SCALE_NOTE, coco_ap, coco_detections, coco_ground_truth, evaluate_split, format_scale_table,
    format_table, run_candidates, scale_timings,
)
from .model import images_to_tensor
from .postprocess import NMS_CHOICES
from .train import DEFAULT_CHECKPOINT, load_model, portable_command
from .viz import save_feature_grid, save_overlays

DEFAULT_OUT = Path("matrixnms-demo")
SCORE_MIN = 0.3  # overlays draw detections with at least this score
_TIME_NOTE = ("NMS ms: the NMS call alone; post-proc ms: point NMS, candidate masks (dynamic conv), maskness, "
              "NMS and upsampling to the input size; medians per image, no network, no COCO encoding.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matrixnms demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="model checkpoint")
    parser.add_argument("--val", type=int, default=120, help="val scenes to evaluate (default 120)")
    parser.add_argument("--crowded", type=int, default=80, help="crowded scenes to evaluate (default 80)")
    parser.add_argument("--threads", type=int, default=2, help="torch (or onnxruntime) CPU threads (default 2)")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="run from this ONNX file (python -m solov2_ref.deploy) with onnxruntime instead")
    parser.add_argument("--scale-images", type=int, default=2,
                        help="N = 500 candidate scenes to time each NMS on (default 2; 0: skip)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per NMS call (default 1: matrix_nms per image; more: batched_matrix_nms)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 on success)."""
    from tqdm import tqdm

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.val < 1 or args.crowded < 1 or args.threads < 1:
        parser.error(f"--val, --crowded and --threads must be >= 1, got {args.val}, {args.crowded}, {args.threads}")
    if args.scale_images < 0:
        parser.error(f"--scale-images must be >= 0, got {args.scale_images}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.onnx is not None:
        if not args.onnx.is_file():
            parser.error(f"ONNX file not found: {args.onnx} (write it with python -m solov2_ref.deploy)")
        return _onnx_demo(args)
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint not found: {args.checkpoint}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = load_model(args.checkpoint)
    splits = {"val": args.val, "crowded": args.crowded}
    figures = 4 + bool(args.scale_images)
    total = sum(splits.values()) + len(NMS_CHOICES) * len(splits) + figures
    rows, written = [], []
    overview: dict[str, tuple] = {}  # split -> (scene, {column title: detections}) of its best row
    with tqdm(total=total, desc="demo", unit="step", disable=args.no_progress, dynamic_ncols=True) as bar:
        for split, count in splits.items():
            bar.set_postfix_str(f"{split}: network")
            scenes = list(SyntheticScenes(split, count, seed=EVAL_SEED))
            cands, seconds = run_candidates(model, scenes, on_batch=bar.update)
            bar.set_postfix_str(f"{split}: NMS + COCOeval")
            split_rows = evaluate_split(split, scenes, cands, seconds, NMS_CHOICES, gt=coco_ground_truth(scenes),
                                        batch_size=args.batch_size,
                                        on_choice=lambda _: bar.update(1))
            rows += split_rows
            by_nms = {r.nms: r.detections for r in split_rows}
            columns = {"Matrix NMS": by_nms["matrix-gaussian"], "greedy NMS": by_nms["greedy"]}
            # instructive scenes: the drawn results (score >= SCORE_MIN) differ most, then the kept ones
            differences = [10 * abs(int((a.scores >= SCORE_MIN).sum()) - int((b.scores >= SCORE_MIN).sum()))
                           + abs(len(a) - len(b)) / 100 for a, b in zip(*columns.values())]
            picks = sorted(np.argsort(differences, kind="stable")[::-1][:3].tolist())
            written.append(save_overlays(args.out / f"overlays_{split}.png", scenes, columns, picks, SCORE_MIN))
            best = int(np.argmax(differences))
            overview[split] = (scenes[best], {k: v[best] for k, v in columns.items()})
            bar.update(1)
        titles = list(overview["val"][1])
        written.append(save_overlays(args.out / "overview.png", [v[0] for v in overview.values()],
                                     {t: [v[1][t] for v in overview.values()] for t in titles},
                                     range(len(overview)), SCORE_MIN, dpi=80))
        bar.update(1)
        scene = SyntheticScenes("val", 1, seed=EVAL_SEED)[0]
        with torch.no_grad():
            feats = model(images_to_tensor(scene.image)).mask_feats[0]
        written.append(save_feature_grid(args.out / "mask_features.png", scene.image, feats))
        bar.update(1)
        scale = ""
        if args.scale_images:
            bar.set_postfix_str("N = 500 timings")
            scale = f"\n\n{SCALE_NOTE}\n\n{format_scale_table(scale_timings(NMS_CHOICES, args.scale_images))}"
            bar.update(1)

    table = format_table(rows) + scale
    meta = getattr(model, "meta", {})
    command = portable_command(meta["command"]) if "command" in meta else "?"
    header = (f"SOLOv2 reference model ({args.checkpoint.name}, trained with `{command}`), "
              f"{args.val} val + {args.crowded} crowded scenes, {args.threads} threads")
    _report(args.out / "results.md", header, table, _TIME_NOTE, written, start)
    return 0


def _onnx_demo(args: argparse.Namespace) -> int:
    """The demo from an exported SOLOv2 + post-processing graph, in onnxruntime."""
    from tqdm import tqdm

    from .deploy import OnnxSOLOv2

    start = time.perf_counter()
    runtime = OnnxSOLOv2(args.onnx, threads=args.threads)
    splits = {"val": args.val, "crowded": args.crowded}
    lines = ["| split | images | model | mask AP | AP50 | AP75 | box AP | ms / image |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    written = []
    with tqdm(total=sum(splits.values()) + len(splits), desc="demo (onnx)", unit="step", disable=args.no_progress,
              dynamic_ncols=True) as bar:
        for split, count in splits.items():
            scenes = list(SyntheticScenes(split, count, seed=EVAL_SEED))
            detections, seconds = [], []
            runtime(scenes[0].image)  # warm-up
            for scene in scenes:
                t0 = time.perf_counter()
                detections.append(runtime(scene.image))
                seconds.append(time.perf_counter() - t0)
                bar.update(1)
            segm, bbox = coco_detections(detections)
            gt = coco_ground_truth(scenes)
            mask_ap, box_ap = coco_ap(gt, segm, "segm"), coco_ap(gt, bbox, "bbox")[0]
            ms = 1e3 * statistics.median(seconds)
            lines.append(f"| {split} | {count} | {args.onnx.name} (onnxruntime) | {100 * mask_ap[0]:.1f} | "
                         f"{100 * mask_ap[1]:.1f} | {100 * mask_ap[2]:.1f} | {100 * box_ap:.1f} | {ms:.2f} |")
            # the scenes with the most confident detections drawn
            picks = sorted(np.argsort([-int((d.scores >= SCORE_MIN).sum()) for d in detections],
                                      kind="stable")[:3].tolist())
            written.append(save_overlays(args.out / f"overlays_{split}_onnx.png", scenes,
                                         {"Matrix NMS (ONNX)": detections}, picks, SCORE_MIN))
            bar.update(1)
    table = "\n".join(lines)
    header = (f"SOLOv2 reference model from {args.onnx} in onnxruntime (network and post-processing with Matrix "
              f"NMS in one graph), {args.val} val + {args.crowded} crowded scenes, {args.threads} threads")
    note = "ms / image: the whole graph (network, point NMS, masks, Matrix NMS, upsampling), median, batch 1."
    _report(args.out / "results_onnx.md", header, table, note, written, start)
    return 0


def _report(path: Path, header: str, table: str, note: str, written: list[Path], start: float) -> None:
    """Write the results file and print it, with the files written and the elapsed time."""
    path.write_text(f"{header}\n\n{table}\n\n{note}\n")
    written.append(path)
    print(header)
    print(table)
    print(note)
    print("wrote " + ", ".join(str(p) for p in written) + f" in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
