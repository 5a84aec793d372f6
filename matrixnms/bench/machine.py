"""Threads and the machine: what each method's threads are, limiting them, and the machine info of a run."""

from __future__ import annotations

import os
import platform
from importlib.util import find_spec
from typing import Any

import numpy as np

from .places import has_cuda, has_torch


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
