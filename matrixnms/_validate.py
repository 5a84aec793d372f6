"""Every argument check of the public functions, once.

Every check names the argument, what was expected and what was received. A check of an array has a static
part (shape, dtype, argument types: facts known before any data is read) and a value part (NaN or inf,
0/1 masks, inverted boxes, ranges over the data). The value part needs one reduction, on a GPU one small
device-to-host sync, never a copy of the data, and it is skipped while a graph is being recorded
(``in_graph``: ``torch.jit.trace``, ``torch.compile``, ``torch.export`` and the ONNX exporter built on it),
where it would be a data-dependent branch. So eager calls and compiled or exported ones raise the same
messages for the static facts by construction, and a graph simply computes on values an eager call rejects.

Callers that check every static fact before any value (the static form in ``export``, ``multiclass``) call
the array checks with ``values=False`` and the value parts (``check_finite``, ``check_binary``,
``check_box_values``) afterwards.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import array_api_compat

from . import _config
from ._dispatch import device_kind, library_of
from ._typing import Array

KERNELS = ("gaussian", "linear")
METRICS = ("iou", "ios")
BOX_FORMATS = ("xyxy", "xywh", "xyxy_inclusive")


# --- namespaces, dtypes, graphs ----------------------------------------------------------------------------


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


def dtype_name(x: Array) -> str:
    return str(x.dtype).removeprefix("torch.")


def is_floating(xp: Any, x: Array) -> bool:
    return xp.isdtype(x.dtype, "real floating")


def is_integer(xp: Any, x: Array) -> bool:
    return xp.isdtype(x.dtype, "integral")


def is_bool(xp: Any, x: Array) -> bool:
    return xp.isdtype(x.dtype, "bool")


def in_graph(x: Array) -> bool:
    """True while torch.jit.trace / torch.compile / torch.export records ``x``'s computation: a value check
    would then be a data-dependent branch, so only static (shape, dtype, argument) checks run.

    Looks torch up in ``sys.modules`` (a caller with a tensor has imported it): nothing is imported, and
    dynamo traces this without a graph break.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return False
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _no_values(x: Array) -> bool:
    """Whether a value check of ``x`` is skipped: inside a graph, or nothing to check."""
    return in_graph(x) or math.prod(int(d) for d in x.shape) == 0


# --- arrays: static part, then value part ------------------------------------------------------------------


def check_finite(xp: Any, name: str, x: Array) -> None:
    """Value part: no NaN or inf (the error says which)."""
    if _no_values(x):
        return
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} must be finite, got {'NaN' if bool(xp.any(xp.isnan(x))) else 'inf'}")


def check_scores(xp: Any, scores: Array, name: str = "scores", *, values: bool = True) -> int:
    """(N,) floating; values: no NaN or inf. Returns N."""
    if scores.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(scores.shape)}")
    if not is_floating(xp, scores):
        raise TypeError(f"{name} must be floating, got {dtype_name(scores)}")
    if values:
        check_finite(xp, name, scores)
    return int(scores.shape[0])


def check_binary(xp: Any, name: str, masks: Array) -> None:
    """Value part of ``check_masks``: only 0 and 1 (bool masks need no pass)."""
    if is_bool(xp, masks) or _no_values(masks):
        return
    if not bool(xp.all((masks == 0) | (masks == 1))):
        raise ValueError(f"{name} must hold only 0 and 1 (binary masks), got other values")


def check_masks(xp: Any, masks: Array, n: int | None = None, name: str = "masks", *, values: bool = True,
                frame: bool = False) -> None:
    """(N, *S) with at least one trailing dimension (``frame``: exactly (N, H, W)) of bool, integers or
    floats; values: only 0 and 1."""
    if frame and masks.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {tuple(masks.shape)}")
    if masks.ndim < 2:
        raise ValueError(f"{name} must have shape (N, *S) with at least one trailing dimension, got "
                         f"{tuple(masks.shape)}")
    if n is not None and masks.shape[0] != n:
        raise ValueError(f"{name} must have one mask per score: expected {n}, got {masks.shape[0]}")
    if not (is_bool(xp, masks) or is_integer(xp, masks) or is_floating(xp, masks)):
        raise TypeError(f"{name} must be bool, integer or floating 0/1, got {dtype_name(masks)}")
    if values:
        check_binary(xp, name, masks)


