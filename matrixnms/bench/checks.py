"""The reference results the benchmarks check every method against (computed once per case), and the checks."""

from __future__ import annotations

import functools
import math
from importlib.util import find_spec
from typing import Any

import numpy as np

from .cases import IOU_THRESHOLD, SIGMA, Case, scene
from .places import to_numpy


@functools.lru_cache(maxsize=8)
def reference_decay(case: Case) -> np.ndarray:
    """(N,) decayed score of every input index, from ``matrix_nms`` on the NumPy generic path."""
    from ..nms import matrix_nms

    s = scene(case)
    data = {"masks": s.masks} if case.family == "masks" else {"boxes": s.boxes}
    keep, decayed = matrix_nms(s.scores, labels=s.labels, sigma=SIGMA, backend="generic", **data)
    out = np.full(case.n, np.nan, dtype=np.float64)
    out[keep] = decayed
    return out


@functools.lru_cache(maxsize=8)
def reference_greedy(case: Case) -> np.ndarray:
    """Greedy NMS keep (IoU > 0.5 suppresses) from the library's IoU and a plain loop."""
    from ..masks import box_iou, mask_iou

    s = scene(case)
    order = np.argsort(-s.scores, kind="stable")
    if case.family == "masks":
        iou = np.asarray(mask_iou(s.masks[order]), dtype=np.float64)
    else:
        iou = np.asarray(box_iou(s.boxes[order].astype(np.float64)), dtype=np.float64)
    if s.labels is not None:
        sorted_labels = s.labels[order]
        iou = np.where(sorted_labels[:, None] == sorted_labels[None, :], iou, 0.0)
    suppressed = np.zeros(case.n, dtype=bool)
    keep = []
    for i in range(case.n):
        if not suppressed[i]:
            keep.append(i)
            suppressed[i + 1:] |= iou[i, i + 1:] > IOU_THRESHOLD
    return order[np.asarray(keep, dtype=np.int64)]


def _decayed_by_index(n: int, keep: np.ndarray, decayed: np.ndarray) -> np.ndarray:
    keep = np.asarray(keep).astype(np.int64)
    if sorted(keep.tolist()) != list(range(n)):
        raise AssertionError(f"expected every index to be kept once (no thresholds), got {len(keep)} of {n}")
    out = np.empty(n, dtype=np.float64)
    out[keep] = np.asarray(decayed, dtype=np.float64)
    return out


def _assert_decay(case: Case, by_index: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(by_index)):
        raise AssertionError(f"{what}: non-finite decayed scores")
    np.testing.assert_allclose(by_index, reference_decay(case), rtol=1e-4, atol=1e-5,
                               err_msg=f"{what} disagrees with matrix_nms (NumPy generic path)")


def check_matrix_nms(case: Case, result: Any) -> None:
    keep, decayed = to_numpy(result)
    _assert_decay(case, _decayed_by_index(case.n, keep, decayed), "matrix_nms")
    if np.any(np.diff(np.asarray(decayed, dtype=np.float64)) > 0):
        raise AssertionError("matrix_nms: keep is not ordered by decayed score")


def check_paper(case: Case, result: Any) -> None:
    order, decayed = to_numpy(result)
    _assert_decay(case, _decayed_by_index(case.n, order, decayed), "the paper's transcription")


def check_greedy(case: Case, result: Any) -> None:
    keep = np.asarray(to_numpy(result)).astype(np.int64)
    expected = reference_greedy(case)
    if not np.array_equal(keep, expected):
        raise AssertionError(f"greedy NMS kept {len(keep)} items, the reference loop {len(expected)}; "
                             f"first difference at {int(np.argmax(keep[:len(expected)] != expected[:len(keep)]))}")


def check_fast(case: Case, result: Any) -> None:
    """Fast NMS keeps a subset of greedy NMS's result (suppressed items still suppress), by decreasing score."""
    keep = np.asarray(to_numpy(result)).astype(np.int64)
    expected = reference_greedy(case)
    if len(keep) == 0 or keep[0] != expected[0] or not set(keep.tolist()) <= set(expected.tolist()):
        raise AssertionError(f"fast NMS kept {len(keep)} items, not a subset of greedy's {len(expected)} with its top")
    scores = scene(case).scores.astype(np.float64)[keep]
    if np.any(np.diff(scores) > 0):
        raise AssertionError("fast NMS: keep is not ordered by decreasing score")


def check_soft(case: Case, result: Any) -> None:
    keep, decayed = (np.asarray(v) for v in to_numpy(result))
    s = scene(case)
    if len(keep) == 0 or len(np.unique(keep)) != len(keep):
        raise AssertionError("soft_nms: empty or repeated keep")
    top = int(np.argsort(-s.scores, kind="stable")[0])
    if int(keep[0]) != top or not math.isclose(float(decayed[0]), float(s.scores[top]), rel_tol=1e-6):
        raise AssertionError("soft_nms: the top-scored item must come first with its score")
    if np.any(decayed.astype(np.float64) > s.scores[keep].astype(np.float64) * (1 + 1e-6)):
        raise AssertionError("soft_nms: a decayed score exceeds its input score")
    if np.any(np.diff(decayed.astype(np.float64)) > 1e-7):
        raise AssertionError("soft_nms: keep is not in decreasing decayed score")


def check_floor(case: Case, result: Any) -> None:
    if result.shape != (case.n, -(-case.height * case.width // 8)):
        raise AssertionError(f"packbits gave shape {result.shape}")


@functools.lru_cache(maxsize=4)
def coco_rles(case: Case) -> Any:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(fortran_uint8(scene(case).masks))


def fortran_uint8(masks: np.ndarray) -> np.ndarray:
    # pycocotools wants (H, W, N) uint8 in Fortran order
    return np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))


@functools.lru_cache(maxsize=4)
def reference_mask_iou(case: Case) -> np.ndarray:
    """(N, N) float64 IoU: pycocotools' when installed, else exact float32 counts (exact below 2**24 pixels)."""
    masks = scene(case).masks
    if find_spec("pycocotools") is not None:
        from pycocotools import mask as mask_utils

        rles = coco_rles(case)
        return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64).reshape(case.n, case.n)
    flat = masks.reshape(case.n, -1)
    area = flat.sum(axis=1).astype(np.float64)
    inter = np.zeros((case.n, case.n))
    step = max(1, 2**26 // max(1, case.n * 4))
    for start in range(0, flat.shape[1], step):
        part = flat[:, start:start + step].astype(np.float32)
        inter += part @ part.T
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def check_mask_iou(case: Case, result: Any) -> None:
    iou = np.asarray(to_numpy(result), dtype=np.float64).reshape(case.n, case.n)
    np.testing.assert_allclose(iou, reference_mask_iou(case), rtol=1e-6, atol=1e-7,
                               err_msg="mask IoU disagrees with pycocotools")


def numpy_any_boxes(masks: np.ndarray) -> np.ndarray:
    """masks_to_boxes the plain NumPy way: any over columns / rows, first and last True (xyxy, edges)."""
    rows = masks.any(axis=2)
    cols = masks.any(axis=1)
    h, w = rows.shape[1], cols.shape[1]
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0
    return boxes


def check_boxes(case: Case, result: Any, fmt: str = "xyxy") -> None:
    boxes = np.asarray(to_numpy(result), dtype=np.float64)
    if fmt == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    expected = numpy_any_boxes(scene(case).masks).astype(np.float64)
    np.testing.assert_array_equal(boxes, expected, err_msg="masks_to_boxes disagrees with the NumPy any-reduction")


def check_coco_boxes(case: Case, result: Any) -> None:
    check_boxes(case, result, "xywh")
