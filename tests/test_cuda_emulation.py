"""The GPU code without a GPU: the CUDA sources on CPU threads, _cupy.py on a stand-in CuPy, NVRTC and ptxas.

- ``tests/cuda_emulation/cuda_emulation.h`` runs each shipped ``.cu`` file unchanged on CPU threads (one
  std::thread per CUDA thread, blocks one after another, ``__syncthreads`` / ``__ballot_sync`` as barriers).
  The kernels and ``backends/_cupy.py``'s ``mask_iou``, ``mask_iou_sorted`` and ``mask_decay`` are compared
  with ``reference.py`` through a stand-in ``cupy`` (``tests/cuda_emulation/stand_in``, a test double that
  checks every launch against the kernel's C signature), in one subprocess: CI installs the real CuPy, and
  the stand-in must be first on the path. A driver runs under ASan + UBSan and under TSan, and two mutants
  (the second ``__syncthreads`` removed, a bounds check removed) show those runs fail when the kernel is
  wrong.
- NVRTC 12 compiles each source for compute_75, 80, 90 and 120 with an empty log; ``ptxas -v`` for sm_90
  reports no spills and at most 48 KiB of static shared memory.
- The Torch CUDA path makes no host synchronisation that needs tensor data: its kernels run on ``meta``
  tensors (which have no data, so ``.item()``, ``.cpu()``, ``bool(t)`` and data-dependent shapes raise), and
  a static check finds no host transfer calls in ``_torch.py`` and the generic functions it uses.

What this cannot show: timing, memory-model effects beyond the barriers' (warps here are not lock-step),
CuPy's own behaviour (the stand-in is not CuPy), and syncs that need no data (``benchmarks/gpu_check.sh``
covers those on a GPU with ``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cuda_emulation import build, nvrtc
from cuda_emulation.cupy_cases import CASES

pytestmark = pytest.mark.cuda_emulation

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {path.name: path.read_text() for path in build.sources()}
MASK_IOU = SOURCES["mask_iou.cu"]
# one driver per shipped CUDA source, for the sanitizer runs
DRIVERS = {"mask_iou.cu": (build.HERE / "driver_mask_iou.cpp").read_text()}
ARCHES = [75, 80, 90, 120]

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ (C++20) not installed")
needs_nvrtc = pytest.mark.skipif(nvrtc.library() is None, reason="nvidia-cuda-nvrtc-cu12 not installed")
needs_ptxas = pytest.mark.skipif(nvrtc.ptxas() is None, reason="nvidia-cuda-nvcc-cu12 (ptxas) not installed")


def without_second_syncthreads(code: str) -> str:
    """The source with its second ``__syncthreads();`` removed (the only one, if it has one)."""
    starts = [i for i in range(len(code)) if code.startswith("__syncthreads();", i)]
    assert starts, "no __syncthreads in the source: update the mutation"
    i = starts[1] if len(starts) > 1 else starts[0]
    return code[:i] + code[i + len("__syncthreads();"):]


def without_bounds_check(code: str) -> str:
    """pack_bits' store without ``r < n_rows``: the threads past the last row write past ``packed``."""
    old, new = "if (lane == 0 && r < n_rows) {", "if (lane == 0) {"
    assert code.count(old) == 1, "the bounds check moved: update the mutation"
    return code.replace(old, new)


def unchanged(code: str) -> str:
    return code


# key -> (source, mutation, sanitizer); built two at a time, once per session (and cached by content hash);
# a mutation that no longer applies fails its own test only
BUILDS = {
    "asan": ("mask_iou.cu", unchanged, "address,undefined"),
    "tsan": ("mask_iou.cu", unchanged, "thread"),
    "tsan-no-second-syncthreads": ("mask_iou.cu", without_second_syncthreads, "thread"),
    "asan-no-bounds-check": ("mask_iou.cu", without_bounds_check, "address,undefined"),
}


