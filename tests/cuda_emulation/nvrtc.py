"""Compile CUDA sources with NVRTC 12 (pip ``nvidia-cuda-nvrtc-cu12``, through ctypes) and ``ptxas -v`` (pip
``nvidia-cuda-nvcc-cu12``), without a GPU or a driver. Test code only."""

from __future__ import annotations

import ctypes
import re
import subprocess
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path


def _package_dir(name: str) -> Path | None:
    spec = find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def library() -> Path | None:
    folder = _package_dir("cuda_nvrtc")
    found = sorted(folder.glob("lib/libnvrtc.so.1*")) if folder else []
    return found[0] if found else None


def ptxas() -> Path | None:
    folder = _package_dir("cuda_nvcc")
    path = folder / "bin" / "ptxas" if folder else None
    return path if path and path.exists() else None


def _nvrtc() -> ctypes.CDLL:
    path = library()
    if path is None:
        raise FileNotFoundError("nvidia-cuda-nvrtc-cu12 is not installed")
    return ctypes.CDLL(str(path))


def version() -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    _nvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


@dataclass(frozen=True)
class Compiled:
    log: str
    ptx: str


def compile_ptx(code: str, arch: str, name: str = "kernels.cu") -> Compiled:
    """PTX of ``code`` for ``arch`` ("compute_90"); raises RuntimeError with NVRTC's log on failure."""
    lib = _nvrtc()
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    program = ctypes.c_void_p()

    def check(status: int, what: str, log: str = "") -> None:
        if status != 0:
            raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(status).decode()}\n{log}")

    check(lib.nvrtcCreateProgram(ctypes.byref(program), code.encode(), name.encode(), 0, None, None), "create")
    try:
        options = [f"--gpu-architecture={arch}".encode()]
        status = lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, buffer)
        log = buffer.value.decode()
        check(status, f"compile for {arch}", log)
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetPTX(program, buffer), "get PTX")
        return Compiled(log, buffer.value.decode())
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


@dataclass(frozen=True)
class Resources:
    registers: int
    shared_bytes: int
    spill_stores: int
    spill_loads: int


def resources(ptx: str, arch: str, folder: Path) -> dict[str, Resources]:
    """``ptxas -v -arch=<arch>`` on ``ptx``: per entry point, registers, static shared memory and spills."""
    tool = ptxas()
    if tool is None:
        raise FileNotFoundError("nvidia-cuda-nvcc-cu12 (ptxas) is not installed")
    source = folder / f"{arch}.ptx"
    source.write_text(ptx)
    result = subprocess.run([str(tool), "-v", f"-arch={arch}", str(source), "-o", str(folder / f"{arch}.cubin")],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{result.stderr}")
    out: dict[str, Resources] = {}
    entry = None
    spills = (0, 0)
    for line in result.stderr.splitlines():
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            entry = m.group(1)
        elif m := re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line):
            spills = (int(m.group(1)), int(m.group(2)))
        elif (m := re.search(r"Used (\d+) registers", line)) and entry:
            smem = re.search(r"(\d+) bytes smem", line)
            out[entry] = Resources(int(m.group(1)), int(smem.group(1)) if smem else 0, *spills)
            entry, spills = None, (0, 0)
    return out
