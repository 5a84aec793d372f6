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
of the row / time of the read floor. :data:`TARGETS` are the performance targets of the fast-kernels issue,
each computed from one group of one run.

The memory benchmark (:func:`peak_memory`) runs one method in a fresh child process and reports its peak
resident memory beyond the input.
"""

from __future__ import annotations

import functools
import gc
import math
import multiprocessing
import os
import platform
import statistics
import time
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Callable, Iterable

import numpy as np

from . import _dispatch
from .scenes import MASK_HEIGHT, MASK_WIDTH, box_scene, mask_scene

FAMILIES = ("masks", "boxes", "mask_iou", "masks_to_boxes")
MODES = ("full", "quick", "smoke")
NUM_CLASSES = 80
IOU_THRESHOLD = 0.5  # greedy NMS baselines
SIGMA = 0.5  # the paper's gaussian sigma, for Matrix NMS and Soft-NMS

# N per family and mode. "full" is the design's benchmark cases; "quick" is ``matrixnms bench --quick`` (about
# 30 s); "smoke" is ``pytest benchmarks --benchmark-disable``: every method once, as a correctness check.
SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "masks": {"full": (100, 500, 1000, 2000), "quick": (100, 500), "smoke": (30, 80)},
    "boxes": {"full": (100, 500, 1000, 2000), "quick": (500, 1000), "smoke": (50, 200)},
    "mask_iou": {"full": (500, 2000), "quick": (500,), "smoke": (40,)},
    "masks_to_boxes": {"full": (500, 2000), "quick": (500,), "smoke": (40,)},
}
# The labellings per family: None is class-agnostic.
LABELLINGS: dict[str, tuple[int | None, ...]] = {
    "masks": (None, NUM_CLASSES), "boxes": (None, NUM_CLASSES), "mask_iou": (None,), "masks_to_boxes": (None,),
}

# The library paths: (key, array library, device, backend= argument). "auto" is not a separate row: it is
# whichever of these ``auto`` resolves to (marked in the results).
PATHS: tuple[tuple[str, str, str, str], ...] = (
    ("numpy-generic", "numpy", "cpu", "generic"),
    ("numpy-numba", "numpy", "cpu", "numba"),
    ("torch-generic", "torch", "cpu", "generic"),
    ("torch-torch", "torch", "cpu", "torch"),
    ("torch-numba", "torch", "cpu", "numba"),
    ("torch-cuda-generic", "torch", "cuda", "generic"),
    ("torch-cuda-torch", "torch", "cuda", "torch"),
    ("cupy-generic", "cupy", "cuda", "generic"),
    ("cupy-cupy", "cupy", "cuda", "cupy"),
)
# The kernel (``_dispatch`` op) behind each family's library call.
_OPS = {"masks": "mask_decay", "boxes": "box_decay", "mask_iou": "mask_iou", "masks_to_boxes": "masks_to_boxes"}
_LIBRARY_NAMES = {"numpy": "NumPy", "torch": "Torch", "cupy": "CuPy"}


# --------------------------------------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Case:
    """One input: a family, N, labelling and image size."""

    family: str
    n: int
    num_classes: int | None = None
    height: int = MASK_HEIGHT
    width: int = MASK_WIDTH
    seed: int = 0

    @property
    def labelled(self) -> bool:
        return self.num_classes is not None

    @property
    def labelling(self) -> str:
        return "agnostic" if self.num_classes is None else f"{self.num_classes} classes"

    @property
    def group(self) -> str:
        """The comparison group: every method on this input (pytest-benchmark's ``group``)."""
        if self.family == "boxes":
            return f"boxes N={self.n} {self.labelling}"
        size = f"{self.height}x{self.width}"
        if self.family == "masks":
            return f"masks N={self.n} {self.labelling} {size}"
        return f"{self.family} N={self.n} {size}"

    @property
    def id(self) -> str:
        return f"N{self.n}-{'agnostic' if self.num_classes is None else f'{self.num_classes}cls'}"


def suite_mode(benchmark_disabled: bool) -> str:
    """The pytest suite's mode: ``MATRIXNMS_BENCH_MODE`` if set, else "smoke" under ``--benchmark-disable``."""
    forced = os.environ.get("MATRIXNMS_BENCH_MODE")
    if forced:
        if forced not in MODES:
            raise ValueError(f"MATRIXNMS_BENCH_MODE must be one of {MODES}, got {forced!r}")
        return forced
    return "smoke" if benchmark_disabled else "full"


def cases(family: str, mode: str = "full", *, sizes: Iterable[int] | None = None,
          image: tuple[int, int] | None = None, seed: int = 0) -> list[Case]:
    """The benchmark cases of ``family`` in ``mode`` ("full", "quick" or "smoke").

    Args:
        family: one of :data:`FAMILIES`.
        mode: which sizes of :data:`SIZES`.
        sizes: override the N values.
        image: override the mask size (height, width); boxes keep their 800x1344 image.
        seed: scene seed.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ns = tuple(SIZES[family][mode] if sizes is None else sizes)
    height, width = image or (MASK_HEIGHT, MASK_WIDTH)
    return [Case(family, n, num_classes, height, width, seed) for num_classes in LABELLINGS[family] for n in ns]


@functools.lru_cache(maxsize=4)
def scene(case: Case) -> Any:
    """The scene of a case (cached: every method of a group sees the same arrays)."""
    if case.family == "boxes":
        return box_scene(case.n, num_classes=case.num_classes, seed=case.seed)
    return mask_scene(case.n, height=case.height, width=case.width, num_classes=case.num_classes, seed=case.seed)


# --------------------------------------------------------------------------------------------------------
# arrays on each library / device


def has_torch() -> bool:
    return find_spec("torch") is not None


@functools.lru_cache(maxsize=None)
def has_cuda() -> bool:
    """True when Torch sees a CUDA device."""
    if not has_torch():
        return False
    import torch

    return bool(torch.cuda.is_available())


@functools.lru_cache(maxsize=None)
def has_cupy_device() -> bool:
    if find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy without a driver or device imports but cannot run
        return False


def place_reason(library: str, device: str) -> str | None:
    """Why arrays of ``library`` on ``device`` cannot be made here, or None."""
    if library == "torch" and not has_torch():
        return "torch not installed"
    if library == "torch" and device == "cuda" and not has_cuda():
        return "no CUDA device for torch"
    if library == "cupy" and not has_cupy_device():
        return "cupy not installed or no CUDA device"
    return None


def to_library(x: np.ndarray | None, library: str, device: str) -> Any:
    """``x`` as an array of ``library`` on ``device`` (Torch CPU tensors share NumPy's memory)."""
    if x is None or library == "numpy":
        return x
    if library == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x))
        return t if device == "cpu" else t.to(device)
    import cupy

    return cupy.asarray(x)


