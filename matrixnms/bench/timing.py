"""Timing one method on one case: rounds per mode, the warm-up, and the record of a result."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterable

from .cases import Case
from .methods import Method


# Per-call time above which a method is timed in a fixed, small number of rounds instead of being
# calibrated (pytest-benchmark's default loop), so that a 40-second greedy baseline doesn't run 5 times.
CALIBRATE_BELOW_S = 0.2
_BUDGET = {"full": (5, 1.0), "quick": (3, 0.05), "smoke": (0, 0.0)}  # (min rounds, min seconds)
# In quick mode a call this slow is timed once: its warm-up call is the measurement (``run`` warms the JIT
# and the libraries up on a tiny input first, so that first call carries no one-time cost).
QUICK_SINGLE_S = 0.5


def fixed_rounds(first_call_s: float, mode: str = "full") -> int:
    """Rounds for a slow method (first, untimed and checked, call of ``first_call_s`` >= CALIBRATE_BELOW_S)."""
    if mode == "quick":
        return 1 if first_call_s >= 1.0 else 2
    if first_call_s > 10.0:
        return 1
    return 3 if first_call_s > 2.0 else 5


def measure(fn: Callable[[], Any], first_call_s: float, mode: str = "full") -> list[float]:
    """Per-call seconds of ``fn`` after its warm-up call: at least the mode's rounds and seconds."""
    if mode == "smoke":
        return [first_call_s]
    min_rounds, min_seconds = _BUDGET[mode]
    if first_call_s >= CALIBRATE_BELOW_S:
        rounds, min_seconds = fixed_rounds(first_call_s, mode), 0.0
    else:
        rounds = min_rounds
    times: list[float] = []
    while len(times) < rounds or (sum(times) < min_seconds and len(times) < 10_000):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_job(case: Case, method: Method, mode: str = "full") -> dict[str, Any]:
    """Build, warm up and check, then time one method on one case; returns its record."""
    fn = method.build(case)
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    method.check(case, result)
    del result
    times = [first] if mode == "quick" and first >= QUICK_SINGLE_S else measure(fn, first, mode)
    return record(case, method, times)


def warm_up(todo: Iterable[tuple[Case, Method]]) -> None:
    """Call every method once on a tiny input of each family and labelling: JIT compilation (or loading
    Numba's cache), lazy imports and library initialisation happen here, not in a measurement."""
    seen = set()
    for case, method in todo:
        tiny = Case(case.family, 8, case.num_classes, 16, 24, case.seed)
        if (tiny, method.key) in seen:
            continue
        seen.add((tiny, method.key))
        method.build(tiny)()


def record(case: Case, method: Method, times: list[float]) -> dict[str, Any]:
    """A result: the method's ``info`` plus the median, quartiles and (up to 100 rounds) the raw times."""
    ordered = sorted(float(t) for t in times)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {**method.info(case), "median_s": statistics.median(ordered), "rounds": len(ordered),
            "min_s": ordered[0], "q1_s": quartiles[0], "q3_s": quartiles[2], "max_s": ordered[-1],
            "times_s": [float(t) for t in times] if len(times) <= 100 else None}
