"""Engines: every variant over every image of a candidate file, then COCO evaluation of each variant.

``local``: one process, the file streamed in row groups; each variant's detections are evaluated with one
``COCOeval`` (the cheapest way in one process, measured against the split below), the variants sharing
their masks' IoUs with the ground truth. ``ray``: a Ray Data dataset of row ranges of the file, one
``map_batches`` task per range (at most the cluster's CPUs / ``cpus_per_worker`` at once) that reads its
rows, applies the variants and, for a sweep, evaluates them on its images (``evaluation.ImageEvaluator``,
the task's variants sharing IoUs the same way): only the per-image records come back, and the variants'
accumulations run as parallel Ray tasks. The two give the same figures exactly
(``tests/test_evaluation.py``, ``tests/test_sweep.py``).

``ray.init()`` starts a local cluster of ``num_cpus`` CPUs (default: the machine's); ``address`` joins a
running one (``"auto"``, ``"ray://host:10001"``); an already-initialised Ray is used as it is. Each task
sets Numba's and Torch's threads to the CPUs it was given, so tasks never oversubscribe the machine.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .candidates import ROW_GROUP_SIZE, ImageCandidates, count_images, images_of, open_candidates, open_parquet
from .evaluation import EVALUATORS, ImageEvaluator, accumulate_stats, coco_stats
from .variants import Variant, coco_results, nms_rows, warm_up

ENGINES = ("ray", "local")
MAX_BLOCKS = 4096  # row ranges of the candidate file, one Ray Data block each: at most this many blocks
TASKS_PER_WORKER = 2  # the ray engine's default split: about this many NMS tasks per worker,
MAX_TASK_IMAGES = 512  # of at most this many images each (bounded memory per task)


def default_engine() -> str:
    """``"ray"`` when ray is installed, else ``"local"``."""
    from importlib.util import find_spec

    return "ray" if find_spec("ray") is not None else "local"


def set_threads(threads: int) -> None:
    """Limit Numba (and Torch, when loaded) to ``threads`` threads in this process."""
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(threads)))


def _row_schema(evaluated: bool = False) -> Any:
    import pyarrow as pa

    if evaluated:
        return pa.schema([("variant", pa.int32()), ("image_id", pa.int64()), ("nms_seconds", pa.float64()),
                          ("records", pa.binary())])
    return pa.schema([("variant", pa.int32()), ("image_id", pa.int64()), ("height", pa.int32()),
                      ("width", pa.int32()), ("nms_seconds", pa.float64()), ("category_id", pa.list_(pa.int64())),
                      ("score", pa.list_(pa.float32())), ("counts", pa.list_(pa.binary())),
                      ("box", pa.list_(pa.list_(pa.float32())))])


# the rows of a sweep that evaluates where the NMS ran: no detections leave the worker
EVALUATED_COLUMNS = ("variant", "image_id", "nms_seconds", "records")


def evaluated_rows(images: Sequence[ImageCandidates], variants: Sequence[Variant],
                   evaluator: ImageEvaluator) -> dict[str, list]:
    """Every variant on every image, evaluated there: columns ``EVALUATED_COLUMNS``, one row per (image, variant);
    ``records``: the image's packed ``evaluateImg`` records (``evaluation.ImageEvaluator``)."""
    ids = [image.image_id for image in images]
    rows = nms_rows(images, variants)
    per_variant: list[list[dict[str, Any]]] = [[] for _ in variants]
    for row in rows_of(rows):
        per_variant[row["variant"]].extend(coco_results(row))
    records = evaluator.records(ids, per_variant)
    return {"variant": rows["variant"], "image_id": rows["image_id"], "nms_seconds": rows["nms_seconds"],
            "records": [records[v][i] for v, i in zip(rows["variant"], rows["image_id"])]}


def _table(images: Sequence[ImageCandidates], variants: Sequence[Variant], boxes: bool,
           evaluator: ImageEvaluator | None) -> Any:
    """One batch's rows as an Arrow table (both engines' rows go through the same types)."""
    import pyarrow as pa

    if evaluator is not None:
        return pa.table(evaluated_rows(images, variants, evaluator), schema=_row_schema(True))
    return pa.table(nms_rows(images, variants, boxes=boxes), schema=_row_schema())


