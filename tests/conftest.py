"""Backends, tolerances and hypothesis profiles shared by the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI: derandomized, no deadline, 200 examples per property. "dev": more examples, random seeds.
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=500, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fast", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
    """One way of running the library: which array library/device the inputs live on, and which kernels."""

    name: str  # pytest id, e.g. "numpy", "numba", "torch", "torch-cuda", "cupy"
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


def make_backend(name: str) -> Backend:
    return {
        "numpy": Backend("numpy", "numpy", "cpu", "generic"),
        "numba": Backend("numba", "numpy", "cpu", "numba"),
        "torch": Backend("torch", "torch", "cpu", "generic"),
        "torch-numba": Backend("torch-numba", "torch", "cpu", "numba"),
        "torch-kernels": Backend("torch-kernels", "torch", "cpu", "torch"),
        "torch-cuda": Backend("torch-cuda", "torch", "cuda", "generic"),
        "torch-cuda-kernels": Backend("torch-cuda-kernels", "torch", "cuda", "torch"),
        "cupy": Backend("cupy", "cupy", "cuda", "generic"),
        "cupy-kernels": Backend("cupy-kernels", "cupy", "cuda", "cupy"),
    }[name]


BACKENDS = [
    pytest.param("numpy"),
    pytest.param("numba", marks=requires("numba")),
    pytest.param("torch", marks=requires("torch")),
    pytest.param("torch-numba", marks=[requires("torch"), requires("numba")]),
    pytest.param("torch-kernels", marks=requires("torch")),
    pytest.param("torch-cuda", marks=[requires("torch"), needs_cuda]),
    pytest.param("torch-cuda-kernels", marks=[requires("torch"), needs_cuda]),
    pytest.param("cupy", marks=[requires("cupy"), needs_cupy_device]),
    pytest.param("cupy-kernels", marks=[requires("cupy"), needs_cupy_device]),
]


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request.param)


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.fixture
def two_torch_threads():
    """Torch limited to two threads for the test (the SOLOv2 tests' CPU budget), restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)
