"""Pairwise mask IoU, box IoU and mask-to-box conversion.

Mask IoU is ``|A and B| / |A or B|`` from exact integer counts; the IoU of two empty masks is 0 (as
pycocotools' ``mask.iou``). Box IoU follows torchvision's ``box_iou``, except that a pair whose union is 0
(two zero-area boxes) gets IoU 0 instead of NaN.
"""

from __future__ import annotations

from typing import Literal

from ._dispatch import resolve
from ._forms import as_frames, dense_to_sparse, is_sparse_form, resolve_sparse, to_host, to_sparse
from ._typing import Array
from ._validate import BOX_FORMATS  # noqa: F401  (the accepted formats, also importable from here)
from ._validate import check_box_format, check_boxes, check_mask_sets, check_masks, check_metric, namespace


def mask_iou(masks_a: Array, masks_b: Array | None = None, *, metric: Literal["iou", "ios"] = "iou",
             backend: str = "auto") -> Array:
    """Pairwise IoU (or IoS) between two sets of binary masks.

    Args:
        masks_a (Array[N, *S], bool or 0/1): first set, any trailing shape S (``(N, P)`` points,
            ``(N, H, W)``, ``(N, D, H, W)``); the overlap counts every element.
        masks_b (Array[M, *S], optional): second set of the same S; None means masks_a vs itself.
            Either set may also be a sequence of COCO RLE dicts or a :class:`matrixnms.CroppedMasks` of one
            (H, W) frame (a dense set beside one is then (M, H, W)): counted on the CPU without full frames.
        metric: ``"iou"`` (default) intersection over union, or ``"ios"`` intersection over the smaller of the
            two areas (supervision's IOS: a mask nested in a larger one scores 1); 0 for empty masks and
            zero-area boxes under either metric.
        backend: ``"auto"``, ``"generic"``, ``"numba"``, ``"torch"`` or ``"cupy"``.

    Returns:
        Array[N, M], float: IoU, 0 where both masks are empty; float64 for NumPy and CuPy, torch's default
        dtype for Torch. Same library and device as the input (the dense one; NumPy float64 for two RLE or
        cropped sets).
    """
    if is_sparse_form(masks_a) or is_sparse_form(masks_b):
        return _sparse_iou(masks_a, masks_b, check_metric(metric), backend)
    xp = namespace(masks_a=masks_a, masks_b=masks_b)
    check_mask_sets(xp, masks_a, masks_b)
    metric = check_metric(metric)
    _, fn = resolve("mask_iou", masks_a, backend)
    return fn(as_frames(xp, masks_a), None if masks_b is None else as_frames(xp, masks_b), metric)


def _sparse_iou(masks_a: Array, masks_b: Array | None, metric: str, backend: str) -> Array:
    """mask_iou where a set is RLE or cropped: both sets as SparseMasks, the result in the dense set's place."""
    dense = next((m for m in (masks_a, masks_b) if m is not None and not is_sparse_form(m)), None)
    sets = []
    for name, m in (("masks_a", masks_a), ("masks_b", masks_b)):
        if m is None:
            sets.append(None)
        elif is_sparse_form(m):
            sets.append(to_sparse(m, name))
        else:
            xp = namespace(**{name: m})
            check_masks(xp, m, name=name, frame=True)
            sets.append(dense_to_sparse(to_host(m), name))
    a, b = sets
    if b is not None and a.n and b.n and tuple(a.size) != tuple(b.size):
        raise ValueError(f"masks_b must have the same size (H, W) as masks_a {tuple(a.size)}, got {tuple(b.size)}")
    iou = resolve_sparse("sparse_mask_iou", backend)(a, b, metric)
    if dense is None:
        return iou
    xp = namespace(masks=dense)
    from ._generic import default_float
    import array_api_compat

    return xp.asarray(iou, dtype=default_float(xp, dense), device=array_api_compat.device(dense))


def box_iou(boxes_a: Array, boxes_b: Array | None = None, *, metric: Literal["iou", "ios"] = "iou") -> Array:
    """Pairwise IoU of ``x1, y1, x2, y2`` boxes (torchvision's ``box_iou``; 0 where the union is 0), or IoS.

    Args:
        boxes_a (Array[N, 4], float): first set.
        boxes_b (Array[M, 4], float, optional): second set; None means boxes_a vs itself.
        metric: ``"iou"`` (default) intersection over union, or ``"ios"`` intersection over the smaller of the
            two areas (supervision's IOS: a box inside a larger one scores 1); 0 for empty masks and
            zero-area boxes under either metric.

    Returns:
        Array[N, M], the boxes' float dtype (integer boxes: the library's default float).
    """
    xp = namespace(boxes_a=boxes_a, boxes_b=boxes_b)
    check_boxes(xp, boxes_a, name="boxes_a")
    if boxes_b is not None:
        check_boxes(xp, boxes_b, name="boxes_b")
    metric = check_metric(metric)
    _, fn = resolve("box_iou", boxes_a)
    return fn(boxes_a, boxes_b, metric)


def masks_to_boxes(
    masks: Array, format: Literal["xyxy", "xywh", "xyxy_inclusive"] = "xyxy", *, backend: str = "auto"
) -> Array:
    """Tight boxes around binary masks.

    Args:
        masks (Array[N, H, W], bool or 0/1): binary masks; or COCO RLE dicts or a
            :class:`matrixnms.CroppedMasks` (boxes from the runs or crops; a NumPy float32 result).
        format: ``"xyxy"``: ``[x_min, y_min, x_max + 1, y_max + 1]``, pixel edges (detectron2,
            mmdetection); ``"xywh"``: ``[x_min, y_min, width, height]`` (COCO, pycocotools' ``toBbox``);
            ``"xyxy_inclusive"``: ``[x_min, y_min, x_max, y_max]`` (torchvision's ``masks_to_boxes``).

    Returns:
        Array[N, 4], float32: boxes; ``[0, 0, 0, 0]`` for an empty mask.
    """
    if is_sparse_form(masks):
        check_box_format(format)
        return _convert_boxes(to_sparse(masks).boxes_xyxy(), format)
    xp = namespace(masks=masks)
    check_masks(xp, masks, frame=True)
    check_box_format(format)
    _, fn = resolve("masks_to_boxes", masks, backend)
    return fn(masks, format)


def _convert_boxes(xyxy, format: str):
    """Pixel-edge xyxy boxes (NumPy float32, zeros for empty masks) in ``format``."""
    out = xyxy.copy()
    empty = ~(out[:, 2] > out[:, 0])
    if format == "xyxy_inclusive":
        out[:, 2:] -= 1
    elif format == "xywh":
        out[:, 2:] -= out[:, :2]
    out[empty] = 0
    return out
