"""Seeded synthetic detector outputs shaped like SOLOv2's, shared by the benchmarks, the CLI and the tests.

A SOLO head predicts every instance from several grid cells, so each object arrives as a handful of
near-identical masks (the duplicates Matrix NMS must decay), next to stray low-scored false positives. The
generator draws:

* objects with COCO-like sizes (about 41 % small, 34 % medium, 25 % large: sides below 32, 32-96 and above 96
  pixels of an 800x1344 input, i.e. below 8, 8-24 and above 24 pixels at the 1/4 scale SOLOv2 runs at),
  elongated and rotated ellipses whose centres lie in the image;
* for each object, several predictions (more for larger objects, as they cover more grid cells) jittered in
  position, size and angle; their scores share the object's confidence;
* 25 % stray predictions anywhere, with low scores;
* optionally labels from a skewed (COCO-like) class distribution; 10 % of the duplicates carry another
  class, as a head that hesitates between categories does.

The predictions are shuffled, so scores arrive unsorted as they do from a detector. The same arguments always
give the same arrays (NumPy ``PCG64`` seeded by ``seed``).

:func:`multiclass_scene` is the batched input of a multi-class box detector (PaddlePaddle's ``matrix_nms``):
per image, jittered box predictions of a few objects plus stray false positives, and one score per class for
every box, "dense" (every class above a 0.01 threshold) or "sparse" (each box scores its object's class and a
few confusions).

:func:`highres_scene` is the same kind of scene at photo resolution (a 3000x4000 frame, 300 masks of 0.1-15 %
of the frame) in the sparse forms a segmenter hands over: compressed COCO RLEs and
:class:`~matrixnms.CroppedMasks`. Each mask is a blob (an ellipse with a wavy rim) rasterised inside its box
only, and the RLEs are built from those crops, so no full frame is ever allocated: 300 frames of 12 MP would
be 3.6 GB of bool. Objects are predicted several times with jitter, some predictions are exact copies of
another (a head that fires twice on one grid cell) and 20 % are strays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .cropped import CroppedMasks

# Mask resolution of the benchmark cases: 1/4 of an 800x1344 input, as SOLOv2 runs post-processing.
MASK_HEIGHT, MASK_WIDTH = 200, 336
BOX_HEIGHT, BOX_WIDTH = 800, 1344

STRAY_FRACTION = 0.25
MEAN_DUPLICATES = 6.0
RELABEL_FRACTION = 0.10
# COCO size classes at 1/4 scale, as (probability, smallest side, largest side) in pixels of a 200-row image
_SIZE_CLASSES = ((0.41, 2.0, 8.0), (0.34, 8.0, 24.0), (0.25, 24.0, 160.0))


@dataclass(frozen=True)
class MaskScene:
    """One image's candidate masks before NMS.

    Attributes:
        masks (ndarray[N, H, W], bool): binary masks, C-contiguous; none is empty.
        scores (ndarray[N], float32): scores in (0, 1), unsorted.
        labels (ndarray[N], int64 or None): class labels, None for a class-agnostic scene.
        objects (ndarray[N], int64): the object each prediction duplicates, -1 for a stray one.
    """

    masks: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    objects: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class BoxScene:
    """One image's candidate boxes before NMS.

    Attributes:
        boxes (ndarray[N, 4], float32): ``x1, y1, x2, y2`` in pixels, clipped to the image; every side is at
            least 0.75 pixel, since each centre lies inside the image.
        scores (ndarray[N], float32): scores in (0, 1), unsorted.
        labels (ndarray[N], int64 or None): class labels, None for a class-agnostic scene.
        objects (ndarray[N], int64): the object each prediction duplicates, -1 for a stray one.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    objects: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class MulticlassScene:
    """A batch of images' candidate boxes with a score per class, before multi-class NMS.

    Attributes:
        boxes (ndarray[B, M, 4], float32): ``x1, y1, x2, y2`` in pixels (not clipped to the image).
        scores (ndarray[B, C, M], float32): the score of every box for every class, in [0, 1).
    """

    boxes: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class _Predictions:
    cx: np.ndarray
    cy: np.ndarray
    rx: np.ndarray  # semi-axes in pixels
    ry: np.ndarray
    angle: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    objects: np.ndarray