@pytest.fixture(scope="session")
def background(tmp_path_factory):
    """Starts the slow parts at once, so they share the cores: the CuPy cases' subprocess and the sanitizer
    builds (two at a time). Yields (the subprocess, its output file, the builds' futures)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ (C++20) not installed")
    folder = tmp_path_factory.mktemp("cupy")
    stand_in = build.HERE / "stand_in"
    env = dict(os.environ, MATRIXNMS_CUPY_STAND_IN="1",
               PYTHONPATH=os.pathsep.join([str(stand_in), str(ROOT), str(ROOT / "tests"),
                                           os.environ.get("PYTHONPATH", "")]))
    with open(folder / "log.txt", "w") as log:
        process = subprocess.Popen([sys.executable, str(build.HERE / "cupy_cases.py"), str(folder / "results.json")],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    with ThreadPoolExecutor(2) as pool:
        futures = {key: pool.submit(lambda n=name, m=mutate, z=sanitize: build.executable(m(SOURCES[n]), DRIVERS[n], z))
                   for key, (name, mutate, sanitize) in BUILDS.items()}
        yield process, folder, futures
        if process.poll() is None:
            process.kill()


@pytest.fixture(scope="session")
def executables(background):
    return background[2]  # key -> future of the executable


def run(executable: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1", ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=timeout, env=env)


# --- the CuPy path on the stand-in ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def cupy_results(background):
    process, folder, _ = background
    returncode = process.wait(timeout=300)
    assert returncode == 0, (folder / "log.txt").read_text()
    return json.loads((folder / "results.json").read_text())


@needs_gxx
@pytest.mark.parametrize("name", list(CASES))
def test_cupy_path_on_the_stand_in_equals_reference(cupy_results, name):
    failure = cupy_results[name]
    assert failure is None, failure


def test_the_stand_in_is_not_importable_without_its_switch():
    code = "import cupy; assert getattr(cupy, 'STAND_IN', False)"
    env = dict(os.environ, PYTHONPATH=str(build.HERE / "stand_in"))
    env.pop("MATRIXNMS_CUPY_STAND_IN", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and "test double" in result.stderr


def test_the_package_never_reaches_the_stand_in():
    assert not any("stand_in" in str(p) or "cuda_emulation" in str(p) for p in (ROOT / "matrixnms").rglob("*"))
    assert "stand_in" not in (ROOT / "pyproject.toml").read_text()


# --- every shipped source builds for the CPU; sanitizer runs and their mutants ---------------------------


@needs_gxx
@pytest.mark.parametrize("name", list(SOURCES))
def test_every_shipped_cuda_source_builds_for_the_cpu_and_has_a_driver(name):
    assert build.kernels(SOURCES[name]), f"{name} has no extern \"C\" __global__ kernels"
    assert build.shared_library(SOURCES[name]).exists()
    assert name in DRIVERS, f"{name} needs a driver for the sanitizer runs (tests/cuda_emulation/)"


@needs_gxx
@pytest.mark.parametrize("key", ["asan", "tsan"])
def test_driver_is_clean_under_sanitizers(executables, key):
    result = run(executables[key].result())
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout + result.stderr[-4000:]
    assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr[-4000:]


@needs_gxx
def test_tsan_reports_the_removed_second_syncthreads(executables):
    result = run(executables["tsan-no-second-syncthreads"].result())
    assert result.returncode != 0
    assert "ThreadSanitizer: data race" in result.stderr or "counts differ" in result.stdout, result.stderr[-4000:]


@needs_gxx
def test_asan_reports_the_removed_bounds_check(executables):
    result = run(executables["asan-no-bounds-check"].result())
    assert result.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr, result.stdout + result.stderr[-4000:]


TOY_DRIVER = """
int main() {
    std::vector<unsigned int> out(64);
    emu::launch(dim3{1, 1, 1}, dim3{64, 1, 1}, 1.0, [&] { toy(out.data()); });
    return 0;
}
"""


@needs_gxx
def test_a_ballot_under_a_divergent_branch_deadlocks_and_aborts(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_EMULATION_CACHE", str(tmp_path))
    code = """extern "C" __global__ void toy(unsigned int* out) {
        if (threadIdx.x % 32 < 16) { out[threadIdx.x] = __ballot_sync(0xffffffffu, 1); }
    }"""
    result = run(build.executable(code, "#include <vector>\n" + TOY_DRIVER), timeout=60)
    assert result.returncode != 0 and "deadlock" in result.stderr, result.stderr


@needs_gxx
def test_a_construct_the_header_lacks_fails_to_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_EMULATION_CACHE", str(tmp_path))
    code = """extern "C" __global__ void toy(unsigned int* out) {
        out[threadIdx.x] = __shfl_sync(0xffffffffu, threadIdx.x, 0);
    }"""
    with pytest.raises(RuntimeError, match="__shfl_sync"):
        build.shared_library(code)


# --- NVRTC 12 and ptxas: what CuPy would compile on a GPU machine -----------------------------------------


@needs_nvrtc
@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", list(SOURCES))
def test_nvrtc_compiles_with_an_empty_log_and_every_entry_point(name, arch):
    compiled = nvrtc.compile_ptx(SOURCES[name], f"compute_{arch}", name)
    assert compiled.log.strip() == "", compiled.log
    for kernel in build.kernels(SOURCES[name]):
        assert f".entry {kernel.name}(" in compiled.ptx


@needs_nvrtc
@needs_ptxas
@pytest.mark.parametrize("name", list(SOURCES))
def test_ptxas_for_sm_90_reports_no_spills_and_little_shared_memory(name, tmp_path):
    report = nvrtc.resources(nvrtc.compile_ptx(SOURCES[name], "compute_90", name).ptx, "sm_90", tmp_path)
    assert set(report) == {k.name for k in build.kernels(SOURCES[name])}, report
    for entry, used in report.items():
        assert used.spill_stores == used.spill_loads == 0, (entry, used)
        assert used.shared_bytes <= 48 * 1024, (entry, used)


# --- the Torch CUDA path makes no host synchronisation that needs data ----------------------------------


def _meta_inputs(n: int, mask_dtype):
    import torch

    meta = dict(device="meta")
    return (torch.empty((n, 5, 13), dtype=mask_dtype, **meta), torch.empty(n, dtype=torch.int64, **meta),
            torch.empty(n, dtype=torch.int64, **meta), torch.empty(n, dtype=torch.float64, **meta))


def test_meta_tensors_refuse_every_host_synchronisation():
    torch = pytest.importorskip("torch")
    t = torch.empty(3, device="meta")
    for sync in (t.item, t.cpu, t.tolist, lambda: bool(t[0]), lambda: int(t[0]), lambda: float(t[0]),
                 lambda: torch.nonzero(t), lambda: t[t > 0]):
        with pytest.raises((RuntimeError, NotImplementedError)):
            sync()


@pytest.mark.parametrize("n", [1, 7, 40])
def test_torch_kernels_run_on_meta_tensors(n):
    torch = pytest.importorskip("torch")
    from matrixnms.backends import _torch

    for mask_dtype in (torch.bool, torch.float32):
        masks, order, labels, areas = _meta_inputs(n, mask_dtype)
        for kernel in ("gaussian", "linear"):
            for lab, area in ((None, None), (labels, areas)):
                decay = _torch.mask_decay(masks, order, lab, area, kernel, 0.5, torch.float32, "iou")
                assert decay.device.type == "meta" and decay.shape == (n,)
        assert _torch.mask_iou(masks, None, "iou").shape == (n, n)
        assert _torch.mask_iou(masks, masks[: n // 2], "ios").shape == (n, n // 2)
        assert _torch.mask_iou_sorted(masks, order, labels, "ios").shape == (n, n)


HOST_CALLS = {"item", "cpu", "tolist", "numpy", "synchronize", "get"}
HOST_BUILTINS = {"int", "float", "bool"}


def _code_the_torch_path_runs():
    from matrixnms import _generic
    from matrixnms.backends import _torch

    yield "_torch.py", inspect.getsource(_torch)
    # _generic.blocks is left out: its int() is of Python ints (a shape and a config value), never a tensor
    for f in (_generic.ratio, _generic.decay_from_iou_blocks):
        yield f"_generic.{f.__name__}", textwrap.dedent(inspect.getsource(f))


def test_torch_path_source_has_no_host_transfer_calls():
    pytest.importorskip("torch")
    found = []
    for where, source in _code_the_torch_path_runs():
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in HOST_CALLS:
                found.append(f"{where}:{node.lineno} .{f.attr}()")
            if isinstance(f, ast.Name) and f.id in HOST_BUILTINS:
                found.append(f"{where}:{node.lineno} {f.id}()")
            if isinstance(f, ast.Attribute) and f.attr == "tensor" and getattr(f.value, "id", "") == "torch":
                found.append(f"{where}:{node.lineno} torch.tensor() (a host-to-device copy)")
    assert not found, found
