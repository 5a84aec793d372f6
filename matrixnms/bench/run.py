"""The runner behind ``matrixnms bench``, and the acceptance targets of a source checkout."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Callable, Iterable

from .cases import FAMILIES
from .machine import machine_info
from .methods import jobs
from .report import Target, check_targets, summarize
from .timing import run_job, warm_up


def run(families: Iterable[str] = FAMILIES, mode: str = "full", *, sizes: Iterable[int] | None = None,
        image: tuple[int, int] | None = None, seed: int = 0, progress: bool = True,
        log: Callable[[str], None] = print, targets: Iterable[Target] = ()) -> dict[str, Any]:
    """Run the cases, return ``{"machine", "mode", "results", "targets", "skipped"}``.

    ``targets`` are checked against the results (see :func:`check_targets`); none by default, and
    ``matrixnms bench`` passes :func:`repository_targets`.
    """
    families = tuple(families)
    todo = jobs(families, mode, sizes=sizes, image=image, seed=seed)
    runnable = [(c, m) for c, m, reason in todo if reason is None]
    skipped = [(c.group, m.title, reason) for c, m, reason in todo if reason is not None]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(runnable), unit="run", dynamic_ncols=True)
        except ImportError:  # tqdm is optional: the runner still works without a progress bar
            bar = None
    records = []
    try:
        if bar is not None:
            bar.set_description("warming up (JIT, imports)")
        warm_up(runnable)
        for case, method in runnable:
            if bar is not None:
                bar.set_description(f"{case.family} N={case.n} {method.title}"[:60])
            records.append(run_job(case, method, mode))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    summarize(records)
    return {"machine": machine_info(), "mode": mode, "results": records, "targets": check_targets(records, targets),
            "skipped": [{"group": g, "method": t, "reason": r} for g, t, r in skipped]}


@functools.lru_cache(maxsize=1)
def repository_targets() -> tuple[Target, ...]:
    """The acceptance targets of ``benchmarks/targets.py`` when matrixnms runs from a source checkout, else ().

    The targets are the repository's, not the library's: an installed wheel has no ``benchmarks/``, so
    ``matrixnms bench`` then checks none (and its JSON has ``"targets": []``).
    """
    root = Path(__file__).resolve().parents[2]
    path = root / "benchmarks" / "targets.py"
    if not (path.is_file() and (root / "pyproject.toml").is_file()):
        return ()
    spec = importlib.util.spec_from_file_location("_matrixnms_repository_targets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.TARGETS)
