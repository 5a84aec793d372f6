"""NMS variants (one method and its options) and their application to one image's candidates.

A variant is a frozen, picklable ``Variant``; ``grid`` expands per-method lists of options into every
combination. ``apply`` runs a variant on one image exactly as ``solov2_ref.postprocess.suppress`` does, so
the same candidates give the same detections:

- ``matrix``: ``matrix_nms(..., kernel, sigma, pre_top_k, post_threshold, post_top_k)`` (class-aware);
- ``greedy``: the ``pre_top_k`` best (stable sort), ``mask_nms`` at ``iou`` (suppress when IoU > iou);
- ``soft``: the ``pre_top_k`` best, gaussian ``soft_nms`` at ``sigma`` with ``score_threshold=post_threshold``;
- ``none``: the ``pre_top_k`` best, no suppression;

then, for the last three, ``score >= post_threshold`` and the ``post_top_k`` best, as Matrix NMS does inside
its call. The kernel libraries run on NumPy arrays (Numba where installed).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .candidates import ImageCandidates

METHODS = ("matrix", "greedy", "soft", "none")
# the options each method varies over, with SOLOv2's defaults (solov2_ref.postprocess.PostprocessConfig)
METHOD_OPTIONS = {
    "matrix": {"kernel": ("gaussian",), "sigma": (0.5,), "post_threshold": (0.05,)},
    "greedy": {"iou": (0.5,), "post_threshold": (0.05,)},
    "soft": {"sigma": (0.5,), "post_threshold": (0.05,)},
    "none": {"post_threshold": (0.05,)},
}
PRE_TOP_K, POST_TOP_K = 500, 100


@dataclass(frozen=True)
class Variant:
    """One NMS method with its options (None: the option does not apply to the method)."""

    method: str = "matrix"
    kernel: str | None = "gaussian"
    sigma: float | None = 0.5
    iou: float | None = None
    post_threshold: float = 0.05
    pre_top_k: int | None = PRE_TOP_K
    post_top_k: int | None = POST_TOP_K

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.kernel not in (None, "gaussian", "linear"):
            raise ValueError(f"kernel must be 'gaussian' or 'linear', got {self.kernel!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if self.iou is not None and not 0 <= self.iou <= 1:
            raise ValueError(f"iou must be in [0, 1], got {self.iou}")
        if not self.post_threshold >= 0:
            raise ValueError(f"post_threshold must be >= 0, got {self.post_threshold}")
        for name in ("pre_top_k", "post_top_k"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")

    @property
    def name(self) -> str:
        """A short label such as ``matrix gaussian sigma=0.5 thr=0.05``."""
        parts = [self.method]
        if self.kernel is not None:
            parts.append(self.kernel)
        if self.sigma is not None:
            parts.append(f"sigma={self.sigma:g}")
        if self.iou is not None:
            parts.append(f"iou={self.iou:g}")
        parts.append(f"thr={self.post_threshold:g}")
        return " ".join(parts)

    def options(self) -> dict[str, Any]:
        return asdict(self)


def make_variant(method: str, **options: Any) -> Variant:
    """A Variant of ``method`` where only that method's options are set (the others None)."""
    base = {"kernel": None, "sigma": None, "iou": None}
    if method == "matrix":
        base.update(kernel="gaussian", sigma=0.5)
        if options.get("kernel") == "linear":  # sigma means nothing to the linear kernel
            options = {**options, "sigma": None}
    elif method == "greedy":
        base.update(iou=0.5)
    elif method == "soft":
        base.update(sigma=0.5)
    return Variant(method=method, **{**base, **options})


def grid(methods: Iterable[tuple[str, dict[str, Sequence[Any]]]], *, pre_top_k: int | None = PRE_TOP_K,
         post_top_k: int | None = POST_TOP_K) -> list[Variant]:
    """Every combination of each method's option lists (defaults for those not given), duplicates dropped.

    Args:
        methods: (method, {option: values}) pairs, e.g. ``("matrix", {"sigma": [0.25, 0.5]})``.
    """
    variants: list[Variant] = []
    for method, options in methods:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        unknown = set(options) - set(METHOD_OPTIONS[method])
        if unknown:
            raise ValueError(f"method {method!r} has no option(s) {', '.join(sorted(unknown))}; "
                             f"it takes {', '.join(METHOD_OPTIONS[method])}")
        axes = {k: tuple(options.get(k) or v) for k, v in METHOD_OPTIONS[method].items()}
        for values in itertools.product(*axes.values()):
            variant = make_variant(method, **dict(zip(axes, values)), pre_top_k=pre_top_k, post_top_k=post_top_k)
            if variant not in variants:
                variants.append(variant)
    return variants


