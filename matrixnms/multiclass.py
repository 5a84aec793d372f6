"""Batched multi-class box Matrix NMS: a drop-in for PaddlePaddle's ``paddle.vision.ops.matrix_nms``.

Box detectors such as PP-YOLO, PP-YOLOv2 and PP-YOLOE (and OpenVINO's ``MatrixNms-8``) run Matrix NMS on a
batch of images whose scores come as one column per class. For every image and every class ``c`` other than
``background_label`` (-1: none skipped), as Paddle's CPU kernel does:

1. keep the boxes with ``score > score_threshold`` (strict);
2. sort them by descending score and keep the first ``nms_top_k`` (-1 / None: all);
3. decay each score by its overlap with the higher-ranked boxes of the same class (Eq. 4 of SOLOv2):
   ``decay[j] = min(1, min_{i < j} f(iou[i, j]) / f(cmax[i]))``, ``cmax[i] = max_{k < i} iou[k, i]``, with
   gaussian ``f(x) = exp(-x^2 / sigma)`` or linear ``f(x) = 1 - x`` (a suppressor with ``cmax = 1``, an
   exact duplicate of a higher box, is ignored: never NaN);
4. keep ``decayed = score * decay > post_threshold`` (strict);

then merge the classes of the image and keep its ``keep_top_k`` best (-1 / None: all), by decayed score.

IoU: ``normalized=True`` uses areas ``(x2 - x1) * (y2 - y1)``; ``normalized=False`` uses Paddle's pixel-
inclusive ``(x2 - x1 + 1) * (y2 - y1 + 1)`` for areas and intersections (two boxes that touch share one pixel
row). A pair that does not overlap (``min(x2) < max(x1)`` or the same in y) has IoU 0, and so has a pair whose
union is 0. An inverted box (``x2 < x1`` or ``y2 < y1``) is valid input: its area is 0 and its IoU with
every box is 0, so it neither suppresses nor is suppressed. The arithmetic (IoU, decay, thresholds) is done
in the input's float type, float32 or float64, in the order of operations of Paddle's CPU kernel.

Paddle parameters: ``use_gaussian=True`` is ``kernel="gaussian"``; Paddle's ``gaussian_sigma`` (default 2.0)
multiplies, ``exp((cmax^2 - iou^2) * gaussian_sigma)``, so ``gaussian_sigma = 1 / sigma`` (Paddle's 2.0 is
this library's default ``sigma=0.5``).

Where Paddle's kernel is unspecified or undefined, this module decides:
- ties: Paddle sorts with ``std::partial_sort``, which leaves equal scores in an unspecified order. Here,
  within a class, equal scores rank by lower box index; when merging, equal decayed scores rank by lower
  class, then by rank within the class (a stable sort);
- Paddle computes a negative "intersection" for some pairs with an inverted box, and 0 / 0 = NaN for two
  zero-area boxes with ``normalized=True``; both are IoU 0 here;
- ``nms_top_k=0`` keeps nothing (Paddle writes out of bounds); ``index`` and ``rois_num`` are int64 (Paddle:
  int32).

Every backend computes the same thing: a compiled Numba kernel parallel over (image, class) pairs for NumPy
and CPU torch input, and a padded, batched array-API formulation (each class padded to ``nms_top_k``,
batched (K, K) IoU blocks, masks instead of data-dependent loops, chunked) for Torch, CuPy and
``backend="generic"``.
"""

from __future__ import annotations

from typing import Any, Literal

import array_api_compat

from ._dispatch import resolve
from ._typing import Array
from ._validate import check_batched, check_batched_values, check_paddle_options, is_integer, namespace