def check_mask_sets(xp: Any, masks_a: Array, masks_b: Array | None) -> None:
    """Two dense mask sets to compare (``masks_b`` None: ``masks_a`` with itself) of the same trailing shape."""
    check_masks(xp, masks_a, name="masks_a")
    if masks_b is not None:
        check_masks(xp, masks_b, name="masks_b")
        if tuple(masks_b.shape[1:]) != tuple(masks_a.shape[1:]):
            raise ValueError(f"masks_b must have the same trailing shape as masks_a {tuple(masks_a.shape[1:])}, "
                             f"got {tuple(masks_b.shape[1:])}")


def check_box_values(xp: Any, name: str, boxes: Array) -> None:
    """Value part of ``check_boxes``: finite, x2 >= x1 and y2 >= y1 (the error names the first bad row)."""
    if _no_values(boxes):
        return
    if is_floating(xp, boxes) and not bool(xp.all(xp.isfinite(boxes))):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(xp.any(inverted)):
        i = int(xp.argmax(xp.astype(inverted, xp.int8)))
        row = [float(v) for v in boxes[i, :]]
        raise ValueError(f"{name} must satisfy x2 >= x1 and y2 >= y1, got {row} at index {i}")


def check_boxes(xp: Any, boxes: Array, n: int | None = None, name: str = "boxes", *, values: bool = True) -> None:
    """(N, 4) real x1, y1, x2, y2; values: finite, x2 >= x1 and y2 >= y1."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    if n is not None and boxes.shape[0] != n:
        raise ValueError(f"{name} must have one box per score: expected {n}, got {boxes.shape[0]}")
    if not (is_integer(xp, boxes) or is_floating(xp, boxes)):
        raise TypeError(f"{name} must be real numbers, got {dtype_name(boxes)}")
    if values:
        check_box_values(xp, name, boxes)


def check_batched_nms_labels(labels: Array | None) -> None:
    """batched_nms needs labels (nms is the call without)."""
    if labels is None:
        raise TypeError("labels must be an integer array for batched_nms, got None (use nms without labels)")


def check_labels(xp: Any, labels: Array, n: int, name: str = "labels") -> None:
    """(N,) integers (static only)."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if not is_integer(xp, labels):
        raise TypeError(f"{name} must be integers, got {dtype_name(labels)}")


def check_areas(xp: Any, areas: Array, n: int, name: str = "mask_areas") -> None:
    """(N,) real; values: >= 0, not NaN."""
    if areas.ndim != 1 or areas.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(areas.shape)}")
    if not (is_integer(xp, areas) or is_floating(xp, areas)):
        raise TypeError(f"{name} must be real numbers, got {dtype_name(areas)}")
    if not _no_values(areas) and not bool(xp.all(areas >= 0)):
        raise ValueError(f"{name} must be >= 0 and not NaN")


def check_detections(function: str, scores: Array, masks: Array | None, boxes: Array | None,
                     labels: Array | None, mask_areas: Array | None = None) -> tuple[Any, int]:
    """The candidates of a Matrix NMS or Soft-NMS call: scores and exactly one of masks / boxes, optional
    labels (and mask areas, masks only), all of one library and device. Returns (namespace, N)."""
    from ._forms import is_sparse_form, to_sparse

    check_exactly_one(function, masks is not None, boxes is not None)
    sparse = masks is not None and is_sparse_form(masks)
    xp = namespace(scores=scores, masks=None if sparse else masks, boxes=boxes, labels=labels,
                   mask_areas=mask_areas)
    n = check_scores(xp, scores)
    if sparse:
        to_sparse(masks, "masks", n)  # validates every RLE / crop (cached on CroppedMasks)
    elif masks is not None:
        check_masks(xp, masks, n)
    else:
        check_boxes(xp, boxes, n)
        if mask_areas is not None:
            raise ValueError("mask_areas applies to masks, got it with boxes")
    if labels is not None:
        check_labels(xp, labels, n)
    if mask_areas is not None:
        check_areas(xp, mask_areas, n)
    return xp, n


# --- options -----------------------------------------------------------------------------------------------


def check_exactly_one(function: str, first: bool, second: bool, names: tuple[str, str] = ("masks", "boxes")) -> None:
    """Exactly one of two alternatives given (``first`` / ``second``: whether each was)."""
    if first == second:
        raise ValueError(f"{function} needs exactly one of {names[0]} or {names[1]}, got "
                         + ("both" if first else "neither"))


def check_box_format(format: Any) -> None:
    if format not in BOX_FORMATS:
        raise ValueError(f"format must be one of {BOX_FORMATS}, got {format!r}")


