"""AdelaiDet's ``matrix_nms`` (``adet.modeling.solov2.utils``), same call: its argument order, its return.

Swap it in with ``from matrixnms.compat.adelaidet import matrix_nms`` or
``matrixnms.compat.patch("adelaidet")``.

Same maths as SOLO's (see :mod:`matrixnms.compat.solo`: decayed scores in input order; sorted here, so
unsorted input is right too; no NaN; an empty array, not ``[]``, for N = 0), with AdelaiDet's argument
order and its kernel rule, mirrored because a drop-in must accept what AdelaiDet configs say: **any string
other than 'linear' means the gaussian kernel**, silently ('gauss', 'Gaussian', 'matrix' ...). A kernel that
is not a string is a TypeError (AdelaiDet would take it for gaussian too; that is a bug, not a config).
``sum_masks`` is required there; None computes the areas here.
"""

from __future__ import annotations

from typing import Any

from .._typing import Array
from ._common import SOLO_NAMES, decayed_in_input_order

def _adelaidet_kernel(kernel: Any) -> str:
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a string ('linear', else gaussian), got {type(kernel).__name__}")
    return "linear" if kernel == "linear" else "gaussian"


def matrix_nms(
    cate_labels: Array,
    seg_masks: Array,
    sum_masks: Array | None,
    cate_scores: Array,
    sigma: float = 2.0,
    kernel: str = "gaussian",
) -> Array:
    """Matrix NMS with AdelaiDet's signature and return: the decayed scores, in input order.

    Args:
        cate_labels (Tensor[N], int): class labels; different labels never suppress each other.
        seg_masks (Tensor[N, H, W], bool or 0/1): binary masks.
        sum_masks (Tensor[N] or None): the masks' areas, used for the unions; None computes them.
        cate_scores (Tensor[N], floating): scores, any order.
        sigma: AdelaiDet's gaussian sigma (the reciprocal of the paper's); > 0; ignored by the linear kernel.
        kernel: ``'linear'``; any other string means gaussian, as in AdelaiDet.

    Returns:
        Tensor[N]: as :func:`matrixnms.compat.solo.matrix_nms`, the decayed scores in input order.
    """
    kernel = _adelaidet_kernel(kernel)
    return decayed_in_input_order(SOLO_NAMES, cate_scores, seg_masks, cate_labels, sum_masks, kernel, sigma)


__all__ = ["matrix_nms"]
