"""Plain-loop reference of PaddlePaddle's ``matrix_nms`` (``paddle.vision.ops.matrix_nms``), as documented.

Shares no code with the library. Takes Paddle's own parameter names (``use_gaussian``, ``gaussian_sigma``),
loops over images, classes and pairs, and does every operation on scalars of ``dtype``: float64 by default
(Python floats), float32 (NumPy scalars) to follow the rounding of Paddle's float32 kernel. Rules beyond
Paddle's documentation are the ones ``matrixnms.multiclass`` fixes: equal scores rank by lower box index,
equal decayed scores by lower class and then by rank within the class, an inverted box (x2 < x1 or
y2 < y1) has IoU 0 with every box, and so has a pair whose union is 0.
"""

from __future__ import annotations

import math

import numpy as np


def box_area(box, normalized: bool, t) -> object:
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return t(0)
    if normalized:
        return (x2 - x1) * (y2 - y1)
    return (x2 - x1 + t(1)) * (y2 - y1 + t(1))


def iou(a, b, normalized: bool, t) -> object:
    """IoU of box ``a`` (the lower-ranked one) with box ``b``: Paddle's JaccardOverlap, 0 when undefined."""
    if a[2] < a[0] or a[3] < a[1] or b[2] < b[0] or b[3] < b[1]:
        return t(0)
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return t(0)
    extra = t(0) if normalized else t(1)
    inter_w = min(a[2], b[2]) - max(a[0], b[0]) + extra
    inter_h = min(a[3], b[3]) - max(a[1], b[1]) + extra
    inter = inter_w * inter_h
    if not inter > 0:
        return t(0)
    union = box_area(a, normalized, t) + box_area(b, normalized, t) - inter
    return min(inter / union, t(1))


def matrix_nms_one_class(boxes, scores, score_threshold, post_threshold, top_k, use_gaussian, gaussian_sigma,
                         normalized, t):
    """Kept ``(box index, decayed score)`` of one class of one image, in rank order."""
    candidates = [m for m in range(len(scores)) if scores[m] > score_threshold]
    candidates.sort(key=lambda m: (-scores[m], m))
    if top_k > -1:
        candidates = candidates[:top_k]
    n = len(candidates)
    ious = [[t(0)] * n for _ in range(n)]  # ious[i][j], i ranked above j
    max_iou = [t(0)] * n
    for j in range(n):
        for i in range(j):
            ious[i][j] = iou(boxes[candidates[j]], boxes[candidates[i]], normalized, t)
            max_iou[j] = max(max_iou[j], ious[i][j])
    kept = []
    for j in range(n):
        decay = t(1)
        for i in range(j):
            if use_gaussian:
                exponent = (max_iou[i] * max_iou[i] - ious[i][j] * ious[i][j]) * gaussian_sigma
                term = math.exp(exponent) if t is float else np.exp(exponent)
            else:
                if not t(1) - max_iou[i] > 0:
                    continue  # i duplicates a higher box: (1 - iou) / 0 is ignored, as in Paddle's min
                term = (t(1) - ious[i][j]) / (t(1) - max_iou[i])
            decay = min(decay, term)
        decayed = decay * scores[candidates[j]]
        if decayed > post_threshold:
            kept.append((candidates[j], decayed))
    return kept


def matrix_nms(bboxes, scores, score_threshold, post_threshold, nms_top_k, keep_top_k, use_gaussian=False,
               gaussian_sigma=2.0, background_label=0, normalized=True, dtype=np.float64):
    """Returns ``(out (R, 6), rois_num (B,), index (R, 1))`` as float64 / int64 NumPy arrays."""
    # Python floats are IEEE doubles (and much faster than NumPy scalars); float32 needs NumPy scalars
    t = float if np.dtype(dtype) == np.float64 else np.dtype(dtype).type
    bboxes = np.asarray(bboxes)
    scores = np.asarray(scores)
    n_img, n_cls, m = scores.shape
    score_threshold, post_threshold, gaussian_sigma = t(score_threshold), t(post_threshold), t(gaussian_sigma)
    rows, index, rois_num = [], [], []
    for b in range(n_img):
        boxes = [[t(v) for v in box] for box in bboxes[b]]
        detections = []  # (decayed, class, box index), in class order then rank order
        for c in range(n_cls):
            if c == background_label:
                continue
            class_scores = [t(v) for v in scores[b, c]]
            for box, decayed in matrix_nms_one_class(boxes, class_scores, score_threshold, post_threshold,
                                                     nms_top_k, use_gaussian, gaussian_sigma, normalized, t):
                detections.append((decayed, c, box))
        detections.sort(key=lambda d: -d[0])  # stable: ties stay in (class, rank) order
        if keep_top_k > -1:
            detections = detections[:keep_top_k]
        for decayed, c, box in detections:
            rows.append([float(c), float(decayed)] + [float(v) for v in bboxes[b, box]])
            index.append([b * m + box])
        rois_num.append(len(detections))
    out = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return out, np.array(rois_num, dtype=np.int64), np.array(index, dtype=np.int64).reshape(-1, 1)
