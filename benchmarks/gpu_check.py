"""The GPU part of benchmarks/gpu_check.sh: the CUDA path under torch's sync check, then GPU timings.

``python benchmarks/gpu_check.py OUT_DIR`` (run by gpu_check.sh where a GPU exists) does:
1. the registered Torch CUDA kernels (mask_decay, mask_iou, mask_iou_sorted) inside
   ``torch.cuda.set_sync_debug_mode("error")``: any host synchronisation in them raises;
2. ``matrix_nms`` on every GPU place (torch-cuda-torch, torch-cuda-generic, cupy-cupy, cupy-generic, those
   installed) for N = 100, 500, 1000, 2000 masks of 200 x 336 (``matrixnms.scenes.mask_scene``), checked
   against the NumPy path (same keep, decayed within 1e-5) and timed (median of synchronised rounds);
3. writes ``gpu_check.json`` and ``gpu_check.md`` (the device named) under OUT_DIR.
Uses the public API and ``matrixnms._dispatch.resolve`` only; installs nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

import numpy as np

from matrixnms import matrix_nms
from matrixnms._dispatch import resolve
from matrixnms.scenes import mask_scene

SIZES = (100, 500, 1000, 2000)
PLACES = (("torch", "torch"), ("torch", "generic"), ("cupy", "cupy"), ("cupy", "generic"))
BUDGET_S = 4.0  # timing per (place, N): at most this long, at least 3 rounds


def device_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown GPU"


def available(library: str) -> bool:
    if find_spec(library) is None:
        return False
    if library == "torch":
        import torch

        return torch.cuda.is_available()
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy without a driver
        return False


def to_device(x: np.ndarray | None, library: str) -> Any:
    if x is None:
        return None
    if library == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).cuda()
    import cupy

    return cupy.asarray(x)


def to_host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") else x.cpu().numpy()


def synchronize(library: str) -> None:
    if library == "torch":
        import torch

        torch.cuda.synchronize()
    else:
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def sync_free_torch_kernels() -> dict[str, str]:
    """Each registered Torch CUDA kernel once, with host synchronisation turned into an error."""
    import torch

    scene = mask_scene(200, num_classes=5)
    masks = to_device(scene.masks, "torch")
    order = torch.argsort(to_device(scene.scores, "torch"), descending=True, stable=True)
    labels = to_device(scene.labels, "torch")[order]
    calls: dict[str, Callable[[], Any]] = {
        "mask_decay": lambda: resolve("mask_decay", masks, "torch")[1](masks, order, labels, None, "gaussian",
                                                                         0.5, torch.float32),
        "mask_iou": lambda: resolve("mask_iou", masks, "torch")[1](masks, masks[:50]),
        "mask_iou_sorted": lambda: resolve("mask_iou_sorted", masks, "torch")[1](masks, order, labels),
    }
    results = {}
    for name, call in calls.items():
        call()  # warm-up outside the check: first-call allocations and cuBLAS handles may synchronise
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            call()
            results[name] = "no host synchronisation"
        except RuntimeError as error:
            results[name] = f"SYNCHRONISES: {error}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return results


def time_place(library: str, backend: str, n: int) -> dict[str, Any]:
    scene = mask_scene(n, num_classes=80)
    ref_keep, ref_decayed = matrix_nms(scene.scores, scene.masks, labels=scene.labels)
    scores, masks, labels = (to_device(a, library) for a in (scene.scores, scene.masks, scene.labels))

    def call() -> Any:
        out = matrix_nms(scores, masks, labels=labels, backend=backend)
        synchronize(library)
        return out

    keep, decayed = call()  # warm-up: kernel compilation, allocations
    agrees = bool(np.array_equal(to_host(keep), ref_keep) and
                  np.allclose(to_host(decayed), ref_decayed, rtol=1e-5, atol=1e-6))
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < BUDGET_S and len(times) < 50):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return {"library": library, "backend": backend, "n": n, "median_ms": 1e3 * statistics.median(times),
            "rounds": len(times), "agrees_with_numpy": agrees}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"GPU: **{report['device']}**", "", "| place | " + " | ".join(f"N = {n}" for n in SIZES) + " |",
             "| --- |" + " --- |" * len(SIZES)]
    for library, backend in PLACES:
        rows = [r for r in report["timings"] if (r["library"], r["backend"]) == (library, backend)]
        if rows:
            cells = [f"{r['median_ms']:.2f} ms" + ("" if r["agrees_with_numpy"] else " (DIFFERS)") for r in rows]
            lines.append(f"| {library}-cuda-{backend} | " + " | ".join(cells) + " |")
    lines += ["", "Torch CUDA kernels under `torch.cuda.set_sync_debug_mode(\"error\")`:", ""]
    lines += [f"- `{name}`: {result}" for name, result in report["sync_check"].items()]
    return "\n".join(lines) + "\n"


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": device_name(), "sync_check": {}, "timings": []}
    if available("torch"):
        report["sync_check"] = sync_free_torch_kernels()
    for library, backend in PLACES:
        if available(library):
            for n in SIZES:
                report["timings"].append(time_place(library, backend, n))
                print(report["timings"][-1], flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    failed = [r for r in report["timings"] if not r["agrees_with_numpy"]]
    failed += [name for name, result in report["sync_check"].items() if result.startswith("SYNCHRONISES")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "gpu_check"))