def multiclass_matrix_nms(
    boxes: Array,
    scores: Array,
    *,
    score_threshold: float,
    post_threshold: float,
    nms_top_k: int | None,
    keep_top_k: int | None,
    kernel: Literal["gaussian", "linear"] = "linear",
    sigma: float = 0.5,
    background_label: int = 0,
    normalized: bool = True,
    backend: str = "auto",
) -> tuple[Array, Array, Array]:
    """Per-class box Matrix NMS over a batch of images, with PaddlePaddle's outputs.

    Semantics (thresholds, top-k, IoU, ties) are in the module docstring; they are those of
    ``paddle.vision.ops.matrix_nms``.

    Args:
        boxes (Array[B, M, 4], real): ``x1, y1, x2, y2`` boxes of each image; inverted boxes are allowed.
        scores (Array[B, C, M], floating): score of every box for every class; NaN and inf are rejected.
        score_threshold: keep ``score > score_threshold`` before the decay (any finite real).
        post_threshold: keep ``decayed > post_threshold`` after the decay (any finite real).
        nms_top_k: at most this many best boxes per class and image enter the decay; -1 or None: all.
        keep_top_k: at most this many detections per image are returned; -1 or None: all.
        kernel: ``"linear"`` (Paddle's default, ``use_gaussian=False``) or ``"gaussian"``.
        sigma: gaussian ``exp(-(iou^2 - cmax^2) / sigma)``, > 0; Paddle's ``gaussian_sigma`` is ``1 / sigma``.
        background_label: class index skipped entirely; -1 skips none.
        normalized: False uses pixel-inclusive ``(w + 1)(h + 1)`` areas and intersections.
        backend: ``"auto"``, ``"generic"`` (array-API path), ``"numba"`` (NumPy / CPU torch); for tests and
            benchmarks.

    Returns:
        (out, rois_num, index), Paddle's order, in the caller's library and on its device:
        ``out`` (Array[R, 6]): rows ``[label, score, x1, y1, x2, y2]`` (label as a float, the decayed score,
        the box), image by image, each image's rows by decreasing decayed score; dtype: the float type of
        ``scores`` promoted with that of ``boxes`` (integer boxes: that of ``scores``).
        ``rois_num`` (Array[B], int64): number of rows of each image; they sum to R.
        ``index`` (Array[R, 1], int64): ``b * M + m``, the flat position of each row's box in ``boxes``.
        No detection at all gives ``out`` of shape (0, 6), ``index`` (0, 1) and zero counts.

    Example, PP-YOLO's settings::

        # paddle.vision.ops.matrix_nms(bboxes, scores, 0.01, 0.01, 400, 100, use_gaussian=False,
        #                              background_label=-1, normalized=False, return_index=True)
        out, rois_num, index = multiclass_matrix_nms(
            bboxes, scores, score_threshold=0.01, post_threshold=0.01, nms_top_k=400, keep_top_k=100,
            kernel="linear", background_label=-1, normalized=False)
    """
    xp, plan = _prepare(boxes, scores, score_threshold, post_threshold, nms_top_k, keep_top_k, kernel, sigma,
                        background_label, normalized, backend)
    decayed, labels, box_index, counts = _run(xp, boxes, scores, plan, static=False)
    # the flat output needs its length on the host; trim the padding first so assembly stays small
    width = int(xp.max(counts)) if counts.shape[0] else 0
    out, index, valid = _assemble(xp, boxes, decayed[:, :width], labels[:, :width], box_index[:, :width], counts,
                                  plan)
    return out[valid], counts, xp.reshape(index[valid], (-1, 1))


def multiclass_matrix_nms_padded(
    boxes: Array,
    scores: Array,
    *,
    score_threshold: float,
    post_threshold: float,
    nms_top_k: int | None,
    keep_top_k: int | None,
    kernel: Literal["gaussian", "linear"] = "linear",
    sigma: float = 0.5,
    background_label: int = 0,
    normalized: bool = True,
    backend: str = "auto",
) -> tuple[Array, Array, Array]:
    """``multiclass_matrix_nms`` with static output shapes: the (B, K, 6) + count layout of export runtimes.

    Contract: every image gets exactly ``K`` rows, where ``K = keep_top_k``, or, when ``keep_top_k`` is -1 /
    None, the most detections an image can have, ``K = (number of non-background classes) *
    min(M, nms_top_k)`` (``M`` when ``nms_top_k`` is -1 / None). Row ``k`` of image ``b`` is a detection
    when ``k < rois_num[b]``; the detections come first, by decreasing decayed score, identical to that
    image's rows of ``multiclass_matrix_nms``. Padding rows are ``[-1, 0, 0, 0, 0, 0]`` in ``out`` and -1 in
    ``index``. Shapes depend only on the input shapes and the arguments, never on the data; recover the flat
    outputs with ``out[valid]``, ``index[valid]`` where ``valid = arange(K) < rois_num[:, None]``.

    Export: with Torch tensors and ``backend="generic"`` the computation has no data-dependent shape or
    branch, and ``torch.export.export`` captures it (value checks such as NaN scores are skipped while
    tracing). ``matrixnms.export.to_onnx_multiclass`` converts it to ONNX: the exporter has no lowering of its
    stable sort (``aten.sort.stable``), so ``matrixnms.export`` supplies one (TopK with an exact integer
    tie-break), verified in onnxruntime and OpenVINO. The Numba path (NumPy / CPU torch with
    ``backend="auto"``) is eager only.

    Args:
        Same as ``multiclass_matrix_nms``.

    Returns:
        (out, rois_num, index): ``out`` (Array[B, K, 6]) rows ``[label, score, x1, y1, x2, y2]``;
        ``rois_num`` (Array[B], int64) valid rows per image; ``index`` (Array[B, K], int64) ``b * M + m``
        of each row's box, -1 in padding rows.
    """
    xp, plan = _prepare(boxes, scores, score_threshold, post_threshold, nms_top_k, keep_top_k, kernel, sigma,
                        background_label, normalized, backend)
    decayed, labels, box_index, counts = _run(xp, boxes, scores, plan, static=True)
    out, index, _ = _assemble(xp, boxes, decayed, labels, box_index, counts, plan)
    return out, counts, index


