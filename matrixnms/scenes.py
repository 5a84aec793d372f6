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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
