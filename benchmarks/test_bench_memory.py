"""Peak resident memory of one call: ``matrix_nms`` vs the paper's transcription, at N = 2000 and 10,000.

Each measurement runs in a fresh child process (``multiprocessing`` spawn, see ``matrixnms.bench.peak_memory``):
the child builds the SOLO-like scene (200x336 masks, class-agnostic), warms the method up on a small scene,
resets the kernel's peak-RSS counter, calls the method once and reports its peak resident memory minus the
resident memory just before the call (which holds the input). Results go to ``extra_info`` (bytes) and to the
end-of-run summary; the time pytest-benchmark shows is the whole child's, not the call's (``extra_info
["seconds"]`` is the call's).

Issue 4's bound (``MEMORY_BOUND_BYTES`` of ``targets.py``): ``matrix_nms`` (``backend="auto"``) at N = 10,000
needs at most 1.5 GiB beyond its input; every ``matrix_nms`` measurement here is held to it. The transcription
is skipped where its estimated footprint (a float32 N x H*W copy and about eight float32 N x N arrays) exceeds
70 % of the available memory.
In smoke mode (``--benchmark-disable``) N = 10,000 is skipped and a small N = 500 check runs instead.
"""

import pytest

from matrixnms import bench
from targets import MEMORY_BOUND_BYTES

FULL = [(2000, "matrix_nms"), (2000, "matrix_nms-generic"), (2000, "paper-numpy"),
        (10_000, "matrix_nms"), (10_000, "paper-numpy"), (10_000, "matrix_nms-generic")]
SMOKE = [(500, "matrix_nms"), (500, "paper-numpy")]


def pytest_generate_tests(metafunc):
    if "memory_case" not in metafunc.fixturenames:
        return
    smoke = bench.suite_mode(bool(metafunc.config.getoption("benchmark_disable", False))) == "smoke"
    params = []
    for n, method in (SMOKE if smoke else []) + FULL:
        marks = []
        if smoke and n >= 10_000:
            marks.append(pytest.mark.skip(reason="smoke mode: N=10,000 takes minutes; the N=500 check runs instead"))
        elif smoke and (n, method) not in SMOKE:
            marks.append(pytest.mark.skip(reason="smoke mode: only the N=500 checks run"))
        elif method == "matrix_nms-generic" and n >= 10_000:
            marks.append(pytest.mark.skip(
                reason="the generic path's float32 matmul over N*N*H*W takes minutes at N=10,000 on 2 cores"))
        params.append(pytest.param((n, method), id=f"N{n}-{method}", marks=marks))
    metafunc.parametrize("memory_case", params)


def test_peak_memory(benchmark, memory_case, memory_log):
    n, method = memory_case
    estimate = bench.memory_estimate(method, n)
    available = bench.available_memory()
    if method == "paper-numpy" and available and estimate > 0.7 * available:
        pytest.skip(f"the transcription needs about {estimate / 2**30:.1f} GiB at N={n}, "
                    f"{available / 2**30:.1f} GiB available")
    benchmark.group = f"memory N={n}"
    result = benchmark.pedantic(bench.peak_memory, args=(method, n), rounds=1, iterations=1)
    benchmark.extra_info.update({
        **result, "what": (f"peak RSS increase of one call of {method} on {n} masks of 200x336 (class-agnostic), "
                           "in a fresh child process; input excluded"),
        "bound_bytes": MEMORY_BOUND_BYTES if method.startswith("matrix_nms") else None,
    })
    memory_log(result)
    if method.startswith("matrix_nms"):
        assert result["increase_bytes"] <= MEMORY_BOUND_BYTES, (
            f"{method} at N={n} needed {result['increase_bytes'] / 2**30:.2f} GiB beyond its input, "
            f"more than issue 4's {MEMORY_BOUND_BYTES / 2**30:.1f} GiB")
    else:
        # the transcription holds at least its float32 (N, H*W) copy: a measurement below that is broken
        assert result["increase_bytes"] >= 4 * n * 200 * 336 * 0.9
