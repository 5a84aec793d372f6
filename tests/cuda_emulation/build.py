"""Build CUDA sources of matrixnms for the CPU: parse their ``extern "C" __global__`` signatures, generate a
launcher per kernel, compile with g++ against ``cuda_emulation.h`` (cached by content hash).

Test code only. ``shared_library(code)`` gives a ``.so`` whose ``emu_launch_<kernel>(grid, block, timeout,
args)`` runs the kernel on CPU threads (the stand-in CuPy's RawModule loads it with ctypes);
``executable(code, driver, sanitize)`` links a C++ driver (e.g. ``driver_mask_iou.cpp``) with the kernels, for the
ASan/UBSan and TSan runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emulation.h"
CUDA_DIR = HERE.parents[1] / "matrixnms" / "backends" / "cuda"
SANITIZERS = {
    "": ["-O1"],
    "address,undefined": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                          "-fno-sanitize-recover=undefined"],
    "thread": ["-O1", "-g", "-fsanitize=thread"],
}

# C parameter types -> NumPy dtype names (pointers: the pointee)
C_TYPES = {
    "bool": "bool", "char": "int8", "signed char": "int8", "unsigned char": "uint8", "short": "int16",
    "unsigned short": "uint16", "int": "int32", "unsigned int": "uint32", "long long": "int64",
    "unsigned long long": "uint64", "float": "float32", "double": "float64",
}


@dataclass(frozen=True)
class Param:
    ctype: str  # the declaration without its name, as written: "const unsigned char*"
    name: str
    base: str  # the pointee or scalar type: "unsigned char"
    pointer: bool
    const: bool

    @property
    def dtype(self) -> str:
        return C_TYPES[self.base]


@dataclass(frozen=True)
class Kernel:
    name: str
    params: tuple[Param, ...]


def sources() -> list[Path]:
    """Every CUDA source the package ships."""
    return sorted(CUDA_DIR.glob("*.cu"))


def _param(text: str) -> Param:
    text = " ".join(text.replace("__restrict__", " ").replace("*", " * ").split())
    words = text.split(" ")
    name, words = words[-1], words[:-1]
    pointer = words.count("*")
    const = "const" in words
    base = " ".join(w for w in words if w not in ("const", "*"))
    if pointer > 1 or base not in C_TYPES:
        raise ValueError(f"parameter type {text!r} is not one the emulation passes (scalars, one-level pointers)")
    return Param(" ".join(words).replace(" *", "*"), name, base, bool(pointer), const)


def kernels(code: str) -> tuple[Kernel, ...]:
    """The ``extern "C" __global__ void`` entry points of a CUDA source, in order."""
    found = []
    for match in re.finditer(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', code):
        params = tuple(_param(p) for p in match.group(2).split(",") if p.strip())
        found.append(Kernel(match.group(1), params))
    return tuple(found)


def launcher(kernel: Kernel) -> str:
    """C++ for ``extern "C" void emu_launch_<name>(gx, gy, gz, bx, by, bz, timeout_s, void** args)``: args[i]
    points at the i-th argument (a pointer value or a scalar), as CUDA's launch API passes them."""
    lines = [f'extern "C" void emu_launch_{kernel.name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
             f'unsigned by, unsigned bz, double timeout_s, void** args) {{']
    for i, p in enumerate(kernel.params):
        lines.append(f"    using T{i} = {p.ctype};")
        lines.append(f"    T{i} a{i} = *static_cast<T{i}*>(args[{i}]);")
    call = ", ".join(f"a{i}" for i in range(len(kernel.params)))
    lines.append(f"    emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, timeout_s, [=] {{ {kernel.name}({call}); }});")
    lines.append("}")
    return "\n".join(lines)


def cache_dir() -> Path:
    return Path(os.environ.get("CUDA_EMULATION_CACHE", Path(tempfile.gettempdir()) / "matrixnms-cuda-emulation"))


def _compiler() -> str:
    gxx = shutil.which(os.environ.get("CXX", "g++"))
    if gxx is None:
        raise FileNotFoundError("g++ not found: the CUDA emulation needs a C++20 compiler")
    return gxx


def _build(kind: str, code: str, extra: str, sanitize: str, flags: list[str]) -> Path:
    """Compile (once per content hash) and return the output path; concurrent builders race harmlessly."""
    gxx = _compiler()
    key = hashlib.sha256("\0".join([kind, code, extra, sanitize, HEADER.read_text(), gxx]).encode()).hexdigest()[:20]
    folder = cache_dir() / key
    out = folder / ("kernels.so" if kind == "shared" else "driver")
    if out.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernels.cu").write_text(code)
    unit = folder / "unit.cpp"
    unit.write_text(f'#include "{HEADER}"\n#include "{folder / "kernels.cu"}"\n{extra}\n')
    partial = folder / f".{out.name}.{os.getpid()}"
    command = [gxx, "-std=c++20", "-pthread", "-Wall", "-Werror", *SANITIZERS[sanitize], *flags, "-x", "c++",
               str(unit), "-o", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"g++ failed ({' '.join(command)}):\n{result.stderr}")
    os.replace(partial, out)
    return out


def shared_library(code: str) -> Path:
    """A shared library of every kernel in ``code`` with its ``emu_launch_<name>`` entry point."""
    return _build("shared", code, "\n".join(launcher(k) for k in kernels(code)), "", ["-shared", "-fPIC"])


def executable(code: str, driver: str, sanitize: str = "") -> Path:
    """``driver`` (C++ source with a main() that calls the kernels through emu::launch) compiled with ``code``,
    under ``sanitize`` ("", "address,undefined" or "thread")."""
    return _build("driver", code, driver, sanitize, [])
