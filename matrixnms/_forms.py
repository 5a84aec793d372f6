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


# --- sparse forms: COCO RLE sequences and CroppedMasks ---------------------------------------------------------


def is_sparse_form(masks: Any) -> bool:
    """A sequence of COCO RLE dicts (list / tuple), a :class:`~matrixnms.CroppedMasks` or a converted set."""
    from ._sparse import SparseMasks
    from .cropped import CroppedMasks

    return isinstance(masks, (list, tuple, CroppedMasks, SparseMasks))


def to_sparse(masks: Any, name: str = "masks", n: int | None = None) -> Any:
    """The ``_sparse.SparseMasks`` of an RLE sequence or CroppedMasks (``n``: the expected count)."""
    from . import _sparse
    from .cropped import CroppedMasks, sparse_of

    if isinstance(masks, _sparse.SparseMasks):
        sparse = masks
    else:
        sparse = sparse_of(masks) if isinstance(masks, CroppedMasks) else _sparse.from_rle(masks, name)
    if n is not None and sparse.n != n:
        raise ValueError(f"{name} must have one mask per score: expected {n}, got {sparse.n}")
    return sparse


def dense_to_sparse(masks: Array, name: str) -> Any:
    """Dense (N, H, W) masks as a ``SparseMasks`` (for comparing them with an RLE or cropped set)."""
    from .cropped import CroppedMasks, sparse_of

    if masks.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W) to be compared with RLE or cropped masks, got "
                         f"{tuple(masks.shape)}")
    return sparse_of(CroppedMasks.from_dense(masks))


def to_host(x: Array | None) -> Any:
    """A NumPy array of ``x`` (a device array is copied to the host once); None stays None."""
    if x is None:
        return None
    import numpy as np

    from .cropped import _host

    return np.asarray(_host(x))


def resolve_sparse(op: str, backend: str):
    """The CPU implementation of a sparse op: ``backend`` "numba" / "generic", else the best installed one."""
    import numpy as np

    from ._dispatch import resolve

    return resolve(op, np.zeros(0), backend if backend in ("auto", "generic", "numba") else "auto")[1]