# ---------------------------------------------------------------------------------------------- validation


def _prepare(boxes, scores, score_threshold, post_threshold, nms_top_k, keep_top_k, kernel, sigma,
             background_label, normalized, backend) -> tuple[Any, dict]:
    """Validate every argument (errors name it and what was received); returns the namespace and a plan."""
    xp = namespace(boxes=boxes, scores=scores)
    n_img, n_cls, m = check_batched(xp, boxes, scores)
    score_threshold, post_threshold, nms_top_k, keep_top_k, sigma = check_paddle_options(
        n_cls, score_threshold, post_threshold, nms_top_k, keep_top_k, kernel, sigma, background_label, normalized)
    _, impl = resolve("multiclass_matrix_nms", scores, backend)
    # value checks last: each is a pass over the data (and a host sync on a GPU)
    check_batched_values(xp, boxes, scores)

    out_dtype = scores.dtype if is_integer(xp, boxes) else xp.result_type(scores.dtype, boxes.dtype)
    classes = tuple(c for c in range(n_cls) if c != background_label)
    kc = m if nms_top_k is None else min(m, nms_top_k)
    plan = {
        "out_dtype": out_dtype,
        "work": xp.float64 if out_dtype == xp.float64 else xp.float32,
        "classes": classes,
        "score_threshold": score_threshold,
        "post_threshold": post_threshold,
        "kc": kc,
        # the padded width: keep_top_k, or every detection an image can have
        "width": len(classes) * kc if keep_top_k is None else keep_top_k,
        "kernel": kernel,
        "sigma": sigma,
        "normalized": bool(normalized),
        "m": m,
        "impl": impl,
    }
    return xp, plan


# ---------------------------------------------------------------------------------------------- dispatch


def _run(xp: Any, boxes: Array, scores: Array, plan: dict, static: bool) -> tuple[Array, ...]:
    """Padded results (decayed (B, W), labels (B, W), box index (B, W), counts (B,)), W = plan["width"].

    Entries at or beyond ``counts[b]`` are unspecified; ``_assemble`` masks them. ``static``: no shape may
    depend on the data (the padded variant, for tracing and export); otherwise a kernel may size its work
    by the actual number of candidates.
    """
    n_img = scores.shape[0]
    width, kc, classes = plan["width"], plan["kc"], plan["classes"]
    device = array_api_compat.device(scores)
    if not (n_img and kc and width and classes):
        # nothing can be kept: no image, no candidate slot, no output slot or no foreground class
        return (xp.zeros((n_img, width), dtype=plan["work"], device=device),
                xp.full((n_img, width), -1, dtype=xp.int64, device=device),
                xp.full((n_img, width), -1, dtype=xp.int64, device=device),
                xp.zeros((n_img,), dtype=xp.int64, device=device))
    work = plan["work"]
    b = xp.astype(boxes, work, copy=False)
    s = xp.astype(scores, work, copy=False)
    return plan["impl"](b, s, classes, plan["score_threshold"], plan["post_threshold"], kc, width, plan["kernel"],
                plan["sigma"], plan["normalized"], static)


def _assemble(xp: Any, boxes: Array, decayed: Array, labels: Array, box_index: Array, counts: Array,
              plan: dict) -> tuple[Array, Array, Array]:
    """Padded ``out`` (B, W, 6), ``index`` (B, W) and the mask of valid rows (B, W) from kernel results."""
    n_img, width = decayed.shape
    m = plan["m"]
    dtype = plan["out_dtype"]
    device = array_api_compat.device(decayed)
    valid = xp.arange(width, dtype=xp.int64, device=device)[None, :] < counts[:, None]
    box_index = xp.where(valid, box_index, xp.zeros_like(box_index))
    flat = box_index + xp.arange(n_img, dtype=xp.int64, device=device)[:, None] * m
    if n_img * m:
        rows = xp.take(xp.reshape(boxes, (n_img * m, 4)), xp.reshape(flat, (-1,)), axis=0)
        rows = xp.astype(xp.reshape(rows, (n_img, width, 4)), dtype)
    else:
        rows = xp.zeros((n_img, width, 4), dtype=dtype, device=device)
    zero = xp.zeros((), dtype=dtype, device=device)
    label = xp.where(valid, xp.astype(labels, dtype), -xp.ones((), dtype=dtype, device=device))
    score = xp.where(valid, xp.astype(decayed, dtype), zero)
    rows = xp.where(valid[:, :, None], rows, zero)
    out = xp.concat([label[:, :, None], score[:, :, None], rows], axis=2)
    index = xp.where(valid, flat, -xp.ones_like(flat))
    return out, index, valid