def to_numpy(x: Any) -> Any:
    """Arrays (or tuples of them) back to NumPy, for checking results."""
    if isinstance(x, tuple):
        return tuple(to_numpy(v) for v in x)
    if isinstance(x, (np.ndarray, list)) or x is None:
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def _synchronize(device: str, library: str) -> None:
    if device != "cuda":
        return
    if library == "torch":
        import torch

        torch.cuda.synchronize()
    else:
        import cupy

        cupy.cuda.get_current_stream().synchronize()


# --------------------------------------------------------------------------------------------------------
# threads


def blas_threads() -> str:
    """The BLAS thread count NumPy's matmul uses (threadpoolctl when installed, else the environment)."""
    try:
        from threadpoolctl import threadpool_info

        counts = {info.get("num_threads") for info in threadpool_info() if info.get("user_api") == "blas"}
        if counts:
            return "/".join(str(c) for c in sorted(counts))
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            return os.environ[var]
    return str(_cores())


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _numba_threads() -> str:
    import numba

    return str(numba.get_num_threads())


def _torch_threads() -> str:
    import torch

    return str(torch.get_num_threads())


def threads_of(kind: str) -> str:
    """A short statement of the threads a method uses: "BLAS 2", "numba 2", "torch 2", "1 (serial)"."""
    if kind == "blas":
        return f"BLAS {blas_threads()}"
    if kind == "numba":
        return f"numba {_numba_threads()}"
    if kind == "torch":
        return f"torch {_torch_threads()}"
    if kind == "gpu":
        return "GPU"
    return "1 (serial)"


_BLAS_LIMIT: Any = None  # keeps threadpoolctl's limit alive


def set_threads(count: int) -> dict[str, str]:
    """Limit Numba, Torch and (with threadpoolctl installed) BLAS to ``count`` threads; returns what was set.

    On a shared or loaded machine, parallel kernels can lose far more to waiting for a busy core than they
    gain; timing with one thread separates the algorithm from the machine's load.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    done = {}
    if find_spec("numba") is not None:
        import numba

        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
        done["numba"] = str(numba.get_num_threads())
    if has_torch():
        import torch

        torch.set_num_threads(count)
        done["torch"] = str(torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_limits

        global _BLAS_LIMIT
        _BLAS_LIMIT = threadpool_limits(limits=count, user_api="blas")
        done["blas"] = str(count)
    except ImportError:
        done["blas"] = "unchanged (install threadpoolctl, or set OPENBLAS_NUM_THREADS before starting)"
    return done


def machine_info() -> dict[str, Any]:
    """The machine and library versions, stored with every result."""
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "cores": _cores(),
        "cpu": _cpu_model(), "numpy": np.__version__, "blas_threads": blas_threads(),
    }
    for name in ("torch", "numba", "pycocotools", "cupy"):
        if find_spec(name) is not None:
            try:
                from importlib.metadata import version

                info[name] = version(name)
            except Exception:  # a package without metadata (e.g. a source checkout): just say it is there
                info[name] = "installed"
    if has_torch():
        info["torch_threads"] = _torch_threads()
    if find_spec("numba") is not None:
        info["numba_threads"] = _numba_threads()
    if has_cuda():
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------------------------
# methods


@dataclass(frozen=True)
class Method:
    """One way of processing a case's input, with what it times.

    ``build(case)`` prepares the inputs (conversions, encodings: not timed) and returns the zero-argument
    callable that is timed; ``check(case, result)`` raises AssertionError when its result is wrong.
    """

    key: str
    family: str
    title: str
    role: str  # "library", "paper", "greedy", "baseline", "floor", "reference"
    library: str
    device: str
    what: str
    includes_iou: bool
    thread_kind: str
    build: Callable[[Case], Callable[[], Any]]
    check: Callable[[Case, Any], None]
    backend: str | None = None
    op: str | None = None
    only_labelled: bool | None = None  # True: labelled cases only; False: class-agnostic only
    requires: tuple[str, ...] = ()

    @property
    def place(self) -> str:
        return self.library if self.device == "cpu" else f"{self.library}-{self.device}"

    def skip_reason(self, case: Case) -> str | None:
        """Why this method does not run on ``case`` here, or None when it does."""
        for package in self.requires:
            if find_spec(package) is None:
                return f"{package} not installed"
        reason = place_reason(self.library, self.device)
        if reason:
            return reason
        if self.backend not in (None, "generic", "auto"):
            if find_spec(_dispatch._PACKAGE[self.backend]) is None:
                return f"{self.backend} not installed"
            if not _registered(self.op, self.library, self.device, self.backend):
                return f"no {self.backend!r} kernel registered for {self.op} on {self.place} arrays"
        return None

    def applies(self, case: Case) -> bool:
        """False for a case the method is not meant for (``nms`` on labelled boxes, ``batched_nms`` without)."""
        return self.only_labelled is None or self.only_labelled == case.labelled

    def threads(self) -> str:
        kind = self.thread_kind
        if kind == "auto":  # whatever backend="auto" runs
            chosen = auto_backend(self.op, self.library, self.device)
            kind = chosen if chosen in ("numba", "torch") else "torch" if self.library == "torch" else "serial"
        return threads_of(kind)

    def info(self, case: Case) -> dict[str, Any]:
        """What a result of this method on ``case`` is: stored in pytest-benchmark's extra_info and the JSON."""
        return {
            "group": case.group, "family": case.family, "n": case.n, "num_classes": case.num_classes,
            "height": case.height, "width": case.width, "seed": case.seed,
            "method": self.key, "title": self.title, "role": self.role, "library": self.library,
            "device": self.device, "place": self.place, "backend": self.backend,
            "auto": self.backend is not None and self.backend == auto_backend(self.op, self.library, self.device),
            "includes_iou": self.includes_iou, "threads": self.threads(), "what": self.what,
        }


def _probe(library: str, device: str) -> Any:
    return to_library(np.zeros((1, 1, 1), dtype=bool), library, device)


def _registered(op: str | None, library: str, device: str, backend: str) -> bool:
    if op is None or place_reason(library, device):
        return False
    try:
        _dispatch.resolve(op, _probe(library, device), backend)
    except ValueError:
        return False
    return True


def auto_backend(op: str | None, library: str, device: str) -> str | None:
    """The backend ``backend="auto"`` picks for ``op`` on ``library``/``device`` arrays ("generic" if none)."""
    if op is None or place_reason(library, device):
        return None
    return _dispatch.resolve(op, _probe(library, device), "auto")[0]


# ---- reference results for the checks (computed once per case) ----------------------------------------


@functools.lru_cache(maxsize=8)
def reference_decay(case: Case) -> np.ndarray:
    """(N,) decayed score of every input index, from ``matrix_nms`` on the NumPy generic path."""
    from .nms import matrix_nms

    s = scene(case)
    data = {"masks": s.masks} if case.family == "masks" else {"boxes": s.boxes}
    keep, decayed = matrix_nms(s.scores, labels=s.labels, sigma=SIGMA, backend="generic", **data)
    out = np.full(case.n, np.nan, dtype=np.float64)
    out[keep] = decayed
    return out


