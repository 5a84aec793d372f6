"""Loop-by-loop float64 Matrix NMS, transcribed from Figure 1 of the SOLOv2 appendix.

Shares no code with the library: plain Python loops over pairs, exact integer mask counts, and the rules of
../shared/DESIGN.md (order of operations, class-aware IoU, the linear duplicate rule, tie order).
"""

from __future__ import annotations

import math

import numpy as np


def mask_iou(masks_a: np.ndarray, masks_b: np.ndarray, smaller: bool = False) -> np.ndarray:
    """Pairwise IoU; ``smaller``: intersection over the smaller area instead (0 when either mask is empty)."""
    a, b = np.asarray(masks_a), np.asarray(masks_b)
    a = a.reshape(len(a), int(np.prod(a.shape[1:]))) != 0
    b = b.reshape(len(b), int(np.prod(b.shape[1:]))) != 0
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            inter = int(np.count_nonzero(a[i] & b[j]))
            if smaller:
                union = min(int(np.count_nonzero(a[i])), int(np.count_nonzero(b[j])))
            else:
                union = int(np.count_nonzero(a[i] | b[j]))
            out[i, j] = inter / union if union else 0.0
    return out


def mask_ios(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    return mask_iou(masks_a, masks_b, smaller=True)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, smaller: bool = False) -> np.ndarray:
    """torchvision's box IoU; ``smaller``: intersection over the smaller area (0 for a zero-area box)."""
    out = np.zeros((len(boxes_a), len(boxes_b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(np.asarray(boxes_a, dtype=np.float64)):
        for j, (bx1, by1, bx2, by2) in enumerate(np.asarray(boxes_b, dtype=np.float64)):
            w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            h = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = w * h
            area_a, area_b = (ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1)
            union = min(area_a, area_b) if smaller else area_a + area_b - inter
            out[i, j] = min(1.0, inter / union) if union > 0 else 0.0
    return out


def box_ios(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    return box_iou(boxes_a, boxes_b, smaller=True)


def masks_to_boxes(masks: np.ndarray, fmt: str = "xyxy") -> np.ndarray:
    out = np.zeros((len(masks), 4))
    for k, m in enumerate(np.asarray(masks) != 0):
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        if fmt == "xyxy":
            out[k] = [x0, y0, x1 + 1, y1 + 1]
        elif fmt == "xywh":
            out[k] = [x0, y0, x1 + 1 - x0, y1 + 1 - y0]
        else:
            out[k] = [x0, y0, x1, y1]
    return out


def decay(ious_sorted: np.ndarray, kernel: str, sigma: float) -> list[float]:
    """Figure 1 with loops: ``ious_sorted[i][j]`` is the IoU of the i-th and j-th highest candidates."""
    n = len(ious_sorted)
    # upper triangle: i scored higher than j
    iou = [[ious_sorted[i][j] if i < j else 0.0 for j in range(n)] for i in range(n)]
    cmax = [max([iou[k][i] for k in range(n)], default=0.0) for i in range(n)]
    out = []
    for j in range(n):
        factor = 1.0
        for i in range(j):
            if kernel == "gaussian":
                term = math.exp(-(iou[i][j] ** 2 - cmax[i] ** 2) / sigma)
            else:
                if 1.0 - cmax[i] == 0.0:
                    continue  # i duplicates a higher candidate: it no longer suppresses
                term = (1.0 - iou[i][j]) / (1.0 - cmax[i])
            factor = min(factor, term)
        out.append(factor)
    return out


def matrix_nms(scores, masks=None, boxes=None, labels=None, kernel="gaussian", sigma=0.5,
               score_threshold=None, post_threshold=None, pre_top_k=None, post_top_k=None, mask_areas=None,
               metric="iou"):
    """Returns (keep, decayed) as Python lists, float64; ``metric="ios"`` reads intersection / smaller area."""
    scores = [float(s) for s in np.asarray(scores, dtype=np.float64)]
    n = len(scores)
    candidates = [i for i in range(n) if score_threshold is None or scores[i] >= score_threshold]
    candidates.sort(key=lambda i: (-scores[i], i))
    if pre_top_k is not None:
        candidates = candidates[:pre_top_k]
    if masks is not None:
        sel = np.asarray(masks)[candidates] if candidates else np.zeros((0, 1, 1), bool)
        ious = (mask_iou if metric == "iou" else mask_ios)(sel, sel)
        if mask_areas is not None:
            flat = sel.reshape(len(sel), int(np.prod(sel.shape[1:]))) != 0
            areas = [float(mask_areas[i]) for i in candidates]
            for a in range(len(sel)):
                for b in range(len(sel)):
                    inter = int(np.count_nonzero(flat[a] & flat[b]))
                    union = areas[a] + areas[b] - inter if metric == "iou" else min(areas[a], areas[b])
                    ious[a, b] = inter / union if union > 0 else 0.0
    else:
        sel = np.asarray(boxes, dtype=np.float64)[candidates] if candidates else np.zeros((0, 4))
        ious = (box_iou if metric == "iou" else box_ios)(sel, sel)
    if labels is not None:
        lab = [int(labels[i]) for i in candidates]
        for a in range(len(candidates)):
            for b in range(len(candidates)):
                if lab[a] != lab[b]:
                    ious[a, b] = 0.0
    factors = decay(ious, kernel, sigma)
    results = [(scores[i] * f, i) for i, f in zip(candidates, factors)]
    return _finish(results, post_threshold, post_top_k)


def _finish(results, post_threshold, post_top_k):
    """(keep, decayed) from (decayed, index) pairs: the post threshold, the ranking (ties: lower index), top-k."""
    if post_threshold is not None:
        results = [(d, i) for d, i in results if d >= post_threshold]
    results.sort(key=lambda r: (-r[0], r[1]))
    if post_top_k is not None:
        results = results[:post_top_k]
    return [i for _, i in results], [d for d, _ in results]


def matrix_nms_by_label(scores, masks=None, boxes=None, labels=None, kernel="gaussian", sigma=0.5,
                        score_threshold=None, post_threshold=None, pre_top_k=None, post_top_k=None):
    """``matrix_nms`` with ``labels``, computing the pairwise loops one label at a time.

    The same result as ``matrix_nms`` (IoU across labels is 0, and a term with IoU 0 never lowers the
    minimum), in time quadratic per label instead of over all candidates, so that a scene of hundreds of
    labelled masks (the README's) stays quick. Thresholds and top-k are applied over all labels, in the
    order of ``matrix_nms``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    candidates = [i for i in range(len(scores)) if score_threshold is None or scores[i] >= score_threshold]
    candidates.sort(key=lambda i: (-scores[i], i))
    if pre_top_k is not None:
        candidates = candidates[:pre_top_k]
    results = []
    for label in sorted({int(labels[i]) for i in candidates}):
        members = [i for i in candidates if int(labels[i]) == label]  # still by descending score
        items = {"masks": np.asarray(masks)[members]} if masks is not None else {
            "boxes": np.asarray(boxes)[members]}
        keep, decayed = matrix_nms(scores[members], kernel=kernel, sigma=sigma, **items)
        results += [(d, members[k]) for k, d in zip(keep, decayed)]
    return _finish(results, post_threshold, post_top_k)
