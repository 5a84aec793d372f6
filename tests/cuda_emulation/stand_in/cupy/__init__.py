"""TEST DOUBLE for CuPy's launch API -- not CuPy, never shipped, never importable from matrixnms.

It exists so that ``matrixnms/backends/_cupy.py`` runs unchanged, on the CPU, in the tests of
``tests/test_cuda_emulation.py``; they put ``tests/cuda_emulation/stand_in`` first on ``PYTHONPATH`` of a
subprocess and set ``MATRIXNMS_CUPY_STAND_IN=1`` (without it, importing this module raises ImportError).

What it offers is what ``_cupy.py`` and array-api-compat's CuPy namespace use, over NumPy:
- ``ndarray``: a wrapper around a NumPy array (device memory here is host memory). It is not a NumPy
  subclass on purpose: array-api-compat tests NumPy before CuPy, so a subclass would be classified as NumPy
  and ``matrixnms._dispatch.library_of`` would never say "cupy". As a ``cupy.ndarray`` (found through
  ``sys.modules["cupy"].ndarray``) it is a CuPy array to array-api-compat, which then serves
  ``array_namespace`` from its own CuPy wrappers on top of this module. Like CuPy it refuses implicit
  conversion to NumPy (``np.asarray(x)`` raises) and NumPy arrays given to its functions; device-to-host
  transfers (``get``, ``item``, ``tolist``, ``bool``/``int``/``float``) are counted in ``host_transfers``.
- Every public NumPy function, wrapped (arrays in and out); dtypes are NumPy's, as in CuPy.
- ``RawModule(code=...)``: builds the CUDA source for the CPU (``cuda_emulation/build.py``: g++ with
  ``cuda_emulation.h``) and loads it with ctypes. A launch ``f(grid, block, args)`` checks every argument
  against the kernel's C signature first: a pointer needs a C-contiguous stand-in array of the pointee's
  dtype (writable when not const), a scalar the NumPy scalar type of exactly its C type (CuPy would pass a
  Python int or a wrong-width scalar through silently), at most 1024 threads a block, grid and block sizes
  positive and within CUDA's limits.
- ``ReductionKernel``: only the one reduction ``_cupy.py`` declares (popcount sums); any other raises.
- ``memoize``, ``cuda.Device``, ``cuda.runtime.getDeviceCount`` (1).
"""

from __future__ import annotations

import builtins as _builtins
import ctypes
import functools
import operator
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as _np

if os.environ.get("MATRIXNMS_CUPY_STAND_IN") != "1":
    raise ImportError("tests/cuda_emulation/stand_in/cupy is a test double for CuPy's launch API, used only by "
                      "tests/test_cuda_emulation.py (which sets MATRIXNMS_CUPY_STAND_IN=1)")

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for cuda_emulation.build
from cuda_emulation import build as _build  # noqa: E402

__version__ = "14.0.0"  # the CuPy API this double stands for
STAND_IN = True
host_transfers = 0
launches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []  # (kernel, grid, block) of every launch


def _count_transfer() -> None:
    global host_transfers
    host_transfers += 1


def _unwrap(x: Any) -> Any:
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise TypeError("a NumPy array was passed where CuPy needs a device array (use cupy.asarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, slice):
        return slice(_unwrap(x.start), _unwrap(x.stop), _unwrap(x.step))
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, _np.generic):  # CuPy returns 0-d arrays, never NumPy scalars
        return ndarray(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _device_function(f: Any) -> Any:
    @functools.wraps(f)
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(f(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))
    return call


def _host_to_device(x: Any) -> Any:
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_host_to_device(v) for v in x)
    return _np.array(x, copy=True) if isinstance(x, _np.ndarray) else x  # a copy: device memory is its own


def _constructor(f: Any) -> Any:
    @functools.wraps(f)
    def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
        return _wrap(f(_host_to_device(obj), *args, **kwargs))
    return call


class ndarray:
    """A CuPy array stand-in: a NumPy array behind CuPy's interface (see the module docstring)."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy operators defer to ours, which refuse NumPy operands
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: _np.ndarray) -> None:
        self._a = a

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    @property
    def device(self) -> "cuda.Device":
        return cuda.Device(0)

    def get(self) -> _np.ndarray:
        _count_transfer()
        return self._a.copy()

    def item(self) -> Any:
        _count_transfer()
        return self._a.item()

    def tolist(self) -> Any:
        _count_transfer()
        return self._a.tolist()

    def __bool__(self) -> bool:
        _count_transfer()
        return _builtins.bool(self._a)

    def __int__(self) -> int:
        _count_transfer()
        return int(self._a)

    def __float__(self) -> float:
        _count_transfer()
        return _builtins.float(self._a)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key)] = _unwrap(value)

    def __repr__(self) -> str:
        return f"stand_in_cupy.{self._a!r}"

    def __getattr__(self, name: str) -> Any:  # shape, dtype, reshape, astype, view, sum, ...
        if name.startswith("__"):  # never NumPy's __array_interface__ & co: no implicit host view
            raise AttributeError(name)
        value = getattr(self._a, name)
        return _device_function(value) if callable(value) else _wrap(value)


def _operator(name: str, reflected: bool = False) -> Any:
    f = getattr(operator, name)

    def method(self: ndarray, *other: Any) -> Any:
        args = (_unwrap(other[0]), self._a) if reflected else (self._a, *_unwrap(other))
        return _wrap(f(*args))
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift",
              "matmul"):
    _op = _name + "_" if _name in ("and", "or") else _name
    setattr(ndarray, f"__{_name}__", _operator(_op))
    setattr(ndarray, f"__r{_name}__", _operator(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _operator("i" + _name))
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _operator(_name))

# NumPy's namespace, as CuPy's mirrors it. It shadows builtins (all, any, bool, min, max, sum, round, abs):
# code in this module names those as _builtins.<name>.
_CONSTRUCTORS = ("array", "asarray", "asanyarray", "ascontiguousarray")
for _name in dir(_np):
    _value = getattr(_np, _name)
    if _name.startswith("_") or isinstance(_value, types.ModuleType) or _name == "ndarray":
        continue
    if _name in _CONSTRUCTORS:
        globals()[_name] = _constructor(_value)
    elif isinstance(_value, type) or not callable(_value):  # dtypes, classes, constants: NumPy's, as in CuPy
        globals()[_name] = _value
    else:
        globals()[_name] = _device_function(_value)


def memoize(for_each_device: bool = False) -> Any:
    """cupy.memoize: cache a factory's result by its arguments (one device here)."""
    def decorate(f: Any) -> Any:
        return functools.cache(f)
    return decorate


