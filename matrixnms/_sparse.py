"""The sparse mask set: COCO RLE and cropped masks, never expanded to full frames.

Every mask is kept as its tight box and its bits inside the box, in the layout of the Numba kernels'
``_Packed`` (``backends/_numba.py``) but of the *transposed* frame: COCO RLE runs go down the columns
(column-major, Fortran order), so a column of the image is a row here and 64 consecutive image rows form one
word. The IoU (and IoS) of two masks is the same in the transposed frame, so the kernels that count dense
masks count these too: intersections are exact AND + popcount over the overlapping window of two boxes, the
areas are exact counts, and pairs are pruned by their boxes (and labels) as in the dense path.

Attributes of :class:`SparseMasks`:
    size (H, W): the frame.
    box (int64[N, 4]): inclusive (x0, x1, y0, y1) in the image (rows, then columns of the transposed frame);
        (W, -1, H, -1) for an empty mask, which overlaps nothing.
    area (float64[N]): pixel counts.
    data (uint64[total]), offset (int64[N]): mask i's words from ``data[offset[i]]``, word k (image rows
        64k .. 64k + 63) of image column x at ``offset[i] + (k - (y0 >> 6)) * (x1 - x0 + 1) + (x - x0)``.

Decoding and packing run in Numba when it is installed, else the same functions run as plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np

if find_spec("numba") is not None:
    from numba import njit

    _jit = njit(cache=True, nogil=True)
else:  # the same code, interpreted
    def _jit(fn):
        return fn


@dataclass(frozen=True)
class SparseMasks:
    size: tuple[int, int]
    box: np.ndarray
    area: np.ndarray
    data: np.ndarray
    offset: np.ndarray

    @property
    def n(self) -> int:
        return int(self.area.shape[0])

    def take(self, rows: np.ndarray) -> "SparseMasks":
        """The masks ``rows`` (any order, repeats allowed) sharing this set's words."""
        rows = np.asarray(rows, np.int64)
        return SparseMasks(self.size, np.ascontiguousarray(self.box[rows]), self.area[rows], self.data,
                           self.offset[rows])

    def boxes_xyxy(self) -> np.ndarray:
        """float32 (N, 4) ``[x_min, y_min, x_max + 1, y_max + 1]``; zeros for empty masks."""
        x0, x1, y0, y1 = self.box.T
        out = np.stack([x0, y0, x1 + 1, y1 + 1], axis=1).astype(np.float32)
        out[x1 < x0] = 0
        return out


def empty_set(size: tuple[int, int]) -> SparseMasks:
    return SparseMasks(size, np.zeros((0, 4), np.int64), np.zeros(0), np.zeros(0, np.uint64), np.zeros(0, np.int64))


def concat(parts: list[tuple[np.ndarray, float, np.ndarray]], size: tuple[int, int]) -> SparseMasks:
    """A set from per-mask (box int64[4], area, words uint64[...])."""
    if not parts:
        return empty_set(size)
    lengths = np.array([p[2].shape[0] for p in parts], np.int64)
    offset = np.cumsum(lengths) - lengths
    data = np.concatenate([p[2] for p in parts]) if lengths.sum() else np.zeros(0, np.uint64)
    return SparseMasks(size, np.stack([p[0] for p in parts]).astype(np.int64),
                       np.array([p[1] for p in parts], np.float64), data.astype(np.uint64, copy=False), offset)


# --- COCO RLE -------------------------------------------------------------------------------------------------


@_jit
def _decode(chars, out):
    """pycocotools' compressed counts (LEB128-like, 5 bits per char from '0', deltas after the third run) into
    ``out``; returns the run count, -1 for a char out of range, -2 for a truncated run."""
    m = 0
    p = 0
    n = chars.shape[0]
    while p < n:
        x = np.int64(0)
        k = 0
        more = True
        while more:
            if p >= n:
                return -2
            c = np.int64(chars[p]) - 48
            if c < 0 or c > 63:
                return -1
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += out[m - 2]
        out[m] = x
        m += 1
    return m


@_jit
def _pack_runs(runs, h):
    """(box int64[4], area, words uint64[...]) of one mask from its column-major runs (zeros first)."""
    x0, x1, y0, y1 = np.int64(1 << 62), np.int64(-1), np.int64(1 << 62), np.int64(-1)
    pos = np.int64(0)
    area = np.int64(0)
    for r in range(runs.shape[0]):
        length = runs[r]
        if r % 2 == 1 and length > 0:
            s, e = pos, pos + length - 1
            cs, ce = s // h, e // h
            x0 = min(x0, cs)
            x1 = max(x1, ce)
            if cs == ce:
                y0 = min(y0, s - cs * h)
                y1 = max(y1, e - ce * h)
            else:
                y0 = 0
                y1 = h - 1
            area += length
        pos += length
    box = np.empty(4, np.int64)
    if x1 < 0:
        box[0], box[1], box[2], box[3] = -1, -1, -1, -1
        return box, 0.0, np.zeros(0, np.uint64)
    rows = x1 - x0 + 1
    k0 = y0 >> 6
    words = np.zeros(rows * ((y1 >> 6) - k0 + 1), np.uint64)
    pos = 0
    for r in range(runs.shape[0]):
        length = runs[r]
        if r % 2 == 1:
            p, e = pos, pos + length
            while p < e:
                x = p // h
                y = p - x * h
                stop = min(h, y + (e - p))  # this column's part of the run: rows y .. stop - 1
                for k in range(y >> 6, ((stop - 1) >> 6) + 1):
                    lo = max(y, 64 * k) - 64 * k
                    hi = min(stop, 64 * k + 64) - 64 * k
                    if hi - lo == 64:
                        bits = ~np.uint64(0)
                    else:
                        bits = ((np.uint64(1) << np.uint64(hi - lo)) - np.uint64(1)) << np.uint64(lo)
                    words[(k - k0) * rows + (x - x0)] |= bits
                p += stop - y
        pos += length
    box[0], box[1], box[2], box[3] = x0, x1, y0, y1
    return box, float(area), words


