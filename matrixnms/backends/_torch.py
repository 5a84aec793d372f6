"""Torch kernels: exact mask intersections with an int8 matrix multiply, for CUDA first and CPU too.

The paper's pseudo-code multiplies float32 masks; here the 0/1 masks are multiplied as int8 with int32
accumulation (``torch._int_mm``: tensor cores on CUDA, VNNI/AMX on x86), so every intersection count is
exact for any mask size, and the (K, H*W) operands take a quarter of the float32 memory. Bool, uint8 and
int8 masks are gathered as they are and reinterpreted as int8; the pixel axis is processed in chunks of at
most ``_config.CHUNK_BYTES`` of gathered candidates, so memory stays bounded for large N * H * W. The
decay itself is ``_generic.decay_from_iou_blocks`` (column blocks of the K x K IoU).

Measured on a 2-core x86 CPU, N = 500 masks of 200 x 336: the int8 product is about 4x faster than the
float32 one (which ``_generic`` uses), so the CPU path uses it as well. Everything is tensor operations with
shapes known from the inputs' shapes: no ``.item()``, no host copies, no branching on values, so the
functions trace under ``torch.compile`` and can be captured in a CUDA graph for a fixed N.

``torch._int_mm`` on CUDA needs more than 16 rows and multiples of 8 for the inner and column sizes: the
candidates are padded with extra rows (dropped from the results) and the pixel chunks with zero columns,
which change no count.
"""

from __future__ import annotations

import array_api_compat.torch as torch_xp
import torch

from .. import _config, _generic
from .._dispatch import register

# Row / inner-dimension padding that satisfies torch._int_mm on CUDA (rows > 16, sizes multiple of 8).
_MIN_ROWS = 24
_ALIGN = 8


def _padded(n: int) -> int:
    return max(_MIN_ROWS, -(-n // _ALIGN) * _ALIGN)


def _flat(masks: torch.Tensor) -> torch.Tensor:
    return masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2])


