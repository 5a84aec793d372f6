"""Mask forms: COCO RLE and ``CroppedMasks`` of a 12 MP frame, and point masks ``(N, P)``.

Scenes (full mode; smoke mode in brackets):

- ``highres_scene(300)``: 300 masks of 0.1-15 % of a 3000x4000 frame as compressed COCO RLE and as
  ``CroppedMasks`` (built crop by crop, never as frames) [40 masks of 300x400];
- the same scene at 1/4 scale, 750x1000, whose dense (N, H, W) frames fit in memory (225 MB) [150x200];
- ``mask_scene(500)`` at 200x336 as (N, H, W) and as (N, P), P = 200 * 336 [N = 60].

Groups (pytest-benchmark; each method first makes one checked call):

- ``forms mask_iou RLE``: ``mask_iou`` on the RLEs vs pycocotools ``mask.iou`` on the same RLEs (iscrowd 0,
  the RLE-native reference; results must be equal);
- ``forms mask_iou crops``: ``mask_iou`` on the ``CroppedMasks`` vs supervision's ``compact_mask_iou_batch``
  on a ``CompactMask`` of the same crops (skipped without supervision; equal to 1e-6: it counts in float32);
- ``forms matrix_nms 1/4 scale``: ``matrix_nms`` on the dense frames, on ``CroppedMasks`` built from the crops
  within the call (``crops-built``, what a box-based segmenter's user pays), on the prebuilt ``CroppedMasks``
  and on the RLEs (keep and decayed scores must agree);
- ``forms matrix_nms points``: ``matrix_nms`` on (N, H, W) and on (N, P) (must agree).

Targets, checked in full mode by ``test_forms_ratio`` (here rather than in ``targets.py``, whose targets are
records of the shared ``matrixnms.bench`` families, as in ``test_bench_compat.py``): the two methods of a
target are timed alternately in one loop and the ratio of their medians is held to :data:`RATIOS`; in smoke
mode it is printed, not checked. ``test_forms_memory`` holds ``matrix_nms`` on the 12 MP RLEs and crops to
:data:`MEMORY_BOUND_BYTES` beyond its input, each in a fresh child process (``bench.peak_memory_forms``), in
every mode. Threads: Numba's default (all cores). ``--benchmark-only`` skips ``test_forms_ratio`` (it times with
``perf_counter``); ``pytest benchmarks/test_bench_forms.py -s`` prints both.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np
import pytest

from matrixnms import CroppedMasks, bench, mask_iou, matrix_nms
from matrixnms.scenes import highres_scene, mask_scene

coco_mask = pytest.importorskip("pycocotools.mask")

MEMORY_BOUND_BYTES = 256 * 2**20  # matrix_nms on the 12 MP scene as RLE or crops, beyond its input
# (fast method, reference, target, relation): "speedup >=" reference / fast, "multiple <=" fast / reference
RATIOS = (
    ("matrixnms-rle", "pycocotools-rle", 5.0, "speedup >="),
    ("matrixnms-crops", "supervision-compact", 20.0, "speedup >="),
    ("crops-built", "dense", 2.0, "multiple <="),
    ("points", "frames", 1.2, "multiple <="),
)
SIZES = {"full": {"highres": (300, 3000, 4000), "quarter": (300, 750, 1000), "points": 500},
         "smoke": {"highres": (40, 300, 400), "quarter": (40, 150, 200), "points": 60}}


def _supervision() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its note that OpenCV is not installed
            from supervision.detection.compact_mask import CompactMask
            from supervision.detection.utils.iou_and_nms import compact_mask_iou_batch
    except ImportError:
        return None
    return CompactMask, compact_mask_iou_batch


@pytest.fixture(scope="module")
def mode(pytestconfig):
    return "smoke" if bench.suite_mode(bool(pytestconfig.getoption("benchmark_disable", False))) == "smoke" else "full"


@pytest.fixture(scope="module")
def scenes(mode) -> dict[str, Any]:
    size = SIZES[mode]
    n, h, w = size["highres"]
    high = highres_scene(n, height=h, width=w)
    n, h, w = size["quarter"]
    quarter = highres_scene(n, height=h, width=w)
    out = {"high": high, "quarter": quarter, "dense": quarter.crops.to_dense(), "points": mask_scene(size["points"])}
    sv = _supervision()
    if sv is not None:  # a CompactMask of the same crops (inclusive boxes), transcoded from the RLEs: no frames
        inclusive = high.crops.boxes.astype(np.float32) - np.array([0, 0, 1, 1], np.float32)
        out["compact"] = sv[0].from_coco_rle(high.rles, inclusive, high.size)
    return out


def _methods(s: dict[str, Any]) -> dict[str, tuple[str, Callable[[], Any]]]:
    """key -> (group, the call)."""
    high, quarter, points = s["high"], s["quarter"], s["points"]
    crops = quarter.crops
    flat = points.masks.reshape(len(points), -1)
    out = {
        "matrixnms-rle": ("forms mask_iou RLE", lambda: mask_iou(high.rles)),
        "pycocotools-rle": ("forms mask_iou RLE", lambda: coco_mask.iou(high.rles, high.rles, [0] * len(high))),
        "matrixnms-crops": ("forms mask_iou crops", lambda: mask_iou(high.crops)),
        "dense": ("forms matrix_nms 1/4 scale", lambda: matrix_nms(quarter.scores, s["dense"])),
        "crops-built": ("forms matrix_nms 1/4 scale",
                        lambda: matrix_nms(quarter.scores, CroppedMasks(crops.crops, crops.boxes, crops.size))),
        "crops": ("forms matrix_nms 1/4 scale", lambda: matrix_nms(quarter.scores, crops)),
        "rle": ("forms matrix_nms 1/4 scale", lambda: matrix_nms(quarter.scores, quarter.rles)),
        "frames": ("forms matrix_nms points", lambda: matrix_nms(points.scores, points.masks)),
        "points": ("forms matrix_nms points", lambda: matrix_nms(points.scores, flat)),
    }
    if "compact" in s:
        iou_batch = _supervision()[1]
        out["supervision-compact"] = ("forms mask_iou crops", lambda: iou_batch(s["compact"], s["compact"]))
    return out


def _check(key: str, s: dict[str, Any], result: Any) -> None:
    if key in ("matrixnms-rle", "pycocotools-rle", "matrixnms-crops", "supervision-compact"):
        expected = coco_mask.iou(s["high"].rles, s["high"].rles, [0] * len(s["high"]))
        if key == "supervision-compact":  # float32 counts below 2**24 pixels
            np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(result, expected)
        return
    scene, masks = (s["points"], s["points"].masks) if key in ("frames", "points") else (s["quarter"], s["dense"])
    keep, decayed = matrix_nms(scene.scores, masks, backend="generic")
    np.testing.assert_array_equal(result[0], keep)
    np.testing.assert_allclose(result[1], decayed, rtol=1e-5, atol=1e-6)


METHOD_KEYS = ["matrixnms-rle", "pycocotools-rle", "matrixnms-crops", "supervision-compact", "dense", "crops-built",
               "crops", "rle", "frames", "points"]


@pytest.mark.parametrize("key", METHOD_KEYS)
def test_forms(benchmark, key, scenes, mode):
    methods = _methods(scenes)
    if key not in methods:
        pytest.skip("supervision is not installed")
    group, fn = methods[key]
    benchmark.group = group
    benchmark.extra_info.update({"method": key, "mode": mode, "what": group, "sizes": SIZES[mode]})
    if mode == "smoke" or not benchmark.enabled:
        _check(key, scenes, benchmark.pedantic(fn, rounds=1, iterations=1))
        return
    _check(key, scenes, fn())  # also the warm-up: JIT compilation, first-touch allocations
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first < bench.CALIBRATE_BELOW_S:
        benchmark(fn)
    else:
        benchmark.pedantic(fn, rounds=bench.fixed_rounds(first, mode), iterations=1)


@pytest.mark.parametrize("fast, reference, target, relation", RATIOS, ids=[f"{r[0]}-vs-{r[1]}" for r in RATIOS])
def test_forms_ratio(fast, reference, target, relation, scenes, mode, record_property):
    """The ratio of the medians, the two timed alternately in one loop (load hits both alike)."""
    methods = _methods(scenes)
    if reference not in methods:
        pytest.skip("supervision is not installed")
    pair = {key: methods[key][1] for key in (fast, reference)}
    for key, fn in pair.items():  # checked, and the warm-up
        _check(key, scenes, fn())
    times: dict[str, list[float]] = {key: [] for key in pair}
    rounds = 1 if mode == "smoke" else (3 if reference == "supervision-compact" else 7)
    for _ in range(rounds):
        for key, fn in pair.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(t) for key, t in times.items()}
    speedup = medians[reference] / medians[fast]
    value = speedup if relation == "speedup >=" else 1 / speedup
    record_property("medians_s", medians)
    record_property(relation, value)
    print(f"\n{methods[fast][0]}: {fast} {medians[fast] * 1e3:.1f} ms, {reference} {medians[reference] * 1e3:.1f} ms "
          f"(medians of {rounds}): {relation} {value:.2f} (target {target})")
    if mode != "smoke":
        ok = value >= target if relation == "speedup >=" else value <= target
        assert ok, f"{fast} vs {reference}: {relation} {value:.2f}, target {target}"


@pytest.mark.parametrize("form", ["rle", "crops"])
def test_forms_memory(benchmark, form, mode, memory_log):
    n, h, w = SIZES[mode]["highres"]
    benchmark.group = f"memory forms N={n} {h}x{w}"
    result = benchmark.pedantic(bench.peak_memory_forms, args=(form, n), kwargs={"height": h, "width": w},
                                rounds=1, iterations=1)
    benchmark.extra_info.update({
        **result, "bound_bytes": MEMORY_BOUND_BYTES,
        "what": (f"peak RSS increase of one matrix_nms call on {n} masks of {h}x{w} as {form}, in a fresh child "
                 "process; input excluded"),
    })
    memory_log(result)
    assert result["increase_bytes"] <= MEMORY_BOUND_BYTES, (
        f"matrix_nms on {form} needed {result['increase_bytes'] / 2**20:.0f} MiB beyond its input, more than "
        f"{MEMORY_BOUND_BYTES / 2**20:.0f} MiB")
