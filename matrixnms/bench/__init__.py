"""The benchmark cases and methods shared by ``benchmarks/`` (pytest-benchmark) and ``matrixnms bench``.

Both front ends take their cases from :func:`cases` and their methods from :func:`methods`, build the inputs
with the seeded scene generator of ``matrixnms.scenes`` and run the very same callables, so a ratio printed
by ``matrixnms bench`` is the ratio the pytest suite measures (up to noise).

Families and what each times (every record also says so in ``what``):

``masks``
    Mask Matrix NMS on N masks of 200x336 (SOLOv2's 1/4 scale), class-agnostic and with 80 labels. Rows:
    ``matrix_nms`` on every available path (the ``backend=`` choices on NumPy, Torch CPU and, with a device,
    Torch CUDA and CuPy) - each includes sorting, the mask IoU and the decay, from unsorted inputs; the
    paper's Figure 1 transcribed literally (``paper``: NumPy and Torch float32, sort and IoU included);
    greedy mask NMS as detectors write it (``greedy``: per-step IoU of the kept mask against the later
    ones, IoU 0.5); the library's greedy ``mask_nms`` and ``soft_nms``; and the read floor, one
    ``np.packbits`` pass over the N*H*W mask bytes (no NMS at all).
``boxes``
    Box Matrix NMS on N boxes (1000 is the standard case), class-agnostic and with 80 classes: ``matrix_nms``
    on every available path, greedy ``nms`` (agnostic) / ``batched_nms`` (per class) and ``soft_nms``.
``mask_iou``
    The pairwise IoU of N masks with themselves: ``mask_iou`` on every path vs pycocotools ``encode`` +
    ``iou`` (and ``iou`` alone on RLEs encoded beforehand).
``masks_to_boxes``
    ``masks_to_boxes`` on every path vs the NumPy any-over-rows/columns approach and pycocotools ``toBbox``
    after ``encode``.

Ratios (see :func:`summarize`): "vs paper" = time of the transcription in the same library and on the same
device / time of the row (how many times faster); "vs greedy" likewise against greedy NMS; "x floor" = time
of the row / time of the read floor. The targets (:class:`Target`, checked by :func:`check_targets`) are
each computed from one group of one run.

The memory benchmark (:func:`peak_memory`; :func:`peak_memory_forms` for the high-resolution RLE and cropped
scene) runs one method in a fresh child process and reports its peak
resident memory beyond the input.

Targets live in the repository, not in the library: the list of acceptance targets (``TARGETS``) and the
memory bound (``MEMORY_BOUND_BYTES``) are in ``benchmarks/targets.py``, which is not installed with the
package. The library keeps only the generic machinery, :class:`Target` and ``check_targets(records,
targets)``. ``pytest benchmarks`` imports the list directly; ``matrixnms bench`` checks
:func:`repository_targets`, which loads it when matrixnms runs from a source checkout (an editable install
or the repository root) and is empty otherwise, so an installed ``matrixnms bench`` reports no targets (its
JSON keeps the ``"targets"`` key, as an empty list).

Modules: ``cases`` (families, sizes, :class:`Case`, the seeded scenes), ``places`` (library paths, arrays on
each library and device), ``machine`` (threads, machine info), ``checks`` (reference results and the check
of every method), ``methods`` (:class:`Method` and its builders), ``timing``, ``report`` (ratios, the
generic target check, table, plot), ``run`` (the runner behind ``matrixnms bench``), ``memory`` (peak
resident memory in a child process) and ``transcription`` (the paper's Figure 1 and greedy mask NMS as
detectors write it, the baselines). Implementations are found through ``matrixnms._dispatch.resolve`` only.
"""

from .cases import FAMILIES, NUM_CLASSES, Case, cases, suite_mode
from .machine import machine_info, set_threads
from .memory import available_memory, memory_estimate, peak_memory, peak_memory_forms
from .methods import Method, auto_backend, jobs, methods
from .places import has_torch
from .report import Target, check_targets, format_table, plot, summarize
from .run import repository_targets, run
from .timing import CALIBRATE_BELOW_S, fixed_rounds, measure, record

# What the front ends use: ``matrixnms.cli`` and ``benchmarks/``. ``cases``, ``methods``, ``auto_backend``,
# ``has_torch`` and ``measure`` are importable here too, for the tests, but belong to their modules.
__all__ = [
    "FAMILIES", "NUM_CLASSES", "CALIBRATE_BELOW_S", "Case", "Method", "Target", "available_memory",
    "check_targets", "fixed_rounds", "format_table", "jobs", "machine_info", "memory_estimate", "peak_memory",
    "peak_memory_forms", "plot", "record", "repository_targets", "run", "set_threads", "suite_mode", "summarize",
]
