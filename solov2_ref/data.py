"""Synthetic instance-segmentation scenes, generated in code and deterministic by seed.

Each scene is a textured background with 1-6 shapes of five classes (``CLASSES``) painted back to front with
random colours and textures. Later shapes occlude earlier ones; the ground truth is the *visible* mask of
each shape, as in COCO. A placement is rejected when it would hide too much of a shape already there, so
every annotated instance stays recognisable.

Splits (``SPLITS``): ``"train"`` is an endless stream (three normal scenes in four, one crowded); ``"val"``
holds normal scenes; ``"crowded"`` holds 7-12 shapes clustered around one or two points, mostly of one
class, with heavy same-class overlap: the scenes where the choice of NMS matters. Scene ``i`` of a split is
a pure function of ``(split, seed, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

CLASSES = ("ellipse", "rectangle", "triangle", "star", "cross")
SPLITS = ("train", "val", "crowded")
IMAGE_SIZE = 128
# distinct streams of random numbers per split, so no val or crowded scene is ever trained on
_SPLIT_KEYS = {"train": 1013, "val": 2027, "crowded": 3041}
# every annotated instance keeps at least this many visible pixels: at the model's 1/4-scale mask features
# that is 12 pixels, above the smallest-level stride (8) that inference uses to drop tiny masks
MIN_VISIBLE_AREA = 192
# luminance ranges (0-255) of background and object colours
BACKGROUND_LUMINANCE = (15.0, 100.0)
OBJECT_LUMINANCE = (140.0, 235.0)


@dataclass(frozen=True)
class Scene:
    """One synthetic image and its instances.

    Attributes:
        image (ndarray[H, W, 3], uint8): RGB image.
        masks (ndarray[N, H, W], bool): visible mask of each instance.
        labels (ndarray[N], int64): class index of each instance, into ``CLASSES``.
    """

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class _Style:
    min_objects: int
    max_objects: int
    min_size: float  # sqrt of the shape's bounding-box area, pixels
    max_size: float
    min_visible: float  # fraction of a shape that must stay visible when later shapes cover it
    clustered: bool


_NORMAL = _Style(1, 6, 20.0, 76.0, 0.55, clustered=False)
_CROWDED = _Style(7, 12, 22.0, 44.0, 0.35, clustered=True)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    # pixel centres, so a shape's geometry does not depend on rounding conventions
    coords = np.arange(size, dtype=np.float32) + 0.5
    return coords[None, :].repeat(size, 0), coords[:, None].repeat(size, 1)


def _rotated(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    # Python floats keep float32 grids float32 (NumPy 2 promotes with float64 scalars)
    c, s = float(np.cos(angle)), float(np.sin(angle))
    dx, dy = x - float(cx), y - float(cy)
    return c * dx + s * dy, -s * dx + c * dy


def _convex_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Points (u, v) inside a convex polygon with counter-clockwise ``vertices`` (K, 2)."""
    inside = np.ones(u.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        inside &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0
    return inside


def _shape_mask(label: int, size: float, cx: float, cy: float, angle: float, rng: np.random.Generator,
                x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Binary mask of one shape whose bounding box measures about ``size`` (sqrt of its area)."""
    u, v = _rotated(x, y, cx, cy, angle)
    half = size / 2.0
    name = CLASSES[label]
    if name == "ellipse":
        aspect = rng.uniform(0.6, 1.0)
        a, b = half / np.sqrt(aspect), half * np.sqrt(aspect)
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if name == "rectangle":
        aspect = rng.uniform(0.45, 1.0)
        a, b = half / np.sqrt(aspect), half * np.sqrt(aspect)
        # a square's bounding box grows when rotated: shrink so the drawn size stays comparable
        return (np.abs(u) <= 0.85 * a) & (np.abs(v) <= 0.85 * b)
    if name == "triangle":
        phases = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, 3))
        radius = 1.15 * half
        vertices = np.stack([radius * np.cos(phases), -radius * np.sin(phases)], axis=1)[::-1]
        return _convex_polygon(u, v, vertices)
    if name == "star":
        radius, inner = 1.1 * half, rng.uniform(0.38, 0.5)
        r = np.hypot(u, v)
        phi = np.arctan2(v, u)
        # distance to the star's boundary along the ray at angle phi (5 spikes, straight edges)
        sector = np.mod(phi, 2 * np.pi / 5) / (2 * np.pi / 5)
        t = np.abs(sector - 0.5) * 2  # 1 at a spike tip, 0 at the notch between spikes
        p1 = np.array([radius, 0.0])
        p2 = radius * inner * np.array([np.cos(np.pi / 5), np.sin(np.pi / 5)])
        theta = (1 - t) * np.pi / 5  # angle from the tip direction
        d = np.stack([np.cos(theta), np.sin(theta)])
        edge = p2 - p1
        # ray-segment intersection: r_edge = cross(p1, edge) / cross(d, edge)
        r_edge = (p1[0] * edge[1] - p1[1] * edge[0]) / (d[0] * edge[1] - d[1] * edge[0])
        return r <= r_edge
    if name == "cross":
        arm = rng.uniform(0.32, 0.45)
        length = 0.95 * half
        return ((np.abs(u) <= length) & (np.abs(v) <= arm * length)) | (
            (np.abs(v) <= length) & (np.abs(u) <= arm * length))
    raise ValueError(f"label must index CLASSES, got {label}")


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Values in [0, 1] varying smoothly over ``cells`` x ``cells`` random control points."""
    control = rng.random((cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(int), cells - 1)
    f = pos - i0
    rows = control[i0] * (1 - f)[:, None] + control[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _texture(rng: np.random.Generator, size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A random texture in [0, 1]: smooth blotches, stripes or a checker pattern."""
    kind = rng.integers(3)
    if kind == 0:
        return _smooth_noise(rng, size, int(rng.integers(2, 9)))
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    u, v = _rotated(x, y, 0.0, 0.0, angle)
    if kind == 1:
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _colour(rng: np.random.Generator, luminance: tuple[float, float], avoid: list[np.ndarray] = (),
            min_distance: float = 0.0) -> np.ndarray:
    """A random-hue RGB colour with luminance in ``luminance`` (0-255), at least ``min_distance`` away from
    every colour in ``avoid`` (the most distant of 50 draws otherwise)."""
    best, best_distance = None, -1.0
    for _ in range(50):
        hue = rng.uniform(0.05, 1.0, 3).astype(np.float32)
        target = rng.uniform(*luminance)
        c = np.clip(hue * (target / float(hue @ _LUMA)), 0, 255).astype(np.float32)
        distance = min((float(np.linalg.norm(c - a)) for a in avoid), default=np.inf)
        if distance >= min_distance:
            return c
        if distance > best_distance:
            best, best_distance = c, distance
    return best


def make_scene(rng: np.random.Generator, crowded: bool = False, size: int = IMAGE_SIZE) -> Scene:
    """Draw one scene.

    Args:
        rng: the random generator; the scene is a pure function of its state.
        crowded: crowded style (7-12 clustered shapes, mostly one class) instead of the normal style.
        size: image side in pixels.

    Returns:
        Scene: the image and the visible masks and labels of its instances, back to front.
    """
    style = _CROWDED if crowded else _NORMAL
    x, y = _grid(size)
    # dark textured backgrounds, bright objects of any hue: a shape's outline always has the same contrast
    # polarity. With random polarity a small CNN trained from scratch learns where objects are but not
    # which shape they have (solov2_ref/README.md); pretrained backbones don't need this.
    background_colours = [_colour(rng, BACKGROUND_LUMINANCE) for _ in range(2)]
    pattern = _texture(rng, size, x, y)[..., None]
    image = (background_colours[0] * (1 - pattern) + background_colours[1] * pattern).astype(np.float32)

    count = int(rng.integers(style.min_objects, style.max_objects + 1))
    if style.clustered:
        dominant = int(rng.integers(len(CLASSES)))
        centres = rng.uniform(0.3 * size, 0.7 * size, (int(rng.integers(1, 3)), 2))
    full_masks: list[np.ndarray] = []  # each shape as drawn, before later shapes cover it
    visible: list[np.ndarray] = []
    labels: list[int] = []
    colours: list[np.ndarray] = []
    scale = size / IMAGE_SIZE
    for _ in range(count):
        for _attempt in range(30):
            if style.clustered:
                label = dominant if rng.random() < 0.75 else int(rng.integers(len(CLASSES)))
                centre = centres[rng.integers(len(centres))] + rng.normal(0, 0.12 * size, 2)
            else:
                label = int(rng.integers(len(CLASSES)))
                centre = rng.uniform(0.1 * size, 0.9 * size, 2)
            side = scale * np.exp(rng.uniform(np.log(style.min_size), np.log(style.max_size)))
            # draw inside a window that holds every shape class of this size
            reach = 0.75 * side + 1
            window = (slice(max(0, int(centre[1] - reach)), max(0, int(centre[1] + reach) + 1)),
                      slice(max(0, int(centre[0] - reach)), max(0, int(centre[0] + reach) + 1)))
            mask = np.zeros((size, size), dtype=bool)
            mask[window] = _shape_mask(label, side, centre[0], centre[1], rng.uniform(0, 2 * np.pi), rng,
                                       x[window], y[window])
            area = int(mask.sum())
            if area < MIN_VISIBLE_AREA:
                continue
            # the new shape hides part of every earlier one: keep enough of each visible
            if all((v & ~mask).sum() >= max(style.min_visible * f.sum(), MIN_VISIBLE_AREA)
                   for v, f in zip(visible, full_masks)):
                break
        else:
            continue
        visible = [v & ~mask for v in visible]
        overlapped = [c for c, f in zip(colours, full_masks) if (f & mask).any()]
        colour = _colour(rng, OBJECT_LUMINANCE, overlapped, 70.0)
        shade = 1.0 + 0.12 * (_texture(rng, size, x, y)[mask] - 0.5) * rng.uniform(0.3, 1.0)
        image[mask] = np.clip(colour * shade[:, None], 0, 255)
        full_masks.append(mask)
        visible.append(mask.copy())
        labels.append(label)
        colours.append(colour)

    image += rng.uniform(2, 10) * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    masks = np.stack(visible) if visible else np.zeros((0, size, size), dtype=bool)
    return Scene(image, masks, np.asarray(labels, dtype=np.int64))


class SyntheticScenes:
    """A fixed, indexable split of synthetic scenes.

    Args:
        split: ``"train"``, ``"val"`` or ``"crowded"``.
        length: number of scenes.
        seed: dataset seed; scene ``i`` is a pure function of ``(split, seed, i)``.
        size: image side in pixels.
    """

    def __init__(self, split: str, length: int, seed: int = 0, size: int = IMAGE_SIZE) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.split, self.length, self.seed, self.size = split, int(length), int(seed), int(size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        rng = np.random.default_rng([_SPLIT_KEYS[self.split], self.seed, index])
        crowded = self.split == "crowded" or (self.split == "train" and rng.random() < 0.25)
        return make_scene(rng, crowded=crowded, size=self.size)

    def __iter__(self) -> Iterator[Scene]:
        return (self[i] for i in range(self.length))
