"""Numba CPU kernels: bit-packed, box-pruned mask IoU and a fused, sparse Matrix NMS decay.

Serves NumPy arrays and Torch CPU tensors (zero-copy through ``Tensor.numpy()``); results come back in the
caller's library. The semantics are those of ``matrixnms._generic`` (the executable specification); only
the algorithm differs:

1. **Bounds.** One pass over each candidate's bytes, in score order (``order`` goes into the kernel, so
   ``masks[order]`` is never copied), turns every 64 pixels of a row into a 64-bit word with one vector
   compare (``vptestmb`` / ``pmovmskb``) and keeps the OR of the rows: that gives the tight box (first
   and last row and column). ``masks_to_boxes`` is this pass alone.
2. **Packing.** A second pass reads only each box's rows and 64-pixel columns and stores the words
   column-major inside the box (word ``k``, row ``y`` at ``offset + (k - k0) * rows + (y - y0)``). A
   mask costs (box rows) x (box words) x 8 bytes: for typical detections all candidates fit in L2 cache.
3. **Pruning.** A pair can only intersect if its boxes overlap and (class-aware) its labels agree: pairs
   are enumerated per label group and skipped on disjoint boxes; a surviving pair is counted over the
   overlapping rows of each overlapping word column, contiguous runs that vectorise to ``vpopcntq``.
   Counts are exact integers, so every IoU equals the reference's ``inter / union`` bit for bit.
4. **Fused decay.** Matrix NMS needs column ``j`` of the upper-triangular IoU matrix twice: for
   ``cmax[j]``, and for ``decay[j] = min_i f(iou[i, j]) / f(cmax[i])`` over the higher candidates ``i``
   whose IoU with ``j`` is nonzero (a zero IoU gives a term >= 1, which never lowers the minimum).
   Columns are processed in blocks in score order: phase one stores each column's nonzero IoUs (a sparse
   list; memory follows the nonzero count, bounded by ``block x K`` entries) and its ``cmax``; phase two,
   once every ``cmax[i]`` with ``i`` in or before the block is known, reduces each column to its decay.
   No K x K array exists.

Parallelism: every pass runs on the threads of ``_numba_runtime.run_claimed`` (the calling thread and
``numba.get_num_threads() - 1`` helpers, each claiming the next mask / column / row from an atomic counter, so
the triangular pair counts balance themselves; why plain threads and not ``prange``: see that module). Inputs
smaller than ``SERIAL_BYTES`` run on the calling thread only. Calls are thread-safe.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .._dispatch import register
from .._typing import Array
from ._numba_runtime import (
    DONE, NEXT, SLOT, element_pointer, host, is_vector_and_index, run_claimed, take_ticket, thread_count, view, wrap,
)

# Masks that are not contiguous 0/1 bytes (floats, wider ints, strided views) are converted this many
# bytes at a time, never as one full copy.
CONVERT_BYTES = 64 * 2**20
# Capacity in bytes of the sparse IoU lists (int64 index + float64 IoU per entry) one thread may write per
# block of decay columns; only what is written becomes resident.
BLOCK_BYTES = 64 * 2**20
# Mask bytes below which a call runs on one thread.
SERIAL_BYTES = 2 * 2**20

_U0 = np.uint64(0)
_U1 = np.uint64(1)


# Hot helpers that only index arrays they are given are compiled without Numba's reference counting
# (NRT): otherwise every call from the pair loops pays ~10 atomic increments and decrements.
_leaf = njit(cache=True, _nrt=False)


# --- LLVM intrinsics ------------------------------------------------------------------------------------


def _bit_intrinsic(name: str, *flags: int):
    """A uint64 -> uint64 LLVM bit intrinsic; ``flags`` are its trailing i1 arguments."""

    def typer(typingctx: Any, x: Any):
        if x != types.uint64:
            return None

        def codegen(context: Any, builder: Any, sig: Any, args: Any):
            extra = [ir.Constant(ir.IntType(1), f) for f in flags]
            fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)] + [e.type for e in extra])
            fn = builder.module.declare_intrinsic(name, [ir.IntType(64)], fnty)
            return builder.call(fn, [args[0], *extra])

        return types.uint64(types.uint64), codegen

    return intrinsic(typer)


_popcount = _bit_intrinsic("llvm.ctpop")
# zero counts with is_zero_poison = false: defined (64) for a zero word
_ctz = _bit_intrinsic("llvm.cttz", 0)
_clz = _bit_intrinsic("llvm.ctlz", 0)


@intrinsic
def _nonzero_bits64(typingctx: Any, buf: Any, start: Any):
    """64 bits, bit i set where ``buf[start + i] != 0``, for a 1-D uint8 ``buf``; needs start + 64 <= len."""
    if not is_vector_and_index(buf, types.uint8, start):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any):
        vector = ir.VectorType(ir.IntType(8), 64)
        pointer = builder.bitcast(element_pointer(context, builder, sig, args), vector.as_pointer())
        nonzero = builder.icmp_unsigned("!=", builder.load(pointer, align=1), ir.Constant(vector, None))
        return builder.bitcast(nonzero, ir.IntType(64))

    return types.uint64(buf, start), codegen


# --- bounds and packing -----------------------------------------------------------------------------------


@_leaf
def _word(buf, row, k, w):
    """Bits of pixels 64k .. 64k + 63 of the row at byte ``row`` of width ``w``; bits past w are 0."""
    p = row + 64 * k
    n = w - 64 * k
    if n >= 64:
        return _nonzero_bits64(buf, p)
    if p + 64 <= buf.shape[0]:
        # the bytes past the row belong to the next row: load them anyway and drop their bits
        return _nonzero_bits64(buf, p) & ((_U1 << np.uint64(n)) - _U1)
    bits = _U0
    for q in range(n):  # the last row of the buffer
        if buf[p + q] != 0:
            bits |= _U1 << np.uint64(q)
    return bits


@_leaf
def _mask_bounds(buf, base, h, w, columns, out):
    """Tight inclusive bounds (y0, y1, x0, x1) of the (h, w) mask at byte ``base`` into ``out``.

    An empty mask gets (h, -1, w, -1), which overlaps nothing.
    """
    full = w // 64
    nw = columns.shape[0]
    for k in range(nw):
        columns[k] = _U0
    y0, y1 = h, -1
    for y in range(h):
        row = base + y * w
        any_bits = _U0
        for k in range(full):
            bits = _nonzero_bits64(buf, row + 64 * k)
            columns[k] |= bits
            any_bits |= bits
        if full < nw:
            bits = _word(buf, row, full, w)
            columns[full] |= bits
            any_bits |= bits
        if any_bits != _U0:
            if y0 == h:
                y0 = y
            y1 = y
    x0, x1 = w, -1
    for k in range(nw):
        if columns[k] != _U0:
            if x0 == w:
                x0 = 64 * k + np.int64(_ctz(columns[k]))
            x1 = 64 * k + 63 - np.int64(_clz(columns[k]))
    out[0] = y0
    out[1] = y1
    out[2] = x0
    out[3] = x1


@njit(cache=True, nogil=True)
def _bounds_worker(state, total, buf, sources, h, w, box):
    """Claim masks t and write ``box[t]`` = tight inclusive (y0, y1, x0, x1) of mask ``sources[t]``."""
    columns = np.empty((w + 63) // 64, np.uint64)
    while True:
        t = take_ticket(state, NEXT)
        if t >= total:
            return
        _mask_bounds(buf, sources[t] * h * w, h, w, columns, box[t])
        take_ticket(state, DONE)


@njit(cache=True, nogil=True)
def _pack_worker(state, total, buf, sources, h, w, box, offset, data, area):
    """Claim masks t and pack mask ``sources[t]`` inside ``box[t]`` into ``data[offset[t]:]``, word-column-major
    (word k, row y at ``offset[t] + (k - k0) * rows + (y - y0)``); ``area[t]`` = its pixel count.

    Only the box's rows and 64-pixel words are read.
    """
    while True:
        t = take_ticket(state, NEXT)
        if t >= total:
            return
        y0, y1, x0, x1 = box[t, 0], box[t, 1], box[t, 2], box[t, 3]
        rows = y1 - y0 + 1
        k0 = x0 >> 6
        count = _U0
        for y in range(y0, y1 + 1):
            row = sources[t] * h * w + y * w
            p = offset[t] + y - y0
            for k in range(k0, (x1 >> 6) + 1):
                bits = _word(buf, row, k, w)
                data[p + (k - k0) * rows] = bits
                count += _popcount(bits)
        area[t] = np.float64(count)
        take_ticket(state, DONE)


# --- pairwise IoU ----------------------------------------------------------------------------------------


@_leaf
def _mask_overlaps(data_a, offset_a, box_a, area_a, a, data_b, offset_b, box_b, area_b, members, start, stop,
                   index, value, ios):
    """The nonzero IoUs of packed mask ``a`` of set A with the masks ``members[start:stop]`` of set B.

    Writes the members' numbers to ``index`` and their IoUs to ``value``; returns how many. IoU is
    ``inter / (area_a[a] + area_b[b] - inter)`` clipped to 1, 0 where that union is not positive (as
    ``_generic``; the areas may be the caller's ``mask_areas``); with ``ios`` the denominator is the smaller
    area instead of the union. ``inter`` is counted exactly over the
    overlapping rows of the overlapping word columns of the two boxes. The arguments are whole arrays and
    row numbers, not row views, which would be reference-counted per pair.
    """
    ay0, ay1, ax0, ax1 = box_a[a, 0], box_a[a, 1], box_a[a, 2], box_a[a, 3]
    rows_a = ay1 - ay0 + 1
    count = 0
    for q in range(start, stop):
        b = members[q]
        ya = max(ay0, box_b[b, 0])
        yb = min(ay1, box_b[b, 1])
        xa = max(ax0, box_b[b, 2])
        xb = min(ax1, box_b[b, 3])
        if ya > yb or xa > xb:
            continue
        rows_b = box_b[b, 1] - box_b[b, 0] + 1
        # unsigned indices: no negative-index wraparound, so the inner loop vectorises (no gathers)
        pa = np.uint64(offset_a[a] + (ya - ay0) + ((xa >> 6) - (ax0 >> 6)) * rows_a)
        pb = np.uint64(offset_b[b] + (ya - box_b[b, 0]) + ((xa >> 6) - (box_b[b, 2] >> 6)) * rows_b)
        n = np.uint64(yb - ya + 1)
        words = (xb >> 6) - (xa >> 6) + 1
        total = _U0
        if rows_a == 1 and rows_b == 1:
            # one-row views ((N, P) masks seen as (N, 1, P)): the window's words are contiguous in both
            for t in range(np.uint64(words)):
                total += _popcount(data_a[pa + t] & data_b[pb + t])
        else:
            for _ in range(words):
                for t in range(n):
                    total += _popcount(data_a[pa + t] & data_b[pb + t])
                pa += np.uint64(rows_a)
                pb += np.uint64(rows_b)
        if total == _U0:
            continue
        inter = np.float64(total)
        union = min(area_a[a], area_b[b]) if ios else area_a[a] + area_b[b] - inter
        if union > 0.0:
            index[count] = b
            value[count] = min(inter / union, 1.0)
            count += 1
    return count


@_leaf
def _box_overlaps(boxes, j, members, start, index, value, ios):
    """The nonzero IoUs of box ``j`` with boxes ``start..j-1`` (float64 x1, y1, x2, y2 rows of ``boxes``).

    Writes ``members[q]`` of each overlapping box q to ``index`` and the IoU (torchvision's formula) to
    ``value``; returns how many. With ``ios`` the denominator is the smaller area.
    """
    x1, y1, x2, y2 = boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]
    area_j = (x2 - x1) * (y2 - y1)
    count = 0
    for q in range(start, j):
        width = min(x2, boxes[q, 2]) - max(x1, boxes[q, 0])
        height = min(y2, boxes[q, 3]) - max(y1, boxes[q, 1])
        if width <= 0.0 or height <= 0.0:
            continue
        inter = width * height
        area_q = (boxes[q, 2] - boxes[q, 0]) * (boxes[q, 3] - boxes[q, 1])
        union = min(area_j, area_q) if ios else area_j + area_q - inter
        if union > 0.0:
            index[count] = members[q]
            value[count] = min(inter / union, 1.0)
            count += 1
    return count


@_leaf
def _column_decay(index, value, count, cmax, gaussian, sigma):
    """decay[j] from the nonzero IoUs ``value[:count]`` of column j with higher candidates ``index``."""
    if gaussian:
        # min over exponents, exp once: no intermediate overflows (as _generic)
        lowest = 0.0
        for t in range(count):
            c = cmax[index[t]]
            v = value[t]
            lowest = min(lowest, (c * c - v * v) / sigma)
        return np.exp(lowest)
    smallest = 1.0
    for t in range(count):
        remaining = 1.0 - cmax[index[t]]
        # a duplicate of a higher candidate (cmax = 1) no longer suppresses anything
        if remaining > 0.0:
            smallest = min(smallest, (1.0 - value[t]) / remaining)
    return max(smallest, 0.0)


@njit(cache=True, nogil=True)
def _overlaps_worker(state, total, first_column, use_masks, data, offset, box, area, group_boxes, group, group_start,
                     group_pos, index, value, owner, first, count, cmax, ios):
    """Phase one of the decay: claim columns j = first_column + t and list their nonzero IoUs with higher
    candidates of the same label; ``cmax[j]`` is the largest.

    Each call appends its lists to its own row ``slot`` of ``index`` / ``value`` (a claimed slot), so the
    memory touched follows the nonzero IoUs; ``owner[j]``, ``first[j]``, ``count[j]`` say where.

    Args:
        use_masks (bool): IoU of packed masks (``data``, ``offset``, ``box`` int64[K, 4] bounds and
            ``area`` float64[K] for the union, by position), else of ``group_boxes``.
        group_boxes (float64[K, 4]): x1, y1, x2, y2 boxes in group order (read for boxes only).
        group (int64[K]): positions sorted by (label, position); ``group_start[j]`` is where j's label
            starts in ``group`` and ``group_pos[j]`` where j itself is, so its higher-scored same-label
            candidates are ``group[group_start[j]:group_pos[j]]``.
    """
    slot = take_ticket(state, SLOT)
    used = 0
    while True:
        t = take_ticket(state, NEXT)
        if t >= total:
            return
        j = first_column + t
        if use_masks:
            c = _mask_overlaps(data, offset, box, area, j, data, offset, box, area, group, group_start[j],
                               group_pos[j], index[slot, used:], value[slot, used:], ios)
        else:
            c = _box_overlaps(group_boxes, group_pos[j], group, group_start[j], index[slot, used:],
                              value[slot, used:], ios)
        best = 0.0
        for r in range(used, used + c):
            best = max(best, value[slot, r])
        owner[j] = slot
        first[j] = used
        count[j] = c
        cmax[j] = best
        used += c
        take_ticket(state, DONE)


@njit(cache=True, nogil=True)
def _decay_worker(state, total, first_column, index, value, owner, first, count, cmax, gaussian, sigma, decay):
    """Phase two: claim columns j = first_column + t and reduce their lists to ``decay[j]``; every
    ``cmax[i]`` with i <= j is known by then."""
    while True:
        t = take_ticket(state, NEXT)
        if t >= total:
            return
        j = first_column + t
        decay[j] = _column_decay(index[owner[j], first[j]:], value[owner[j], first[j]:], count[j], cmax, gaussian,
                                 sigma)
        take_ticket(state, DONE)


@njit(cache=True, nogil=True)
def _iou_worker(state, total, data_a, offset_a, box_a, area_a, data_b, offset_b, box_b, area_b, members, start,
                stop, symmetric, out, ios):
    """Claim rows i of ``out`` (float64[N, M], zeros) and fill in the IoU of packed mask i of A with the B
    masks ``members[start[i]:stop[i]]``. With ``symmetric`` (B is A, each pair listed once), the transposed
    entry and a diagonal of 1 for nonempty masks are filled in too."""
    index = np.empty(box_b.shape[0], np.int64)
    value = np.empty(box_b.shape[0])
    while True:
        i = take_ticket(state, NEXT)
        if i >= total:
            return
        c = _mask_overlaps(data_a, offset_a, box_a, area_a, i, data_b, offset_b, box_b, area_b, members,
                           start[i], stop[i], index, value, ios)
        for r in range(c):
            out[i, index[r]] = value[r]
            if symmetric:
                out[index[r], i] = value[r]
        if symmetric and area_a[i] > 0:
            out[i, i] = 1.0
        take_ticket(state, DONE)


# --- Python wrappers -------------------------------------------------------------------------------------


def _float(like: Array, name: str) -> Any:
    """The dtype ``name`` ("float32", "float64" or "default") of the library of ``like``."""
    if array_api_compat.is_torch_array(like):
        import torch

        return torch.get_default_dtype() if name == "default" else getattr(torch, name)
    return np.dtype(np.float64 if name == "default" else name)


def _threads(work_bytes: int) -> int:
    """Threads for a call: Numba's current thread count (``numba.set_num_threads``, by default
    ``NUMBA_NUM_THREADS``), or 1 for small work."""
    return thread_count(work_bytes, SERIAL_BYTES)


def _is_bytes(masks: np.ndarray) -> bool:
    """0/1 masks stored one byte per pixel (bool, uint8, int8): read straight from their memory."""
    return masks.dtype.itemsize == 1 and masks.dtype.kind in "biu"


def _chunks(masks: np.ndarray, sources: np.ndarray):
    """Yield (first, flat bytes, local sources) covering ``masks[sources]``, in order, as contiguous 0/1 bytes.

    Contiguous byte masks are used in place; anything else is converted a bounded slice at a time.
    """
    if _is_bytes(masks) and masks.flags.c_contiguous:
        yield 0, masks.reshape(-1).view(np.uint8), sources
        return
    step = max(1, CONVERT_BYTES // max(1, masks.shape[1] * masks.shape[2]))
    for s in range(0, sources.shape[0], step):
        part = masks[sources[s:s + step]]
        part = np.ascontiguousarray(part if _is_bytes(part) else part != 0)
        yield s, part.reshape(-1).view(np.uint8), np.arange(part.shape[0], dtype=np.int64)


class _Packed:
    """``masks[sources]`` bit-packed inside their boxes.

    Attributes:
        box (int64[K, 4]): tight inclusive (y0, y1, x0, x1); (H, -1, W, -1) for an empty mask.
        area (float64[K]): pixel counts (exact integers).
        data (uint64[total]), offset (int64[K]): mask k's words from ``data[offset[k]]``, word-column-major
            inside its box (see ``_pack_worker``).
        Without ``keep_bits`` only ``box`` is computed: the one pass ``masks_to_boxes`` needs.
    """

    def __init__(self, masks: np.ndarray, sources: np.ndarray, threads: int, keep_bits: bool = True):
        _, h, w = masks.shape
        k = sources.shape[0]
        self.box = np.empty((k, 4), np.int64)
        self.area = np.zeros(k)
        self.offset = np.zeros(k, np.int64)
        parts = []
        for first, buf, local in _chunks(masks, sources):
            stop = first + local.shape[0]
            box = self.box[first:stop]
            run_claimed(_bounds_worker, stop - first, threads, buf, local, h, w, box)
            if keep_bits:
                rows = np.maximum(box[:, 1] - box[:, 0] + 1, 0)
                words = np.maximum((box[:, 3] >> 6) - (box[:, 2] >> 6) + 1, 0)
                offset = np.cumsum(rows * words) - rows * words
                data = np.empty(int(np.sum(rows * words)), np.uint64)
                run_claimed(_pack_worker, stop - first, threads, buf, local, h, w, box, offset, data,
                            self.area[first:stop])
                self.offset[first:stop] = offset + sum(part.shape[0] for part in parts)
                parts.append(data)
        self.data = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, np.uint64)


def _all_rows(x: np.ndarray) -> np.ndarray:
    return np.arange(x.shape[0], dtype=np.int64)


def _pixels(masks: np.ndarray, count: int) -> int:
    return count * masks.shape[1] * masks.shape[2]


def _groups(labels: Array | None, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, group_start, group_pos) of ``_overlaps_worker``: positions ordered by (label, position)."""
    positions = np.arange(k, dtype=np.int64)
    if labels is None:
        return positions, np.zeros(k, np.int64), positions
    labels = view(labels)
    group = np.argsort(labels, kind="stable").astype(np.int64)
    ordered = labels[group]
    new_label = np.r_[True, ordered[1:] != ordered[:-1]] if k else np.zeros(0, bool)
    run_start = np.maximum.accumulate(np.where(new_label, positions, 0))
    group_start = np.empty(k, np.int64)
    group_pos = np.empty(k, np.int64)
    group_start[group] = run_start
    group_pos[group] = positions
    return group, group_start, group_pos


def _decay(packed: _Packed | None, union_area: np.ndarray, sorted_boxes: np.ndarray, labels: Array | None, kernel: str,
           sigma: float, threads: int, metric: str = "iou") -> np.ndarray:
    """float64[K] decay of the sorted candidates: of ``packed`` masks (``union_area`` for the union) or,
    with ``packed`` None, of ``sorted_boxes``; ``metric`` "iou" or "ios" (``packed`` may be any object with
    ``_Packed``'s ``data``, ``offset``, ``box``)."""
    k = union_area.shape[0]
    group, group_start, group_pos = _groups(labels, k)
    if packed is None:
        data, offset, box = np.zeros(0, np.uint64), np.zeros(k, np.int64), np.zeros((k, 4), np.int64)
    else:
        data, offset, box = packed.data, packed.offset, packed.box
    group_boxes = np.ascontiguousarray(sorted_boxes[group])
    # columns per block: the lists of a block (int64 index + float64 IoU per entry) fit BLOCK_BYTES per
    # thread; untouched capacity costs no memory
    block = int(min(max(k, 1), max(64, BLOCK_BYTES // (16 * max(1, k)))))
    index = np.empty((threads, block * k), np.int64)
    value = np.empty((threads, block * k))
    owner, first, count = np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64)
    cmax = np.zeros(k)
    decay = np.ones(k)
    for s in range(0, k, block):
        e = min(s + block, k)
        run_claimed(_overlaps_worker, e - s, threads, s, packed is not None, data, offset, box, union_area,
                    group_boxes, group, group_start, group_pos, index, value, owner, first, count, cmax,
                    metric == "ios")
        # every cmax[i] with i < e is known now
        run_claimed(_decay_worker, e - s, threads, s, index, value, owner, first, count, cmax,
                    kernel == "gaussian", float(sigma), decay)
    return decay


def _iou(a: _Packed, b: _Packed | None, labels: Array | None, threads: int, metric: str = "iou") -> np.ndarray:
    """float64 IoU (or IoS, ``metric``) of packed sets: A against B, or A against itself (0 across ``labels``)."""
    n = a.area.shape[0]
    if b is None:  # each pair once: j against the same-label masks before it
        members, start, stop = _groups(labels, n)
        b = a
    else:
        members, start, stop = _all_rows(b.area), np.zeros(n, np.int64), np.full(n, b.area.shape[0])
    out = np.zeros((n, b.area.shape[0]))
    run_claimed(_iou_worker, n, threads, a.data, a.offset, a.box, a.area, b.data, b.offset, b.box, b.area, members,
                start, stop, b is a, out, metric == "ios")
    return out


@register("mask_decay", "numba")
def mask_decay(masks: Array, order: Array, labels: Array | None, areas: Array | None, kernel: str, sigma: float,
               dtype: Any, metric: str) -> Array:
    """The ``mask_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by ``tests/test_matrix_nms.py::test_masks_agree_with_reference``
    (numpy-numba, torch-numba) and
    ``tests/test_kernels.py::test_many_blocks_chunks_and_threads_agree_with_reference`` (blocks, threads).
    """
    m, sources = view(masks), host(order, np.int64)
    threads = _threads(_pixels(m, sources.shape[0]))
    packed = _Packed(m, sources, threads)
    union_area = packed.area if areas is None else host(areas, np.float64)
    decay = _decay(packed, union_area, np.zeros((sources.shape[0], 4)), labels, kernel, sigma, threads, metric)
    return wrap(decay, order, dtype)


@register("box_decay", "numba")
def box_decay(boxes: Array, order: Array, labels: Array | None, kernel: str, sigma: float, dtype: Any,
              metric: str) -> Array:
    """The ``box_decay`` op (contract: ``matrixnms._dispatch.OPS``).

    Pinned to the float64 loop reference by ``tests/test_matrix_nms.py::test_boxes_agree_with_reference`` and
    ``tests/test_kernels.py::test_box_decay_over_several_blocks_agrees_with_reference``.
    """
    sorted_boxes = view(boxes)[host(order, np.int64)].astype(np.float64)
    k = sorted_boxes.shape[0]
    # a box pair costs about what a mask byte does
    decay = _decay(None, np.zeros(k), sorted_boxes, labels, kernel, sigma, _threads(k * k), metric)
    return wrap(decay, order, dtype)


@register("mask_iou_sorted", "numba")
def mask_iou_sorted(masks: Array, order: Array, labels: Array | None, metric: str) -> Array:
    m, sources = view(masks), host(order, np.int64)
    threads = _threads(_pixels(m, sources.shape[0]))
    iou = _iou(_Packed(m, sources, threads), None, labels, threads, metric)
    return wrap(iou, order, _float(order, "float64"))


@register("mask_iou", "numba")
def mask_iou(masks_a: Array, masks_b: Array | None, metric: str) -> Array:
    a = view(masks_a)
    b = None if masks_b is None else view(masks_b)
    threads = _threads(_pixels(a, a.shape[0] + (0 if b is None else b.shape[0])))
    packed_b = None if b is None else _Packed(b, _all_rows(b), threads)
    iou = _iou(_Packed(a, _all_rows(a), threads), packed_b, None, threads, metric)
    return wrap(iou, masks_a, _float(masks_a, "default"))


@register("masks_to_boxes", "numba")
def masks_to_boxes(masks: Array, fmt: str) -> Array:
    m = view(masks)
    y0, y1, x0, x1 = _Packed(m, _all_rows(m), _threads(_pixels(m, m.shape[0])), keep_bits=False).box.T
    end = 0 if fmt == "xyxy_inclusive" else 1  # "xyxy" and "xywh" count pixel edges
    out = np.stack([x0, y0, x1 + end, y1 + end], axis=1).astype(np.float32)
    if fmt == "xywh":
        out[:, 2:] -= out[:, :2]
    out[y1 < y0] = 0  # empty masks
    return wrap(out, masks, _float(masks, "float32"))
