"""pytest-benchmark suite: Matrix NMS against the paper's code and traditional NMS.

Run from the repository root:

    pytest benchmarks --benchmark-only                   # measured run: medians, groups, ratio tables
    pytest benchmarks --benchmark-only --benchmark-json=bench.json   # + JSON (extra_info, ratios, targets)
    pytest benchmarks --benchmark-disable                # smoke / CI: every benchmark once at small sizes,
                                                         # each result checked; about a minute on 2 cores
    pytest benchmarks/test_bench_masks.py --benchmark-only -k "N500" # one family, one size

The cases and methods come from ``matrixnms.bench`` (the same ones ``matrixnms bench`` runs), so the ratios
printed at the end of a run (and stored under ``"matrixnms"`` in ``--benchmark-json``) are the CLI's.
``MATRIXNMS_BENCH_MODE=full|quick|smoke`` forces the sizes (default: "smoke" with ``--benchmark-disable``,
else "full").

Every benchmark first makes one untimed call whose result is checked (against the library's NumPy generic
path, a plain greedy loop or pycocotools), which also warms up JIT compilation. Methods slower than
``CALIBRATE_BELOW_S`` per call are then timed in a fixed number of rounds (``fixed_rounds``) instead of
pytest-benchmark's calibration, so that a 40-second greedy baseline runs once or twice, not five times.
``extra_info`` of every benchmark says what it times (IoU included or not, library, device, backend, threads).

Threads: Numba, Torch and BLAS use every core by default. On a shared or loaded machine their parallel
kernels can be several times slower than on one thread (they wait for busy cores); for figures that measure
the algorithm rather than the load, run with ``NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``
(or ``matrixnms bench --threads 1``) and say so. The full run takes minutes: greedy mask NMS as detectors write
it needs tens of seconds per call at N = 2000, and the memory benchmark runs the transcription at N = 10,000.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from matrixnms import bench
from targets import TARGETS  # benchmarks/targets.py: pytest puts this folder (not a package) on sys.path

_RECORDS = pytest.StashKey[list]()
_MEMORY = pytest.StashKey[list]()
_MODE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "family(name): the matrixnms.bench family a benchmark function runs")
    config.stash[_RECORDS] = []
    config.stash[_MEMORY] = []
    config.stash[_MODE] = _mode(config)


def _mode(config: pytest.Config) -> str:
    try:
        return bench.suite_mode(bool(config.getoption("benchmark_disable", False)))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def bench_mode(config: pytest.Config) -> str:
    """"full", "quick" or "smoke" (see the module docstring)."""
    return config.stash[_MODE]


def pytest_report_header(config: pytest.Config) -> str:
    return f"matrixnms benchmarks: mode {bench_mode(config)!r} (MATRIXNMS_BENCH_MODE / --benchmark-disable)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``job`` with every (case, method) of the function's ``family`` marker."""
    if "job" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("family")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.function.__name__} uses `job` but has no @pytest.mark.family(...)")
    params = []
    for case, method, reason in bench.jobs([marker.args[0]], bench_mode(metafunc.config)):
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param((case, method), id=f"{case.id}-{method.key}", marks=marks))
    metafunc.parametrize("job", params)


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Callable[[tuple[bench.Case, bench.Method]], None]:
    """``measure(job)``: check, then time one (case, method) with pytest-benchmark, in the case's group."""
    config = request.config
    mode = bench_mode(config)

    def run(job: tuple[bench.Case, bench.Method]) -> None:
        case, method = job
        fn = method.build(case)
        benchmark.group = case.group
        benchmark.extra_info.update(method.info(case))
        benchmark.extra_info["mode"] = mode
        if mode == "smoke" or not benchmark.enabled:
            # one call, checked: --benchmark-disable runs the function once and returns its result
            method.check(case, benchmark.pedantic(fn, rounds=1, iterations=1))
            return
        first, result = _first_call(fn)
        method.check(case, result)
        del result
        if first < bench.CALIBRATE_BELOW_S:
            benchmark(fn)
        else:
            benchmark.pedantic(fn, rounds=bench.fixed_rounds(first, mode), iterations=1)
        benchmark.extra_info["first_call_s"] = first
        times = list(benchmark.stats.stats.data)
        config.stash[_RECORDS].append(bench.record(case, method, times))

    return run


def _first_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    import time

    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def record_memory(config: pytest.Config, result: dict[str, Any]) -> None:
    config.stash[_MEMORY].append(result)


@pytest.fixture
def memory_log(request: pytest.FixtureRequest) -> Callable[[dict[str, Any]], None]:
    """``memory_log(result)``: keep a memory result for the end-of-run summary."""
    return lambda result: record_memory(request.config, result)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash.get(_RECORDS, [])
    memory = config.stash.get(_MEMORY, [])
    if records:
        bench.summarize(records)
        terminalreporter.write_sep("=", "matrixnms: medians and ratios (same cases as `matrixnms bench`)")
        terminalreporter.write_line(bench.format_table(records, targets=bench.check_targets(records, TARGETS)))
    if memory:
        terminalreporter.write_sep("=", "matrixnms: peak resident memory of one call, beyond the input")
        for m in memory:
            terminalreporter.write_line(
                f"  {m['method']:<20} N={m['n']:<6} +{m['increase_bytes'] / 2**20:8.0f} MiB "
                f"(input {m['input_bytes'] / 2**20:.0f} MiB, call {m['seconds']:.2f} s)")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    records = config.stash.get(_RECORDS, [])
    bench.summarize(records)
    output_json["matrixnms"] = {
        "mode": bench_mode(config),
        "ratios": [{"group": r["group"], "method": r["method"], "median_s": r["median_s"], "ratios": r["ratios"],
                    "compared_with": r["compared_with"]} for r in records],
        "targets": bench.check_targets(records, TARGETS),
        "memory": config.stash.get(_MEMORY, []),
    }