def _local_rows(path: str | Path, variants: Sequence[Variant], boxes: bool, batch_size: int,
                gt: Mapping[str, Any] | None) -> Iterator[dict[str, list]]:
    file = open_candidates(path)
    warm_up(variants)
    evaluator = None if gt is None else ImageEvaluator(gt)
    for batch in file.iter_batches(batch_size=batch_size):
        yield _table(images_of(batch), variants, boxes, evaluator).to_pydict()


def _read_rows(file: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a Parquet file as one Arrow table, reading only the row groups they lie in."""
    import pyarrow as pa

    pieces, first = [], 0
    for group in range(file.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        lo, hi = max(start, first), min(stop, first + rows)
        if lo < hi:
            pieces.append(file.read_row_group(group).slice(lo - first, hi - lo))
        first += rows
    return pa.concat_tables(pieces) if pieces else file.schema_arrow.empty_table()


def _nms_task(ranges: dict[str, Any], path: str, variants: Sequence[Variant], threads: int, boxes: bool,
              gt: Any) -> Any:
    """A Ray Data task: reads its rows of the candidate file and applies the variants to them (and evaluates
    them, given ``gt``: ``[ObjectRef]``, a list so that Ray hands the reference over unresolved)."""
    import pyarrow as pa
    import ray

    set_threads(threads)
    warm_up(variants)  # compiles (or loads from Numba's cache) once per worker process; then ~1 ms
    evaluator = None if gt is None else ImageEvaluator(ray.get(gt[0]))
    file = open_parquet(path)
    return pa.concat_tables([_table(images_of(_read_rows(file, int(a), int(b))), variants, boxes, evaluator)
                             for a, b in zip(ranges["start"], ranges["stop"])])


@contextlib.contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data settings for the engine's datasets, restored afterwards: no progress bars of its own (the
    sweep's bar counts images x variants) and no backpressure policies. Those protect the object store from
    piling blocks; here the inputs are a few row ranges and the outputs small, and their concurrency ramp-up
    would hold back the second and later workers for seconds."""
    from ray.data._internal.execution.backpressure_policy import ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY

    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start,
             context.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, None))
    context.enable_progress_bars = context.print_on_execution_start = False
    context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, [])
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved[:2]
        if saved[2] is None:
            context.remove_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY)
        else:
            context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, saved[2])


def _prepare_worker(batch: dict[str, Any]) -> dict[str, Any]:
    """A start-up task: imports what the NMS tasks need (Ray Data, this package, pycocotools: about 1.5 s
    in a fresh worker process) and holds its CPU a moment, so that every worker gets one."""
    import importlib

    for module in ("ray.data", "pycocotools.cocoeval", f"{__package__}.evaluation", f"{__package__}.variants"):
        importlib.import_module(module)
    time.sleep(0.5)
    return batch


def start_ray(num_cpus: int | None = None, address: str | None = None) -> Any:
    """Initialise Ray unless it already is: a local cluster of ``num_cpus`` CPUs, or join ``address``; then
    one Ray Data run of a task per CPU, which starts Ray Data's own services (as a running cluster has them)
    and the worker processes with their imports, rather than in the first sweep."""
    import logging

    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = num_cpus
        ray.init(address=address, **options)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        with _data_context(ray):
            ray.data.range(cpus, override_num_blocks=cpus).map_batches(
                _prepare_worker, batch_size=None, num_cpus=1, compute=ray.data.TaskPoolStrategy(size=cpus)).take_all()
    return ray