@functools.lru_cache(maxsize=8)
def reference_greedy(case: Case) -> np.ndarray:
    """Greedy NMS keep (IoU > 0.5 suppresses) from the library's IoU and a plain loop."""
    from .masks import box_iou, mask_iou

    s = scene(case)
    order = np.argsort(-s.scores, kind="stable")
    if case.family == "masks":
        iou = np.asarray(mask_iou(s.masks[order]), dtype=np.float64)
    else:
        iou = np.asarray(box_iou(s.boxes[order].astype(np.float64)), dtype=np.float64)
    if s.labels is not None:
        sorted_labels = s.labels[order]
        iou = np.where(sorted_labels[:, None] == sorted_labels[None, :], iou, 0.0)
    suppressed = np.zeros(case.n, dtype=bool)
    keep = []
    for i in range(case.n):
        if not suppressed[i]:
            keep.append(i)
            suppressed[i + 1:] |= iou[i, i + 1:] > IOU_THRESHOLD
    return order[np.asarray(keep, dtype=np.int64)]


def _decayed_by_index(n: int, keep: np.ndarray, decayed: np.ndarray) -> np.ndarray:
    keep = np.asarray(keep).astype(np.int64)
    if sorted(keep.tolist()) != list(range(n)):
        raise AssertionError(f"expected every index to be kept once (no thresholds), got {len(keep)} of {n}")
    out = np.empty(n, dtype=np.float64)
    out[keep] = np.asarray(decayed, dtype=np.float64)
    return out


def _assert_decay(case: Case, by_index: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(by_index)):
        raise AssertionError(f"{what}: non-finite decayed scores")
    np.testing.assert_allclose(by_index, reference_decay(case), rtol=1e-4, atol=1e-5,
                               err_msg=f"{what} disagrees with matrix_nms (NumPy generic path)")


def _check_matrix_nms(case: Case, result: Any) -> None:
    keep, decayed = to_numpy(result)
    _assert_decay(case, _decayed_by_index(case.n, keep, decayed), "matrix_nms")
    if np.any(np.diff(np.asarray(decayed, dtype=np.float64)) > 0):
        raise AssertionError("matrix_nms: keep is not ordered by decayed score")


def _check_paper(case: Case, result: Any) -> None:
    order, decayed = to_numpy(result)
    _assert_decay(case, _decayed_by_index(case.n, order, decayed), "the paper's transcription")


def _check_greedy(case: Case, result: Any) -> None:
    keep = np.asarray(to_numpy(result)).astype(np.int64)
    expected = reference_greedy(case)
    if not np.array_equal(keep, expected):
        raise AssertionError(f"greedy NMS kept {len(keep)} items, the reference loop {len(expected)}; "
                             f"first difference at {int(np.argmax(keep[:len(expected)] != expected[:len(keep)]))}")


def _check_soft(case: Case, result: Any) -> None:
    keep, decayed = (np.asarray(v) for v in to_numpy(result))
    s = scene(case)
    if len(keep) == 0 or len(np.unique(keep)) != len(keep):
        raise AssertionError("soft_nms: empty or repeated keep")
    top = int(np.argsort(-s.scores, kind="stable")[0])
    if int(keep[0]) != top or not math.isclose(float(decayed[0]), float(s.scores[top]), rel_tol=1e-6):
        raise AssertionError("soft_nms: the top-scored item must come first with its score")
    if np.any(decayed.astype(np.float64) > s.scores[keep].astype(np.float64) * (1 + 1e-6)):
        raise AssertionError("soft_nms: a decayed score exceeds its input score")
    if np.any(np.diff(decayed.astype(np.float64)) > 1e-7):
        raise AssertionError("soft_nms: keep is not in decreasing decayed score")


def _check_floor(case: Case, result: Any) -> None:
    if result.shape != (case.n, -(-case.height * case.width // 8)):
        raise AssertionError(f"packbits gave shape {result.shape}")


@functools.lru_cache(maxsize=4)
def _coco_rles(case: Case) -> Any:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(_fortran_uint8(scene(case).masks))


def _fortran_uint8(masks: np.ndarray) -> np.ndarray:
    # pycocotools wants (H, W, N) uint8 in Fortran order
    return np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))


