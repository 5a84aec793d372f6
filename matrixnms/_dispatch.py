"""Backend detection, the table of operations and the kernel registry.

The library of the caller's arrays (NumPy, Torch, CuPy) is detected from their types, never by importing a
library the caller has not imported. Every operation of :data:`OPS` has one generic implementation written
against the array API (the ``_generic*`` modules, registered as backend ``"generic"``); faster kernels
register themselves per backend and are preferred in the order of ``_PREFERENCE`` when ``backend="auto"``.

:func:`resolve` is the only way to find an implementation: ``"auto"`` picks the best installed kernel (the
generic path when none has the operation), ``"generic"`` the array-API path, and a named backend either has
the operation or raises ``ValueError`` naming the operation and the backend. Kernels receive validated
inputs and never validate.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Callable

import array_api_compat


@dataclass(frozen=True)
class Op:
    """One operation: the parameters every implementation takes (in this order) and what it returns."""

    params: tuple[str, ...]
    returns: str


# The kernel contract, once. Inputs are already validated; arrays are the caller's (or derived from them),
# results stay in the caller's library and on its device.
OPS: dict[str, Op] = {
    "mask_iou": Op(
        ("masks_a", "masks_b", "metric"),
        "(N, M) IoU (metric 'iou') or intersection over the smaller area ('ios') of (N, H, W) vs (M, H, W) 0/1 "
        "masks (masks_b None: masks_a vs itself), 0 where the denominator is 0; float64 (NumPy, CuPy) or "
        "torch's default float dtype"),
    "masks_to_boxes": Op(
        ("masks", "fmt"),
        "(N, 4) float32 boxes of (N, H, W) masks in fmt 'xyxy' | 'xywh' | 'xyxy_inclusive'; 0 for empty masks"),
    "box_iou": Op(
        ("boxes_a", "boxes_b", "metric"),
        "(N, M) IoU / IoS (metric) of xyxy boxes (boxes_b None: boxes_a vs itself) in the boxes' float dtype, "
        "0 where the denominator is 0"),
    "mask_decay": Op(
        ("masks", "order", "labels", "areas", "kernel", "sigma", "dtype", "metric"),
        "(K,) Matrix NMS decay in dtype of the candidates masks[order] (order: (K,) int64, by descending "
        "score); labels (K,) of the sorted candidates or None; areas (K,) of the sorted candidates or None "
        "(computed); metric 'iou' | 'ios' the pair overlap"),
    "box_decay": Op(
        ("boxes", "order", "labels", "kernel", "sigma", "dtype", "metric"),
        "(K,) Matrix NMS decay in dtype of the candidates boxes[order], as mask_decay"),
    "mask_iou_sorted": Op(
        ("masks", "order", "labels", "metric"),
        "(K, K) float64 IoU / IoS (metric) between masks[order], 0 between different labels (labels: of the "
        "sorted candidates, or None)"),
    "greedy_boxes": Op(
        ("boxes", "order", "labels", "iou_threshold", "metric"),
        "(K,) bool kept flags of greedy NMS over boxes[order] (by descending score, ties by lower index); "
        "suppress when IoU (or IoS, metric) > iou_threshold and same label"),
    "greedy_iou": Op(
        ("iou", "iou_threshold"),
        "(K,) bool kept flags of greedy NMS from the (K, K) float64 IoU of score-sorted candidates"),
    "soft_nms_boxes": Op(
        ("boxes", "candidates", "scores", "labels", "kernel", "sigma", "iou_threshold", "score_threshold",
         "metric"),
        "(positions (M,) int64 into candidates in selection order, values (M,) float64 scores at selection) "
        "of Soft-NMS over boxes[candidates] (candidates: increasing index order, scores float64)"),
    "soft_nms_iou": Op(
        ("iou", "scores", "kernel", "sigma", "iou_threshold", "score_threshold"),
        "as soft_nms_boxes, from the (K, K) float64 IoU of the candidates"),
    "sparse_mask_iou": Op(
        ("masks_a", "masks_b", "metric"),
        "(N, M) float64 NumPy IoU / IoS of two host SparseMasks (COCO RLE, crops; masks_b None: masks_a vs itself)"),
    "sparse_mask_iou_sorted": Op(
        ("masks", "order", "labels", "metric"),
        "(K, K) float64 NumPy IoU / IoS of SparseMasks masks[order] (order, labels: host NumPy), 0 across labels"),
    "sparse_mask_decay": Op(
        ("masks", "order", "labels", "areas", "kernel", "sigma", "metric"),
        "(K,) float64 NumPy Matrix NMS decay of SparseMasks masks[order], as mask_decay (host NumPy inputs)"),
    "multiclass_matrix_nms": Op(
        ("boxes", "scores", "classes", "score_threshold", "post_threshold", "kc", "width", "kernel", "sigma",
         "normalized", "static"),
        "(decayed (B, W), labels (B, W) int64, box index (B, W) int64, counts (B,) int64) of Paddle-style "
        "per-class box Matrix NMS; rows at or beyond counts[b] are padding (see matrixnms.multiclass)"),
    "fast_nms_iou": Op(
        ("iou", "iou_threshold"),
        "(K,) bool kept flags of Fast NMS from the (K, K) float64 IoU of score-sorted candidates: j is dropped "
        "when IoU > iou_threshold with any higher-scored candidate, kept or not"),
    "cluster_nms_iou": Op(
        ("iou", "iou_threshold"),
        "(K,) bool kept flags of Cluster-NMS (equal to greedy_iou's) from the (K, K) float64 IoU of score-sorted "
        "candidates"),
    "fast_nms_boxes": Op(
        ("boxes", "order", "labels", "iou_threshold", "metric"),
        "(K,) bool kept flags of Fast NMS over boxes[order] (by descending score, ties by lower index), float64 "
        "box IoU; suppress when IoU > iou_threshold and same label"),
    "cluster_nms_boxes": Op(
        ("boxes", "order", "labels", "iou_threshold", "metric"),
        "(K,) bool kept flags of Cluster-NMS over boxes[order] (equal to greedy_boxes's)"),
    "batched_mask_decay": Op(
        ("masks", "order", "in_play", "labels", "kernel", "sigma", "dtype"),
        "(B, K) Matrix NMS decay in dtype of each image's candidates masks[b, order[b]] ((B, N, H, W) masks; "
        "order: (B, K) int64, by descending score); in_play (B, K) bool marks the real candidates, a prefix of "
        "each row (the other entries are finite, unspecified, and never read); labels (B, K) of the sorted "
        "candidates or None"),
    "batched_box_decay": Op(
        ("boxes", "order", "in_play", "labels", "kernel", "sigma", "dtype"),
        "(B, K) Matrix NMS decay in dtype of each image's candidates boxes[b, order[b]] ((B, N, 4) boxes), as "
        "batched_mask_decay"),
    "batched_box_nms": Op(
        ("scores", "boxes", "candidate", "labels", "kernel", "sigma", "pre_top_k", "post_threshold", "post_top_k",
         "dtype"),
        "(keep (B, K) int64 padded -1, decayed (B, K) dtype padded 0, num_kept (B,) int64) of batched box Matrix NMS "
        "from the candidates (B, N) bool (valid, finite, past score_threshold); K = post_top_k or N"),
}

BACKENDS = ("auto", "generic", "numba", "torch", "cupy")
_KERNEL_BACKENDS = ("generic", "numba", "torch", "cupy")

_KERNELS: dict[tuple[str, str], Callable[..., Any]] = {}

# Which registered kernels ``backend="auto"`` tries, per (library, device kind), best first. Torch CPU
# tensors share memory with NumPy, so the Numba kernels serve them without a copy.
_PREFERENCE: dict[str, tuple[str, ...]] = {
    "numpy": ("numba",),
    "torch-cpu": ("numba", "torch"),
    "torch-cuda": ("torch",),
    "cupy": ("cupy",),
}

# The package each backend needs: a named backend that isn't installed raises ImportError naming it.
_PACKAGE = {"numba": "numba", "torch": "torch", "cupy": "cupy"}
# The modules that register each backend's kernels (matrixnms/<module>.py).
_MODULES = {
    "generic": ("_generic", "_generic_baselines", "_generic_multiclass", "_generic_fast", "_generic_sparse",
                "_generic_batched"),
    "numba": ("backends._numba", "backends._numba_greedy", "backends._numba_multiclass", "backends._numba_fast",
              "backends._numba_sparse", "backends._numba_batched"),
    "torch": ("backends._torch",),
    "cupy": ("backends._cupy",),
}
_LOADED: set[str] = set()

# Where code runs, as tests and benchmarks name it: (key, array library, device, backend= argument).
# "auto" is not a place of its own: it is whichever of these ``resolve`` picks.
PLACES: tuple[tuple[str, str, str, str], ...] = (
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


def place_key(library: str, device: str, backend: str) -> str:
    """The name of a place: ``"numpy-numba"``, ``"torch-cuda-torch"``, ..."""
    return f"{library}-{backend}" if device == "cpu" else f"{library}-{device}-{backend}"


def register(op: str, backend: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``kernel`` as the implementation of ``op`` on ``backend``.

    Raises:
        ValueError: for an operation not in :data:`OPS`, an unknown backend, or a kernel whose parameters
            are not the operation's.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {tuple(OPS)}, got {op!r}")
    if backend not in _KERNEL_BACKENDS:
        raise ValueError(f"backend must be one of {_KERNEL_BACKENDS}, got {backend!r}")

    def add(kernel: Callable[..., Any]) -> Callable[..., Any]:
        params = tuple(inspect.signature(kernel).parameters)
        if len(params) != len(OPS[op].params):
            raise ValueError(f"a {op!r} kernel takes {OPS[op].params}, got {kernel.__qualname__}{params}")
        _KERNELS[op, backend] = kernel
        return kernel

    return add


def _load(name: str) -> bool:
    """Import the kernel modules of backend ``name`` if its package is installed; True when loaded."""
    if name in _LOADED:
        return True
    if name in _PACKAGE and find_spec(_PACKAGE[name]) is None:
        return False
    for module in _MODULES[name]:
        importlib.import_module(f"matrixnms.{module}")
    _LOADED.add(name)
    return True


def library_of(x: Any) -> str:
    """'numpy', 'torch' or 'cupy' for an array of that library."""
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    raise TypeError(f"expected a NumPy, Torch or CuPy array, got {type(x).__name__}")


def device_kind(x: Any) -> str:
    """The key of ``_PREFERENCE`` for an array: 'numpy', 'torch-cpu', 'torch-cuda' or 'cupy'."""
    library = library_of(x)
    if library == "torch":
        return "torch-cpu" if x.device.type == "cpu" else f"torch-{x.device.type}"
    return library


def _runs_on(backend: str, kind: str) -> bool:
    if backend == "numba":
        return kind in ("numpy", "torch-cpu")
    if backend == "torch":
        return kind.startswith("torch")
    if backend == "cupy":
        return kind == "cupy"
    return True


def check_backend(backend: str, x: Any) -> None:
    """Raise for an unknown backend, one that cannot run on ``x``, or one that isn't installed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("auto", "generic"):
        return
    kind = device_kind(x)
    if not _runs_on(backend, kind):
        raise ValueError(f"backend {backend!r} cannot run on {kind} arrays")
    if find_spec(_PACKAGE[backend]) is None:
        raise ImportError(f"backend {backend!r} needs the package {_PACKAGE[backend]!r}, which is not installed")


