"""Where a method runs: the library paths, arrays on each library and device, and synchronising a device."""

from __future__ import annotations

import functools
from importlib.util import find_spec
from typing import Any, Callable

import numpy as np

from .._dispatch import PLACES

# The library paths: (key, array library, device, backend= argument), the places tests name the same way.
# "auto" is not a separate row: it is whichever of these ``auto`` resolves to (marked in the results).
PATHS: tuple[tuple[str, str, str, str], ...] = PLACES
_LIBRARY_NAMES = {"numpy": "NumPy", "torch": "Torch", "cupy": "CuPy"}


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


def synchronize(device: str, library: str) -> None:
    if device != "cuda":
        return
    if library == "torch":
        import torch

        torch.cuda.synchronize()
    else:
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def place_name(library: str, device: str) -> str:
    """How rows name where they run: "NumPy", "Torch", "Torch CUDA"."""
    return _LIBRARY_NAMES[library] + ("" if device == "cpu" else f" {device.upper()}")


def place_suffix(library: str, device: str) -> str:
    """Method keys' suffix for where they run: "numpy", "torch", "torch-cuda"."""
    return library if device == "cpu" else f"{library}-{device}"


def timed(fn: Callable[[], Any], library: str, device: str) -> Callable[[], Any]:
    """``fn``, on a CUDA device followed by a synchronisation, so that its time includes the kernels."""
    if device != "cuda":
        return fn

    def run() -> Any:
        out = fn()
        synchronize(device, library)
        return out

    return run
