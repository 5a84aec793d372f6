"""Helpers shared by the tests: places (library, device, backend), skips, tolerances, comparisons.

Tests import these (``from helpers import ...``; ``tests/`` is on ``pythonpath``); ``conftest.py`` holds only
the hypothesis profiles and the fixtures. Places are named as ``matrixnms._dispatch.PLACES`` names them, the
same keys the benchmarks use ("numpy-numba", "torch-torch", "torch-cuda-generic", ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np
import pytest

from matrixnms._dispatch import PLACES, resolve


def requires(package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(find_spec(package) is None, reason=f"{package} not installed")


def _cuda_available() -> bool:
    if find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _cupy_device() -> bool:
    if find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: CuPy imports but cannot run
        return False


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="no CUDA device for torch")
needs_cupy_device = pytest.mark.skipif(not _cupy_device(), reason="no CUDA device for cupy")

# Relative tolerance of results against the float64 reference, by the dtype of the scores.
RTOL = {"float64": 1e-9, "float32": 1e-5}
ATOL = {"float64": 1e-12, "float32": 1e-6}


@dataclass(frozen=True)
class Backend:
    """One place the library runs: which array library/device the inputs live on, and which kernels."""

    name: str  # the place key of matrixnms._dispatch.PLACES, e.g. "numpy-numba", "torch-cuda-torch"
    library: str  # "numpy", "torch" or "cupy"
    device: str  # "cpu" or "cuda"
    kernel: str  # the ``backend=`` argument passed to the library

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        x = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
        if self.library == "numpy":
            return x
        if self.library == "torch":
            import torch

            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        import cupy

        return cupy.asarray(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.library == "numpy":
            return np.asarray(x)
        if self.library == "torch":
            return x.detach().cpu().numpy()
        return x.get()

    def same_place(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend's library on its device."""
        if self.library == "numpy":
            return isinstance(x, np.ndarray)
        if self.library == "torch":
            import torch

            return isinstance(x, torch.Tensor) and x.device.type == self.device
        import cupy

        return isinstance(x, cupy.ndarray)

    def has(self, op: str) -> bool:
        """Whether ``backend=self.kernel`` has an implementation of the dispatch operation ``op`` here."""
        try:
            resolve(op, self.asarray(np.zeros(1)), self.kernel)
        except ValueError:
            return False
        return True

    def for_op(self, *ops: str) -> str:
        """The ``backend=`` argument that runs this place's kernels for ``ops``: ``self.kernel`` when it
        implements every one of them, else ``"generic"`` (strict dispatch refuses a named backend without
        the operation, so a test of a public call names only what the backend has)."""
        return self.kernel if all(self.has(op) for op in ops) else "generic"


_PLACES = {key: (library, device, backend) for key, library, device, backend in PLACES}


def make_backend(name: str) -> Backend:
    return Backend(name, *_PLACES[name])


def _marks(library: str, device: str, backend: str) -> list[pytest.MarkDecorator]:
    marks = [requires(package) for package in dict.fromkeys((library, backend)) if package in ("torch", "numba", "cupy")]
    if device == "cuda":
        marks.append(needs_cuda if library == "torch" else needs_cupy_device)
    return marks


BACKENDS = [pytest.param(key, marks=_marks(library, device, backend)) for key, library, device, backend in PLACES]


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


def borderline(decayed: list[float], options: dict) -> bool:
    """True when float32 rounding may flip a post_threshold or post_top_k decision of the float64 reference:
    ``decayed`` are the reference's decayed scores without those two options."""
    tol = 2 * RTOL["float32"]
    threshold = options.get("post_threshold")
    if threshold is not None and any(abs(d - threshold) <= tol * max(1.0, threshold) for d in decayed):
        return True
    k = options.get("post_top_k")
    ranked = sorted(decayed, reverse=True)
    return k is not None and 0 < k < len(ranked) and ranked[k - 1] - ranked[k] <= tol * max(1.0, ranked[k - 1])
