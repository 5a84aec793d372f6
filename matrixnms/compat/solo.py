"""SOLO's ``matrix_nms`` (``mmdet.core.post_processing.matrix_nms`` in the SOLO repository), same call.

Swap it in with ``from matrixnms.compat.solo import matrix_nms`` or ``matrixnms.compat.patch("solo")``.

SOLO returns the decayed scores in input order and takes the input order for the score order: its caller
sorts first, and unsorted input silently decays the wrong masks. This one sorts itself, so it gives SOLO's
numbers on sorted input (equal scores keep their order, the earlier counting as higher) and the right ones on
any input. Otherwise as in :mod:`matrixnms.compat.mmdet`: no NaN (empty masks, linear-kernel duplicates),
an unknown kernel raises ``UnsupportedKernelError`` (SOLO's ``NotImplementedError`` and a ``ValueError``),
bad arrays raise ValueError / TypeError naming the argument. One more difference: for N = 0 SOLO returns
the Python list ``[]``; this returns an empty array like ``cate_scores`` (same length, and it still
compares and indexes like the non-empty result).
"""

from __future__ import annotations

from .._typing import Array
from ._common import SOLO_NAMES, check_strict_kernel, decayed_in_input_order

def matrix_nms(
    seg_masks: Array,
    cate_labels: Array,
    cate_scores: Array,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    sum_masks: Array | None = None,
) -> Array:
    """Matrix NMS with SOLO's signature and return: the decayed scores, in input order.

    Args:
        seg_masks (Tensor[N, H, W], bool or 0/1): binary masks.
        cate_labels (Tensor[N], int): class labels; different labels never suppress each other.
        cate_scores (Tensor[N], floating): scores; SOLO needs them sorted descending, this does not.
        kernel: ``'gaussian'`` or ``'linear'``; anything else raises ``UnsupportedKernelError``.
        sigma: SOLO's gaussian sigma (the reciprocal of the paper's); > 0; ignored by the linear kernel.
        sum_masks (Tensor[N], optional): the masks' areas, used for the unions; None computes them.

    Returns:
        Tensor[N], cate_scores.dtype: the decayed score of each input, in input order; same library and
        device as ``cate_scores``.
    """
    kernel = check_strict_kernel(kernel)
    return decayed_in_input_order(SOLO_NAMES, cate_scores, seg_masks, cate_labels, sum_masks, kernel, sigma)


__all__ = ["matrix_nms"]
