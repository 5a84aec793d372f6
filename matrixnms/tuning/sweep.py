"""``matrixnms sweep`` and ``matrixnms rescore``: library code behind the two commands (no argparse).

``sweep``: every variant of a grid over every image of a candidate file, each scored with COCO mask AP
(``COCOeval``, ``iouType="segm"``); a table sorted by AP, ``results.md``, ``sweep.json`` (one object per
variant: its options and figures) and ``sweep.png`` (AP against sigma per kernel and post-threshold).
``nms_ms``: the mean over images of one variant's NMS call alone, in the engine's workers.

``rescore``: one variant over every image, streamed to a COCO results JSON (RLE segmentations, xywh boxes,
scores) one image at a time: memory stays bounded by a batch of rows, whatever the file's size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from .engines import accumulate_all, count_images, evaluate_all, iter_rows, rows_of
from .evaluation import FIGURES, add_records
from .variants import Variant, coco_results


def load_gt(path: str | Path) -> dict[str, Any]:
    """A COCO ground-truth JSON as a dict, checked for what COCOeval needs."""
    with open(path) as f:
        dataset = json.load(f)
    missing = [k for k in ("images", "annotations", "categories") if k not in dataset]
    if missing:
        raise ValueError(f"{path}: not a COCO ground truth, it lacks {', '.join(missing)}")
    if any(a.get("id") == 0 for a in dataset["annotations"]):
        raise ValueError(f"{path}: annotation ids must start at 1 (COCOeval treats id 0 as unmatched)")
    return dataset


def sweep(candidates: str | Path, gt: str | Path, variants: Sequence[Variant], *, engine: str = "local",
          evaluator: str = "pycocotools", num_cpus: int | None = None, address: str | None = None,
          cpus_per_worker: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """COCO mask AP of every variant on the candidate file; one dict per variant, sorted by AP (descending).

    Each dict holds ``name``, the variant's options, ``AP``, ``AP50``, ``AP75``, ``AR100`` (in [0, 1]),
    ``nms_ms`` (mean per image), ``images`` and ``seconds`` (wall time of the whole sweep).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    gt_dataset = load_gt(gt)
    variants = list(variants)
    images = count_images(candidates)
    # ray with pycocotools: each image is evaluated in the worker where its NMS ran and only the records come
    # back, to be accumulated per variant (evaluation.accumulate_stats, the same figures); otherwise each
    # variant's detections come back and are evaluated whole (the cheapest way in one process)
    split = engine == "ray" and evaluator == "pycocotools"
    records: list[dict[int, bytes]] = [{} for _ in variants]
    results: list[list[tuple[int, list[dict[str, Any]]]]] = [[] for _ in variants]
    seconds: list[list[float]] = [[] for _ in variants]
    with tqdm(total=images * len(variants), desc=f"sweep ({engine})", unit="image-variant", disable=not progress,
              dynamic_ncols=True) as bar:
        for batch in iter_rows(candidates, variants, engine=engine, num_cpus=num_cpus, address=address,
                               cpus_per_worker=cpus_per_worker, gt=gt_dataset if split else None):
            for row in rows_of(batch):
                v = row["variant"]
                if split:
                    add_records(records[v], row["image_id"], row["records"])
                else:
                    results[v].append((row["image_id"], coco_results(row)))
                seconds[v].append(row["nms_seconds"])
            bar.update(len(batch["variant"]))
    with tqdm(total=len(variants), desc="COCO eval", unit="variant", disable=not progress, dynamic_ncols=True) as bar:
        if split:
            stats = accumulate_all(gt_dataset, records, engine=engine, on_done=lambda _: bar.update(1))
        else:
            # the engines deliver images in any order: put them in image order so both evaluate the same lists
            ordered = [[r for _, image in sorted(per_variant, key=lambda x: x[0]) for r in image]
                       for per_variant in results]
            stats = evaluate_all(gt_dataset, ordered, engine=engine, evaluator=evaluator,
                                 on_done=lambda _: bar.update(1))
    elapsed = time.perf_counter() - start
    rows = []
    for index, (variant, figures, times) in enumerate(zip(variants, stats, seconds)):
        rows.append({"name": variant.name, **variant.options(), **figures,
                     "nms_ms": 1e3 * sum(times) / max(1, len(times)), "images": len(times), "grid_index": index,
                     "engine": engine, "evaluator": evaluator, "seconds": elapsed})
    return sorted(rows, key=lambda r: (-r["AP"], r["grid_index"]))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of sweep rows (AP figures in percent, as COCO papers write them)."""
    lines = ["| rank | variant | AP | AP50 | AP75 | AR100 | NMS ms/image |", "|---:|---|---:|---:|---:|---:|---:|"]
    for rank, r in enumerate(rows, 1):
        lines.append(f"| {rank} | {r['name']} | " + " | ".join(f"{100 * r[k]:.2f}" for k in FIGURES)
                     + f" | {r['nms_ms']:.2f} |")
    return "\n".join(lines)


def ap_table(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(name, AP, AP50, AP75, AR100) per variant in table order: what two engines must agree on exactly."""
    return [(r["name"], *(r[k] for k in FIGURES)) for r in rows]


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """AP against sigma: one line per (gaussian, post-threshold); other variants as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    gaussian = [r for r in rows if r["method"] == "matrix" and r["kernel"] == "gaussian"]
    colours = {}
    for threshold in sorted({r["post_threshold"] for r in gaussian}):
        line = sorted((r["sigma"], 100 * r["AP"]) for r in gaussian if r["post_threshold"] == threshold)
        (handle,) = ax.plot(*zip(*line), marker="o", label=f"gaussian, thr {threshold:g}")
        colours[threshold] = handle.get_color()
    for r in rows:
        if r in gaussian:
            continue
        style = "--" if r["method"] == "matrix" else ":"
        ax.axhline(100 * r["AP"], linestyle=style, color=colours.get(r["post_threshold"], "grey"), linewidth=1,
                   label=r["name"])
    if gaussian:
        ax.set_xscale("log")
        sigmas = sorted({r["sigma"] for r in gaussian})
        ax.set_xticks(sigmas, [f"{s:g}" for s in sigmas])
        ax.axvline(0.5, color="black", linewidth=0.5)
        ax.text(0.5, ax.get_ylim()[0], " paper's sigma 0.5", fontsize=7, va="bottom")
    ax.set_xlabel("sigma (paper's convention; SOLO / mmdetection's sigma = 1 / this)")
    ax.set_ylabel("COCO mask AP (%)")
    ax.set_title(title or "Matrix NMS variants: mask AP")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(rows: Sequence[dict[str, Any]], out: str | Path, candidates: str | Path = "") -> dict[str, Path]:
    """``results.md``, ``sweep.json`` and ``sweep.png`` in ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    best = rows[0]
    engine, images = best["engine"], best["images"]
    header = (f"# NMS sweep: {len(rows)} variants over {images} images of {Path(candidates).name or 'candidates'}\n\n"
              f"COCO mask AP ({best['evaluator']} COCOeval, segm), engine {engine}, {best['seconds']:.1f} s. "
              f"NMS ms = mean per image of the NMS call alone.\n\n")
    paths = {"results.md": out / "results.md", "sweep.json": out / "sweep.json", "sweep.png": out / "sweep.png"}
    paths["results.md"].write_text(header + format_table(rows) + f"\n\nBest: **{best['name']}** "
                                   f"(AP {100 * best['AP']:.2f}).\n")
    paths["sweep.json"].write_text(json.dumps(list(rows), indent=1))
    plot(rows, paths["sweep.png"], f"{len(rows)} variants, {images} images")
    return paths


