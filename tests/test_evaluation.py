"""COCO evaluation split by image (matrixnms.tuning.evaluation) against one pycocotools COCOeval.

The ray engine evaluates each image where its NMS ran and accumulates the merged records on the driver; the
local engine runs one COCOeval per variant. These tests pin the split to the whole evaluation exactly: in any
order of batches, with tied scores across images, with ground-truth images that have no detections, and
against pycocotools' full four-area-range evaluation.
"""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pycocotools", reason="pycocotools not installed")

from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from matrixnms.tuning.evaluation import (ImageEvaluator, accumulate_stats, coco_stats, merge_records,  # noqa: E402
                                         pack_records, unpack_records)

SIZE = 48


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def scene(seed: int, images: int = 14, tied: bool = False) -> tuple[dict, list[dict]]:
    """A COCO ground truth of discs (3 categories, some crowd) and detections: jittered copies, misses and
    false positives; ``tied``: every score 0.5 (ties across images)."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": k} for k in (1, 2, 3)]}
    results = []
    for image_id in rng.permutation(np.arange(1, images + 1) * 7).tolist():  # ids neither dense nor sorted
        gt["images"].append({"id": image_id, "height": SIZE, "width": SIZE})
        for _ in range(int(rng.integers(0, 4))):
            cx, cy, r = float(rng.uniform(8, 40)), float(rng.uniform(8, 40)), float(rng.uniform(3, 12))
            label = int(rng.integers(1, 4))
            disc = _disc(cx, cy, r)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": label,
                                      "segmentation": _rle(disc), "area": float(disc.sum()),
                                      "bbox": [cx - r, cy - r, 2 * r, 2 * r], "iscrowd": int(rng.random() < 0.1)})
            for _ in range(int(rng.integers(0, 3))):
                jitter = rng.normal(0, 1.5, 3)
                results.append({"image_id": image_id, "category_id": label if rng.random() < 0.9 else 1 + label % 3,
                                "segmentation": _rle(_disc(cx + jitter[0], cy + jitter[1], max(1.0, r + jitter[2]))),
                                "score": 0.5 if tied else float(rng.uniform(0.05, 1))})
        if rng.random() < 0.3:  # a false positive
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                            "segmentation": _rle(_disc(*rng.uniform(5, 43, 2), 4)),
                            "score": 0.5 if tied else float(rng.uniform(0.05, 1))})
    return gt, results


def split_stats(gt: dict, results: list[dict], batch: int, seed: int) -> dict:
    """Records made batch by batch in a shuffled image order, merged, accumulated."""
    evaluator = ImageEvaluator(gt)
    ids = [im["id"] for im in gt["images"]]
    random.Random(seed).shuffle(ids)
    parts = []
    for start in range(0, len(ids), batch):
        chunk = set(ids[start:start + batch])
        mine = [dict(r) for r in results if r["image_id"] in chunk]
        parts.append(evaluator.records(sorted(chunk), [mine])[0])
    return accumulate_stats(gt, merge_records(parts), evaluator)


def evaluated(gt: dict, results: list[dict]) -> COCOeval:
    """pycocotools' own COCOeval after ``evaluate()``, all four area ranges."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes([dict(r) for r in results]), "segm")
        ev.evaluate()
    return ev


def full_cocoeval(gt: dict, results: list[dict]) -> dict:
    """pycocotools' own evaluation, all four area ranges: AP, AP50, AP75, AR100."""
    ev = evaluated(gt, results)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return {k: max(0.0, float(ev.stats[i])) for k, i in (("AP", 0), ("AP50", 1), ("AP75", 2), ("AR100", 8))}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tied", [False, True])
def test_split_equals_one_cocoeval(seed, tied):
    gt, results = scene(seed, tied=tied)
    whole = coco_stats(gt, [dict(r) for r in results])
    assert whole == full_cocoeval(gt, results)  # the "all" range alone gives the same four figures
    for batch in (1, 3, 100):
        assert split_stats(gt, results, batch, seed) == whole
    assert 0 < whole["AP"] < 1


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), images=st.integers(1, 12), batch=st.integers(1, 12), tied=st.booleans())
def test_split_equals_one_cocoeval_property(seed, images, batch, tied):
    """Any scene, any batch size, any order of batches: the split figures are one COCOeval's, exactly."""
    gt, results = scene(seed, images=images, tied=tied)
    whole = coco_stats(gt, [dict(r) for r in results])
    assert split_stats(gt, results, batch, seed) == whole
    if results:  # pycocotools' loadRes cannot take none
        assert whole == full_cocoeval(gt, results)  # "all" and maxDets 100 alone: pycocotools' four figures


