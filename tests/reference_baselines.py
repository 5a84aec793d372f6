"""Plain-Python loop references for greedy NMS and Soft-NMS, written from their published definitions.

Shares no code with the library: IoU comes from the loop-by-loop float64 ``reference.box_iou`` / ``mask_iou``
(the same arithmetic as torchvision's ``box_iou``: ``inter / ((area_a + area_b) - inter)``, so decisions at an
IoU exactly equal to the threshold are reproducible), and both methods are written the obvious slow way.
"""

from __future__ import annotations

import math

import numpy as np

import reference


def pairwise_iou(masks=None, boxes=None, labels=None) -> list[list[float]]:
    """(N, N) IoU as nested lists; 0 between different labels (class-aware NMS)."""
    if masks is not None:
        ious = reference.mask_iou(masks, masks)
    else:
        ious = reference.box_iou(boxes, boxes)
    out = [[float(v) for v in row] for row in ious]
    if labels is not None:
        lab = [int(v) for v in labels]
        for i in range(len(out)):
            for j in range(len(out)):
                if lab[i] != lab[j]:
                    out[i][j] = 0.0
    return out


def greedy_nms(ious: list[list[float]], scores, iou_threshold: float) -> list[int]:
    """torchvision's definition: by descending score (ties: lower index), keep a candidate unless its IoU
    with an already kept one is strictly greater than the threshold."""
    scores = [float(s) for s in np.asarray(scores, dtype=np.float64)]
    keep: list[int] = []
    for j in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(ious[k][j] <= iou_threshold for k in keep):
            keep.append(j)
    return keep


def soft_nms(ious: list[list[float]], scores, kernel: str = "gaussian", sigma: float = 0.5,
             iou_threshold: float = 0.3, score_threshold: float | None = 0.001) -> tuple[list[int], list[float]]:
    """Bodla et al. (2017), Algorithm 1 with the paper's two penalty functions.

    Returns (keep, decayed): indices in selection order and their scores when selected (float64).
    """
    threshold = 0.0 if score_threshold is None else score_threshold
    current = {i: float(s) for i, s in enumerate(np.asarray(scores, dtype=np.float64)) if s >= threshold}
    keep: list[int] = []
    decayed: list[float] = []
    while current:
        best = min(current, key=lambda i: (-current[i], i))
        keep.append(best)
        decayed.append(current.pop(best))
        for j in sorted(current):
            iou = ious[best][j]
            if kernel == "gaussian":
                weight = math.exp(-(iou * iou) / sigma)
            else:
                weight = 1.0 - iou if iou > iou_threshold else 1.0
            current[j] = current[j] * weight
            if current[j] < threshold:
                del current[j]
    return keep, decayed