def _rle_size(rle: Any, i: int, name: str) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"{name}[{i}] must be a COCO RLE dict with 'size' and 'counts', got "
                         f"{type(rle).__name__}")
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise ValueError(f"{name}[{i}] 'size' must be [H, W] of two ints >= 0, got {size!r}")
    return int(size[0]), int(size[1])


def rle_runs(rle: dict, i: int, h: int, w: int, name: str) -> np.ndarray:
    """The validated int64 runs of one RLE (compressed ``bytes`` / ``str`` or uncompressed ``list``)."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    if isinstance(counts, (bytes, bytearray)):
        chars = np.frombuffer(bytes(counts), np.uint8)
        runs = np.empty(chars.shape[0], np.int64)
        m = _decode(chars, runs)
        if m < 0:
            raise ValueError(f"{name}[{i}] 'counts' is not a valid compressed RLE string ("
                             f"{'a character outside 0x30..0x6f' if m == -1 else 'it ends inside a run'})")
        runs = runs[:m]
    elif isinstance(counts, (list, tuple, np.ndarray)):
        runs = np.asarray(counts)
        if runs.ndim != 1 or not (runs.size == 0 or np.issubdtype(runs.dtype, np.integer)):
            raise ValueError(f"{name}[{i}] 'counts' must be a flat list of ints, got {runs.dtype} of shape "
                             f"{runs.shape}")
        runs = runs.astype(np.int64)
    else:
        raise ValueError(f"{name}[{i}] 'counts' must be bytes, str or a list of ints, got {type(counts).__name__}")
    if runs.size and runs.min() < 0:
        raise ValueError(f"{name}[{i}] 'counts' must be non-negative run lengths, got {int(runs.min())}")
    if int(runs.sum()) != h * w:
        raise ValueError(f"{name}[{i}] runs must sum to H * W = {h * w}, got {int(runs.sum())}")
    return runs


def from_rle(rles: Any, name: str = "masks", size: tuple[int, int] | None = None) -> SparseMasks:
    """A sparse set from a sequence of COCO RLE dicts of one size; ``ValueError`` naming the index otherwise."""
    parts = []
    for i, rle in enumerate(rles):
        hw = _rle_size(rle, i, name)
        if size is None:
            size = hw
        elif hw != size:
            raise ValueError(f"{name}[{i}] has size {list(hw)} but {name}[0] has {list(size)}: every mask "
                             "must have the same size")
        runs = rle_runs(rle, i, *hw, name)
        box, area, words = _pack_runs(runs, max(1, hw[0]))
        if box[1] < 0:
            box = np.array([hw[1], -1, hw[0], -1], np.int64)
        parts.append((box, area, words))
    return concat(parts, size if size is not None else (0, 0))


def pack_crop(crop: np.ndarray, x1: int, y1: int, w: int, h: int) -> tuple[np.ndarray, float, np.ndarray]:
    """(box, area, words) of a 0/1 crop whose top-left pixel is (x1, y1) in an (h, w) frame."""
    binary = np.asarray(crop) != 0
    cols, rows = np.any(binary, axis=0), np.any(binary, axis=1)
    if not cols.any():
        return np.array([w, -1, h, -1], np.int64), 0.0, np.zeros(0, np.uint64)
    cx = np.flatnonzero(cols)
    cy = np.flatnonzero(rows)
    bx0, bx1, by0, by1 = x1 + cx[0], x1 + cx[-1], y1 + cy[0], y1 + cy[-1]
    tight = binary[cy[0]:cy[-1] + 1, cx[0]:cx[-1] + 1].T  # (columns, rows): the transposed frame
    lead = by0 & 63
    nwords = ((by1 >> 6) - (by0 >> 6) + 1)
    padded = np.zeros((tight.shape[0], 64 * nwords), bool)
    padded[:, lead:lead + tight.shape[1]] = tight
    words = np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64, copy=False)
    return (np.array([bx0, bx1, by0, by1], np.int64), float(np.count_nonzero(tight)),
            np.ascontiguousarray(words.T).reshape(-1))


def unpack_crop(s: SparseMasks, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(xyxy int64 box of pixel edges, bool crop of that box) of mask i: the tight crop."""
    x0, x1, y0, y1 = (int(v) for v in s.box[i])
    if x1 < x0:
        return np.zeros(4, np.int64), np.zeros((0, 0), bool)
    rows, nwords = x1 - x0 + 1, (y1 >> 6) - (y0 >> 6) + 1
    words = s.data[s.offset[i]:s.offset[i] + rows * nwords].reshape(nwords, rows).T
    bits = np.unpackbits(np.ascontiguousarray(words).astype("<u8").view(np.uint8), axis=1, bitorder="little")
    lead = y0 & 63
    crop = bits[:, lead:lead + (y1 - y0 + 1)].T.astype(bool)
    return np.array([x0, y0, x1 + 1, y1 + 1], np.int64), crop


def encode_runs(runs: list[int]) -> bytes:
    """pycocotools' compressed counts string of uncompressed runs (its rleToString)."""
    out = bytearray()
    for i, x in enumerate(runs):
        x = int(x) - (int(runs[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return bytes(out)