def resolve(op: str, x: Any, backend: str = "auto") -> tuple[str, Callable[..., Any]]:
    """The implementation of ``op`` for arrays like ``x``: ``(backend name, function)``.

    ``"auto"`` tries the installed kernels of ``x``'s library and device, best first, then the generic path;
    ``"generic"`` is the array-API path; a named backend must have ``op``.

    Raises:
        ValueError: unknown ``op`` or ``backend``, a backend that cannot run on ``x``, or a named backend
            without a kernel for ``op``.
        ImportError: a named backend whose package is not installed.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {tuple(OPS)}, got {op!r}")
    check_backend(backend, x)
    if backend not in ("auto", "generic"):
        _load(backend)
        if (op, backend) not in _KERNELS:
            raise ValueError(f"backend {backend!r} has no kernel for {op}; use backend='auto' or 'generic'")
        return backend, _KERNELS[op, backend]
    if backend == "auto":
        for name in _PREFERENCE.get(device_kind(x), ()):
            if _load(name) and (op, name) in _KERNELS:
                return name, _KERNELS[op, name]
    _load("generic")
    return "generic", _KERNELS[op, "generic"]


__all__ = ["OPS", "Op", "BACKENDS", "PLACES", "place_key", "register", "resolve", "check_backend", "library_of",
           "device_kind"]
