"""The sweep's engines and rescore's memory (matrixnms.tuning); public API and the CLI only.

    pytest benchmarks/test_bench_sweep.py --benchmark-disable       # smoke: a tiny synthetic file
    SWEEP_BENCH_IMAGES=2000 pytest benchmarks/test_bench_sweep.py -s  # the targets' sizes
    SWEEP_BENCH_CANDIDATES=val.parquet SWEEP_BENCH_ROUNDS=3 pytest benchmarks/test_bench_sweep.py -s -k engines
                                    # a real file (its _gt.json beside it), medians of 3 interleaved rounds

Targets: a 12-variant sweep on Ray takes <= 0.7 x the local engine's time with identical AP tables;
``rescore`` over 20,000 images keeps peak RSS < 1 GiB. The files are synthetic: rows of SOLO-like scenes
(``matrixnms.scenes``-free: random overlapping discs per image), written to a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("pycocotools")

from matrixnms.tuning.candidates import CandidateWriter, encode_masks  # noqa: E402
from matrixnms.tuning.sweep import ap_table, sweep  # noqa: E402
from matrixnms.tuning.variants import grid  # noqa: E402

IMAGES = int(os.environ.get("SWEEP_BENCH_IMAGES", "24"))
RESCORE_IMAGES = int(os.environ.get("RESCORE_BENCH_IMAGES", "200"))
GRID12 = [("matrix", {"kernel": ["gaussian", "linear"], "sigma": [0.1, 0.25, 0.5, 1, 2],
                      "post_threshold": [0.05, 0.1]})]


def synthetic_candidates(path: Path, images: int, size: int = 128, seed: int = 0) -> Path:
    """Candidates like SOLO's: 1-6 objects per image, each predicted 3-8 times with jitter; GT beside it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    gt = {"images": [], "annotations": [], "categories": [{"id": k, "name": str(k)} for k in range(1, 6)]}
    with CandidateWriter(path) as writer:
        for image_id in range(1, images + 1):
            masks, scores, labels = [], [], []
            gt["images"].append({"id": image_id, "height": size, "width": size})
            for _ in range(rng.integers(1, 7)):
                cx, cy, r = rng.uniform(20, size - 20, 2).tolist() + [rng.uniform(8, 24)]
                label = int(rng.integers(1, 6))
                disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
                rle = {"size": [size, size], "counts": encode_masks(disc[None])[0].decode()}
                gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                          "category_id": label, "segmentation": rle, "area": float(disc.sum()),
                                          "bbox": [cx - r, cy - r, 2 * r, 2 * r], "iscrowd": 0})
                for _ in range(rng.integers(3, 9)):
                    dx, dy, dr = rng.normal(0, 2, 3)
                    masks.append((xx - cx - dx) ** 2 + (yy - cy - dy) ** 2 <= (r + dr) ** 2)
                    scores.append(rng.uniform(0.1, 1.0))
                    labels.append(label)
            writer.write(image_id, size, size, scores, labels, encode_masks(np.stack(masks)))
    path.with_name(path.stem + "_gt.json").write_text(json.dumps(gt))
    return path


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """SWEEP_BENCH_CANDIDATES (e.g. ``python -m solov2_ref.candidates --split val --images 2000``), else synthetic."""
    given = os.environ.get("SWEEP_BENCH_CANDIDATES")
    if given:
        return Path(given)
    return synthetic_candidates(tmp_path_factory.mktemp("sweep") / "synthetic.parquet", IMAGES)


def test_sweep_engines(candidates, benchmark):
    """Local vs Ray on one 12-variant grid, SWEEP_BENCH_ROUNDS rounds (default 1) of: the local engine, Ray's
    start-up (a fresh local cluster), the ray engine, shutdown. Wall times, medians over the rounds, ratio
    of the medians with and without the start-up; the AP tables must be identical in every round."""
    pytest.importorskip("ray")
    from matrixnms.tuning.engines import start_ray

    import ray

    gt = candidates.with_name(candidates.stem + "_gt.json")
    variants = grid(GRID12)
    assert len(variants) == 12
    rounds = int(os.environ.get("SWEEP_BENCH_ROUNDS", "1"))
    cpus = int(os.environ.get("SWEEP_BENCH_CPUS", os.cpu_count() or 2))

    def one_round():
        t0 = time.perf_counter()
        local = sweep(candidates, gt, variants, engine="local", progress=False)
        t1 = time.perf_counter()
        try:
            start_ray(num_cpus=cpus)
            t2 = time.perf_counter()
            distributed = sweep(candidates, gt, variants, engine="ray", progress=False)
            t3 = time.perf_counter()
        finally:
            ray.shutdown()
        assert ap_table(local) == ap_table(distributed)
        return t1 - t0, t2 - t1, t3 - t2

    times = benchmark.pedantic(lambda: [one_round() for _ in range(rounds)], rounds=1, iterations=1)
    from matrixnms.tuning.candidates import count_images

    t_local, t_start, t_ray = (float(np.median(column)) for column in zip(*times))
    for i, (a, b, c) in enumerate(times, 1):
        print(f"\nround {i}: local {a:.1f} s, ray {c:.1f} s (+ {b:.1f} s start-up), ratio {c / a:.2f}, "
              f"{(b + c) / a:.2f} with the start-up", end="")
    print(f"\n{count_images(candidates)} images of {candidates.name} x 12 variants, medians of {rounds}: local "
          f"{t_local:.1f} s, ray {t_ray:.1f} s (+ {t_start:.1f} s start-up), ratio {t_ray / t_local:.2f} "
          f"(target <= 0.7), {(t_ray + t_start) / t_local:.2f} with the start-up")


def _peak_rss(code: str) -> float:
    """Peak resident memory (MiB) of a child Python running ``code``."""
    child = ("import resource, sys\n" + code +
             "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def test_rescore_memory(tmp_path, benchmark):
    """``rescore`` in a child process over RESCORE_IMAGES images: peak RSS (target < 1 GiB at 20,000)."""
    path = synthetic_candidates(tmp_path / "many.parquet", RESCORE_IMAGES, seed=1)
    code = (f"from matrixnms.cli import main\n"
            f"assert main(['rescore', {str(path)!r}, '--out', {str(tmp_path / 'r.json')!r}, "
            f"'--engine', 'local', '--no-progress']) == 0")
    peak = benchmark.pedantic(_peak_rss, args=(code,), rounds=1, iterations=1)
    print(f"\nrescore over {RESCORE_IMAGES} images: peak RSS {peak:.0f} MiB (target < 1024 at 20,000)")
    assert peak < 1024
    assert json.loads((tmp_path / "r.json").read_text())
