"""What the three drop-ins share: the peers' kernel and sigma conventions, their ``-1 = off`` limits, and the
decayed scores put back in input order.

The peers write the gaussian as ``exp(-sigma * (iou^2 - cmax^2))`` with ``sigma = 2.0``; :func:`matrix_nms`
takes the paper's ``exp(-(iou^2 - cmax^2) / sigma)``: the same decay with ``sigma = 1 / code sigma``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._typing import Array
from .._validate import KERNELS, check_areas, check_labels, check_masks, check_scores, namespace
from ..nms import matrix_nms

# SOLO's and AdelaiDet's names for the arrays (validation messages name them)
SOLO_NAMES = {"scores": "cate_scores", "masks": "seg_masks", "labels": "cate_labels", "areas": "sum_masks"}
# Any value works for the linear kernel, which has no sigma; the peers ignore theirs there.
_UNUSED_SIGMA = 0.5


class UnsupportedKernelError(ValueError, NotImplementedError):
    """An unknown kernel name. A ValueError, as everywhere in matrixnms, and a NotImplementedError, which is
    what mmdetection and SOLO raise: code written against either catches it."""


def check_strict_kernel(kernel: Any) -> str:
    """mmdetection's and SOLO's rule: 'gaussian' or 'linear', anything else is an error."""
    if kernel not in KERNELS:
        raise UnsupportedKernelError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


def paper_sigma(sigma: Any, kernel: str) -> float:
    """The paper's sigma for the peers' code ``sigma`` (its reciprocal); checked only where it is used.

    The peers multiply by ``sigma``, so theirs must be a finite number > 0 for the gaussian kernel (0 would
    mean no decay at all, a negative one would raise scores); the linear kernel ignores it, as theirs do.
    """
    if not isinstance(sigma, numbers.Real) or isinstance(sigma, bool):
        raise TypeError(f"sigma must be a real number, got {type(sigma).__name__}")
    if kernel == "linear":
        return _UNUSED_SIGMA
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be > 0 and finite for the gaussian kernel, got {sigma}")
    return 1.0 / float(sigma)


def peer_limit(name: str, value: Any, *, integer: bool) -> Any:
    """mmdetection's convention for ``filter_thr`` / ``nms_pre`` / ``max_num``: active only when > 0, so -1
    (the default), 0 and any negative value mean off (None here)."""
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "an int" if integer else "a real number"
        raise TypeError(f"{name} must be {expected} (-1: off), got {type(value).__name__}")
    if not integer and math.isnan(value):
        raise ValueError(f"{name} must be a number (-1: off), got nan")
    if not value > 0:
        return None
    return int(value) if integer else float(value)


def check_peer_inputs(names: dict[str, str], scores: Any, masks: Any, labels: Any, areas: Any) -> tuple[Any, int]:
    """Validate the peer's arrays under the peer's argument names (``names`` maps scores / masks / labels /
    areas to them); returns (array namespace, N)."""
    xp = namespace(**{names["scores"]: scores, names["masks"]: masks, names["labels"]: labels,
                      names["areas"]: areas})
    n = check_scores(xp, scores, name=names["scores"])
    check_masks(xp, masks, n, name=names["masks"])
    check_labels(xp, labels, n, name=names["labels"])
    if areas is not None:
        check_areas(xp, areas, n, name=names["areas"])
    return xp, n


def decayed_in_input_order(names: dict[str, str], scores: Array, masks: Array, labels: Array, areas: Array | None,
                           kernel: str, sigma: Any) -> Array:
    """SOLO's and AdelaiDet's result: the decayed score of every candidate, in input order.

    Those two treat the input order as the score order (their callers sort first); sorting here gives
    the same numbers on sorted input (equal scores keep their order) and the right ones on any input.
    """
    sigma = paper_sigma(sigma, kernel)
    xp, n = check_peer_inputs(names, scores, masks, labels, areas)
    if n == 0:
        return scores[:0]
    keep, decayed = matrix_nms(scores, masks, labels=labels, kernel=kernel, sigma=sigma, mask_areas=areas)
    # keep is a permutation of the input (no thresholds, no top-k): invert it
    return xp.take(decayed, xp.argsort(keep))