def check_metric(metric: Any) -> str:
    """``"iou"`` (intersection over union) or ``"ios"`` (intersection over the smaller area)."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_kernel(kernel: Any) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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


def check_iou_threshold(name: str, value: Any) -> float:
    """A real number in [0, 1] (IoU lies in [0, 1]; 1 suppresses nothing, 0 suppresses any overlap)."""
    value = check_threshold(name, value, allow_none=False)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_top_k(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value):
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


# --- PaddlePaddle's conventions (multiclass_matrix_nms) ----------------------------------------------------


def check_cutoff(name: str, value: Any) -> float:
    """A threshold compared with ``>``: any finite real (a negative one keeps zero scores)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_limit(name: str, value: Any) -> int | None:
    """A top-k: an int >= 0, or -1 / None for no limit (Paddle's convention)."""
    if value is None:
        return None
    if not is_int(value):
        raise TypeError(f"{name} must be an int (-1 for no limit), got {type(value).__name__}")
    if value < -1:
        raise ValueError(f"{name} must be >= 0, or -1 for no limit, got {value}")
    return None if value == -1 else int(value)


def check_batched(xp: Any, boxes: Array, scores: Array) -> tuple[int, int, int]:
    """Static part: (B, M, 4) real boxes and (B, C, M) floating scores of the same B and M. Returns (B, C, M)."""
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise ValueError(f"boxes must have shape (B, M, 4), got {tuple(boxes.shape)}")
    if scores.ndim != 3:
        raise ValueError(f"scores must have shape (B, C, M), got {tuple(scores.shape)}")
    n_img, n_cls, m = (int(d) for d in scores.shape)
    if n_img != boxes.shape[0]:
        raise ValueError(f"scores must have one (C, M) slice per image: boxes has B = {boxes.shape[0]}, "
                         f"scores has {n_img}")
    if m != boxes.shape[1]:
        raise ValueError(f"scores must have one column per box: boxes has M = {boxes.shape[1]}, scores has {m}")
    if not is_floating(xp, scores):
        raise TypeError(f"scores must be floating, got {dtype_name(scores)}")
    if not (is_floating(xp, boxes) or is_integer(xp, boxes)):
        raise TypeError(f"boxes must be real numbers, got {dtype_name(boxes)}")
    return n_img, n_cls, m


def check_batched_values(xp: Any, boxes: Array, scores: Array) -> None:
    """Value part of ``check_batched``: finite scores and boxes (inverted boxes are valid input)."""
    check_finite(xp, "scores", scores)
    if is_floating(xp, boxes):
        check_finite(xp, "boxes", boxes)


def check_paddle_options(num_classes: int, score_threshold: Any, post_threshold: Any, nms_top_k: Any,
                         keep_top_k: Any, kernel: Any, sigma: Any, background_label: Any,
                         normalized: Any) -> tuple[float, float, int | None, int | None, float]:
    """The options of multiclass_matrix_nms; returns (score_threshold, post_threshold, nms_top_k, keep_top_k,
    sigma) validated, None meaning no limit."""
    score_threshold = check_cutoff("score_threshold", score_threshold)
    post_threshold = check_cutoff("post_threshold", post_threshold)
    nms_top_k = check_limit("nms_top_k", nms_top_k)
    keep_top_k = check_limit("keep_top_k", keep_top_k)
    check_kernel(kernel)
    sigma = check_positive("sigma", sigma)
    if not is_int(background_label):
        raise TypeError(f"background_label must be an int, got {type(background_label).__name__}")
    if not -1 <= background_label < num_classes:
        raise ValueError(f"background_label must be -1 (none) or a class index in [0, {num_classes}), "
                         f"got {background_label}")
    # a NumPy bool scalar (np.bool_, named "bool" under NumPy 2) is a bool too; 0/1 ints are not
    if not isinstance(normalized, bool) and not (type(normalized).__module__ == "numpy"
                                                 and type(normalized).__name__ in ("bool", "bool_")):
        raise TypeError(f"normalized must be a bool, got {type(normalized).__name__}")
    return score_threshold, post_threshold, nms_top_k, keep_top_k, sigma


# --- the static form and graph export (matrixnms.export) ---------------------------------------------------


