"""mmdetection 3.x's ``mask_matrix_nms`` (``mmdet.models.layers.matrix_nms``), same call, same returns.

Swap it in with ``from matrixnms.compat.mmdet import mask_matrix_nms`` or, for the modules that already
imported mmdetection's, ``matrixnms.compat.patch("mmdet")``.

What mmdetection does, and so does this: sort by score (descending), keep the ``nms_pre`` highest, decay
every score by Matrix NMS within its label (``exp(-sigma * (iou^2 - cmax^2))`` for the gaussian kernel,
``(1 - iou) / (1 - cmax)`` for the linear one), keep ``decayed >= filter_thr``, sort by decayed score
(descending), keep the ``max_num`` highest. A limit is active only when > 0 (``-1`` is the default: off).

What differs, on purpose:

- no NaN: two or more empty masks (union 0) and three or more identical same-label masks under the linear
  kernel (``0 / 0``) give NaN in mmdetection, which then sorts them first; here an empty mask overlaps
  nothing (IoU 0) and a duplicate of a higher mask stops suppressing (the rules of ``matrixnms.matrix_nms``);
- ties: mmdetection's ``torch.sort`` leaves the order of equal scores unspecified; here equal scores keep
  input order in the first sort (the earlier index counts as higher-scored) and equal decayed scores come
  out lower input index first;
- errors: an unknown kernel raises :class:`~matrixnms.compat.UnsupportedKernelError`, both the
  ``NotImplementedError`` mmdetection raises and a ``ValueError``; bad arrays raise ValueError / TypeError
  naming the argument where mmdetection asserts or fails inside Torch; masks must be binary (bool, or
  integers / floats holding 0 and 1); ``sigma`` must be > 0 for the gaussian kernel.
"""

from __future__ import annotations

from .._typing import Array
from ..nms import matrix_nms
from ._common import check_peer_inputs, check_strict_kernel, paper_sigma, peer_limit

_NAMES = {"scores": "scores", "masks": "masks", "labels": "labels", "areas": "mask_area"}


def _empty(scores: Array, labels: Array, masks: Array) -> tuple[Array, Array, Array, Array]:
    # mmdetection's empty return: scores.new_zeros(0), labels.new_zeros(0),
    # masks.new_zeros(0, *masks.shape[-2:]), labels.new_zeros(0) (keep_inds of the labels' dtype)
    return scores[:0], labels[:0], masks[:0], labels[:0]


def mask_matrix_nms(
    masks: Array,
    labels: Array,
    scores: Array,
    filter_thr: float = -1,
    nms_pre: int = -1,
    max_num: int = -1,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    mask_area: Array | None = None,
) -> tuple[Array, Array, Array, Array]:
    """Matrix NMS with mmdetection 3.x's signature, defaults and returns.

    Args:
        masks (Tensor[N, H, W], bool or 0/1): binary masks.
        labels (Tensor[N], int): class labels; masks of different labels never suppress each other.
        scores (Tensor[N], floating): scores, any order.
        filter_thr: keep ``decayed >= filter_thr`` after the decay; off unless > 0.
        nms_pre: decay only the ``nms_pre`` highest scores; off unless > 0.
        max_num: return at most ``max_num`` results; off unless > 0.
        kernel: ``'gaussian'`` or ``'linear'``; anything else raises ``UnsupportedKernelError`` (a
            ``NotImplementedError``, as in mmdetection, and a ``ValueError``).
        sigma: mmdetection's gaussian sigma, the reciprocal of the paper's (2.0 here is 0.5 in
            ``matrixnms.matrix_nms``); > 0; ignored by the linear kernel.
        mask_area (Tensor[N], optional): the masks' areas, used for the unions; None computes them.

    Returns:
        (Tensor[K] scores.dtype, Tensor[K] labels.dtype, Tensor[K, H, W] masks.dtype, Tensor[K] int64):
        the decayed scores, their labels, their masks and their indices into the input, ordered by decayed
        score (descending; equal ones lower index first). Same library and device as the input (Torch;
        NumPy arrays work the same way). With no candidate left (N = 0, or all below ``filter_thr``) all
        four are empty, the masks (0, H, W) and the indices of the labels' dtype, as in mmdetection.
    """
    kernel = check_strict_kernel(kernel)
    sigma = paper_sigma(sigma, kernel)
    post_threshold = peer_limit("filter_thr", filter_thr, integer=False)
    pre_top_k = peer_limit("nms_pre", nms_pre, integer=True)
    post_top_k = peer_limit("max_num", max_num, integer=True)
    _, n = check_peer_inputs(_NAMES, scores, masks, labels, mask_area)
    if n == 0:
        return _empty(scores, labels, masks)
    keep, decayed = matrix_nms(scores, masks, labels=labels, kernel=kernel, sigma=sigma,
                               post_threshold=post_threshold, pre_top_k=pre_top_k, post_top_k=post_top_k,
                               mask_areas=mask_area)
    if keep.shape[0] == 0:
        return _empty(scores, labels, masks)
    return decayed, labels[keep], masks[keep], keep


__all__ = ["mask_matrix_nms"]
