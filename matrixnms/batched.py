"""Matrix NMS for a batch of images in one call: (B, N) candidates in, (B, K) padded results out.

``batched_matrix_nms`` gives every image exactly what ``matrix_nms`` gives it alone (same order of operations,
same tie rules, same decay; see ``matrixnms.nms``), with fixed-shape results so that a batch needs no Python
loop over its images. Images with fewer real candidates than N mark their padding with ``valid``.

The whole call is array operations whose shapes follow the input shapes and the options: the thresholds
become masks, the sorts are batched sorts with -inf keys for non-candidates, the decay sees only pairs of
candidates in play. On a GPU it is a fixed handful of kernel launches with no host synchronisation after the
argument checks (whose value part, one reduction, is skipped while a graph is traced, compiled or captured).
On the CPU the Numba kernels pack and decay the candidates of every image in one parallel pass; for boxes
they also sort, threshold and rank each image in compiled code (the ``batched_box_nms`` op), the images over threads.
"""

from __future__ import annotations

from typing import Literal

from ._dispatch import resolve
from ._generic_batched import decay_and_rank
from ._typing import Array
from ._validate import check_batched_detections, check_nms_options


def batched_matrix_nms(
    scores: Array,
    masks: Array | None = None,
    *,
    boxes: Array | None = None,
    valid: Array | None = None,
    labels: Array | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    score_threshold: float | None = None,
    post_threshold: float | None = None,
    pre_top_k: int | None = None,
    post_top_k: int | None = None,
    backend: str = "auto",
) -> tuple[Array, Array, Array]:
    """Matrix NMS on each image of a batch; row b equals ``matrix_nms`` on image b's valid candidates.

    Options are ``matrix_nms``'s and apply per image (``pre_top_k`` candidates per image, ``post_top_k``
    results per image).

    Args:
        scores (Array[B, N], floating): detection scores, any order. NaN or inf is an error in a valid slot
            and ignored in an invalid one.
        masks (Array[B, N, H, W], bool or 0/1): binary masks; exactly one of ``masks`` and ``boxes``. Every
            slot must hold 0/1 values (padding is usually zeros), valid or not.
        boxes (Array[B, N, 4], real): ``x1, y1, x2, y2`` boxes; an invalid slot's box is never read.
        valid (Array[B, N], bool, optional): False marks padding, never a candidate. None: every slot.
        labels (Array[B, N], int, optional): class labels; IoU between different labels counts as 0.
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k, backend: as ``matrix_nms``.

    Returns:
        (Array[B, K] int64, Array[B, K] scores.dtype, Array[B] int64): ``keep``, indices into N ordered by
        decayed score (descending, ties by lower index) padded with -1; ``decayed``, their decayed scores
        padded with 0; ``num_kept``, the real entries per row. K = ``post_top_k`` when given, else N. Same
        library and device as ``scores``. ``keep[b, :num_kept[b]]`` and ``decayed[b, :num_kept[b]]`` equal
        ``matrix_nms`` on ``scores[b, valid[b]]`` (indices mapped back to N; scores to the dtype's rounding).
    """
    xp, b, n = check_batched_detections(scores, masks, boxes, valid, labels)
    sigma, score_threshold, post_threshold, pre_top_k, post_top_k = check_nms_options(
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
    if masks is not None:
        _, decay_fn = resolve("batched_mask_decay", scores, backend)
    else:
        _, run = resolve("batched_box_nms", scores, backend)

    # (a non-finite score is an error in a valid slot of an eager call; a compiled graph skips value checks,
    # and there, as in the static form, such a score is simply not a candidate)
    candidate = xp.isfinite(scores) if valid is None else valid & xp.isfinite(scores)
    if score_threshold is not None:
        candidate = candidate & (scores >= score_threshold)
    options = (kernel, sigma, pre_top_k, post_threshold, post_top_k)
    if masks is None:
        return run(scores, boxes, candidate, labels, *options, scores.dtype)
    return decay_and_rank(decay_fn, masks, scores, candidate, labels, *options)


__all__ = ["batched_matrix_nms"]