@functools.lru_cache(maxsize=4)
def reference_mask_iou(case: Case) -> np.ndarray:
    """(N, N) float64 IoU: pycocotools' when installed, else exact float32 counts (exact below 2**24 pixels)."""
    masks = scene(case).masks
    if find_spec("pycocotools") is not None:
        from pycocotools import mask as mask_utils

        rles = _coco_rles(case)
        return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64).reshape(case.n, case.n)
    flat = masks.reshape(case.n, -1)
    area = flat.sum(axis=1).astype(np.float64)
    inter = np.zeros((case.n, case.n))
    step = max(1, 2**26 // max(1, case.n * 4))
    for start in range(0, flat.shape[1], step):
        part = flat[:, start:start + step].astype(np.float32)
        inter += part @ part.T
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _check_mask_iou(case: Case, result: Any) -> None:
    iou = np.asarray(to_numpy(result), dtype=np.float64).reshape(case.n, case.n)
    np.testing.assert_allclose(iou, reference_mask_iou(case), rtol=1e-6, atol=1e-7,
                               err_msg="mask IoU disagrees with pycocotools")


def _numpy_any_boxes(masks: np.ndarray) -> np.ndarray:
    """masks_to_boxes the plain NumPy way: any over columns / rows, first and last True (xyxy, edges)."""
    rows = masks.any(axis=2)
    cols = masks.any(axis=1)
    h, w = rows.shape[1], cols.shape[1]
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0
    return boxes


def _check_boxes(case: Case, result: Any, fmt: str = "xyxy") -> None:
    boxes = np.asarray(to_numpy(result), dtype=np.float64)
    if fmt == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    expected = _numpy_any_boxes(scene(case).masks).astype(np.float64)
    np.testing.assert_array_equal(boxes, expected, err_msg="masks_to_boxes disagrees with the NumPy any-reduction")


def _check_coco_boxes(case: Case, result: Any) -> None:
    _check_boxes(case, result, "xywh")


def _place_name(library: str, device: str) -> str:
    """How rows name where they run: "NumPy", "Torch", "Torch CUDA"."""
    return _LIBRARY_NAMES[library] + ("" if device == "cpu" else f" {device.upper()}")


def _place_suffix(library: str, device: str) -> str:
    """Method keys' suffix for where they run: "numpy", "torch", "torch-cuda"."""
    return library if device == "cpu" else f"{library}-{device}"


def _labels_kw(case: Case, place: tuple[str, str]) -> dict[str, Any]:
    s = scene(case)
    return {} if s.labels is None else {"labels": to_library(s.labels, *place)}


def _mask_inputs(case: Case, place: tuple[str, str]) -> tuple[Any, Any, Any]:
    """(scores, masks, labels or None) of the case's mask scene, in the library and on the device of ``place``."""
    s = scene(case)
    return to_library(s.scores, *place), to_library(s.masks, *place), _labels_kw(case, place).get("labels")


def _timed(fn: Callable[[], Any], library: str, device: str) -> Callable[[], Any]:
    if device != "cuda":
        return fn

    def run() -> Any:
        out = fn()
        _synchronize(device, library)
        return out

    return run


def _library_methods(family: str) -> list[Method]:
    from . import masks as masks_module
    from .nms import matrix_nms

    out = []
    for key, library, device, backend in PATHS:
        place = (library, device)
        name = _place_name(library, device)
        if device == "cuda":
            thread_kind = "gpu"
        elif backend in ("numba", "torch"):
            thread_kind = backend
        elif library == "torch":
            thread_kind = "torch"
        else:  # NumPy generic: BLAS matmul for mask IoU, plain (single-threaded) NumPy otherwise
            thread_kind = "blas" if family in ("masks", "mask_iou") else "serial"

        def build(case: Case, place: tuple[str, str] = place, backend: str = backend) -> Callable[[], Any]:
            s = scene(case)
            scores = to_library(s.scores, *place)
            kw = _labels_kw(case, place)
            if family == "masks":
                m = to_library(s.masks, *place)
                fn = lambda: matrix_nms(scores, m, sigma=SIGMA, backend=backend, **kw)  # noqa: E731
            elif family == "boxes":
                b = to_library(s.boxes, *place)
                fn = lambda: matrix_nms(scores, boxes=b, sigma=SIGMA, backend=backend, **kw)  # noqa: E731
            elif family == "mask_iou":
                m = to_library(s.masks, *place)
                fn = lambda: masks_module.mask_iou(m, backend=backend)  # noqa: E731
            else:
                m = to_library(s.masks, *place)
                fn = lambda: masks_module.masks_to_boxes(m, backend=backend)  # noqa: E731
            return _timed(fn, *place)

        if family in ("masks", "boxes"):
            thing = "mask IoU" if family == "masks" else "box IoU"
            title = f"matrix_nms {backend} ({name})"
            what = (f"matrixnms.matrix_nms(..., backend={backend!r}) on {name} input, unsorted float32 scores: "
                    f"sort + {thing} + decay")
            check = _check_matrix_nms
        elif family == "mask_iou":
            title = f"mask_iou {backend} ({name})"
            what = f"matrixnms.mask_iou(masks, backend={backend!r}) on {name} input: the (N, N) IoU"
            check = _check_mask_iou
        else:
            title = f"masks_to_boxes {backend} ({name})"
            what = f"matrixnms.masks_to_boxes(masks, backend={backend!r}) on {name} input: (N, 4) xyxy boxes"
            check = _check_boxes
        out.append(Method(
            key=key,
            family=family, title=title, role="library", library=library, device=device, what=what,
            includes_iou=family in ("masks", "boxes", "mask_iou"), thread_kind=thread_kind, build=build,
            check=check, backend=backend, op=_OPS[family],
        ))
    return out


def _paper_method(library: str, device: str) -> Method:
    from ._transcription import paper_matrix_nms_numpy, paper_matrix_nms_torch

    place = (library, device)
    name = _place_name(library, device)

    def build(case: Case) -> Callable[[], Any]:
        scores, m, labels = _mask_inputs(case, place)
        fn = paper_matrix_nms_numpy if library == "numpy" else paper_matrix_nms_torch
        return _timed(lambda: fn(scores, m, labels, "gauss", SIGMA), *place)

    key = f"paper-{_place_suffix(library, device)}"
    return Method(
        key=key, family="masks", title=f"paper Fig. 1 ({name} f32)", role="paper", library=library,
        device=device,
        what=(f"the paper's Figure 1 transcribed literally in {name} float32: sort + gather, float cast, "
              "IoU by matmul, N x N decay (IoU included)"),
        includes_iou=True, thread_kind="gpu" if device == "cuda" else "blas" if library == "numpy" else "torch",
        build=build, check=_check_paper,
    )


def _greedy_detector(library: str, device: str) -> Method:
    from ._transcription import greedy_mask_nms_numpy, greedy_mask_nms_torch

    place = (library, device)
    name = _place_name(library, device)

    def build(case: Case) -> Callable[[], Any]:
        scores, m, labels = _mask_inputs(case, place)
        fn = greedy_mask_nms_numpy if library == "numpy" else greedy_mask_nms_torch
        return _timed(lambda: fn(scores, m, IOU_THRESHOLD, labels), *place)

    how = "bool AND + count over the surviving later masks" if library == "numpy" else \
        "float32 matrix-vector product with the later masks"
    key = f"greedy-{_place_suffix(library, device)}"
    return Method(
        key=key, family="masks", title=f"greedy as detectors ({name})", role="greedy", library=library,
        device=device,
        what=(f"greedy mask NMS (IoU > {IOU_THRESHOLD}) as detection code writes it, {name}: per kept mask, "
              f"its IoU with the later ones ({how}); per class when labelled (IoU included)"),
        includes_iou=True, thread_kind="gpu" if device == "cuda" else "serial" if library == "numpy" else "torch",
        build=build, check=_check_greedy,
    )


def _baseline_methods(family: str) -> list[Method]:
    """The library's own greedy NMS and Soft-NMS, on NumPy and Torch (backend="auto")."""
    from . import baselines

    out = []
    for library, device in (("numpy", "cpu"), ("torch", "cpu"), ("torch", "cuda")):
        place = (library, device)
        name = _place_name(library, device)
        suffix = _place_suffix(library, device)
        thread_kind = "gpu" if device == "cuda" else "auto"

        if family == "masks":
            def build_greedy(case: Case, place: tuple[str, str] = place) -> Callable[[], Any]:
                s = scene(case)
                scores, m = to_library(s.scores, *place), to_library(s.masks, *place)
                kw = _labels_kw(case, place)
                return _timed(lambda: baselines.mask_nms(m, scores, IOU_THRESHOLD, **kw), *place)

            out.append(Method(
                key=f"mask_nms-{suffix}", family=family, title=f"mask_nms ({name})", role="baseline",
                library=library, device=device,
                what=(f"matrixnms.mask_nms(IoU > {IOU_THRESHOLD}) on {name} input, backend='auto': library IoU "
                      "matrix + greedy loop (IoU included)"),
                includes_iou=True, thread_kind=thread_kind, build=build_greedy, check=_check_greedy,
                backend="auto", op="mask_iou_sorted",
            ))
        else:
            for which in ("nms", "batched_nms"):
                def build_nms(case: Case, place: tuple[str, str] = place, which: str = which) -> Callable[[], Any]:
                    s = scene(case)
                    scores, b = to_library(s.scores, *place), to_library(s.boxes, *place)
                    if which == "nms":
                        return _timed(lambda: baselines.nms(b, scores, IOU_THRESHOLD), *place)
                    labels = to_library(s.labels, *place)
                    return _timed(lambda: baselines.batched_nms(b, scores, labels, IOU_THRESHOLD), *place)

                out.append(Method(
                    key=f"{which}-{suffix}", family=family, title=f"{which} ({name})", role="greedy",
                    library=library, device=device,
                    what=(f"matrixnms.{which}(IoU > {IOU_THRESHOLD}) on {name} input, backend='auto': greedy box "
                          f"NMS{' per class' if which == 'batched_nms' else ''} (IoU included)"),
                    includes_iou=True, thread_kind=thread_kind, build=build_nms, check=_check_greedy,
                    backend="auto", op="greedy_boxes", only_labelled=which == "batched_nms",
                ))

        def build_soft(case: Case, place: tuple[str, str] = place) -> Callable[[], Any]:
            s = scene(case)
            scores = to_library(s.scores, *place)
            data = ({"masks": to_library(s.masks, *place)} if family == "masks"
                    else {"boxes": to_library(s.boxes, *place)})
            kw = _labels_kw(case, place)
            return _timed(lambda: baselines.soft_nms(scores, sigma=SIGMA, **data, **kw), *place)

        out.append(Method(
            key=f"soft_nms-{suffix}", family=family, title=f"soft_nms ({name})", role="baseline", library=library,
            device=device,
            what=(f"matrixnms.soft_nms(gaussian, sigma={SIGMA}, score_threshold=0.001) on {name} input, "
                  f"backend='auto': {'library IoU matrix + ' if family == 'masks' else ''}sequential re-selection "
                  "(IoU included)"),
            includes_iou=True, thread_kind=thread_kind, build=build_soft, check=_check_soft, backend="auto",
            op="mask_iou_sorted" if family == "masks" else "soft_nms_boxes",
        ))
    return out


def _floor_method() -> Method:
    def build(case: Case) -> Callable[[], Any]:
        masks = scene(case).masks
        return lambda: np.packbits(masks.reshape(masks.shape[0], -1), axis=1)

    return Method(
        key="read-floor", family="masks", title="read floor (np.packbits)", role="floor", library="numpy",
        device="cpu",
        what="np.packbits(masks.reshape(N, -1), axis=1): one pass over the N*H*W mask bytes, no NMS",
        includes_iou=False, thread_kind="serial", build=build, check=_check_floor,
    )


def _reference_methods(family: str) -> list[Method]:
    """pycocotools and plain NumPy, for the utilities (pycocotools is imported only when a case runs)."""
    if family == "mask_iou":
        def build_encode_iou(case: Case) -> Callable[[], Any]:
            from pycocotools import mask as mask_utils

            masks = scene(case).masks

            def run() -> Any:
                rles = mask_utils.encode(_fortran_uint8(masks))
                return mask_utils.iou(rles, rles, [0] * len(rles))

            return run

        def build_iou(case: Case) -> Callable[[], Any]:
            from pycocotools import mask as mask_utils

            rles = _coco_rles(case)
            crowd = [0] * len(rles)
            return lambda: mask_utils.iou(rles, rles, crowd)

        return [
            Method(key="pycocotools-encode-iou", family=family, title="pycocotools encode + iou", role="reference",
                   library="numpy", device="cpu",
                   what=("pycocotools: (N,H,W) bool -> Fortran uint8 (H,W,N), mask.encode, mask.iou(iscrowd=0): "
                         "RLE encoding included"),
                   includes_iou=True, thread_kind="serial", build=build_encode_iou, check=_check_mask_iou,
                   requires=("pycocotools",)),
            Method(key="pycocotools-iou", family=family, title="pycocotools iou (RLE given)", role="baseline",
                   library="numpy", device="cpu",
                   what="pycocotools mask.iou on RLEs encoded beforehand (encoding not timed)",
                   includes_iou=True, thread_kind="serial", build=build_iou, check=_check_mask_iou,
                   requires=("pycocotools",)),
        ]

    def build_any(case: Case) -> Callable[[], Any]:
        masks = scene(case).masks
        return lambda: _numpy_any_boxes(masks)

    def build_encode_bbox(case: Case) -> Callable[[], Any]:
        from pycocotools import mask as mask_utils

        masks = scene(case).masks
        return lambda: mask_utils.toBbox(mask_utils.encode(_fortran_uint8(masks)))

    def build_bbox(case: Case) -> Callable[[], Any]:
        from pycocotools import mask as mask_utils

        rles = _coco_rles(case)
        return lambda: mask_utils.toBbox(rles)

    return [
        Method(key="numpy-any", family=family, title="NumPy any-reduction", role="reference", library="numpy",
               device="cpu",
               what="NumPy: masks.any over columns and over rows, first/last True by argmax (xyxy pixel edges)",
               includes_iou=False, thread_kind="serial", build=build_any, check=_check_boxes),
        Method(key="pycocotools-encode-bbox", family=family, title="pycocotools encode + toBbox", role="baseline",
               library="numpy", device="cpu",
               what="pycocotools: Fortran uint8 copy, mask.encode, mask.toBbox (xywh); RLE encoding included",
               includes_iou=False, thread_kind="serial", build=build_encode_bbox, check=_check_coco_boxes,
               requires=("pycocotools",)),
        Method(key="pycocotools-bbox", family=family, title="pycocotools toBbox (RLE given)", role="baseline",
               library="numpy", device="cpu", what="pycocotools mask.toBbox on RLEs encoded beforehand",
               includes_iou=False, thread_kind="serial", build=build_bbox, check=_check_coco_boxes,
               requires=("pycocotools",)),
    ]


def methods(family: str) -> list[Method]:
    """Every method of ``family``, available here or not (see :meth:`Method.skip_reason`)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    out = _library_methods(family)
    if family == "masks":
        out += [_paper_method("numpy", "cpu"), _paper_method("torch", "cpu"), _paper_method("torch", "cuda")]
        out += [_greedy_detector("numpy", "cpu"), _greedy_detector("torch", "cpu"),
                _greedy_detector("torch", "cuda")]
        out += _baseline_methods(family) + [_floor_method()]
    elif family == "boxes":
        out += _baseline_methods(family)
    else:
        out += _reference_methods(family)
    return out


def jobs(families: Iterable[str], mode: str = "full", *, sizes: Iterable[int] | None = None,
         image: tuple[int, int] | None = None, seed: int = 0) -> list[tuple[Case, Method, str | None]]:
    """Every (case, method, skip reason or None) of ``families``, in group order."""
    out = []
    for family in families:
        family_methods = methods(family)
        for case in cases(family, mode, sizes=sizes, image=image, seed=seed):
            out += [(case, method, method.skip_reason(case)) for method in family_methods if method.applies(case)]
    return out


# --------------------------------------------------------------------------------------------------------
# timing


# Per-call time above which a method is timed in a fixed, small number of rounds instead of being
# calibrated (pytest-benchmark's default loop), so that a 40-second greedy baseline doesn't run 5 times.
CALIBRATE_BELOW_S = 0.2
_BUDGET = {"full": (5, 1.0), "quick": (3, 0.05), "smoke": (0, 0.0)}  # (min rounds, min seconds)
# In quick mode a call this slow is timed once: its warm-up call is the measurement (``run`` warms the JIT
# and the libraries up on a tiny input first, so that first call carries no one-time cost).
QUICK_SINGLE_S = 0.5


def fixed_rounds(first_call_s: float, mode: str = "full") -> int:
    """Rounds for a slow method (first, untimed and checked, call of ``first_call_s`` >= CALIBRATE_BELOW_S)."""
    if mode == "quick":
        return 1 if first_call_s >= 1.0 else 2
    if first_call_s > 10.0:
        return 1
    return 3 if first_call_s > 2.0 else 5


def measure(fn: Callable[[], Any], first_call_s: float, mode: str = "full") -> list[float]:
    """Per-call seconds of ``fn`` after its warm-up call: at least the mode's rounds and seconds."""
    if mode == "smoke":
        return [first_call_s]
    min_rounds, min_seconds = _BUDGET[mode]
    if first_call_s >= CALIBRATE_BELOW_S:
        rounds, min_seconds = fixed_rounds(first_call_s, mode), 0.0
    else:
        rounds = min_rounds
    times: list[float] = []
    while len(times) < rounds or (sum(times) < min_seconds and len(times) < 10_000):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_job(case: Case, method: Method, mode: str = "full") -> dict[str, Any]:
    """Build, warm up and check, then time one method on one case; returns its record."""
    fn = method.build(case)
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    method.check(case, result)
    del result
    times = [first] if mode == "quick" and first >= QUICK_SINGLE_S else measure(fn, first, mode)
    return record(case, method, times)


def warm_up(todo: Iterable[tuple[Case, Method]]) -> None:
    """Call every method once on a tiny input of each family and labelling: JIT compilation (or loading
    Numba's cache), lazy imports and library initialisation happen here, not in a measurement."""
    seen = set()
    for case, method in todo:
        tiny = Case(case.family, 8, case.num_classes, 16, 24, case.seed)
        if (tiny, method.key) in seen:
            continue
        seen.add((tiny, method.key))
        method.build(tiny)()


def record(case: Case, method: Method, times: list[float]) -> dict[str, Any]:
    """A result: the method's ``info`` plus the median, quartiles and (up to 100 rounds) the raw times."""
    ordered = sorted(float(t) for t in times)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {**method.info(case), "median_s": statistics.median(ordered), "rounds": len(ordered),
            "min_s": ordered[0], "q1_s": quartiles[0], "q3_s": quartiles[2], "max_s": ordered[-1],
            "times_s": [float(t) for t in times] if len(times) <= 100 else None}


# --------------------------------------------------------------------------------------------------------
# ratios and targets

# Per family: (column, role of the reference row, kind). "speedup" = reference time / row time (x faster);
# "multiple" = row time / reference time (x the floor).
COMPARISONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "masks": (("vs paper", "paper", "speedup"), ("vs greedy", "greedy", "speedup"), ("x floor", "floor", "multiple")),
    "boxes": (("vs greedy", "greedy", "speedup"),),
    "mask_iou": (("vs pycocotools", "reference", "speedup"),),
    "masks_to_boxes": (("vs NumPy any", "reference", "speedup"),),
}