def variants_of(results: list[dict], count: int, seed: int) -> list[list[dict]]:
    """``count`` variants as a sweep makes them: each keeps a subset of the same detections with its own
    scores (ties too), some twice, some under a second label; the masks repeat across variants, as kept
    candidates do."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        kept = [dict(r, score=float(np.round(r["score"] * rng.uniform(0.2, 1), 1)))
                for r in results if rng.random() < 0.8]
        kept += [dict(r) for r in kept[:2]]  # a detection reported twice
        # and a mask under two labels, as SOLO's candidates are (one grid cell, every category above threshold)
        kept += [dict(r, category_id=1 + r["category_id"] % 3) for r in kept[2:4]]
        out.append(kept)
    return out


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), images=st.integers(1, 10), count=st.integers(2, 5))
def test_variants_sharing_ious_equal_each_alone(seed, images, count):
    """One ``records`` call for several variants (their IoUs shared) gives each variant's records exactly as a
    call for that variant alone, and the figures of one full COCOeval; so does ``coco_stats`` with a cache
    shared by the variants."""
    gt, results = scene(seed, images=images)
    variants = variants_of(results, count, seed)
    ids = [im["id"] for im in gt["images"]]
    together = ImageEvaluator(gt).records(ids, variants)
    shared: dict = {}  # the local engine's whole evaluations, one per variant, share a cache the same way
    for variant, records in zip(variants, together):
        alone = ImageEvaluator(gt).records(ids, [variant])[0]
        assert sorted(records) == sorted(alone) == sorted(ids)
        assert all(_same(records[i], alone[i]) for i in ids)
        if variant:
            full = full_cocoeval(gt, variant)
            assert accumulate_stats(gt, records) == full
            assert coco_stats(gt, [dict(r) for r in variant], iou_cache=shared) == full


def _same(a: bytes, b: bytes) -> bool:
    """Packed records equal field by field."""
    a, b = unpack_records(a), unpack_records(b)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x is None) != (y is None):
            return False
        if x is not None and not all(np.array_equal(x[k], y[k]) for k in x):
            return False
    return True


def test_more_than_100_detections_in_an_image():
    """Past maxDets = 100 per image the lowest-scored detections drop out, as in pycocotools' summary (which
    also accumulates maxDets 1 and 10; the figures read only 100)."""
    gt, results = scene(3, images=4)
    rng = np.random.default_rng(0)
    image_id = gt["images"][0]["id"]
    for _ in range(130):
        results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                        "segmentation": _rle(_disc(*rng.uniform(5, 43, 2), float(rng.uniform(2, 10)))),
                        "score": float(rng.uniform(0.6, 1))})  # above most true detections: they get cut
    whole = coco_stats(gt, [dict(r) for r in results])
    assert whole == full_cocoeval(gt, results)
    assert split_stats(gt, results, 2, 0) == whole


def test_ground_truth_images_without_records_count_as_misses():
    gt, results = scene(11)
    evaluator = ImageEvaluator(gt)
    dropped = gt["annotations"][0]["image_id"]  # an image with ground truth, and its detections dropped
    kept = [dict(r) for r in results if r["image_id"] != dropped]
    ids = [im["id"] for im in gt["images"] if im["id"] != dropped]
    records = evaluator.records(ids, [kept])[0]
    assert dropped not in records
    assert accumulate_stats(gt, records, evaluator) == coco_stats(gt, [dict(r) for r in kept])


def test_no_detections_at_all():
    gt, _ = scene(3)
    evaluator = ImageEvaluator(gt)
    records = evaluator.records([im["id"] for im in gt["images"]], [[]])[0]
    assert accumulate_stats(gt, records, evaluator) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR100": 0.0}


def test_records_round_trip_through_packing():
    gt, results = scene(5)
    ev = evaluated(gt, results)
    ids = ev.params.imgIds
    for j in range(len(ids)):
        original = ev.evalImgs[j::len(ids)]
        unpacked = unpack_records(pack_records(original))
        assert len(unpacked) == len(original)
        for a, b in zip(original, unpacked):
            assert (a is None) == (b is None)
            if a is not None:
                for key in ("dtScores", "dtMatches", "dtIgnore", "gtIgnore"):
                    np.testing.assert_array_equal(np.asarray(a[key]), b[key])
                    assert np.asarray(a[key]).shape == b[key].shape


def test_unknown_and_repeated_images_are_named():
    gt, results = scene(2)
    evaluator = ImageEvaluator(gt)
    with pytest.raises(ValueError, match="image_id 99999 of the candidates is not in the ground truth"):
        evaluator.records([99999], [[]])
    one = evaluator.records([gt["images"][0]["id"]], [[]])[0]
    with pytest.raises(ValueError, match=f"image_id {gt['images'][0]['id']} appears more than once"):
        merge_records([one, one])
    with pytest.raises(ValueError, match=f"image_id {gt['images'][0]['id']} appears more than once"):
        evaluator.records([gt["images"][0]["id"]] * 2, [[]])


def test_faster_coco_eval_gives_the_same_figures():
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval not installed (optional)")
    for seed in range(3):
        gt, results = scene(seed)
        faster = coco_stats(gt, [dict(r) for r in results], "faster-coco-eval")
        # equal to the last bits: its C++ accumulation may round differently (one AP50 differed by 1 ulp)
        assert faster == pytest.approx(coco_stats(gt, [dict(r) for r in results]), rel=1e-12, abs=1e-12)
