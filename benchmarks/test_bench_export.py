"""The exported static Matrix NMS graph in onnxruntime and OpenVINO against the paper's code and matrix_nms.

Scene (full mode): N = 500 masks of 200 x 336 with 80 labels, ``matrixnms.scenes.mask_scene`` (SOLOv2's
``nms_pre`` at its 1/4-scale mask size), class-aware gaussian, sigma 0.5, every row decayed and returned.
Smoke mode (``--benchmark-disable``): N = 64 masks of 40 x 48, every case once, results checked.

Cases (one group, so pytest-benchmark prints the ratios):
- ``paper-numpy``: Figure 1 of the SOLOv2 appendix in NumPy float32 (``paper_matrix_nms_numpy``), the issue's
  yardstick (the exported graph should take <= 0.4x its time);
- ``matrix_nms``: the library on NumPy input (``backend="auto"``: the Numba kernel that skips pairs whose
  boxes or labels differ);
- ``onnxruntime`` / ``openvino`` ``grid-8``: the graph ``to_onnx`` writes (``export.COUNT_GRID = 8``: the frame
  cut into 8 x 8 cells of 25 x 42 pixels, each cell's present masks counted by one batched ``MatMulInteger``
  uint8 x uint8 -> int32), each runtime on the CPU with its default threads (OpenVINO: default settings, f32 on
  a CPU without bf16);
- ``grid-8-uint8``: the same graph with a uint8 ``masks`` input (``mask_dtype="uint8"``): no conversion of
  every pixel from bool (OpenVINO's CPU plugin converts bool with a reference kernel);
- ``grid-1``: the bool graph with ``export.COUNT_GRID = 1``: one cell, the whole frame, every non-empty mask
  counted against every other (the counts of earlier releases), to show what the grid saves.

Every case first runs once untimed and its keep indices are checked against ``matrix_nms``. Timings on a
shared machine are distorted by its load: compare the ratios within one run.

Run: ``pytest benchmarks/test_bench_export.py --benchmark-only``.
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

from conftest import bench_mode

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from matrixnms import export, matrix_nms  # noqa: E402
from matrixnms.bench.transcription import paper_matrix_nms_numpy  # noqa: E402
from matrixnms.scenes import mask_scene  # noqa: E402

SIZES = {"full": (500, 200, 336), "quick": (500, 200, 336), "smoke": (64, 40, 48)}
RUNTIMES = ["onnxruntime"] + (["openvino"] if find_spec("openvino") is not None else [])
GROUP = "export-masks"


@pytest.fixture(scope="module")
def scene(request):
    n, h, w = SIZES[bench_mode(request.config)]
    s = mask_scene(n, height=h, width=w, num_classes=80, seed=0)
    keep, _ = matrix_nms(s.scores, s.masks, labels=s.labels, kernel="gaussian", sigma=0.5, backend="generic")
    return s, keep


@pytest.fixture(scope="module")
def graphs(scene, tmp_path_factory):
    """{"grid-8": path, "grid-1": path}: the default export and one that counts over the whole frame."""
    s, _ = scene
    n, h, w = s.masks.shape
    folder = tmp_path_factory.mktemp("bench-export")
    options = dict(labels=True, valid=False, kernel="gaussian", sigma=0.5)
    paths = {}
    default = export.COUNT_GRID
    for name, grid, dtype in [(f"grid-{default}", default, "bool"), (f"grid-{default}-uint8", default, "uint8"),
                              ("grid-1", 1, "bool")]:
        export.COUNT_GRID = grid
        try:
            paths[name] = export.to_onnx(folder / f"{name}.onnx", n, (h, w), mask_dtype=dtype, **options)
        finally:
            export.COUNT_GRID = default
    return paths


def _check(keep: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.asarray(keep)[: len(expected)], expected)


@pytest.mark.benchmark(group=GROUP)
def test_paper_numpy(benchmark, scene):
    s, expected = scene
    order, _ = paper_matrix_nms_numpy(s.scores, s.masks, s.labels, method="gauss", sigma=0.5)
    assert len(order) == len(expected)
    benchmark.extra_info.update(what="Figure 1 in NumPy float32 (sort included)")
    benchmark.pedantic(paper_matrix_nms_numpy, (s.scores, s.masks, s.labels), rounds=7, warmup_rounds=1)


@pytest.mark.benchmark(group=GROUP)
def test_matrix_nms(benchmark, scene):
    s, expected = scene
    call = lambda: matrix_nms(s.scores, s.masks, labels=s.labels, kernel="gaussian", sigma=0.5)  # noqa: E731
    _check(call()[0], expected.numpy() if hasattr(expected, "numpy") else expected)
    benchmark.extra_info.update(what="matrixnms.matrix_nms, NumPy input, backend auto")
    benchmark.pedantic(call, rounds=7, warmup_rounds=1)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("variant", [f"grid-{export.COUNT_GRID}", f"grid-{export.COUNT_GRID}-uint8", "grid-1"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exported_graph(benchmark, scene, graphs, runtime, variant):
    s, expected = scene
    run = export.onnx_runner(graphs[variant], runtime)
    masks = s.masks.astype(np.uint8) if variant.endswith("uint8") else s.masks
    feed = {"scores": s.scores, "masks": masks, "labels": s.labels}
    _check(run(feed)["keep"], np.asarray(expected))
    benchmark.extra_info.update(what=f"to_onnx graph ({variant}) in {runtime}, CPU, default settings")
    benchmark.pedantic(run, (feed,), rounds=7, warmup_rounds=1)
