"""Backend detection and the kernel registry.

The library of the caller's arrays (NumPy, Torch, CuPy) is detected from their types, never by importing a
library the caller has not imported. Each operation has one generic implementation written against the
array API (``_generic``); faster kernels register themselves here per backend and are preferred in the
order of ``_PREFERENCE`` when ``backend="auto"``.

Kernel contract (what a registered kernel receives and returns; inputs are already validated):

``"mask_iou"``: ``fn(masks_a, masks_b) -> ious``
    masks (N, H, W) / (M, H, W) of any 0/1 dtype, ``masks_b`` may be None (masks_a vs itself);
    returns (N, M) IoU in the library's default float dtype, on the input's device.
``"masks_to_boxes"``: ``fn(masks, fmt) -> boxes``
    fmt in {"xyxy", "xywh", "xyxy_inclusive"}; returns (N, 4) float32... see masks.masks_to_boxes.
``"mask_decay"``: ``fn(masks, order, labels, areas, kernel, sigma, dtype) -> decay``
    masks (N, H, W) the caller's full input; ``order`` (K,) int64 indices of the candidates sorted by
    descending score; ``labels`` (K,) labels of the sorted candidates or None; ``areas`` (K,) float areas of
    the sorted candidates or None (compute them); returns decay (K,) in ``dtype`` (float32/float64).
``"box_decay"``: ``fn(boxes, order, labels, kernel, sigma, dtype) -> decay``
    the same for (N, 4) xyxy boxes.
``"mask_iou_sorted"``: ``fn(masks, order, labels) -> ious``
    (K, K) float64 IoU between the candidates ``masks[order]``, 0 between different labels; used by the
    greedy and Soft-NMS baselines.
``"greedy_boxes"``, ``"greedy_iou"``, ``"soft_nms_boxes"``, ``"soft_nms_iou"``: the sequential loops of the
    baselines (``matrixnms.baselines``); their contracts are in ``backends/_numba_greedy.py``.
``"multiclass_matrix_nms"``: the batched per-class box kernel of ``matrixnms.multiclass``.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from typing import Any, Callable

import array_api_compat

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
BACKENDS = ("auto", "generic", "numba", "torch", "cupy")
# The modules that register each backend's kernels (matrixnms/backends/<module>.py).
_MODULES = {
    "numba": ("_numba", "_numba_greedy", "_numba_multiclass"),
    "torch": ("_torch",),
    "cupy": ("_cupy",),
}
_LOADED: set[str] = set()


def register(op: str, backend: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``kernel`` as the implementation of ``op`` on ``backend``."""

    def add(kernel: Callable[..., Any]) -> Callable[..., Any]:
        _KERNELS[op, backend] = kernel
        return kernel

    return add


def _load(name: str) -> bool:
    """Import the kernel modules of backend ``name`` if its package is installed; True when loaded."""
    if name in _LOADED:
        return True
    if find_spec(_PACKAGE[name]) is None:
        return False
    for module in _MODULES[name]:
        if find_spec(f"matrixnms.backends.{module}") is not None:
            importlib.import_module(f"matrixnms.backends.{module}")
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


def find_kernel(op: str, x: Any, backend: str = "auto") -> Callable[..., Any] | None:
    """The registered kernel for ``op`` on arrays like ``x``, or None (the caller uses ``_generic``)."""
    if backend == "generic":
        return None
    names = _PREFERENCE.get(device_kind(x), ()) if backend == "auto" else (backend,)
    for name in names:
        if _load(name) and (op, name) in _KERNELS:
            return _KERNELS[op, name]
    return None