def rescore(candidates: str | Path, variant: Variant, out: str | Path, *, engine: str = "local",
            num_cpus: int | None = None, address: str | None = None, cpus_per_worker: int = 1,
            progress: bool = True) -> int:
    """Apply ``variant`` to every image and stream the COCO results to ``out``; returns the detections written."""
    from tqdm import tqdm

    written = 0
    with open(out, "w") as f, tqdm(total=count_images(candidates), desc=f"rescore ({engine})", unit="image",
                                    disable=not progress, dynamic_ncols=True) as bar:
        f.write("[")
        for batch in iter_rows(candidates, [variant], engine=engine, boxes=True, num_cpus=num_cpus,
                               address=address, cpus_per_worker=cpus_per_worker):
            for row in rows_of(batch):
                for result in coco_results(row, text=True):
                    f.write(("\n" if written == 0 else ",\n") + json.dumps(result))
                    written += 1
            bar.update(len(batch["variant"]))
        f.write("\n]\n")
    return written


def compare_engines(candidates: str | Path, gt: str | Path, variants: Sequence[Variant], **options: Any) -> dict[str, Any]:
    """Run the sweep with the local and the ray engines in one process: times, ratio and whether the AP
    tables are identical. Ray's start-up is timed apart from its sweep."""
    from .engines import start_ray

    local = sweep(candidates, gt, variants, engine="local", progress=options.get("progress", True),
                  evaluator=options.get("evaluator", "pycocotools"))
    t0 = time.perf_counter()
    start_ray(options.get("num_cpus"), options.get("address"))
    startup = time.perf_counter() - t0
    distributed = sweep(candidates, gt, variants, engine="ray", **options)
    return {"local_seconds": local[0]["seconds"], "ray_seconds": distributed[0]["seconds"],
            "ray_startup_seconds": startup, "ratio": distributed[0]["seconds"] / local[0]["seconds"],
            "identical": ap_table(local) == ap_table(distributed), "local": local, "ray": distributed}
