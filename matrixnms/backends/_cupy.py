"""CuPy kernels: bit-packed masks and an and-popcount "matrix product" for exact intersections on the GPU.

The candidates are packed to 32 pixels per word (one warp ballot per word, ``cuda/mask_iou.cu``), and
``inter[i, j] = sum_w popc(a[i, w] & b[j, w])`` is computed by a tiled kernel: exact integer counts from a
K x H*W/8-byte operand instead of the paper's K x H*W float32 one. The decay is
``_generic.decay_from_iou_blocks`` on the CuPy arrays (column blocks of the K x K IoU), so everything stays
on the device. Masks that are not one byte per pixel (floats, wider ints) are converted a bounded number
of candidates at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import array_api_compat
import cupy

from .. import _config, _generic
from .._dispatch import register

_SOURCE = Path(__file__).with_name("cuda").joinpath("mask_iou.cu")
_TILE = 16  # as TILE in mask_iou.cu
_THREADS = 256


@cupy.memoize(for_each_device=True)
def _module() -> Any:
    return cupy.RawModule(code=_SOURCE.read_text())


@cupy.memoize(for_each_device=True)
def _popcount_sum() -> Any:
    return cupy.ReductionKernel("uint32 x", "int64 y", "__popc(x)", "a + b", "y = a", "0", "popcount_sum")


def _packed(masks: Any, rows: Any) -> Any:
    """uint32 (len(rows), ceil(H*W / 32)) bit-packed ``masks[rows]`` (bit b of word w: pixel 32w + b)."""
    n = masks.shape[0]
    pixels = masks.shape[1] * masks.shape[2]
    words = -(-pixels // 32)
    k = rows.shape[0]
    packed = cupy.empty((k, words), dtype=cupy.uint32)
    if k == 0 or words == 0:
        return packed
    flat = cupy.ascontiguousarray(masks.reshape(n, pixels))
    if flat.dtype.itemsize == 1 and flat.dtype.kind in "biu":
        parts = [(0, flat.view(cupy.uint8), rows)]
    else:
        step = max(1, _config.CHUNK_BYTES // max(1, pixels))
        parts = [(s, (flat[rows[s:s + step]] != 0).view(cupy.uint8), cupy.arange(min(step, k - s)))
                 for s in range(0, k, step)]
    kernel = _module().get_function("pack_bits")
    for first, source, local in parts:
        count = local.shape[0]
        threads = count * words * 32
        kernel(((threads + _THREADS - 1) // _THREADS,), (_THREADS,),
               (source, cupy.ascontiguousarray(local, dtype=cupy.int64), cupy.int64(count), cupy.int64(pixels),
                cupy.int64(words), packed[first:first + count]))
    return packed


def _counts(packed_a: Any, packed_b: Any) -> Any:
    """int32 (Na, Nb) exact intersection counts of two bit-packed sets."""
    n_a, words = packed_a.shape
    n_b = packed_b.shape[0]
    out = cupy.zeros((n_a, n_b), dtype=cupy.int32)
    if n_a and n_b and words:
        grid = ((n_b + _TILE - 1) // _TILE, (n_a + _TILE - 1) // _TILE)
        _module().get_function("popcount_gram")(
            grid, (_TILE, _TILE),
            (packed_a, cupy.int64(n_a), packed_b, cupy.int64(n_b), cupy.int64(words), out))
    return out


def _areas(packed: Any) -> Any:
    if packed.shape[1] == 0:
        return cupy.zeros(packed.shape[0], dtype=cupy.int64)
    return _popcount_sum()(packed, axis=1)


def _iou(inter: Any, area_a: Any, area_b: Any, dtype: Any, metric: str) -> Any:
    xp = array_api_compat.array_namespace(inter)
    return _generic.overlap(xp, inter.astype(dtype), area_a.astype(dtype)[:, None], area_b.astype(dtype)[None, :],
                            metric)


def _rows(masks: Any) -> Any:
    return cupy.arange(masks.shape[0], dtype=cupy.int64)


@register("mask_iou", "cupy")
def mask_iou(masks_a: Any, masks_b: Any | None, metric: str) -> Any:
    packed_a = _packed(masks_a, _rows(masks_a))
    packed_b = packed_a if masks_b is None else _packed(masks_b, _rows(masks_b))
    return _iou(_counts(packed_a, packed_b), _areas(packed_a), _areas(packed_b), cupy.float64, metric)


@register("mask_iou_sorted", "cupy")
def mask_iou_sorted(masks: Any, order: Any, labels: Any | None, metric: str) -> Any:
    packed = _packed(masks, order)
    area = _areas(packed)
    iou = _iou(_counts(packed, packed), area, area, cupy.float64, metric)
    if labels is not None:
        iou = cupy.where(labels[:, None] == labels[None, :], iou, 0.0)
    return iou


@register("mask_decay", "cupy")
def mask_decay(masks: Any, order: Any, labels: Any | None, areas: Any | None, kernel: str, sigma: float,
               dtype: Any, metric: str) -> Any:
    """The ``mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by
    ``tests/test_cuda_emulation.py::test_cupy_path_on_the_stand_in_equals_reference`` (CPU emulation) and
    ``tests/test_matrix_nms.py::test_masks_agree_with_reference`` (cupy-cupy, on a GPU).
    """
    xp = array_api_compat.array_namespace(masks)
    packed = _packed(masks, order)
    inter = _counts(packed, packed)
    area = (_areas(packed) if areas is None else areas).astype(dtype)

    def iou_block(s: int, e: int) -> Any:
        return _generic.overlap(xp, inter[:, s:e].astype(dtype), area[:, None], area[None, s:e], metric)

    return _generic.decay_from_iou_blocks(xp, order.shape[0], iou_block, labels, kernel, sigma, dtype,
                                          array_api_compat.device(masks))
