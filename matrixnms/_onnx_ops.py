"""The custom op behind the static graph's mask overlap counts, and the ONNX lowerings the exporter lacks.

``matrixnms::overlap_counts`` counts ``|A_i and A_j|`` of 0/1 masks: a float32 matmul in eager, compiled and
scripted Torch, integer arithmetic cell by cell of a grid in ONNX (``_overlap_counts_onnx``). The stable sort
(``aten.sort.stable``) gets a lowering that every runtime keeps stable. ``matrixnms.export`` uses both and
passes ``ONNX_TRANSLATIONS`` to the exporter.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from . import _config

def _grid_side(size: int, grid: int) -> int:
    """Cells along one side of ``size`` pixels: the largest divisor of ``size`` that is at most ``grid``."""
    return max(d for d in range(1, max(1, min(grid, size)) + 1) if size % d == 0)


# bytes per (cell, mask, mask) entry of the per-cell counts, their flat int32 targets and their split copies
_CELL_PAIR_BYTES = 16
# smaller cells save less multiplication than their scatters and gathers cost (SOLOv2's 32 x 32 masks of
# solov2_ref.deploy: 2 x 2 cells)
_MIN_CELL_PIXELS = 256


def _cell_grid(height: int, width: int, k: Any, grid: int) -> Tuple[int, int]:
    """(sy, sx) cells for K masks of height x width: at most ``grid`` along each side, fewer where a cell
    would hold under ``_MIN_CELL_PIXELS`` pixels or where every mask in every cell (the worst case: cells x
    K x K entries) would exceed ``_config.CHUNK_BYTES``."""
    for g in range(max(1, grid), 0, -1):
        sy, sx = _grid_side(height, g), _grid_side(width, g)
        small = sy * sx > 1 and (height // sy) * (width // sx) < _MIN_CELL_PIXELS
        large = isinstance(k, int) and sy * sx * k * k * _CELL_PAIR_BYTES > _config.CHUNK_BYTES
        if g == 1 or not (small or large):
            return sy, sx
    return 1, 1


@torch.library.custom_op("matrixnms::overlap_counts", mutates_args=())
def overlap_counts(masks: Tensor, order: Tensor, grid: int) -> Tensor:
    """Pixel overlap counts (K, K) int32 of the 0/1 ``masks[order]``: ``|A_i and A_j|``, the areas on the diagonal.

    ``masks`` (N, H, W) uint8, ``order`` (K,) int64 rows of it. Eager, compiled and scripted Torch count with
    one float32 matmul (exact while H * W <= 2**24); the ONNX graph counts in integers, cell by cell of a grid
    (``ONNX_TRANSLATIONS``). ``grid`` only shapes the ONNX graph.
    """
    rows = masks.reshape(masks.shape[0], -1).index_select(0, order).to(torch.float32)
    return torch.matmul(rows, rows.t()).to(torch.int32)


@overlap_counts.register_fake
def _overlap_counts_shape(masks: Tensor, order: Tensor, grid: int) -> Tensor:
    return masks.new_empty((order.shape[0], order.shape[0]), dtype=torch.int32)


def _rows(x: Any, count: int) -> list:
    """The ``count`` rows (1, L) of ``x`` (count, L): one Split (a list of one for a single row)."""
    from onnxscript import opset18 as op

    if count == 1:
        return [x]
    return list(op.Split(x, axis=0, num_outputs=count))


def _overlap_counts_onnx(masks: Any, order: Any, grid: int) -> Any:
    """ONNX for ``overlap_counts``: integer counts of the masks present in each grid cell, summed in int32.

    The frame is cut into ``sy x sx`` cells of ``h x w`` pixels. A mask is present in a cell when one of its
    pixels is (two ``ReduceMax`` over contiguous runs: every pixel read once). Per cell, the present masks
    (padded to the largest count, ``m``) are gathered as ``h`` row segments of ``w`` pixels each, and one batched
    ``MatMulInteger`` (uint8 x uint8 -> int32; integer kernels in onnxruntime, an int32 MatMul in OpenVINO,
    never a float op on the masks) counts their overlaps within the cell: a mask absent from a cell has no
    pixel to add there, so the cells' counts sum to the exact whole-frame counts. The sum is one
    ``ScatterElements(reduction="add")`` per cell into a flat (K + m)**2 int32 matrix, so no update in one
    call shares a target (onnxruntime's ScatterND races on repeated targets within one call, and nothing
    promises that its ScatterElements never will); padding slots go to the rows and columns beyond K,
    sliced off at the end.
    """
    from onnx import TensorProto, helper
    from onnxscript import opset18 as op

    height, width = masks.shape[1], masks.shape[2]
    if not isinstance(height, int) or not isinstance(width, int):
        raise ValueError(f"the ONNX overlap counts need static mask sizes, got {masks.shape}")
    if isinstance(order.shape[0], int) and order.shape[0] > 23170:
        raise ValueError(f"the ONNX overlap counts take at most 23170 rows (int32 targets), got {order.shape[0]}")
    sy, sx = _cell_grid(height, width, order.shape[0], grid)
    h, w, cells = height // sy, width // sx, sy * sx

    def ints(*values: int) -> Any:
        return op.Constant(value_ints=list(values))

    def scalar(value: int) -> Any:
        return op.Constant(value_int=value)

    n = op.Shape(masks, start=0, end=1)
    k = op.Shape(order)
    k0 = op.Squeeze(k)
    runs = op.Reshape(masks, ints(-1, w))                       # (N * H * sx, w): the row segments
    # (N, sy, sx): does mask i have a pixel in cell (cy, cx)? (max over each segment, then over the h segments)
    seen = op.Reshape(op.ReduceMax(runs, ints(1), keepdims=0), op.Concat(n, ints(sy, h, sx), axis=0))
    seen = op.ReduceMax(op.Transpose(seen, perm=[0, 1, 3, 2]), ints(3), keepdims=0)
    present = op.Cast(op.Transpose(op.Reshape(op.Gather(seen, order), op.Concat(k, ints(cells), axis=0)),
                                   perm=[1, 0]), to=TensorProto.INT64)          # (cells, K), sorted positions
    m = op.Max(op.ReduceMax(op.ReduceSum(present, ints(1), keepdims=0), keepdims=1), ints(1))
    position = op.Range(scalar(0), k0, scalar(1))
    # the present positions first, in increasing order (distinct keys: no tie for any TopK to break)
    key = op.Sub(op.Mul(present, op.Add(k0, scalar(1))), position)
    _, slot = op.TopK(key, m, axis=1, largest=1, sorted=1)                  # (cells, m)
    taken = op.Cast(op.GatherElements(present, slot, axis=1), to=TensorProto.BOOL)
    cell = op.Range(scalar(0), scalar(cells), scalar(1))
    first = op.Add(op.Mul(op.Div(cell, scalar(sx)), scalar(h * sx)), op.Mod(cell, scalar(sx)))
    start = op.Add(op.Mul(op.Gather(order, slot), scalar(height * sx)), op.Unsqueeze(first, ints(1)))
    segments = op.Add(op.Unsqueeze(start, ints(2)), op.Mul(op.Range(scalar(0), scalar(h), scalar(1)), scalar(sx)))
    block = op.Reshape(op.Gather(runs, segments), op.Concat(ints(cells), m, ints(h * w), axis=0))
    counts = op.MatMulInteger(block, op.Transpose(block, perm=[0, 2, 1]))      # (cells, m, m) int32
    spare = op.Add(op.Range(scalar(0), op.Squeeze(m), scalar(1)), k0)      # one spare target per slot
    target = op.Cast(op.Where(taken, slot, spare), to=TensorProto.INT32)  # targets < (2K)**2 < 2**31
    length = op.Add(k, m)                                                    # (1,) int64: K + m
    side = op.Cast(op.Squeeze(length), to=TensorProto.INT32)
    # flat targets (target_i * side + target_j): distinct within a cell, so no scatter call repeats one
    flat = op.Add(op.Unsqueeze(op.Mul(target, side), ints(2)), op.Unsqueeze(target, ints(1)))
    pairs = ints(cells, -1)
    flats = _rows(op.Reshape(flat, pairs), cells)
    updates = _rows(op.Reshape(counts, pairs), cells)
    total = op.ConstantOfShape(op.Concat(ints(1), op.Mul(length, length), axis=0),
                               value=helper.make_tensor("zero", TensorProto.INT32, [1], [0]))
    for c in range(cells):
        total = op.ScatterElements(total, flats[c], updates[c], axis=1, reduction="add")
    square = op.Reshape(total, op.Concat(length, length, axis=0))
    return op.Slice(square, ints(0, 0), op.Concat(k, k, axis=0), ints(0, 1))


def _stable_sort_onnx(values: Any, stable: Optional[bool] = None, dim: int = -1, descending: bool = False) -> Any:
    """ONNX for ``aten.sort.stable`` (which the exporter cannot lower), stable in every runtime.

    ONNX specifies that TopK breaks ties by the lower index, but OpenVINO's CPU TopK does not (tested: equal
    scores come out in another order). So ties are broken explicitly: TopK over the whole axis (ties adjacent,
    in any order), a group number per run of equal values (CumSum of the changes), then an exact integer
    TopK of ``group * size + index``, unique keys whose order is the stable one. The keys stay below
    ``size**2 < 2**31``: exact even where OpenVINO narrows int64 to int32.
    """
    from onnx import TensorProto
    from onnxscript import opset18 as op

    length = values.shape[dim] if values.shape is not None else None
    size = op.Gather(op.Shape(values), op.Constant(value_ints=[dim]))
    by_value, index = op.TopK(values, size, axis=dim, largest=1 if descending else 0, sorted=1)
    if length is not None and int(length) <= 1:
        return by_value, index
    if length is None or int(length) > _MAX_SORT_LENGTH:
        raise ValueError(f"a stable sort in an ONNX graph needs a static axis of at most {_MAX_SORT_LENGTH}, "
                         f"got {length}")
    head = op.Slice(by_value, op.Constant(value_ints=[0]), op.Constant(value_ints=[-1]), op.Constant(value_ints=[dim]))
    tail = op.Slice(by_value, op.Constant(value_ints=[1]), op.Constant(value_ints=[int(length)]),
                    op.Constant(value_ints=[dim]))
    change = op.Cast(op.Not(op.Equal(head, tail)), to=TensorProto.INT64)
    first = op.Slice(op.Mul(change, op.Constant(value_int=0)), op.Constant(value_ints=[0]), op.Constant(value_ints=[1]),
                     op.Constant(value_ints=[dim]))
    group = op.CumSum(op.Concat(first, change, axis=dim), op.Constant(value_int=dim))
    key = op.Add(op.Mul(group, op.Constant(value_int=int(length))), index)
    _, position = op.TopK(key, size, axis=dim, largest=0, sorted=1)
    return op.GatherElements(by_value, position, axis=dim), op.GatherElements(index, position, axis=dim)


# group * size + index < 2**31
_MAX_SORT_LENGTH = 46340


# the exporter's lowerings of what it cannot lower itself: this module's custom op and the stable sort;
# export_onnx passes them (torch.onnx.export(..., custom_translation_table=ONNX_TRANSLATIONS) to export a
# model some other way)
ONNX_TRANSLATIONS = {torch.ops.matrixnms.overlap_counts.default: _overlap_counts_onnx,
                     torch.ops.aten.sort.stable: _stable_sort_onnx}