def _masks_for_nms(rles: Sequence[bytes], h: int, w: int) -> np.ndarray:
    """The (N, h, w) bool masks the NMS receives, decoded from RLE counts.

    The one place the candidates are decoded. ``matrix_nms`` / ``mask_nms`` also take the RLE dicts directly
    (with identical results, ``tests/test_forms.py``); the candidates here are small (the NMS's resolution,
    e.g. 32 x 32) and are reused by every variant, so one decode per image is cheaper than counting on the runs
    once per variant.
    """
    from pycocotools import mask as mask_utils

    if not len(rles):
        return np.zeros((0, h, w), bool)
    decoded = mask_utils.decode([{"size": [h, w], "counts": c} for c in rles])  # (h, w, N), Fortran order
    return np.ascontiguousarray(decoded.transpose(2, 0, 1)).astype(bool)


def apply(variant: Variant, scores: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``variant`` on one image: (indices into the candidates by decreasing final score, final scores)."""
    from matrixnms import mask_nms, matrix_nms, soft_nms

    v = variant
    if scores.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if v.method == "matrix":
        keep, decayed = matrix_nms(scores, masks, labels=labels, kernel=v.kernel, sigma=v.sigma or 0.5,  # linear: unused
                                   pre_top_k=v.pre_top_k, post_threshold=v.post_threshold, post_top_k=v.post_top_k)
        return np.asarray(keep, np.int64), np.asarray(decayed, np.float32)
    order = np.argsort(-scores, kind="stable")[:v.pre_top_k]
    scores, masks, labels = scores[order], masks[order], labels[order]
    if v.method == "greedy":
        keep = np.asarray(mask_nms(masks, scores, v.iou, labels=labels), np.int64)
        kept = scores[keep]
    elif v.method == "soft":
        keep, kept = soft_nms(scores, masks, labels=labels, kernel="gaussian", sigma=v.sigma,
                              score_threshold=v.post_threshold)
        keep, kept = np.asarray(keep, np.int64), np.asarray(kept, np.float32)
    else:
        keep, kept = np.arange(scores.shape[0]), scores
    passed = kept >= v.post_threshold
    keep, kept = keep[passed][:v.post_top_k], kept[passed][:v.post_top_k]
    return order[keep], kept.astype(np.float32)


def warm_up(variants: Sequence[Variant]) -> None:
    """Run each variant once on three small overlapping masks: kernels compile (or load from Numba's cache)
    here, outside the timed calls."""
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :5, :5] = masks[1, 1:6, 1:6] = masks[2, 3:, 3:] = True
    for variant in variants:
        apply(variant, np.array([0.9, 0.8, 0.7], np.float32), masks, np.array([1, 1, 2]))


# one output row per (image, variant): what COCO results and the timing need
ROW_COLUMNS = ("variant", "image_id", "height", "width", "nms_seconds", "category_id", "score", "counts", "box")


def nms_rows(images: Sequence[ImageCandidates], variants: Sequence[Variant], *, boxes: bool = False) -> dict[str, list]:
    """Apply every variant to every image: columns ``ROW_COLUMNS``, one row per (image, variant).

    ``box``: the xywh boxes of the kept result masks (the file's ``boxes`` when it has them, else
    ``masks_to_boxes(..., "xywh")``), only with ``boxes=True``.
    """
    from matrixnms import masks_to_boxes

    rows: dict[str, list] = {c: [] for c in ROW_COLUMNS}
    for image in images:
        masks = _masks_for_nms(image.masks, *image.mask_size)
        for index, variant in enumerate(variants):
            start = time.perf_counter()
            keep, kept = apply(variant, image.scores, masks, image.labels)
            seconds = time.perf_counter() - start
            counts = [image.result_masks[i] for i in keep.tolist()]
            box: list = []
            if boxes and keep.size:
                if image.boxes is not None:
                    box = image.boxes[keep].tolist()
                else:
                    # the result masks are full-frame: boxes from the runs, never a decoded frame
                    rles = [{"size": [image.height, image.width], "counts": c} for c in counts]
                    box = masks_to_boxes(rles, format="xywh").tolist()
            for key, value in (("variant", index), ("image_id", image.image_id), ("height", image.height),
                               ("width", image.width), ("nms_seconds", seconds),
                               ("category_id", image.labels[keep].tolist()), ("score", kept.tolist()),
                               ("counts", counts), ("box", box)):
                rows[key].append(value)
    return rows


def coco_results(row: dict[str, Any], *, text: bool = False) -> list[dict[str, Any]]:
    """The COCO result dicts of one (image, variant) row; ``text``: counts as str (for JSON)."""
    size = [int(row["height"]), int(row["width"])]
    out = []
    boxes = row.get("box")
    for i, (label, score, counts) in enumerate(zip(row["category_id"], row["score"], row["counts"])):
        result = {"image_id": int(row["image_id"]), "category_id": int(label),
                  "segmentation": {"size": size, "counts": counts.decode("ascii") if text else counts},
                  "score": float(score)}
        if boxes is not None and len(boxes):
            result["bbox"] = [float(v) for v in boxes[i]]
        out.append(result)
    return out