def check_static_form(scores: Any, masks: Any, boxes: Any, labels: Any, valid: Any) -> None:
    """The inputs of matrix_nms_static: torch tensors on one device, then the static checks (which also run
    under torch.compile / torch.export), then the value checks (eager only); none under torch.jit.trace,
    where even shapes are traced values. Float32 mask counts must stay exact (``_config.EXACT_F32``)."""
    import array_api_compat.torch as xp
    import torch

    if torch.jit.is_tracing():
        return
    check_exactly_one("matrix_nms_static", masks is not None, boxes is not None)
    arrays = {"scores": scores, "masks": masks, "boxes": boxes, "labels": labels, "valid": valid}
    for name, x in arrays.items():
        if x is not None and not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    for name, x in arrays.items():
        if x is not None and x.device != scores.device:
            raise TypeError(f"{name} is on {x.device} but scores is on {scores.device}")
    n = check_scores(xp, scores, values=False)
    if masks is not None:
        check_masks(xp, masks, n, values=False, frame=True)
        if masks.shape[1] * masks.shape[2] > _config.EXACT_F32:
            raise ValueError(f"masks must have H * W <= 2**24 pixels (exact float32 counts), got "
                             f"{masks.shape[1]} x {masks.shape[2]} = {masks.shape[1] * masks.shape[2]}")
    if boxes is not None:
        check_boxes(xp, boxes, n, values=False)
    if labels is not None:
        check_labels(xp, labels, n)
    if valid is not None:
        if valid.ndim != 1 or valid.shape[0] != n:
            raise ValueError(f"valid must have shape ({n},), got {tuple(valid.shape)}")
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be bool, got {dtype_name(valid)}")
    # value checks (NaN scores, non-binary masks, inverted boxes): one reduction and host sync each
    check_finite(xp, "scores", scores)
    if masks is not None:
        check_binary(xp, "masks", masks)
    if boxes is not None:
        check_box_values(xp, "boxes", boxes)


def check_positive_int(name: str, value: Any) -> int:
    """A Python int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_opset(opset: Any, minimum: int) -> None:
    if not isinstance(opset, int) or isinstance(opset, bool):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if opset < minimum:
        raise ValueError(f"opset must be >= {minimum} (torch.onnx's exporter), got {opset}")


def check_onnx_graph(num_candidates: Any, mask_size: Any, boxes: Any, pre_top_k: Any, post_top_k: Any, opset: Any,
                     min_opset: int, mask_dtype: Any = "bool") -> int:
    """The graph shape arguments of to_onnx (its NMS options are checked by MatrixNMS); returns N."""
    check_exactly_one("to_onnx", mask_size is not None, bool(boxes), ("mask_size=(H, W)", "boxes=True"))
    if mask_dtype not in ("bool", "uint8"):
        raise ValueError(f"mask_dtype must be 'bool' or 'uint8', got {mask_dtype!r}")
    n = check_positive_int("num_candidates", num_candidates)
    if mask_size is not None:
        if (not isinstance(mask_size, (tuple, list)) or len(mask_size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in mask_size)):
            raise TypeError(f"mask_size must be a pair of ints (H, W), got {mask_size!r}")
        if min(mask_size) < 1 or mask_size[0] * mask_size[1] > _config.EXACT_F32:
            raise ValueError(f"mask_size must be >= 1 each with H * W <= 2**24, got {tuple(mask_size)}")
    if pre_top_k == 0 or post_top_k == 0:
        raise ValueError(f"pre_top_k and post_top_k must be >= 1 for an ONNX graph, got {pre_top_k}, {post_top_k}")
    check_opset(opset, min_opset)
    return n


def check_export_model(model: Any, args: Any, opset: Any, min_opset: int) -> None:
    """The arguments of export_onnx: a torch.nn.Module, a tuple of example inputs, an opset."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of example inputs, got {type(args).__name__}")
    check_opset(opset, min_opset)


__all__ = [
    "KERNELS", "BOX_FORMATS", "namespace", "dtype_name", "is_floating", "is_integer", "is_bool", "in_graph",
    "check_finite", "check_scores", "check_binary", "check_masks", "check_mask_sets", "check_box_values",
    "check_boxes", "check_batched_nms_labels", "check_labels", "check_areas", "check_detections",
    "check_exactly_one", "check_box_format", "check_kernel", "METRICS", "check_metric", "is_int", "check_positive", "check_threshold",
    "check_iou_threshold", "check_top_k", "check_nms_options", "check_cutoff", "check_limit", "check_batched",
    "check_batched_values", "check_paddle_options", "check_static_form", "check_positive_int", "check_opset",
    "check_onnx_graph", "check_export_model", "device_kind",
]


# --- batches of images (matrixnms.batched) -----------------------------------------------------------------


