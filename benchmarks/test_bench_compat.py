"""The mmdetection drop-in: ``compat.mmdet.mask_matrix_nms`` vs mmdetection 3.x's algorithm, on Torch CPU.

One pytest-benchmark group, ``compat mmdet N=500 80 classes 200x336``: N = 500 SOLO-like masks of 200x336
(``matrixnms.scenes.mask_scene``, 80 labels, bool masks, float32 scores, unsorted) as Torch CPU tensors,
both called with SOLOv2's settings (``filter_thr=0.05, nms_pre=500, max_num=100``, gaussian, sigma 2.0):

- ``compat``: ``matrixnms.compat.mmdet.mask_matrix_nms`` (``matrix_nms`` with ``backend="auto"`` inside);
- ``transcription``: ``matrixnms.bench.transcription.mmdet_mask_matrix_nms_torch``, mmdetection's
  algorithm transcribed (float32 dense matmul of the flattened masks, N x N IoU and label matrices).

Both include the sort, the mask IoU, the decay, the filter and the gathers of the returned masks. Each first
makes one untimed, checked call (against ``matrix_nms`` on the NumPy generic path through the documented
mapping). ``test_compat_speedup`` times the two alternately in one loop and holds the ratio of the medians to
:data:`SPEEDUP` (full mode only; the target lives here rather than in ``targets.py``, whose targets are
records of the shared ``matrixnms.bench`` families). Threads: Torch's default (all cores).
In smoke mode (``--benchmark-disable``) N = 60 and the ratio is printed, not checked. ``--benchmark-only``
skips ``test_compat_speedup`` (it times with ``perf_counter``); run ``pytest benchmarks/test_bench_compat.py
-s`` for both the group table and the checked ratio.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from matrixnms import bench, matrix_nms
from matrixnms.scenes import mask_scene

torch = pytest.importorskip("torch")

from matrixnms.bench.transcription import mmdet_mask_matrix_nms_torch  # noqa: E402
from matrixnms.compat.mmdet import mask_matrix_nms  # noqa: E402

SPEEDUP = 20.0  # the drop-in's target against the transcription at N = 500, 80 labels, Torch CPU
SOLOV2 = {"filter_thr": 0.05, "nms_pre": 500, "max_num": 100, "kernel": "gaussian", "sigma": 2.0}
METHODS = {"compat": mask_matrix_nms, "transcription": mmdet_mask_matrix_nms_torch}


@pytest.fixture(scope="module")
def mode(pytestconfig):
    return bench.suite_mode(bool(pytestconfig.getoption("benchmark_disable", False)))


@pytest.fixture(scope="module")
def scene(mode):
    n = 60 if mode == "smoke" else 500
    return mask_scene(n, num_classes=bench.NUM_CLASSES)


@pytest.fixture(scope="module")
def inputs(scene):
    return torch.from_numpy(scene.masks), torch.from_numpy(scene.labels), torch.from_numpy(scene.scores)


def _check(scene, result) -> None:
    scores, labels, masks, keep = (r.numpy() for r in result)
    # the documented mapping: filter_thr -> post_threshold, nms_pre -> pre_top_k, max_num -> post_top_k,
    # sigma -> 1 / sigma; in float64 on the NumPy generic path
    expected_keep, expected = matrix_nms(
        scene.scores.astype(np.float64), scene.masks, labels=scene.labels, sigma=1 / SOLOV2["sigma"],
        post_threshold=SOLOV2["filter_thr"], pre_top_k=SOLOV2["nms_pre"], post_top_k=SOLOV2["max_num"],
        backend="generic")
    np.testing.assert_array_equal(keep, expected_keep)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, scene.labels[keep])
    np.testing.assert_array_equal(masks, scene.masks[keep])


def _group(scene) -> str:
    return f"compat mmdet N={len(scene.scores)} {bench.NUM_CLASSES} classes 200x336"


@pytest.mark.parametrize("method", list(METHODS))
def test_compat_mmdet(benchmark, method, scene, inputs, mode):
    fn = METHODS[method]
    benchmark.group = _group(scene)
    benchmark.extra_info.update({
        "method": method, "n": len(scene.scores), "num_classes": bench.NUM_CLASSES, "library": "torch",
        "device": "cpu", "threads": f"torch {torch.get_num_threads()}", "settings": SOLOV2, "mode": mode,
        "what": "sort + mask IoU + decay + filter + gathers, unsorted scores, bool masks, Torch CPU",
    })
    if mode == "smoke" or not benchmark.enabled:
        _check(scene, benchmark.pedantic(fn, args=inputs, kwargs=SOLOV2, rounds=1, iterations=1))
        return
    _check(scene, fn(*inputs, **SOLOV2))  # also the warm-up: JIT compilation, first-touch allocations
    start = time.perf_counter()
    fn(*inputs, **SOLOV2)
    first = time.perf_counter() - start
    if first < bench.CALIBRATE_BELOW_S:
        benchmark(fn, *inputs, **SOLOV2)
    else:
        benchmark.pedantic(fn, args=inputs, kwargs=SOLOV2, rounds=bench.fixed_rounds(first, mode), iterations=1)


def test_compat_speedup(scene, inputs, mode, record_property):
    """The ratio of the medians, the two timed alternately in one loop (load hits both alike)."""
    for fn in METHODS.values():  # warm-up: JIT compilation, first-touch allocations
        fn(*inputs, **SOLOV2)
    times: dict[str, list[float]] = {key: [] for key in METHODS}
    for _ in range(1 if mode == "smoke" else 5):
        for key, fn in METHODS.items():
            start = time.perf_counter()
            fn(*inputs, **SOLOV2)
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(t) for key, t in times.items()}
    ratio = medians["transcription"] / medians["compat"]
    record_property("compat_median_s", medians["compat"])
    record_property("transcription_median_s", medians["transcription"])
    record_property("speedup", ratio)
    print(f"\n{_group(scene)}: compat {medians['compat'] * 1e3:.1f} ms, transcription "
          f"{medians['transcription'] * 1e3:.1f} ms (medians), {ratio:.1f}x")
    if mode != "smoke":
        assert ratio >= SPEEDUP, f"compat.mmdet is {ratio:.1f}x the transcription, target {SPEEDUP}x"