def _peer(row: dict[str, Any], group: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    """The row of ``role`` that ``row`` is compared with: same library and device, else same device.

    A ratio never mixes devices: a CUDA row is compared with the CUDA transcription / greedy, a CPU row with
    a CPU one. The floor (a CPU memory pass) only serves CPU rows; the utilities' references (pycocotools,
    NumPy) serve every row.
    """
    peers = [r for r in group if r["role"] == role]
    if role == "reference":
        return peers[0] if peers else None
    if role == "floor":
        return peers[0] if peers and row["device"] == "cpu" else None
    for same in (lambda r: r["place"] == row["place"], lambda r: r["device"] == row["device"]):
        matching = [r for r in peers if same(r)]
        if matching:
            return matching[0]
    return None


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``ratios`` {column: value} and ``compared_with`` {column: method} to every record, per group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    for group in groups.values():
        for r in group:
            r["ratios"], r["compared_with"] = {}, {}
            for column, role, kind in COMPARISONS[r["family"]]:
                peer = _peer(r, group, role)
                if peer is None or r["median_s"] <= 0 or peer["median_s"] <= 0:
                    continue
                ratio = peer["median_s"] / r["median_s"] if kind == "speedup" else r["median_s"] / peer["median_s"]
                r["ratios"][column] = ratio
                r["compared_with"][column] = peer["method"]
    return records


@dataclass(frozen=True)
class Target:
    """A performance target: ``value(rows)`` of one group compared with ``goal``."""

    text: str
    family: str
    n: int
    num_classes: int | None
    row: Callable[[dict[str, Any]], bool]  # the row under test
    reference: Callable[[dict[str, Any]], bool] | None  # the row it is compared with; None: absolute time
    goal: float
    kind: str  # "speedup >=", "multiple <=", "ms <"


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
)


