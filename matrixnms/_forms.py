"""The forms a mask set takes, brought to what the kernels read.

A dense mask set is an array (N, *S) with at least one trailing dimension; the overlap counts every trailing
element. The kernels read (N, H, W): ``as_frames`` views (N, P) as (N, 1, P) and (N, *S) with more than two
trailing dimensions as (N, prod(S[:-1]), S[-1]). A mask's pixels keep their order in memory, so the view's
tight box (rows and 64-element words of its last axis) holds every nonzero element: box pruning and the
counts inside the boxes stay exact.
"""

from __future__ import annotations

import math
from typing import Any

from ._typing import Array


def as_frames(xp: Any, masks: Array) -> Array:
    """(N, *S) dense masks as an (N, H, W) view (a copy only where the array's strides forbid a view)."""
    if masks.ndim == 3:
        return masks
    n = masks.shape[0]
    if masks.ndim == 2:
        return xp.reshape(masks, (n, 1, masks.shape[1]))
    rows = math.prod(int(d) for d in masks.shape[1:-1])
    return xp.reshape(masks, (n, rows, masks.shape[-1]))
