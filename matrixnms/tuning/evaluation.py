"""COCO mask evaluation split by image: the per-image part where the images are, one accumulation at the end.

pycocotools' ``COCOeval.evaluate`` matches each image's detections of each category to that image's ground
truth (``evaluateImg``: one record per category, area range and image) and depends on nothing else;
``accumulate`` then ranks every record's detections by score across images and builds the precision /
recall tables. So a sweep's engines evaluate each batch of images where its NMS ran (``ImageEvaluator``, in
the workers: the detections never travel) and the driver merges the records of every image in the order a
single ``evaluate`` would have made them and runs pycocotools' own ``accumulate`` (``accumulate_stats``).
Both evaluate the area range "all" and maxDets 100 alone, all that AP, AP50, AP75 and AR100 read, and take
the figures from the precision / recall tables as ``summarize`` does. The figures equal one full
``COCOeval`` over all images exactly (``tests/test_evaluation.py``; ``tests/test_sweep.py`` against
``solov2_ref.evaluate``).

``coco_stats`` is the whole evaluation in one call, with pycocotools or faster-coco-eval.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import pickle
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

EVALUATORS = ("pycocotools", "faster-coco-eval")
FIGURES = ("AP", "AP50", "AP75", "AR100")


def _only_what_figures_read(params: Any) -> None:
    """Evaluate what the four figures need alone: the area range "all" and maxDets 100. AP, AP50, AP75 and
    AR100 are figures of that range and of 100 detections, which ``evaluateImg`` (it matches the top
    ``maxDets[-1]`` detections) and ``accumulate`` (each range and maxDets apart) compute independently of
    the small / medium / large ranges and of maxDets 1 and 10: the same figures for a twelfth of the
    accumulation (``_figures`` reads them without ``summarize``, which needs all the ranges)."""
    params.areaRng, params.areaRngLbl = params.areaRng[:1], params.areaRngLbl[:1]
    params.maxDets = [100]
    assert params.areaRngLbl == ["all"], params.areaRngLbl


def _mean_defined(values: Any) -> float:
    """``summarize``'s mean: over the entries that are not -1 (undefined: no ground truth), 0 if none is
    (``summarize`` writes -1, counted as 0 here)."""
    defined = values[values > -1]
    return float(np.mean(defined)) if len(defined) else 0.0


def _figures(ev: Any) -> dict[str, float]:
    """AP, AP50, AP75 and AR100 of an accumulated ``COCOeval`` whose params ``_only_what_figures_read`` set, computed
    as ``summarize`` computes its stats 0, 1, 2 and 8 (precision is [T, R, K, A, M], recall [T, K, A, M])."""
    precision, recall = ev.eval["precision"][..., 0, -1], ev.eval["recall"][..., 0, -1]
    thresholds = ev.params.iouThrs
    return {"AP": _mean_defined(precision), "AP50": _mean_defined(precision[np.where(thresholds == 0.5)[0]]),
            "AP75": _mean_defined(precision[np.where(thresholds == 0.75)[0]]), "AR100": _mean_defined(recall)}


def _summary_figures(stats: Sequence[float]) -> dict[str, float]:
    # COCOeval writes -1 for an undefined metric (no ground truth): count it as 0
    stats = [max(0.0, float(v)) for v in stats]
    return {"AP": stats[0], "AP50": stats[1], "AP75": stats[2], "AR100": stats[8]}


def coco_stats(gt_dataset: dict[str, Any], results: list[dict[str, Any]], evaluator: str = "pycocotools", *,
               iou_cache: dict | None = None) -> dict[str, float]:
    """Mask AP, AP50, AP75 and AR100 of ``results`` against a COCO ground-truth dict (0 without results).

    ``iou_cache``: a dict shared by the calls for the variants of one sweep (pycocotools only): each mask's
    IoUs with the ground truth are computed once (``_shared_ious``), the figures unchanged."""
    if not results:
        return dict.fromkeys(FIGURES, 0.0)
    if evaluator == "faster-coco-eval":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dataset
        gt.createIndex()
        if evaluator == "faster-coco-eval":  # its C++ summary expects all four ranges and three maxDets
            ev = COCOeval(gt, gt.loadRes(results), "segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            return _summary_figures(ev.stats)
        ev = _evaluated(gt, gt.loadRes(results), iou_cache)
        ev.accumulate()
    return _figures(ev)


def _evaluated(gt: Any, dt: Any, iou_cache: dict | None, image_ids: Sequence[int] | None = None) -> Any:
    """pycocotools' ``COCOeval(gt, dt, "segm")`` on what the figures read (``_only_what_figures_read``) of
    ``image_ids`` (default: all), after ``evaluate()``; with ``iou_cache``, its IoUs shared (``_shared_ious``)."""
    from pycocotools.cocoeval import COCOeval

    ev = COCOeval(gt, dt, "segm")
    if iou_cache is not None:
        ev.computeIoU = functools.partial(_shared_ious, ev, iou_cache)  # evaluate() calls self.computeIoU
    if image_ids is not None:
        ev.params.imgIds = list(image_ids)
    _only_what_figures_read(ev.params)
    ev.evaluate()
    return ev


def _coco(dataset: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


# what pycocotools' accumulate reads of an evaluateImg record; the rest (ids, gtMatches) stays in the worker
_FIELDS = ("dtScores", "dtMatches", "dtIgnore", "gtIgnore")


def pack_records(records: Sequence[dict[str, Any] | None]) -> bytes:
    """One image's ``evaluateImg`` records as a few flat arrays (cheap to send and to unpack): the positions
    of the records that are not None, their detection and ground-truth counts, and the four fields
    ``accumulate`` reads, concatenated (same dtypes and values)."""

    kept = [(j, r) for j, r in enumerate(records) if r is not None]
    where = np.array([j for j, _ in kept], np.int32)
    dets = np.array([len(r["dtScores"]) for _, r in kept], np.int64)
    gts = np.array([len(r["gtIgnore"]) for _, r in kept], np.int64)
    scores = np.array([x for _, r in kept for x in r["dtScores"]], np.float64)
    matches = np.concatenate([r["dtMatches"] for _, r in kept], axis=1) if kept else np.zeros((0, 0))
    ignored = np.concatenate([r["dtIgnore"] for _, r in kept], axis=1) if kept else np.zeros((0, 0), bool)
    gt_ignored = np.concatenate([np.asarray(r["gtIgnore"], np.int64) for _, r in kept]) if kept else np.zeros(0, np.int64)
    return pickle.dumps((len(records), where, dets, gts, scores, matches, ignored, gt_ignored),
                        protocol=pickle.HIGHEST_PROTOCOL)


def unpack_records(blob: bytes) -> list[dict[str, Any] | None]:
    """``pack_records`` undone: the records (views into the flat arrays), None where evaluateImg gave None."""
    width, where, dets, gts, scores, matches, ignored, gt_ignored = pickle.loads(blob)
    out: list[dict[str, Any] | None] = [None] * width
    d_end, g_end = np.cumsum(dets).tolist(), np.cumsum(gts).tolist()
    d0 = g0 = 0
    for j, d1, g1 in zip(where.tolist(), d_end, g_end):
        out[j] = {"dtScores": scores[d0:d1], "dtMatches": matches[:, d0:d1], "dtIgnore": ignored[:, d0:d1],
                  "gtIgnore": gt_ignored[g0:g1]}
        d0, g0 = d1, g1
    return out


def _segmentation_key(segmentation: Mapping[str, Any]) -> tuple[Any, ...]:
    return (*segmentation["size"], segmentation["counts"])


def _shared_ious(ev: Any, cache: dict[tuple[int, int], dict[tuple[Any, ...], Any]], image_id: int,
                 category_id: int) -> Any:
    """``COCOeval.computeIoU`` (segm, one category) with each detection's row of IoUs against the image's
    ground truth of that category taken from ``cache``, computed (``maskUtils.iou``, which treats every pair
    apart) the first time one of the variants reports that mask: the variants of a sweep keep mostly the same
    candidates. Same rows in the same order (score-sorted, stable, the top ``maxDets[-1]``), same values."""
    from pycocotools import mask as mask_utils

    gt, dt = ev._gts[image_id, category_id], ev._dts[image_id, category_id]
    if not gt or not dt:
        return []  # computeIoU's value when both are empty, maskUtils.iou's when one side is
    order = np.argsort([-d["score"] for d in dt], kind="mergesort")[:ev.params.maxDets[-1]]
    segmentations = [dt[i]["segmentation"] for i in order]
    keys = [_segmentation_key(segmentation) for segmentation in segmentations]
    rows = cache.setdefault((image_id, category_id), {})
    new = {key: segmentation for key, segmentation in zip(keys, segmentations) if key not in rows}
    if new:
        ious = mask_utils.iou(list(new.values()), [g["segmentation"] for g in gt], [int(g["iscrowd"]) for g in gt])
        rows.update(zip(new, ious))
    return np.array([rows[key] for key in keys])


class ImageEvaluator:
    """The per-image half of ``COCOeval(gt, dt, "segm").evaluate()`` for batches of images.

    Holds the ground truth indexed by image (built once per worker); ``records`` evaluates each variant's
    detections on a batch of images and returns, per image, its ``evaluateImg`` records (category-major, then
    area range, as ``COCOeval.evalImgs`` orders them) packed to bytes (``pack_records``). pycocotools'
    ``evaluate`` and ``evaluateImg`` run as they are; only ``computeIoU`` is shared by the variants of one
    call (``_shared_ious``).
    """

    def __init__(self, gt_dataset: Mapping[str, Any]) -> None:
        self.categories = list(gt_dataset["categories"])
        self.images = {int(im["id"]): im for im in gt_dataset["images"]}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        for ann in gt_dataset["annotations"]:
            self.annotations.setdefault(int(ann["image_id"]), []).append(ann)

    def records(self, image_ids: Sequence[int],
                results: Sequence[Sequence[dict[str, Any]]]) -> list[dict[int, bytes]]:
        """Per variant, ``{image_id: packed records}`` of its ``results`` (COCO result dicts) on ``image_ids``
        (each id once)."""
        ids = sorted(int(i) for i in image_ids)
        for a, b in zip(ids, ids[1:]):
            if a == b:
                _repeated(a)
        missing = [i for i in ids if i not in self.images]
        if missing:
            raise ValueError(f"image_id {missing[0]} of the candidates is not in the ground truth "
                             f"({len(missing)} such image(s) in this batch)")
        images = [self.images[i] for i in ids]
        gt = _coco({"images": images, "categories": self.categories,
                    "annotations": [a for i in ids for a in self.annotations.get(i, [])]})
        cache: dict[tuple[int, int], dict[tuple[Any, ...], Any]] = {}
        out = []
        for variant_results in results:
            with contextlib.redirect_stdout(io.StringIO()):
                if variant_results:
                    dt = gt.loadRes([dict(r) for r in variant_results])  # loadRes writes into them
                else:  # loadRes cannot take an empty list
                    dt = _coco({"images": images, "categories": self.categories, "annotations": []})
                ev = _evaluated(gt, dt, cache, ids)
            # evalImgs is [category][area range][image]: every len(ids)-th record belongs to one image
            out.append({i: pack_records(ev.evalImgs[j::len(ids)]) for j, i in enumerate(ids)})
        return out


def accumulate_stats(gt_dataset: Mapping[str, Any], records: Mapping[int, bytes],
                     evaluator: ImageEvaluator | None = None) -> dict[str, float]:
    """AP, AP50, AP75 and AR100 from every image's ``ImageEvaluator.records`` (pycocotools' accumulate).

    Images of the ground truth without records (no candidates in the file) are evaluated here, with no
    detections, as one ``COCOeval`` over the whole ground truth would.
    """
    from pycocotools.cocoeval import COCOeval

    evaluator = evaluator or ImageEvaluator(gt_dataset)
    ids = sorted(evaluator.images)
    absent = [i for i in ids if i not in records]
    extra = sorted(set(records) - set(evaluator.images))
    if extra:
        raise ValueError(f"image_id {extra[0]} of the candidates is not in the ground truth")
    merged = {**records, **(evaluator.records(absent, [[]])[0] if absent else {})}
    per_image = [unpack_records(merged[i]) for i in ids]
    ev = COCOeval(iouType="segm")
    ev.params.imgIds = ids
    ev.params.catIds = sorted({int(c["id"]) for c in evaluator.categories})
    _only_what_figures_read(ev.params)
    ev._paramsEval = copy.deepcopy(ev.params)
    width = len(ev.params.catIds) * len(ev.params.areaRng)
    if any(len(r) != width for r in per_image):
        raise ValueError(f"records of another ground truth: {width} per image expected")
    ev.evalImgs = [per_image[i][j] for j in range(width) for i in range(len(ids))]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    return _figures(ev)


def _repeated(image_id: int) -> None:
    raise ValueError(f"image_id {image_id} appears more than once in the candidates")


def add_records(merged: dict[int, bytes], image_id: int, value: bytes) -> None:
    """``merged[image_id] = value``; an image met twice is an error (duplicate rows in the file)."""
    if image_id in merged:
        _repeated(image_id)
    merged[image_id] = value


def merge_records(parts: Iterable[Mapping[int, bytes]]) -> dict[int, bytes]:
    """One ``{image_id: records}`` from many (``add_records``)."""
    merged: dict[int, bytes] = {}
    for part in parts:
        for image_id, value in part.items():
            add_records(merged, image_id, value)
    return merged


__all__ = ["EVALUATORS", "FIGURES", "coco_stats", "ImageEvaluator", "pack_records", "unpack_records",
           "accumulate_stats", "add_records", "merge_records"]