def check_targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target whose rows were measured (at the standard 200x336), with its value and verdict."""
    out = []
    for t in TARGETS:
        group = [r for r in records if r["family"] == t.family and r["n"] == t.n and r["num_classes"] == t.num_classes
                 and (r["height"], r["width"]) == (MASK_HEIGHT, MASK_WIDTH)]
        row = next((r for r in group if t.row(r)), None)
        ref = None if t.reference is None else next((r for r in group if t.reference(r)), None)
        if row is None or (t.reference is not None and ref is None):
            continue
        if t.kind == "ms <":
            value = row["median_s"] * 1e3
            passed = value < t.goal
        elif t.kind.startswith("speedup"):
            value = ref["median_s"] / row["median_s"]
            passed = value >= t.goal if t.kind.endswith(">=") else value > t.goal
        else:
            value = row["median_s"] / ref["median_s"]
            passed = value <= t.goal
        out.append({"target": t.text, "group": row["group"], "method": row["method"],
                    "reference": None if ref is None else ref["method"], "kind": t.kind, "goal": t.goal,
                    "value": value, "passed": passed})
    return out


# --------------------------------------------------------------------------------------------------------
# report: table, JSON, plot


def _format_time(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _format_ratio(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "multiple":
        return f"{value:.1f}x"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def _input_name(r: dict[str, Any]) -> str:
    return _LIBRARY_NAMES[r["library"]] + ("" if r["device"] == "cpu" else f" {r['device'].upper()}")


def format_table(records: list[dict[str, Any]], skipped: list[tuple[str, str, str]] = ()) -> str:
    """Per-group tables of medians and ratios, the targets, and what every method times."""
    lines: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    for name, group in groups.items():
        family = group[0]["family"]
        columns = [c for c, _, _ in COMPARISONS[family]]
        kinds = {c: k for c, _, k in COMPARISONS[family]}
        header = ["method", "input", "IoU", "threads", "median ms", "rounds"] + columns
        rows = []
        for r in sorted(group, key=lambda r: r["median_s"]):
            title = r["title"] + (" [auto]" if r.get("auto") else "")
            rows.append([title, _input_name(r), "incl." if r["includes_iou"] else "-", r["threads"],
                         _format_time(r["median_s"]), str(r["rounds"])]
                        + [_format_ratio(r.get("ratios", {}).get(c), kinds[c]) for c in columns])
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append("")
        lines.append(name)
        lines.append("  ".join(h.ljust(w) if i < 4 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in rows:
            lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    lines.append("")
    lines.append("Ratios: 'vs paper' / 'vs greedy' = time of the paper's transcription / of greedy NMS, in the same "
                 "library and on the same device, divided by the row's time (x faster; >1 is faster). 'x floor' = "
                 "row time / time of one np.packbits pass over the masks. 'vs pycocotools' / 'vs NumPy any' = the "
                 "reference's time / the row's time. [auto] marks the path backend='auto' picks for that input. "
                 "'IoU incl.': the figure includes computing the IoU from the masks or boxes.")
    targets = check_targets(records)
    if targets:
        lines.append("")
        lines.append("Targets (issue 4), each from one group of this run:")
        for t in targets:
            unit = " ms" if t["kind"] == "ms <" else "x"
            verdict = "PASS" if t["passed"] else "MISS"
            lines.append(f"  [{verdict}] {t['target']}: measured {t['value']:.2f}{unit} (goal {t['kind']} {t['goal']:g}"
                         f"{unit})")
    lines.append("")
    lines.append("What each method times:")
    seen = set()
    for r in records:
        if r["method"] + r["family"] in seen:
            continue
        seen.add(r["method"] + r["family"])
        lines.append(f"  {r['family']:>14} {r['title']}: {r['what']}; threads: {r['threads']}")
    if skipped:
        # one line per (method, reason), with the groups it applies to counted
        reasons: dict[tuple[str, str], int] = {}
        for _, title, reason in skipped:
            reasons[title, reason] = reasons.get((title, reason), 0) + 1
        lines.append("")
        lines.append("Not run here:")
        for (title, reason), count in reasons.items():
            lines.append(f"  {title}: {reason} ({count} case{'s' if count > 1 else ''})")
    return "\n".join(lines)


_PLOT_PANELS = (
    ("masks", None, "Mask Matrix NMS, class-agnostic"),
    ("masks", NUM_CLASSES, f"Mask Matrix NMS, {NUM_CLASSES} classes"),
    ("boxes", None, "Box NMS, class-agnostic"),
    ("boxes", NUM_CLASSES, f"Box NMS, {NUM_CLASSES} classes"),
)
# One colour and line style per method, the same in every panel: the library's paths solid and strong,
# the paper's code dashed greens, greedy NMS dash-dot, the library's baselines dotted.
_STYLE: dict[str, tuple[str, str, str]] = {  # key: (colour, line style, marker)
    "numpy-numba": ("#1f5fbf", "-", "o"), "numpy-generic": ("#7fb2f0", "-", "o"),
    "torch-numba": ("#d62728", "-", "s"), "torch-torch": ("#ff7f0e", "-", "s"),
    "torch-generic": ("#ffbb78", "-", "s"),
    "torch-cuda-torch": ("#7b2cbf", "-", "D"), "torch-cuda-generic": ("#c39bd3", "-", "D"),
    "cupy-cupy": ("#8c564b", "-", "P"), "cupy-generic": ("#c49c94", "-", "P"),
    "paper-numpy": ("#2ca02c", "--", "^"), "paper-torch": ("#98df8a", "--", "^"),
    "paper-torch-cuda": ("#556b2f", "--", "^"),
    "greedy-numpy": ("#555555", "-.", "v"), "greedy-torch": ("#a0a0a0", "-.", "v"),
    "greedy-torch-cuda": ("#777777", "-.", "v"),
    "mask_nms-numpy": ("#e377c2", ":", "x"), "mask_nms-torch": ("#f7b6d2", ":", "x"),
    "mask_nms-torch-cuda": ("#b5479a", ":", "x"),
    "nms-numpy": ("#e377c2", "-.", "x"), "nms-torch": ("#f7b6d2", "-.", "x"), "nms-torch-cuda": ("#b5479a", "-.", "x"),
    "batched_nms-numpy": ("#e377c2", "-.", "x"), "batched_nms-torch": ("#f7b6d2", "-.", "x"),
    "batched_nms-torch-cuda": ("#b5479a", "-.", "x"),
    "soft_nms-numpy": ("#17becf", ":", "+"), "soft_nms-torch": ("#9edae5", ":", "+"),
    "soft_nms-torch-cuda": ("#0f7f8a", ":", "+"),
}


def plot(records: list[dict[str, Any]], path: str, machine: dict[str, Any] | None = None) -> None:
    """Time vs N (log-log) per method: masks and boxes, class-agnostic and labelled; the read floor dashed.

    One row per family (masks, boxes), one column per labelling; each row has one legend, and a method has the
    same colour in every panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

    panels = [p for p in _PLOT_PANELS if any(r["family"] == p[0] and r["num_classes"] == p[1] for r in records)]
    if not panels:
        raise ValueError("no mask or box results to plot")
    families = [f for f in ("masks", "boxes") if any(p[0] == f for p in panels)]
    fig, axes = plt.subplots(len(families), 2, figsize=(15, 5.2 * len(families)), squeeze=False)
    for row, family in enumerate(families):
        handles: dict[str, Any] = {}
        for col, num_classes in enumerate((None, NUM_CLASSES)):
            ax = axes[row, col]
            title = next((t for f, c, t in _PLOT_PANELS if f == family and c == num_classes), "")
            mine = [r for r in records if r["family"] == family and r["num_classes"] == num_classes]
            if not mine:
                ax.axis("off")
                continue
            by_method: dict[str, list[dict[str, Any]]] = {}
            for r in mine:
                by_method.setdefault(r["method"], []).append(r)
            for key, rs in by_method.items():
                rs = sorted(rs, key=lambda r: r["n"])
                ns, ms = [r["n"] for r in rs], [r["median_s"] * 1e3 for r in rs]
                role = rs[0]["role"]
                if role == "floor":
                    label = "read floor: np.packbits over the N*H*W mask bytes"
                    (line,) = ax.plot(ns, ms, color="black", linestyle=(0, (6, 3)), linewidth=2.6, label=label)
                else:
                    label = rs[0]["title"] + (" [auto]" if rs[0].get("auto") else "")
                    color, linestyle, marker = _STYLE.get(key, ("#333333", "-", "o"))
                    (line,) = ax.plot(ns, ms, color=color, linestyle=linestyle, marker=marker, markersize=5.5,
                                      linewidth=2.6 if role == "library" else 1.6, label=label)
                handles.setdefault(label, line)
            ax.set_xscale("log")
            ax.set_yscale("log")
            sizes = sorted({r["n"] for r in mine})
            ax.xaxis.set_major_locator(FixedLocator(sizes))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            # plain numbers at 1-2-5 steps: readable whether a panel spans one decade or five
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("N (candidates)")
            ax.set_ylabel("median time per call (ms)")
            if family == "masks":
                title += f", {mine[0]['height']}x{mine[0]['width']} masks"
            elif family == "boxes":
                title += ", 800x1344 image"
            ax.set_title(title, fontsize=12)
            ax.grid(True, which="major", alpha=0.45)
            ax.grid(True, which="minor", axis="y", alpha=0.15)
        # the row's legend, right of its panels, sorted as the lines' time at the largest N
        order = sorted(handles.items(), key=lambda kv: -kv[1].get_ydata()[-1])
        axes[row, 1].legend([h for _, h in order], [k for k, _ in order], loc="center left",
                            bbox_to_anchor=(1.02, 0.5), fontsize=9, frameon=False,
                            title="sorted by time at the largest N", title_fontsize=9)
    if machine:
        desc = (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; numpy {machine.get('numpy', '?')}"
                + (f", torch {machine['torch']}" if "torch" in machine else "")
                + (f", numba {machine['numba']}" if "numba" in machine else "")
                + (f"; GPU {machine['gpu']}" if "gpu" in machine else "")
                + ". Every time includes sorting and the IoU; solid lines: matrixnms.matrix_nms, [auto]: the "
                  "default path.")
        fig.suptitle(desc, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if machine else None)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------------------------------------
