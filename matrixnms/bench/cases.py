"""The benchmark cases: families, sizes per mode, labellings, and the seeded scene of each case."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Iterable

from ..scenes import MASK_HEIGHT, MASK_WIDTH, box_scene, mask_scene

FAMILIES = ("masks", "boxes", "mask_iou", "masks_to_boxes")
MODES = ("full", "quick", "smoke")
NUM_CLASSES = 80
IOU_THRESHOLD = 0.5  # greedy NMS baselines
SIGMA = 0.5  # the paper's gaussian sigma, for Matrix NMS and Soft-NMS

# N per family and mode. "full" is the design's benchmark cases; "quick" is ``matrixnms bench --quick`` (about
# 30 s); "smoke" is ``pytest benchmarks --benchmark-disable``: every method once, as a correctness check.
SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "masks": {"full": (100, 500, 1000, 2000), "quick": (100, 500), "smoke": (30, 80)},
    "boxes": {"full": (100, 500, 1000, 2000), "quick": (500, 1000), "smoke": (50, 200)},
    "mask_iou": {"full": (500, 2000), "quick": (500,), "smoke": (40,)},
    "masks_to_boxes": {"full": (500, 2000), "quick": (500,), "smoke": (40,)},
}
# The labellings per family: None is class-agnostic.
LABELLINGS: dict[str, tuple[int | None, ...]] = {
    "masks": (None, NUM_CLASSES), "boxes": (None, NUM_CLASSES), "mask_iou": (None,), "masks_to_boxes": (None,),
}


@dataclass(frozen=True)
class Case:
    """One input: a family, N, labelling and image size."""

    family: str
    n: int
    num_classes: int | None = None
    height: int = MASK_HEIGHT
    width: int = MASK_WIDTH
    seed: int = 0

    @property
    def labelled(self) -> bool:
        return self.num_classes is not None

    @property
    def labelling(self) -> str:
        return "agnostic" if self.num_classes is None else f"{self.num_classes} classes"

    @property
    def group(self) -> str:
        """The comparison group: every method on this input (pytest-benchmark's ``group``)."""
        if self.family == "boxes":
            return f"boxes N={self.n} {self.labelling}"
        size = f"{self.height}x{self.width}"
        if self.family == "masks":
            return f"masks N={self.n} {self.labelling} {size}"
        return f"{self.family} N={self.n} {size}"

    @property
    def id(self) -> str:
        return f"N{self.n}-{'agnostic' if self.num_classes is None else f'{self.num_classes}cls'}"


def suite_mode(benchmark_disabled: bool) -> str:
    """The pytest suite's mode: ``MATRIXNMS_BENCH_MODE`` if set, else "smoke" under ``--benchmark-disable``."""
    forced = os.environ.get("MATRIXNMS_BENCH_MODE")
    if forced:
        if forced not in MODES:
            raise ValueError(f"MATRIXNMS_BENCH_MODE must be one of {MODES}, got {forced!r}")
        return forced
    return "smoke" if benchmark_disabled else "full"


def cases(family: str, mode: str = "full", *, sizes: Iterable[int] | None = None,
          image: tuple[int, int] | None = None, seed: int = 0) -> list[Case]:
    """The benchmark cases of ``family`` in ``mode`` ("full", "quick" or "smoke").

    Args:
        family: one of :data:`FAMILIES`.
        mode: which sizes of :data:`SIZES`.
        sizes: override the N values.
        image: override the mask size (height, width); boxes keep their 800x1344 image.
        seed: scene seed.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ns = tuple(SIZES[family][mode] if sizes is None else sizes)
    height, width = image or (MASK_HEIGHT, MASK_WIDTH)
    return [Case(family, n, num_classes, height, width, seed) for num_classes in LABELLINGS[family] for n in ns]


@functools.lru_cache(maxsize=4)
def scene(case: Case) -> Any:
    """The scene of a case (cached: every method of a group sees the same arrays)."""
    if case.family == "boxes":
        return box_scene(case.n, num_classes=case.num_classes, seed=case.seed)
    return mask_scene(case.n, height=case.height, width=case.width, num_classes=case.num_classes, seed=case.seed)
