"""Batches: ``batched_matrix_nms`` on B images at once vs a Python loop of ``matrix_nms`` over the images.

Groups (``batched masks B=32 N=100 200x336`` ...), NumPy inputs, ``backend="auto"`` (the Numba kernels) on
two threads for both rows:

- masks: B = 32 images x N = 100 masks of 200x336, class-agnostic, and B = 8 x N = 500;
- boxes: B = 32 x N = 1000 boxes of 80 labels (class-aware, as PaddlePaddle's per-class Matrix NMS).

Image b is ``matrixnms.scenes.mask_scene`` / ``box_scene`` with seed b, stacked into (B, N, ...) arrays; the
loop calls ``matrix_nms(scores[b], masks[b])`` on the same arrays. Both rows include the sort, the IoU, the
decay and the result assembly. Each first makes one untimed, checked call (every row of the batch equals the
loop's result). ``test_batched_speedup`` times the two alternately in one loop (load hits both alike) and
holds the ratio of the medians to the case's target (full mode only; smoke mode runs small cases once and
prints the ratio).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import pytest

from matrixnms import batched_matrix_nms, bench, matrix_nms
from matrixnms.scenes import box_scene, mask_scene


@dataclass(frozen=True)
class BatchCase:
    kind: str  # "masks" or "boxes"
    batch: int
    n: int
    num_classes: int | None
    target: float  # the loop's median over the batched call's, at least
    smoke: tuple[int, int]  # (B, N) in smoke mode

    @property
    def id(self) -> str:
        labels = "agnostic" if self.num_classes is None else f"{self.num_classes} labels"
        return f"{self.kind} B={self.batch} N={self.n} {labels}"


CASES = (
    BatchCase("masks", 32, 100, None, 1.5, (4, 20)),
    BatchCase("masks", 8, 500, None, 1.0, (2, 40)),
    BatchCase("boxes", 32, 1000, 80, 2.0, (4, 100)),
)


@pytest.fixture(scope="module")
def mode(pytestconfig):
    return bench.suite_mode(bool(pytestconfig.getoption("benchmark_disable", False)))


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    numba = pytest.importorskip("numba")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield
    numba.set_num_threads(previous)


def _inputs(case: BatchCase, mode: str) -> dict[str, np.ndarray]:
    batch, n = case.smoke if mode == "smoke" else (case.batch, case.n)
    if case.kind == "masks":
        scenes = [mask_scene(n, num_classes=case.num_classes, seed=b) for b in range(batch)]
        items = {"masks": np.stack([s.masks for s in scenes])}
    else:
        scenes = [box_scene(n, num_classes=case.num_classes, seed=b) for b in range(batch)]
        items = {"boxes": np.stack([s.boxes for s in scenes])}
    items["scores"] = np.stack([s.scores for s in scenes])
    if case.num_classes is not None:
        items["labels"] = np.stack([s.labels for s in scenes])
    return items


def _batched(inputs):
    return batched_matrix_nms(**inputs)


def _loop(inputs):
    per_image = [{name: x[b] for name, x in inputs.items()} for b in range(inputs["scores"].shape[0])]
    return [matrix_nms(**kwargs) for kwargs in per_image]


def _check(batched, looped) -> None:
    keep, decayed, num_kept = batched
    for b, (k, d) in enumerate(looped):
        assert num_kept[b] == len(k)
        np.testing.assert_array_equal(keep[b, :num_kept[b]], k)
        np.testing.assert_array_equal(decayed[b, :num_kept[b]], d)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("method", ["batched", "loop"])
def test_batched(benchmark, case, method, mode):
    inputs = _inputs(case, mode)
    fn = _batched if method == "batched" else _loop
    benchmark.group = f"batched {case.id}"
    benchmark.extra_info.update({"method": method, "mode": mode, "threads": "numba 2", "library": "numpy",
                                 "what": "sort + IoU + decay + assembly for the whole batch, backend auto"})
    _check(_batched(inputs), _loop(inputs))  # also the warm-up: JIT compilation
    if mode == "smoke" or not benchmark.enabled:
        benchmark.pedantic(fn, args=(inputs,), rounds=1, iterations=1)
        return
    benchmark.pedantic(fn, args=(inputs,), rounds=5, iterations=1)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_batched_speedup(case, mode, record_property):
    inputs = _inputs(case, mode)
    _check(_batched(inputs), _loop(inputs))
    times: dict[str, list[float]] = {"batched": [], "loop": []}
    for _ in range(1 if mode == "smoke" else 7):
        for key, fn in (("batched", _batched), ("loop", _loop)):
            start = time.perf_counter()
            fn(inputs)
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(t) for key, t in times.items()}
    ratio = medians["loop"] / medians["batched"]
    record_property("speedup", ratio)
    print(f"\nbatched {case.id} ({mode}): batched {medians['batched'] * 1e3:.1f} ms, loop "
          f"{medians['loop'] * 1e3:.1f} ms (medians), {ratio:.2f}x")
    if mode != "smoke":
        assert ratio >= case.target, f"{case.id}: batched is {ratio:.2f}x the loop, target {case.target}x"