# the runner behind ``matrixnms bench``


def run(families: Iterable[str] = FAMILIES, mode: str = "full", *, sizes: Iterable[int] | None = None,
        image: tuple[int, int] | None = None, seed: int = 0, progress: bool = True,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the cases, return ``{"machine", "mode", "results", "targets", "skipped"}``."""
    families = tuple(families)
    todo = jobs(families, mode, sizes=sizes, image=image, seed=seed)
    runnable = [(c, m) for c, m, reason in todo if reason is None]
    skipped = [(c.group, m.title, reason) for c, m, reason in todo if reason is not None]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(runnable), unit="run", dynamic_ncols=True)
        except ImportError:  # tqdm is optional: the runner still works without a progress bar
            bar = None
    records = []
    try:
        if bar is not None:
            bar.set_description("warming up (JIT, imports)")
        warm_up(runnable)
        for case, method in runnable:
            if bar is not None:
                bar.set_description(f"{case.family} N={case.n} {method.title}"[:60])
            records.append(run_job(case, method, mode))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    summarize(records)
    return {"machine": machine_info(), "mode": mode, "results": records, "targets": check_targets(records),
            "skipped": [{"group": g, "method": t, "reason": r} for g, t, r in skipped]}


# --------------------------------------------------------------------------------------------------------
# memory: peak resident memory of one call, in a fresh child process

MEMORY_METHODS = ("matrix_nms", "matrix_nms-generic", "paper-numpy")
# Issue 4's bound for matrix_nms at N = 10,000 masks of 200x336.
MEMORY_BOUND_BYTES = int(1.5 * 2**30)


def memory_estimate(method: str, n: int, height: int = MASK_HEIGHT, width: int = MASK_WIDTH) -> int:
    """A generous upper estimate of a method's peak memory beyond the input, in bytes (to decide skips)."""
    if method == "paper-numpy":
        # the float32 (N, H*W) copy plus about eight float32 (N, N) arrays alive at once
        return 4 * n * height * width + 8 * 4 * n * n
    return MEMORY_BOUND_BYTES


def available_memory() -> int:
    """MemAvailable from /proc/meminfo in bytes (0 when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _status(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_call(method: str, masks: np.ndarray, scores: np.ndarray, labels: np.ndarray | None) -> Any:
    from ._transcription import paper_matrix_nms_numpy
    from .nms import matrix_nms

    if method == "matrix_nms":
        return matrix_nms(scores, masks, labels=labels, sigma=SIGMA)
    if method == "matrix_nms-generic":
        return matrix_nms(scores, masks, labels=labels, sigma=SIGMA, backend="generic")
    return paper_matrix_nms_numpy(scores, masks, labels, "gauss", SIGMA)


def _memory_child(conn: Any, method: str, n: int, num_classes: int | None, height: int, width: int,
                  seed: int) -> None:
    try:
        import resource

        # warm up on a small scene: imports, JIT compilation and allocator pools are not the call's memory
        small = mask_scene(min(n, 64), height=height, width=width, num_classes=num_classes, seed=seed + 1)
        _memory_call(method, small.masks, small.scores, small.labels)
        del small
        s = mask_scene(n, height=height, width=width, num_classes=num_classes, seed=seed)
        gc.collect()
        baseline = _status("VmRSS")
        reset = _reset_peak()
        start = time.perf_counter()
        out = _memory_call(method, s.masks, s.scores, s.labels)
        seconds = time.perf_counter() - start
        # without the reset, the lifetime peak (which includes building the scene) bounds the call's from above
        peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        del out
        conn.send({"method": method, "n": n, "num_classes": num_classes, "height": height, "width": width,
                   "input_bytes": int(s.masks.nbytes + s.scores.nbytes + (0 if s.labels is None else s.labels.nbytes)),
                   "baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "increase_bytes": max(0, peak - baseline),
                   "peak_counter_reset": reset, "seconds": seconds})
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def peak_memory(method: str, n: int, *, num_classes: int | None = None, height: int = MASK_HEIGHT,
                width: int = MASK_WIDTH, seed: int = 0, timeout: float = 1800.0) -> dict[str, Any]:
    """Peak resident memory of one call of ``method`` on a mask scene, beyond the input, in a child process.

    The child (a fresh ``spawn``-ed interpreter) builds the scene, warms the method up on a small scene,
    records its resident memory, resets the kernel's peak counter, calls the method once and reports the
    peak. ``increase_bytes`` is the peak minus the resident memory just before the call (input included
    there), i.e. what the call itself needed.

    Args:
        method: ``"matrix_nms"`` (backend="auto"), ``"matrix_nms-generic"`` or ``"paper-numpy"``.
        n, num_classes, height, width, seed: the scene.
        timeout: seconds to wait for the child.

    Returns:
        dict with ``increase_bytes``, ``peak_rss_bytes``, ``baseline_rss_bytes``, ``input_bytes``,
        ``seconds`` (the call alone) and ``peak_counter_reset``.
    """
    if method not in MEMORY_METHODS:
        raise ValueError(f"method must be one of {MEMORY_METHODS}, got {method!r}")
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_memory_child, args=(send, method, n, num_classes, height, width, seed))
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise TimeoutError(f"the memory child for {method} at N={n} took more than {timeout:.0f} s")
        result = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the memory child for {method} at N={n} died with exit code {child.exitcode} "
                           "(killed for memory?)") from None
    finally:
        if child.is_alive():
            child.join(5)
        if child.is_alive():
            child.terminate()
            child.join()
    if "error" in result:
        raise RuntimeError(f"the memory child for {method} at N={n} failed: {result['error']}")
    return result
