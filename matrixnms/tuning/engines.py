"""Engines: every variant over every image of a candidate file, then COCO evaluation of each variant.

``local``: one process, the file streamed in row groups. ``ray``: Ray Data reads the file
(``read_parquet``), a pool of actors (``map_batches``, one CPU each by default) applies the variants, and
the COCO evaluations of the variants run as parallel Ray tasks. Both produce the same rows (``nms_rows``)
and the same numbers: the driver sorts them by (variant, image) before evaluating.

``ray.init()`` starts a local cluster of ``num_cpus`` CPUs (default: the machine's); ``address`` joins a
running one (``"auto"``, ``"ray://host:10001"``); an already-initialised Ray is used as it is. Each actor
sets Numba's and Torch's threads to the CPUs it was given, so actors never oversubscribe the machine.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .candidates import ROW_GROUP_SIZE, count_images, images_of
from .variants import ROW_COLUMNS, Variant, nms_rows, warm_up

ENGINES = ("ray", "local")


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


def _row_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("variant", pa.int32()), ("image_id", pa.int64()), ("height", pa.int32()),
                      ("width", pa.int32()), ("nms_seconds", pa.float64()), ("category_id", pa.list_(pa.int64())),
                      ("score", pa.list_(pa.float32())), ("counts", pa.list_(pa.binary())),
                      ("box", pa.list_(pa.list_(pa.float32())))])


def _local_rows(path: str | Path, variants: Sequence[Variant], boxes: bool,
                batch_size: int) -> Iterator[dict[str, list]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .candidates import check_columns

    file = pq.ParquetFile(path)
    check_columns(file.schema_arrow.names, str(path))
    warm_up(variants)
    for batch in file.iter_batches(batch_size=batch_size):
        # through the same Arrow types as the ray engine's rows, so both give the same values
        yield pa.table(nms_rows(images_of(batch), variants, boxes=boxes), schema=_row_schema()).to_pydict()


class _NMSWorker:
    """A Ray Data actor: the variants applied to batches of candidate rows."""

    def __init__(self, variants: Sequence[Variant], threads: int, boxes: bool) -> None:
        set_threads(threads)
        warm_up(variants)
        self.variants, self.boxes = list(variants), boxes

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        return pa.table(nms_rows(images_of(batch), self.variants, boxes=self.boxes), schema=_row_schema())


def start_ray(num_cpus: int | None = None, address: str | None = None) -> Any:
    """Initialise Ray unless it already is: a local cluster of ``num_cpus`` CPUs, or join ``address``."""
    import logging

    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = num_cpus
        ray.init(address=address, **options)
    return ray


def _ray_rows(path: str | Path, variants: Sequence[Variant], boxes: bool, batch_size: int,
              num_cpus: int | None, address: str | None, cpus_per_worker: int) -> Iterator[dict[str, list]]:
    ray = start_ray(num_cpus, address)
    import pyarrow.parquet as pq

    from .candidates import check_columns

    check_columns(pq.ParquetFile(path).schema_arrow.names, str(path))  # a clear error before any task starts
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the sweep's own bar counts images x variants
    context.print_on_execution_start = False
    # one file is one read block: split it (streaming) so that every actor gets work
    # reading takes no CPU of its own: the actors hold every CPU, and a read task waiting for one would stall
    dataset = ray.data.read_parquet(str(Path(path).resolve()), num_cpus=0).repartition(
        target_num_rows_per_block=batch_size)
    rows = dataset.map_batches(_NMSWorker, fn_constructor_kwargs={"variants": list(variants),
                                                                  "threads": cpus_per_worker, "boxes": boxes},
                               batch_size=batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(
                                   min_size=1, max_size=workers), num_cpus=cpus_per_worker)
    for batch in rows.iter_batches(batch_format="pyarrow", batch_size=None):
        yield batch.to_pydict()


def iter_rows(path: str | Path, variants: Sequence[Variant], *, engine: str = "local", boxes: bool = False,
              batch_size: int | None = None, num_cpus: int | None = None, address: str | None = None,
              cpus_per_worker: int = 1) -> Iterator[dict[str, list]]:
    """Batches of (image, variant) rows (columns ``variants.ROW_COLUMNS``), in no guaranteed order."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if cpus_per_worker < 1:
        raise ValueError(f"cpus_per_worker must be >= 1, got {cpus_per_worker}")
    if engine == "local":
        return _local_rows(path, variants, boxes, batch_size or ROW_GROUP_SIZE)
    return _ray_rows(path, variants, boxes, batch_size or 8, num_cpus, address, cpus_per_worker)


def rows_of(batch: dict[str, list]) -> Iterator[dict[str, Any]]:
    """The rows of a column batch."""
    for values in zip(*(batch[c] for c in ROW_COLUMNS)):
        yield dict(zip(ROW_COLUMNS, values))


# --- COCO evaluation --------------------------------------------------------------------------------------

EVALUATORS = ("pycocotools", "faster-coco-eval")


def coco_stats(gt_dataset: dict[str, Any], results: list[dict[str, Any]],
               evaluator: str = "pycocotools") -> dict[str, float]:
    """Mask AP, AP50, AP75 and AR100 of ``results`` against a COCO ground-truth dict (0 without results)."""
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR100": 0.0}
    if evaluator == "faster-coco-eval":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dataset
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval writes -1 for an undefined metric (no ground truth): count it as 0
    stats = [max(0.0, float(v)) for v in ev.stats]
    return {"AP": stats[0], "AP50": stats[1], "AP75": stats[2], "AR100": stats[8]}


def evaluate_all(gt_dataset: dict[str, Any], results: Sequence[list[dict[str, Any]]], *, engine: str = "local",
                 evaluator: str = "pycocotools", on_done: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """``coco_stats`` of each variant's results: in turn (local) or as parallel Ray tasks (ray)."""
    if engine == "local":
        stats = []
        for i, r in enumerate(results):
            stats.append(coco_stats(gt_dataset, r, evaluator))
            if on_done is not None:
                on_done(i)
        return stats
    import ray

    remote = ray.remote(num_cpus=1)(coco_stats)
    gt_ref = ray.put(gt_dataset)
    pending = {remote.remote(gt_ref, ray.put(r), evaluator): i for i, r in enumerate(results)}
    stats: list[Any] = [None] * len(results)
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        stats[pending[done[0]]] = ray.get(done[0])
        if on_done is not None:
            on_done(pending[done[0]])
    return stats


__all__ = ["ENGINES", "EVALUATORS", "default_engine", "set_threads", "start_ray", "iter_rows", "rows_of",
           "coco_stats", "evaluate_all", "count_images"]