def _gather(flat: torch.Tensor, rows: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """int8 (len(rows), padded width) copy of ``flat[rows, start:stop]``, zero columns appended."""
    # gather the bytes before any cast; advanced indexing, as index_select on CPU can be ~100x slower
    part = flat[rows, start:stop]
    if part.dtype in (torch.bool, torch.uint8, torch.int8):
        part = part.view(torch.int8)  # same bytes, 0/1
    else:
        part = (part != 0).to(torch.int8)
    width = stop - start
    if width % _ALIGN:
        part = torch.nn.functional.pad(part, (0, _ALIGN - width % _ALIGN))
    return part


def _padded_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` extended to ``_padded(len)`` entries; the extra rows are discarded from the results."""
    extra = _padded(rows.shape[0]) - rows.shape[0]
    return torch.cat([rows, rows.new_zeros(extra)])


def _counts(masks_a: torch.Tensor, rows_a: torch.Tensor, masks_b: torch.Tensor | None,
            rows_b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact intersections (Na, Nb) and areas of ``masks_a[rows_a]`` vs ``masks_b[rows_b]`` (or itself).

    Returns int32 counts (int64 when H*W >= 2**31) and areas of the same dtype, on the masks' device.
    """
    n_a = rows_a.shape[0]
    n_b = n_a if rows_b is None else rows_b.shape[0]
    pixels = masks_a.shape[1] * masks_a.shape[2]
    wide = torch.int64 if pixels >= 2**31 else torch.int32
    device = masks_a.device
    if n_a == 0 or n_b == 0:  # nothing to gather the padding rows from
        return (torch.zeros((n_a, n_b), dtype=wide, device=device), torch.zeros(n_a, dtype=wide, device=device),
                torch.zeros(n_b, dtype=wide, device=device))
    flat_a = _flat(masks_a)
    flat_b = None if masks_b is None else _flat(masks_b)
    rows_a = _padded_rows(rows_a)
    rows_b = None if rows_b is None else _padded_rows(rows_b)
    inter = torch.zeros((rows_a.shape[0], rows_a.shape[0] if rows_b is None else rows_b.shape[0]), dtype=wide,
                        device=device)
    area_a = torch.zeros(rows_a.shape[0], dtype=wide, device=device)
    area_b = None if rows_b is None else torch.zeros(rows_b.shape[0], dtype=wide, device=device)
    # one chunk of the gathered operands (int8) stays within CHUNK_BYTES; int32 sums of a chunk can't overflow
    step = min(max(_ALIGN, _config.CHUNK_BYTES // (inter.shape[0] + inter.shape[1]) // _ALIGN * _ALIGN), 2**30)
    for start in range(0, pixels, step):
        stop = min(start + step, pixels)
        a = _gather(flat_a, rows_a, start, stop)
        b = a if rows_b is None else _gather(flat_b, rows_b, start, stop)
        inter = inter + torch._int_mm(a, b.t()).to(wide)
        if area_b is not None:
            # row sums as a product with ones: far faster than an int8 reduction on CPU, tensor cores on CUDA
            ones = torch.ones((_ALIGN, a.shape[1]), dtype=torch.int8, device=device).t()  # column-major, as b.t()
            area_a = area_a + torch._int_mm(a, ones)[:, 0].to(wide)
            area_b = area_b + torch._int_mm(b, ones)[:, 0].to(wide)
    if area_b is None:  # a set against itself: the areas are the diagonal
        area_a = torch.diagonal(inter)
        area_b = area_a
    return inter[:n_a, :n_b], area_a[:n_a], area_b[:n_b]


def _iou(inter: torch.Tensor, area_a: torch.Tensor, area_b: torch.Tensor, dtype: torch.dtype,
         metric: str) -> torch.Tensor:
    return _generic.overlap(torch_xp, inter.to(dtype), area_a.to(dtype)[:, None], area_b.to(dtype)[None, :], metric)


def _arange(masks: torch.Tensor) -> torch.Tensor:
    return torch.arange(masks.shape[0], device=masks.device)


@register("mask_iou", "torch")
def mask_iou(masks_a: torch.Tensor, masks_b: torch.Tensor | None, metric: str) -> torch.Tensor:
    rows_b = None if masks_b is None else _arange(masks_b)
    inter, area_a, area_b = _counts(masks_a, _arange(masks_a), masks_b, rows_b)
    return _iou(inter, area_a, area_b, torch.float64, metric).to(torch.get_default_dtype())


@register("mask_iou_sorted", "torch")
def mask_iou_sorted(masks: torch.Tensor, order: torch.Tensor, labels: torch.Tensor | None,
                    metric: str) -> torch.Tensor:
    inter, area, _ = _counts(masks, order, None, None)
    iou = _iou(inter, area, area, torch.float64, metric)
    if labels is not None:
        iou = torch.where(labels[:, None] == labels[None, :], iou, torch.zeros_like(iou))
    return iou


@register("mask_decay", "torch")
def mask_decay(masks: torch.Tensor, order: torch.Tensor, labels: torch.Tensor | None, areas: torch.Tensor | None,
               kernel: str, sigma: float, dtype: torch.dtype, metric: str) -> torch.Tensor:
    """The ``mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by ``tests/test_matrix_nms.py::test_masks_agree_with_reference``
    (torch-torch; torch-cuda-torch on a GPU).
    """
    k = order.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=dtype, device=masks.device)
    inter, counted, _ = _counts(masks, order, None, None)
    area = (counted if areas is None else areas).to(dtype)

    def iou_block(s: int, e: int) -> torch.Tensor:
        return _generic.overlap(torch_xp, inter[:, s:e].to(dtype), area[:, None], area[None, s:e], metric)

    return _generic.decay_from_iou_blocks(torch_xp, k, iou_block, labels, kernel, sigma, dtype, masks.device)