def capturing(x: Array) -> bool:
    """True while a CUDA graph is being captured on ``x``'s device: a value check would sync the host, which
    capture forbids, so (as in ``in_graph``) only the static checks run."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor) or x.device.type != "cuda":
        return False
    return bool(torch.cuda.is_current_stream_capturing())


def check_batch_shape(name: str, x: Array, batch: tuple[int, int], trailing: tuple[str, ...] = ()) -> None:
    """``x`` has shape (B, N, *trailing): the leading two equal ``batch``, a named trailing size is free and a
    numeric one fixed. The error names both the expected and the received shape."""
    letters = ("B", "N", *trailing)
    sizes = (*batch, *trailing)
    shape = tuple(int(d) for d in x.shape)
    fits = len(shape) == len(sizes) and all(not isinstance(s, int) and not s.isdigit() or int(s) == d
                                            for s, d in zip(sizes, shape))
    if not fits:
        raise ValueError(f"{name} must have shape ({', '.join(letters)}) = ({', '.join(str(s) for s in sizes)}), "
                         f"got {shape}")


def check_batched_box_values(xp: Any, boxes: Array, use: Array | None) -> None:
    """Value part for (B, N, 4) boxes: finite, x2 >= x1 and y2 >= y1 where ``use`` (B, N) is True (all
    entries when None); the error names the first bad [image, candidate]."""
    if _no_values(boxes) or capturing(boxes):
        return
    ignored = xp.zeros(boxes.shape[:2], dtype=xp.bool, device=array_api_compat.device(boxes)) if use is None else ~use
    if is_floating(xp, boxes) and not bool(xp.all(xp.isfinite(boxes) | ignored[..., None])):
        raise ValueError("boxes must be finite, got NaN or inf")
    inverted = ((boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])) & ~ignored
    if bool(xp.any(inverted)):
        flat_index = int(xp.argmax(xp.astype(xp.reshape(inverted, (-1,)), xp.int8)))
        b, i = divmod(flat_index, int(boxes.shape[1]))
        row = [float(v) for v in boxes[b, i, :]]
        raise ValueError(f"boxes must satisfy x2 >= x1 and y2 >= y1, got {row} at [{b}, {i}]")


def check_batched_detections(scores: Array, masks: Array | None, boxes: Array | None, valid: Array | None,
                             labels: Array | None, *, values: bool = True) -> tuple[Any, int, int]:
    """The inputs of batched_matrix_nms: (B, N) scores and exactly one of (B, N, H, W) masks / (B, N, 4) boxes,
    optional (B, N) bool ``valid`` and (B, N) integer labels, all of one library and device. Values (eager
    only): scores finite where valid (an invalid slot may hold anything, NaN too), masks 0/1 in every slot,
    boxes finite and not inverted where valid. Returns (namespace, B, N)."""
    check_exactly_one("batched_matrix_nms", masks is not None, boxes is not None)
    xp = namespace(scores=scores, masks=masks, boxes=boxes, valid=valid, labels=labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (B, N), got {tuple(scores.shape)}")
    if not is_floating(xp, scores):
        raise TypeError(f"scores must be floating, got {dtype_name(scores)}")
    batch = (int(scores.shape[0]), int(scores.shape[1]))
    if masks is not None:
        check_batch_shape("masks", masks, batch, ("H", "W"))
        if not (is_bool(xp, masks) or is_integer(xp, masks) or is_floating(xp, masks)):
            raise TypeError(f"masks must be bool, integer or floating 0/1, got {dtype_name(masks)}")
    else:
        check_batch_shape("boxes", boxes, batch, ("4",))
        if not (is_integer(xp, boxes) or is_floating(xp, boxes)):
            raise TypeError(f"boxes must be real numbers, got {dtype_name(boxes)}")
    if valid is not None:
        check_batch_shape("valid", valid, batch)
        if not is_bool(xp, valid):
            raise TypeError(f"valid must be bool, got {dtype_name(valid)}")
    if labels is not None:
        check_batch_shape("labels", labels, batch)
        if not is_integer(xp, labels):
            raise TypeError(f"labels must be integers, got {dtype_name(labels)}")
    if values and not capturing(scores):
        check_finite(xp, "scores", scores if valid is None else xp.where(valid, scores, xp.zeros_like(scores)))
        if masks is not None:
            check_binary(xp, "masks", masks)
        else:
            check_batched_box_values(xp, boxes, valid)
    return xp, batch[0], batch[1]


__all__ += ["capturing", "check_batch_shape", "check_batched_box_values", "check_batched_detections"]


def check_batched_static_form(scores: Any, masks: Any, boxes: Any, labels: Any, valid: Any) -> None:
    """The batch-level static checks of BatchedMatrixNMS (torch tensors, shapes and dtypes of one batch); the
    per-image checks, values included, are MatrixNMS's. None under torch.jit.trace (shapes are traced)."""
    import torch

    if torch.jit.is_tracing():
        return
    for name, x in (("scores", scores), ("masks", masks), ("boxes", boxes), ("labels", labels), ("valid", valid)):
        if x is not None and not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_batched_detections(scores, masks, boxes, valid, labels, values=False)


__all__ += ["check_batched_static_form"]