def _ray_rows(path: str | Path, variants: Sequence[Variant], boxes: bool, batch_size: int | None,
              num_cpus: int | None, address: str | None, cpus_per_worker: int,
              gt: Mapping[str, Any] | None) -> Iterator[dict[str, list]]:
    ray = start_ray(num_cpus, address)
    path = str(path) if "://" in str(path) else str(Path(path).resolve())  # the workers open it themselves
    file = open_candidates(path)  # a clear error before any task starts
    images = file.metadata.num_rows
    if images == 0:
        return
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
    # The dataset is ranges of rows, one block each, and every task reads its rows itself: read_parquet makes
    # one block of one file, and splitting it takes read and repartition tasks that cannot run while the
    # NMS holds every CPU. Few, large tasks: each costs Ray Data about a second (2,000 images on 2 CPUs: 4 tasks
    # of 500 took 28 s, 8 of 250 32 s, 2 of 1,000 31 s).
    per_task = batch_size or min(MAX_TASK_IMAGES, max(8, -(-images // (workers * TASKS_PER_WORKER))))
    ranges = [{"start": a, "stop": min(a + per_task, images)} for a in range(0, images, per_task)]
    kwargs = {"path": path, "variants": list(variants), "threads": cpus_per_worker, "boxes": boxes,
              "gt": None if gt is None else [ray.put(dict(gt))]}
    with _data_context(ray):
        dataset = ray.data.from_items(ranges, override_num_blocks=min(len(ranges), MAX_BLOCKS))
        rows = dataset.map_batches(_nms_task, fn_kwargs=kwargs, batch_size=1, batch_format="numpy",
                                   num_cpus=cpus_per_worker, compute=ray.data.TaskPoolStrategy(size=workers))
        for batch in rows.iter_batches(batch_format="pyarrow", batch_size=None):
            yield batch.to_pydict()


def iter_rows(path: str | Path, variants: Sequence[Variant], *, engine: str = "local", boxes: bool = False,
              batch_size: int | None = None, num_cpus: int | None = None, address: str | None = None,
              cpus_per_worker: int = 1, gt: Mapping[str, Any] | None = None) -> Iterator[dict[str, list]]:
    """Batches of (image, variant) rows in no guaranteed order: the detections (columns
    ``variants.ROW_COLUMNS``), or with ``gt`` (a COCO ground-truth dict) each image's evaluation records
    (columns ``EVALUATED_COLUMNS``), made where its NMS ran."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if cpus_per_worker < 1:
        raise ValueError(f"cpus_per_worker must be >= 1, got {cpus_per_worker}")
    if engine == "local":
        return _local_rows(path, variants, boxes, batch_size or ROW_GROUP_SIZE, gt)
    return _ray_rows(path, variants, boxes, batch_size, num_cpus, address, cpus_per_worker, gt)


def rows_of(batch: dict[str, list]) -> Iterator[dict[str, Any]]:
    """The rows of a column batch."""
    columns = list(batch)
    for values in zip(*(batch[c] for c in columns)):
        yield dict(zip(columns, values))


# --- COCO evaluation --------------------------------------------------------------------------------------

def evaluate_all(gt_dataset: dict[str, Any], results: Sequence[list[dict[str, Any]]], *, engine: str = "local",
                 evaluator: str = "pycocotools", on_done: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """``coco_stats`` of each variant's results: in turn (local; with pycocotools the variants share their
    masks' IoUs with the ground truth) or as parallel Ray tasks (ray)."""
    if engine == "local" and evaluator == "pycocotools":
        return _each(functools.partial(coco_stats, iou_cache={}), gt_dataset, results, engine, on_done, evaluator)
    return _each(coco_stats, gt_dataset, results, engine, on_done, evaluator)


def accumulate_all(gt_dataset: dict[str, Any], records: Sequence[Mapping[int, bytes]], *, engine: str = "local",
                   on_done: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """``evaluation.accumulate_stats`` of each variant's per-image records: in turn (local) or as parallel Ray
    tasks (ray)."""
    return _each(accumulate_stats, gt_dataset, records, engine, on_done)


def _each(fn: Callable[..., dict[str, float]], gt_dataset: dict[str, Any], per_variant: Sequence[Any], engine: str,
          on_done: Callable[[int], None] | None, *args: Any) -> list[dict[str, float]]:
    """``fn(gt_dataset, per_variant[i], *args)`` for every i: in turn, or as Ray tasks of one CPU each."""
    if engine == "local":
        stats = []
        for i, item in enumerate(per_variant):
            stats.append(fn(gt_dataset, item, *args))
            if on_done is not None:
                on_done(i)
        return stats
    import ray

    remote = ray.remote(num_cpus=1)(fn)
    gt_ref = ray.put(gt_dataset)
    pending = {remote.remote(gt_ref, ray.put(item), *args): i for i, item in enumerate(per_variant)}
    stats: list[Any] = [None] * len(per_variant)
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        stats[pending[done[0]]] = ray.get(done[0])
        if on_done is not None:
            on_done(pending[done[0]])
    return stats


__all__ = ["ENGINES", "EVALUATORS", "EVALUATED_COLUMNS", "default_engine", "set_threads", "start_ray", "iter_rows",
           "rows_of", "evaluated_rows", "coco_stats", "evaluate_all", "accumulate_all", "count_images"]