def _check_size(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _sides(rng: np.random.Generator, count: int, scale: float, limit: float) -> np.ndarray:
    """Object sides (sqrt of the area) in pixels, drawn from the COCO size classes, log-uniform within each."""
    probs = np.array([c[0] for c in _SIZE_CLASSES])
    which = rng.choice(len(_SIZE_CLASSES), size=count, p=probs / probs.sum())
    low = np.array([c[1] for c in _SIZE_CLASSES])[which] * scale
    high = np.minimum(np.array([c[2] for c in _SIZE_CLASSES])[which] * scale, limit)
    high = np.maximum(high, low * 1.01)
    return np.exp(rng.uniform(np.log(low), np.log(high)))


def _class_probabilities(num_classes: int) -> np.ndarray:
    # a long tail like COCO's (one class, "person", is about a quarter of the instances)
    weights = 1.0 / (np.arange(num_classes) + 1.0) ** 1.1
    return weights / weights.sum()


def _predictions(n: int, height: int, width: int, num_classes: int | None, seed: int) -> _Predictions:
    """Ellipse parameters, scores and labels of ``n`` predictions in a ``height`` x ``width`` image."""
    rng = np.random.default_rng(seed)
    scale = height / MASK_HEIGHT
    limit = 0.8 * min(height, width)
    n_stray = int(round(STRAY_FRACTION * n)) if n > 1 else 0
    n_dup = n - n_stray
    n_obj = max(1, int(round(n_dup / MEAN_DUPLICATES))) if n_dup else 0

    # objects
    side = _sides(rng, n_obj, scale, limit)
    aspect = np.exp(rng.normal(0.0, 0.35, n_obj))
    obj_rx = np.maximum(side * np.sqrt(aspect) / 2, 0.75)
    obj_ry = np.maximum(side / np.sqrt(aspect) / 2, 0.75)
    obj_cx = rng.uniform(0, width, n_obj)
    obj_cy = rng.uniform(0, height, n_obj)
    obj_angle = rng.uniform(0, np.pi, n_obj)
    obj_conf = rng.uniform(0.35, 0.95, n_obj)
    probs = _class_probabilities(num_classes) if num_classes else None
    obj_label = rng.choice(num_classes, size=n_obj, p=probs) if num_classes else None

    # duplicates: larger objects cover more grid cells, so they are predicted more often
    if n_dup:
        weight = np.sqrt(side)
        owner = rng.choice(n_obj, size=n_dup, p=weight / weight.sum())
        owner[:n_obj] = np.arange(n_obj)[: min(n_obj, n_dup)]  # every object is predicted at least once
    else:
        owner = np.zeros(0, dtype=np.int64)
    r = np.maximum(obj_rx[owner], obj_ry[owner])
    dup_cx = obj_cx[owner] + rng.normal(0, 0.08, n_dup) * r
    dup_cy = obj_cy[owner] + rng.normal(0, 0.08, n_dup) * r
    dup_rx = obj_rx[owner] * np.exp(rng.normal(0, 0.1, n_dup))
    dup_ry = obj_ry[owner] * np.exp(rng.normal(0, 0.1, n_dup))
    dup_angle = obj_angle[owner] + rng.normal(0, 0.1, n_dup)
    dup_score = obj_conf[owner] * rng.uniform(0.45, 1.0, n_dup)
    if num_classes:
        dup_label = obj_label[owner].copy()
        hesitant = rng.random(n_dup) < RELABEL_FRACTION
        dup_label[hesitant] = rng.choice(num_classes, size=int(hesitant.sum()), p=probs)
        dup_score[hesitant] *= 0.6

    # strays: anywhere, mostly small, low scores
    s_side = _sides(rng, n_stray, scale, limit) * 0.7
    s_aspect = np.exp(rng.normal(0.0, 0.5, n_stray))
    stray_rx = np.maximum(s_side * np.sqrt(s_aspect) / 2, 0.75)
    stray_ry = np.maximum(s_side / np.sqrt(s_aspect) / 2, 0.75)
    stray_cx = rng.uniform(0, width, n_stray)
    stray_cy = rng.uniform(0, height, n_stray)
    stray_angle = rng.uniform(0, np.pi, n_stray)
    stray_score = rng.uniform(0.05, 0.35, n_stray)
    stray_label = rng.choice(num_classes, size=n_stray, p=probs) if num_classes else None

    shuffle = rng.permutation(n)

    def cat(a: np.ndarray, b: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        return np.concatenate([a, b]).astype(dtype)[shuffle]

    # a centre stays inside the image so that every mask keeps at least its centre pixel
    cx = np.clip(cat(dup_cx, stray_cx), 0, np.nextafter(width, 0))
    cy = np.clip(cat(dup_cy, stray_cy), 0, np.nextafter(height, 0))
    return _Predictions(
        cx=cx, cy=cy, rx=cat(dup_rx, stray_rx), ry=cat(dup_ry, stray_ry),
        angle=cat(dup_angle, stray_angle),
        scores=np.clip(cat(dup_score, stray_score, np.float32), np.float32(0.01), np.float32(0.999)),
        labels=cat(dup_label, stray_label, np.int64) if num_classes else None,
        objects=cat(owner, np.full(n_stray, -1), np.int64),
    )


def _extent(rx: np.ndarray, ry: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half width and half height of the axis-aligned box around rotated ellipses."""
    c, s = np.cos(angle), np.sin(angle)
    return np.hypot(rx * c, ry * s), np.hypot(rx * s, ry * c)


def mask_scene(
    n: int, *, height: int = MASK_HEIGHT, width: int = MASK_WIDTH, num_classes: int | None = None,
    seed: int = 0,
) -> MaskScene:
    """A SOLO-like set of ``n`` candidate masks (see the module docstring for what is drawn).

    Args:
        n: number of predictions (>= 0).
        height, width: mask size in pixels; 200x336 is SOLOv2's 1/4 scale of an 800x1344 input. Object sizes
            scale with ``height``.
        num_classes: draw labels in ``[0, num_classes)``; None for a class-agnostic scene.
        seed: the random seed; equal arguments give equal arrays.

    Returns:
        MaskScene: ``masks`` (N, H, W) bool, ``scores`` (N,) float32, ``labels`` (N,) int64 or None.
    """
    n = _check_size("n", n, 0)
    height = _check_size("height", height, 1)
    width = _check_size("width", width, 1)
    if num_classes is not None:
        _check_size("num_classes", num_classes, 1)
    p = _predictions(n, height, width, num_classes, seed)
    masks = np.zeros((n, height, width), dtype=bool)
    half_w, half_h = _extent(p.rx, p.ry, p.angle)
    for k in range(n):
        # rasterise only inside the ellipse's box: O(area) per mask, so N = 10,000 stays quick
        x0 = max(0, int(np.floor(p.cx[k] - half_w[k])))
        x1 = min(width, int(np.ceil(p.cx[k] + half_w[k])) + 1)
        y0 = max(0, int(np.floor(p.cy[k] - half_h[k])))
        y1 = min(height, int(np.ceil(p.cy[k] + half_h[k])) + 1)
        ys = np.arange(y0, y1)[:, None] + 0.5 - p.cy[k]
        xs = np.arange(x0, x1)[None, :] + 0.5 - p.cx[k]
        c, s = np.cos(p.angle[k]), np.sin(p.angle[k])
        u = (xs * c + ys * s) / p.rx[k]
        v = (-xs * s + ys * c) / p.ry[k]
        inside = u * u + v * v <= 1.0
        inside[int(p.cy[k]) - y0, int(p.cx[k]) - x0] = True  # the centre pixel: no mask is empty
        masks[k, y0:y1, x0:x1] = inside
    return MaskScene(masks=masks, scores=p.scores, labels=p.labels, objects=p.objects)


# --- high resolution, sparse forms --------------------------------------------------------------------------

HIGHRES_HEIGHT, HIGHRES_WIDTH = 3000, 4000
HIGHRES_AREAS = (0.001, 0.15)  # mask areas as fractions of the frame
COPY_FRACTION = 0.05
HIGHRES_STRAY_FRACTION = 0.20


@dataclass(frozen=True)
class HighresScene:
    """One high-resolution image's candidate masks before NMS, as COCO RLE and as crops (never as frames).

    Attributes:
        rles (list of N dicts): compressed COCO RLEs ``{"size": [H, W], "counts": bytes}``, as pycocotools'
            ``encode`` writes them.
        crops (CroppedMasks): the same masks, each a crop inside its box (boxes clipped to the frame).
        scores (ndarray[N], float32): scores in (0, 1), unsorted.
        labels (ndarray[N], int64 or None): class labels, None for a class-agnostic scene.
        objects (ndarray[N], int64): the object each prediction duplicates, -1 for a stray one.
        copies (ndarray[N], int64): the prediction a mask is an exact copy of, -1 for none.
        size ((H, W)): the frame.
    """

    rles: list[dict]
    crops: CroppedMasks
    scores: np.ndarray
    labels: np.ndarray | None
    objects: np.ndarray
    copies: np.ndarray
    size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _blob(cx: float, cy: float, rx: float, ry: float, angle: float, wave: np.ndarray, height: int,
          width: int) -> tuple[np.ndarray, np.ndarray]:
    """(xyxy int64 box, bool crop) of a rotated ellipse with wavy sides, rasterised row by row at pixel centres.

    Each row of the ellipse is one interval (the quadratic's roots); its half width is scaled by ``1 + wave[0]
    cos(3 pi t + wave[1])`` and its middle shifted by ``wave[2] cos(2 pi t + wave[3])`` half widths, with t in
    [-1, 1] from top to bottom: a blob that is still one interval per row, so a crop costs two comparisons per
    pixel. The box is clipped to the frame; the centre pixel is always set (no mask is empty).
    """
    c, s = np.cos(angle), np.sin(angle)
    a = c * c / (rx * rx) + s * s / (ry * ry)
    b = 2 * c * s * (1 / (rx * rx) - 1 / (ry * ry))
    q = s * s / (rx * rx) + c * c / (ry * ry)
    half_h = np.sqrt(4 * a / (4 * a * q - b * b))
    half_w = np.sqrt(4 * q / (4 * a * q - b * b))
    y0, y1 = max(0, int(np.floor(cy - half_h))), min(height, int(np.ceil(cy + half_h)) + 1)
    y = np.arange(y0, y1) + 0.5 - cy
    t = np.clip(y / half_h, -1, 1)
    root = np.sqrt(np.maximum(b * b * y * y - 4 * a * (q * y * y - 1), 0)) / (2 * a)
    middle = -b * y / (2 * a) + wave[2] * half_w * np.cos(2 * np.pi * t + wave[3])
    root = root * (1 + wave[0] * np.cos(3 * np.pi * t + wave[1]))
    # columns whose centre x + 0.5 lies in [cx + middle - root, cx + middle + root]
    lo = np.ceil(cx + middle - root - 0.5).astype(np.int64)
    hi = np.floor(cx + middle + root - 0.5).astype(np.int64)
    centre_row, centre_col = int(cy) - y0, int(cx)
    lo[centre_row], hi[centre_row] = min(lo[centre_row], centre_col), max(hi[centre_row], centre_col)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, width - 1)
    rows = np.flatnonzero(hi >= lo)
    r0, r1 = rows[0], rows[-1] + 1
    lo, hi = lo[r0:r1], hi[r0:r1]
    x0, x1 = int(lo[hi >= lo].min()), int(hi[hi >= lo].max()) + 1
    xs = np.arange(x0, x1)[None, :]
    crop = (xs >= lo[:, None]) & (xs <= hi[:, None])
    return np.array([x0, y0 + r0, x1, y0 + r1], np.int64), crop


def highres_scene(
    n: int = 300, *, height: int = HIGHRES_HEIGHT, width: int = HIGHRES_WIDTH, num_classes: int | None = None,
    seed: int = 0,
) -> HighresScene:
    """``n`` candidate masks of a high-resolution frame as COCO RLE and :class:`~matrixnms.CroppedMasks`.

    Objects have areas log-uniform in 0.1-15 % of the frame (before the rim's wave and the duplicates'
    jitter, which change an area by a few per cent) and lie inside the frame; each is predicted several
    times (larger objects more often) with jitter in position, size, angle and rim. 5 % of the predictions
    are exact copies of another prediction (another score, same mask) and 20 % are strays of 0.1-1 % of the
    frame anywhere in it, with low scores. Predictions are shuffled. Built crop by crop: memory is about the
    crops' bytes (roughly 1.5x the masks' area in bool) plus the RLEs, never ``n`` frames.

    Args:
        n: number of predictions (>= 0); the benchmark case is 300.
        height, width: the frame (3000x4000, 12 MP, by default).
        num_classes: draw labels in ``[0, num_classes)`` (duplicates and copies keep their object's); None
            for a class-agnostic scene.
        seed: the random seed; equal arguments give equal masks.

    Returns:
        HighresScene: ``rles``, ``crops``, ``scores`` (N,) float32, ``labels``, ``objects``, ``copies``.
    """
    from .cropped import CroppedMasks

    n = _check_size("n", n, 0)
    height = _check_size("height", height, 1)
    width = _check_size("width", width, 1)
    if num_classes is not None:
        _check_size("num_classes", num_classes, 1)
    rng = np.random.default_rng(seed)
    frame = float(height) * width
    n_stray = int(round(HIGHRES_STRAY_FRACTION * n)) if n > 1 else 0
    n_copy = min(int(round(COPY_FRACTION * n)), max(0, n - n_stray - 1))
    n_dup = n - n_stray - n_copy
    n_obj = max(1, int(round(n_dup / MEAN_DUPLICATES))) if n_dup else 0

    low, high = np.log(HIGHRES_AREAS[0] * frame), np.log(HIGHRES_AREAS[1] * frame)
    obj_area = np.exp(rng.uniform(low, high, n_obj))
    obj_aspect = np.exp(rng.normal(0.0, 0.3, n_obj))
    obj_rx = np.sqrt(obj_area * obj_aspect / np.pi)
    obj_ry = np.sqrt(obj_area / obj_aspect / np.pi)
    obj_angle = rng.uniform(0, np.pi, n_obj)
    obj_wave = np.stack([rng.uniform(0, 0.15, n_obj), rng.uniform(0, 2 * np.pi, n_obj),
                         rng.uniform(0, 0.15, n_obj), rng.uniform(0, 2 * np.pi, n_obj)], axis=1)
    # the object's box lies in the frame (where it fits): its area is what was drawn
    half_w, half_h = _extent(obj_rx, obj_ry, obj_angle)
    half_w, half_h = np.minimum(half_w, width / 2), np.minimum(half_h, height / 2)
    obj_cx = rng.uniform(half_w, width - half_w)
    obj_cy = rng.uniform(half_h, height - half_h)
    obj_conf = rng.uniform(0.35, 0.95, n_obj)
    probs = _class_probabilities(num_classes) if num_classes else None
    obj_label = rng.choice(num_classes, size=n_obj, p=probs) if num_classes else np.zeros(n_obj, np.int64)

    if n_dup:
        weight = obj_area ** 0.25
        owner = rng.choice(n_obj, size=n_dup, p=weight / weight.sum())
        owner[:n_obj] = np.arange(n_obj)[: min(n_obj, n_dup)]  # every object is predicted at least once
    else:
        owner = np.zeros(0, np.int64)
    r = np.maximum(obj_rx[owner], obj_ry[owner])
    jitter = np.exp(rng.normal(0, 0.06, (2, n_dup)))
    dup = {
        "cx": obj_cx[owner] + rng.normal(0, 0.04, n_dup) * r, "cy": obj_cy[owner] + rng.normal(0, 0.04, n_dup) * r,
        "rx": obj_rx[owner] * jitter[0], "ry": obj_ry[owner] * jitter[1],
        "angle": obj_angle[owner] + rng.normal(0, 0.06, n_dup),
        "wave": obj_wave[owner] + rng.normal(0, [0.02, 0.3, 0.02, 0.3], (n_dup, 4)),
        "score": obj_conf[owner] * rng.uniform(0.45, 1.0, n_dup), "label": obj_label[owner], "object": owner,
    }
    # exact copies of duplicates: the same mask, another score
    source = rng.choice(n_dup, size=n_copy) if n_dup else np.zeros(0, np.int64)
    copy = {key: value[source] for key, value in dup.items()}
    copy["score"] = copy["score"] * rng.uniform(0.7, 1.0, n_copy)
    # strays: 0.1-1 % of the frame, anywhere in it, low scores
    s_area = np.exp(rng.uniform(low, np.log(10 * HIGHRES_AREAS[0] * frame), n_stray))
    s_aspect = np.exp(rng.normal(0.0, 0.5, n_stray))
    s_rx, s_ry = np.sqrt(s_area * s_aspect / np.pi), np.sqrt(s_area / s_aspect / np.pi)
    s_angle = rng.uniform(0, np.pi, n_stray)
    s_half_w, s_half_h = _extent(s_rx, s_ry, s_angle)
    s_half_w, s_half_h = np.minimum(s_half_w, width / 2), np.minimum(s_half_h, height / 2)
    stray = {
        "cx": rng.uniform(s_half_w, width - s_half_w), "cy": rng.uniform(s_half_h, height - s_half_h),
        "rx": s_rx, "ry": s_ry, "angle": s_angle,
        "wave": np.stack([rng.uniform(0, 0.15, n_stray), rng.uniform(0, 2 * np.pi, n_stray),
                          rng.uniform(0, 0.15, n_stray), rng.uniform(0, 2 * np.pi, n_stray)], axis=1),
        "score": rng.uniform(0.05, 0.35, n_stray),
        "label": rng.choice(num_classes, size=n_stray, p=probs) if num_classes else np.zeros(n_stray, np.int64),
        "object": np.full(n_stray, -1),
    }
    p = {key: np.concatenate([dup[key], copy[key], stray[key]]) for key in dup}
    copies = np.concatenate([np.full(n_dup, -1), source, np.full(n_stray, -1)]).astype(np.int64)
    shuffle = rng.permutation(n)
    p = {key: value[shuffle] for key, value in p.items()}
    where = np.empty(n, np.int64)
    where[shuffle] = np.arange(n)  # the new index of each prediction
    copies = copies[shuffle]
    copies[copies >= 0] = where[copies[copies >= 0]]
    cx = np.clip(p["cx"], 0, np.nextafter(width, 0))
    cy = np.clip(p["cy"], 0, np.nextafter(height, 0))

    boxes, crops = np.zeros((n, 4), np.int64), []
    for k in range(n):
        boxes[k], crop = _blob(cx[k], cy[k], p["rx"][k], p["ry"][k], p["angle"][k], p["wave"][k], height, width)
        crops.append(crop)
    cropped = CroppedMasks(crops, boxes, (height, width))
    return HighresScene(
        rles=cropped.to_rle(), crops=cropped,
        scores=np.clip(p["score"], 0.01, 0.999).astype(np.float32),
        labels=p["label"].astype(np.int64) if num_classes else None,
        objects=p["object"].astype(np.int64), copies=copies, size=(height, width))


def box_scene(
    n: int = 1000, *, num_classes: int | None = 80, height: int = BOX_HEIGHT, width: int = BOX_WIDTH,
    seed: int = 0,
) -> BoxScene:
    """A detector-like set of ``n`` candidate boxes: the boxes around the objects of :func:`mask_scene`.

    Args:
        n: number of predictions (>= 0); the benchmark case is 1000 boxes of 80 classes.
        num_classes: draw labels in ``[0, num_classes)``; None for a class-agnostic scene.
        height, width: image size in pixels (800x1344, the input SOLOv2 and PP-YOLO benchmarks use).
        seed: the random seed; equal arguments give equal arrays.

    Returns:
        BoxScene: ``boxes`` (N, 4) float32 xyxy, ``scores`` (N,) float32, ``labels`` (N,) int64 or None.
    """
    n = _check_size("n", n, 0)
    height = _check_size("height", height, 1)
    width = _check_size("width", width, 1)
    if num_classes is not None:
        _check_size("num_classes", num_classes, 1)
    p = _predictions(n, height, width, num_classes, seed)
    half_w, half_h = _extent(p.rx, p.ry, p.angle)
    boxes = np.stack([
        np.clip(p.cx - half_w, 0, width), np.clip(p.cy - half_h, 0, height),
        np.clip(p.cx + half_w, 0, width), np.clip(p.cy + half_h, 0, height),
    ], axis=1).astype(np.float32)
    return BoxScene(boxes=boxes, scores=p.scores, labels=p.labels, objects=p.objects)


def multiclass_scene(
    batch: int = 1, *, dense: bool = True, num_boxes: int = 1000, num_classes: int = 80, objects: int = 15,
    side: float = 640.0, seed: int = 0,
) -> MulticlassScene:
    """A batch of multi-class detector outputs: jittered predictions of ``objects`` objects plus strays.

    Each of the ``num_boxes`` boxes of an image belongs to one of the objects (its box jittered by 10 % of the
    object's size) or is a stray false positive anywhere in the ``side`` x ``side`` image. A box's object
    class scores 0.3-0.95; strays score no class that high. ``dense`` scores put every other class in
    0.02-0.3 (every class passes a 0.01 threshold for every box); sparse ones below 0.01 except 2 % of
    confusions in 0.01-0.2 (about 30 candidates per class).

    Args:
        batch: number of images B (>= 0).
        dense: dense or sparse class scores (see above).
        num_boxes: boxes per image M (>= 0); PP-YOLO's benchmark case is 1000.
        num_classes: classes C (>= 1); 80 as COCO.
        objects: objects per image (>= 1).
        side: image side in pixels.
        seed: the random seed; equal arguments give equal arrays.

    Returns:
        MulticlassScene: ``boxes`` (B, M, 4) float32 xyxy, ``scores`` (B, C, M) float32.
    """
    batch = _check_size("batch", batch, 0)
    num_boxes = _check_size("num_boxes", num_boxes, 0)
    num_classes = _check_size("num_classes", num_classes, 1)
    objects = _check_size("objects", objects, 1)
    rng = np.random.default_rng(seed)
    boxes = np.empty((batch, num_boxes, 4), np.float32)
    scores = np.empty((batch, num_classes, num_boxes), np.float32)
    for b in range(batch):
        cx, cy = rng.uniform(0, side, (2, objects))
        w, h = rng.uniform(20, 200, (2, objects))
        label = rng.integers(0, num_classes, objects)
        owner = rng.integers(-1, objects, num_boxes)  # -1: a stray false positive
        jitter = rng.normal(0, 0.1, (4, num_boxes))
        o = np.maximum(owner, 0)
        bw, bh = w[o] * np.exp(jitter[2]), h[o] * np.exp(jitter[3])
        bx, by = cx[o] + jitter[0] * w[o], cy[o] + jitter[1] * h[o]
        stray = owner < 0
        bx[stray], by[stray] = rng.uniform(0, side, (2, stray.sum()))
        bw[stray], bh[stray] = rng.uniform(10, 150, (2, stray.sum()))
        boxes[b] = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=1)
        if dense:
            s = rng.uniform(0.02, 0.3, (num_classes, num_boxes))
        else:
            s = rng.uniform(0.0, 0.01, (num_classes, num_boxes))
            confused = rng.random((num_classes, num_boxes)) < 0.02
            s[confused] = rng.uniform(0.01, 0.2, confused.sum())
        hit = ~stray
        s[label[o[hit]], np.nonzero(hit)[0]] = rng.uniform(0.3, 0.95, hit.sum())
        scores[b] = s
    return MulticlassScene(boxes=boxes, scores=scores)
