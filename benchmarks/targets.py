"""The acceptance targets of the fast-kernels issue (issue 4): ratios and times within one benchmark group,
and the memory bound of ``matrix_nms``.

These belong to the repository, not to the library: ``benchmarks/conftest.py`` checks :data:`TARGETS` at the
end of a ``pytest benchmarks`` run (and stores them in ``--benchmark-json``), ``test_bench_memory.py`` holds
``matrix_nms`` to :data:`MEMORY_BOUND_BYTES`, and ``matrixnms bench`` loads this file through
``matrixnms.bench.repository_targets()`` when it runs from a source checkout. The check itself is the
library's generic ``matrixnms.bench.check_targets(records, targets)``.
"""

from __future__ import annotations

from typing import Any, Callable

from matrixnms.bench import NUM_CLASSES, Target

# Issue 4's bound for matrix_nms at N = 10,000 masks of 200x336.
MEMORY_BOUND_BYTES = int(1.5 * 2**30)


def _auto_row(library: str, device: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["role"] == "library" and r["library"] == library and r["device"] == device and r["auto"]


def _method_is(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["method"] == key


# Issue 4's targets (N = 500, 200x336, NumPy input, 2 cores unless said otherwise).
TARGETS: tuple[Target, ...] = (
    Target("masks N=500 agnostic: NumPy matrix_nms >= 20x the NumPy f32 transcription", "masks", 500, None,
           _auto_row("numpy", "cpu"), _method_is("paper-numpy"), 20.0, "speedup >="),
    Target("masks N=500 agnostic: NumPy matrix_nms within 3x of the read floor (np.packbits)", "masks", 500, None,
           _auto_row("numpy", "cpu"), _method_is("read-floor"), 3.0, "multiple <="),
    Target("masks N=500 80 classes: NumPy matrix_nms >= 25x the NumPy f32 transcription", "masks", 500,
           NUM_CLASSES, _auto_row("numpy", "cpu"), _method_is("paper-numpy"), 25.0, "speedup >="),
    Target("masks N=2000 agnostic: NumPy matrix_nms >= 15x the NumPy f32 transcription", "masks", 2000, None,
           _auto_row("numpy", "cpu"), _method_is("paper-numpy"), 15.0, "speedup >="),
    Target("masks N=100 agnostic: NumPy matrix_nms faster than the NumPy f32 transcription", "masks", 100, None,
           _auto_row("numpy", "cpu"), _method_is("paper-numpy"), 1.0, "speedup >"),
    Target("mask_iou N=500: NumPy mask_iou >= 10x pycocotools encode + iou", "mask_iou", 500, None,
           _auto_row("numpy", "cpu"), _method_is("pycocotools-encode-iou"), 10.0, "speedup >="),
    Target("masks_to_boxes N=500: NumPy masks_to_boxes >= 5x the NumPy any-reduction", "masks_to_boxes", 500,
           None, _auto_row("numpy", "cpu"), _method_is("numpy-any"), 5.0, "speedup >="),
    Target("masks N=500 agnostic: Torch CPU matrix_nms >= 10x the Torch f32 transcription", "masks", 500, None,
           _auto_row("torch", "cpu"), _method_is("paper-torch"), 10.0, "speedup >="),
    Target("masks N=500 agnostic: Torch CUDA matrix_nms under 0.3 ms", "masks", 500, None,
           _auto_row("torch", "cuda"), None, 0.3, "ms <"),
    Target("masks N=500 agnostic: Torch CUDA matrix_nms >= 3x the Torch CUDA f32 transcription", "masks", 500,
           None, _auto_row("torch", "cuda"), _method_is("paper-torch-cuda"), 3.0, "speedup >="),
    Target("masks N=500 agnostic: CuPy matrix_nms under 0.3 ms", "masks", 500, None,
           _auto_row("cupy", "cuda"), None, 0.3, "ms <"),
    Target("masks N=500 agnostic: CuPy matrix_nms >= 3x the Torch CUDA f32 transcription", "masks", 500, None,
           _auto_row("cupy", "cuda"), _method_is("paper-torch-cuda"), 3.0, "speedup >="),
    # Fast NMS / Cluster-NMS issue: all three are dominated by the mask IoU
    Target("masks N=500 agnostic: NumPy fast_nms within 2x of NumPy matrix_nms", "masks", 500, None,
           _method_is("fast_nms-numpy"), _auto_row("numpy", "cpu"), 2.0, "multiple <="),
    Target("masks N=500 agnostic: NumPy cluster_nms within 2x of NumPy matrix_nms", "masks", 500, None,
           _method_is("cluster_nms-numpy"), _auto_row("numpy", "cpu"), 2.0, "multiple <="),
)