_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_BLOCK = (1024, 1024, 64)


def _dims(value: Any, what: str, limits: tuple[int, ...]) -> tuple[int, int, int]:
    dims = tuple(value) if isinstance(value, tuple) else (value,)
    if not 1 <= len(dims) <= 3 or not _builtins.all(isinstance(d, int) and not isinstance(d, _builtins.bool) for d in dims):
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    dims = (*dims, 1, 1)[:3]
    for d, limit in zip(dims, limits):
        if not 1 <= d <= limit:
            raise ValueError(f"{what} {dims} is outside CUDA's limits {limits}")
    return dims  # type: ignore[return-value]


class _Function:
    """A kernel of a RawModule: ``f(grid, block, args)`` as in CuPy, after checking the arguments."""

    def __init__(self, library: ctypes.CDLL, kernel: _build.Kernel) -> None:
        self.kernel = kernel
        self._launch = getattr(library, f"emu_launch_{kernel.name}")
        self._launch.restype = None
        self._launch.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_double, ctypes.POINTER(ctypes.c_void_p)]

    def _argument(self, i: int, param: _build.Param, value: Any) -> Any:
        where = f"{self.kernel.name} argument {i} ({param.ctype} {param.name})"
        if param.pointer:
            if not isinstance(value, ndarray):
                raise TypeError(f"{where}: needs a cupy.ndarray, got {type(value).__name__}")
            a = value._a
            if a.dtype != _np.dtype(param.dtype):
                raise TypeError(f"{where}: needs dtype {param.dtype}, got {a.dtype}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{where}: needs a C-contiguous array, got strides {a.strides}")
            if not param.const and not a.flags.writeable:
                raise ValueError(f"{where}: the kernel writes to it, but the array is read-only")
            return ctypes.c_void_p(a.ctypes.data)
        scalar_type = _np.dtype(param.dtype).type
        if type(value) is not scalar_type:
            raise TypeError(f"{where}: needs a cupy.{param.dtype} scalar, got {type(value).__name__} {value!r}")
        return _np.ctypeslib.as_ctypes_type(_np.dtype(param.dtype))(value.item())

    def __call__(self, grid: Any, block: Any, args: tuple[Any, ...], **kwargs: Any) -> None:
        if kwargs.get("shared_mem", 0):
            raise NotImplementedError("dynamic shared memory is not emulated")
        grid_dims = _dims(grid, "grid", _MAX_GRID)
        block_dims = _dims(block, "block", _MAX_BLOCK)
        threads = block_dims[0] * block_dims[1] * block_dims[2]
        if threads > 1024:
            raise ValueError(f"block {block_dims} has {threads} threads, more than CUDA's 1024")
        if not isinstance(args, tuple) or len(args) != len(self.kernel.params):
            raise TypeError(f"{self.kernel.name} takes {len(self.kernel.params)} arguments as a tuple, got {args!r}")
        values = [self._argument(i, p, v) for i, (p, v) in enumerate(zip(self.kernel.params, args))]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
        launches.append((self.kernel.name, grid_dims, block_dims))
        timeout = float(os.environ.get("CUDA_EMULATION_TIMEOUT", "60"))
        self._launch(*grid_dims, *block_dims, timeout, pointers)


class RawModule:
    """cupy.RawModule(code=...): the CUDA source built for the CPU; ``get_function(name)``."""

    def __init__(self, code: str, **options: Any) -> None:
        if options.get("backend", "nvrtc") != "nvrtc" or set(options) - {"options", "backend"}:
            raise NotImplementedError(f"RawModule options {sorted(options)} are not emulated")
        self._kernels = {k.name: k for k in _build.kernels(code)}
        self._library = ctypes.CDLL(str(_build.shared_library(code)))

    def get_function(self, name: str) -> _Function:
        if name not in self._kernels:
            raise AttributeError(f"no kernel named {name!r} in the module (has {sorted(self._kernels)})")
        return _Function(self._library, self._kernels[name])


_POPCOUNT_SUM = ("uint32 x", "int64 y", "__popc(x)", "a + b", "y = a", "0", "popcount_sum")


class ReductionKernel:
    """Only ``_cupy.py``'s popcount sum: ``ReductionKernel(*_POPCOUNT_SUM)(x, axis=...)``."""

    def __init__(self, *spec: str) -> None:
        if spec != _POPCOUNT_SUM:
            raise NotImplementedError(f"the stand-in emulates only the reduction {_POPCOUNT_SUM}, got {spec}")

    def __call__(self, x: ndarray, axis: int | None = None) -> ndarray:
        if not isinstance(x, ndarray) or x._a.dtype != _np.uint32:
            raise TypeError("popcount_sum needs a uint32 cupy.ndarray")
        return ndarray(_np.bitwise_count(x._a).sum(axis=axis, dtype=_np.int64))


from . import cuda, fft, linalg  # noqa: E402,F401
