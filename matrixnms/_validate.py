"""Argument checks shared by the public functions.

Every check names the argument, what was expected and what was received. Value checks (0/1 masks, NaN
scores, inverted boxes) need one reduction each; on a GPU that is one small device-to-host sync, never a
copy of the data.
"""

from __future__ import annotations

import numbers
from typing import Any

import array_api_compat

from ._dispatch import device_kind, library_of

KERNELS = ("gaussian", "linear")


def namespace(**arrays: Any) -> Any:
    """The array namespace shared by ``arrays`` (None values skipped); TypeError for mixed libraries/devices."""
    first_name, first = None, None
    for name, x in arrays.items():
        if x is None:
            continue
        try:
            library = library_of(x)
        except TypeError:
            raise TypeError(f"{name} must be a NumPy, Torch or CuPy array, got {type(x).__name__}") from None
        if first is None:
            first_name, first = name, x
            continue
        if library != library_of(first):
            raise TypeError(f"{name} is {library} but {first_name} is {library_of(first)}")
        if str(array_api_compat.device(x)) != str(array_api_compat.device(first)):
            raise TypeError(
                f"{name} is on {array_api_compat.device(x)} but {first_name} is on {array_api_compat.device(first)}"
            )
    if first is None:
        raise TypeError("no array given")
    return array_api_compat.array_namespace(first)


def dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


def is_floating(xp: Any, x: Any) -> bool:
    return xp.isdtype(x.dtype, "real floating")


def is_integer(xp: Any, x: Any) -> bool:
    return xp.isdtype(x.dtype, "integral")


def is_bool(xp: Any, x: Any) -> bool:
    return xp.isdtype(x.dtype, "bool")


def check_scores(xp: Any, scores: Any, name: str = "scores") -> int:
    """(N,) floating, no NaN or inf; returns N."""
    if scores.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(scores.shape)}")
    if not is_floating(xp, scores):
        raise TypeError(f"{name} must be floating, got {dtype_name(scores)}")
    if scores.shape[0] and not bool(xp.all(xp.isfinite(scores))):
        bad = "NaN" if bool(xp.any(xp.isnan(scores))) else "inf"
        raise ValueError(f"{name} must be finite, got {bad}")
    return int(scores.shape[0])


def check_masks(xp: Any, masks: Any, n: int | None = None, name: str = "masks") -> None:
    """(N, H, W) of bool, integers or floats holding only 0 and 1."""
    if masks.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {tuple(masks.shape)}")
    if n is not None and masks.shape[0] != n:
        raise ValueError(f"{name} must have one mask per score: expected {n}, got {masks.shape[0]}")
    if is_bool(xp, masks):
        return
    if not (is_integer(xp, masks) or is_floating(xp, masks)):
        raise TypeError(f"{name} must be bool, integer or floating 0/1, got {dtype_name(masks)}")
    if masks.shape[0] * masks.shape[1] * masks.shape[2] and not bool(xp.all((masks == 0) | (masks == 1))):
        raise ValueError(f"{name} must hold only 0 and 1 (binary masks), got other values")


def check_boxes(xp: Any, boxes: Any, n: int | None = None, name: str = "boxes") -> None:
    """(N, 4) real x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, finite."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    if n is not None and boxes.shape[0] != n:
        raise ValueError(f"{name} must have one box per score: expected {n}, got {boxes.shape[0]}")
    if not (is_integer(xp, boxes) or is_floating(xp, boxes)):
        raise TypeError(f"{name} must be real numbers, got {dtype_name(boxes)}")
    if boxes.shape[0] == 0:
        return
    if is_floating(xp, boxes) and not bool(xp.all(xp.isfinite(boxes))):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(xp.any(inverted)):
        i = int(xp.argmax(xp.astype(inverted, xp.int8)))
        row = [float(v) for v in boxes[i, :]]
        raise ValueError(f"{name} must satisfy x2 >= x1 and y2 >= y1, got {row} at index {i}")


def check_labels(xp: Any, labels: Any, n: int, name: str = "labels") -> None:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if not is_integer(xp, labels):
        raise TypeError(f"{name} must be integers, got {dtype_name(labels)}")


def check_areas(xp: Any, areas: Any, n: int, name: str = "mask_areas") -> None:
    if areas.ndim != 1 or areas.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(areas.shape)}")
    if not (is_integer(xp, areas) or is_floating(xp, areas)):
        raise TypeError(f"{name} must be real numbers, got {dtype_name(areas)}")
    if n and not bool(xp.all(areas >= 0)):
        raise ValueError(f"{name} must be >= 0 and not NaN")


def check_kernel(kernel: Any) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(name: str, value: Any) -> float:
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be > 0 and finite, got {value}")
    return float(value)


def check_threshold(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number{' or None' if allow_none else ''}, got {type(value).__name__}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be >= 0 and finite, got {value}")
    return float(value)


def check_top_k(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (None means no limit), got {value}")
    return int(value)


def check_nms_options(kernel: Any, sigma: Any, score_threshold: Any, post_threshold: Any, pre_top_k: Any,
                      post_top_k: Any) -> tuple[float, float | None, float | None, int | None, int | None]:
    """The options of matrix_nms (and its static form): checks ``kernel`` and returns (sigma, score_threshold,
    post_threshold, pre_top_k, post_top_k) validated, None meaning unset."""
    check_kernel(kernel)
    return (check_positive("sigma", sigma), check_threshold("score_threshold", score_threshold),
            check_threshold("post_threshold", post_threshold), check_top_k("pre_top_k", pre_top_k),
            check_top_k("post_top_k", post_top_k))


__all__ = [
    "namespace", "check_scores", "check_masks", "check_boxes", "check_labels", "check_areas",
    "check_kernel", "check_positive", "check_threshold", "check_top_k", "check_nms_options", "device_kind",
]
