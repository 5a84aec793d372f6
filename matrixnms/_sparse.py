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

COMPILED = find_spec("numba") is not None
if COMPILED:
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
# A sequence of RLEs converts in two compiled calls over all masks: ``_decode_all`` (compressed counts into one
# runs buffer, each mask's runs checked) and ``_pack_all`` (boxes, areas and all words at once). Python only
# checks each dict's structure and joins the counts: at 12 MP, one call per mask cost more than the work.

_BAD_CHAR, _TRUNCATED, _NEGATIVE, _WRONG_SUM = 1, 2, 3, 4


@_jit
def _decode(chars, first, stop, out, at):
    """pycocotools' compressed counts ``chars[first:stop]`` (LEB128-like, 5 bits per char from '0', deltas
    after the third run) into ``out[at:]``; returns the run count, -1 for a char out of range, -2 for a
    truncated run."""
    m = 0
    p = first
    while p < stop:
        x = np.int64(0)
        k = 0
        more = True
        while more:
            if p >= stop:
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
            x += out[at + m - 2]
        out[at + m] = x
        m += 1
    return m


@_jit
def _decode_all(chars, char_start, compressed, runs, run_start, run_len, pixels, problem, detail):
    """Decode every compressed mask (``compressed[i]``: chars ``char_start[i]:char_start[i + 1]`` into ``runs``
    from ``run_start[i]``, setting ``run_len[i]``), then check every mask's runs: non-negative, summing to
    ``pixels``. ``problem[i]`` gets the first problem of mask i (0 for none), ``detail[i]`` its number (the
    smallest run, or the sum)."""
    for i in range(run_len.shape[0]):
        if compressed[i]:
            m = _decode(chars, char_start[i], char_start[i + 1], runs, run_start[i])
            if m < 0:
                problem[i] = _BAD_CHAR if m == -1 else _TRUNCATED
                continue
            run_len[i] = m
        total = np.int64(0)
        smallest = np.int64(0)
        for r in range(run_start[i], run_start[i] + run_len[i]):
            total += runs[r]
            smallest = min(smallest, runs[r])
        if smallest < 0:
            problem[i], detail[i] = _NEGATIVE, smallest
        elif total != pixels:
            problem[i], detail[i] = _WRONG_SUM, total


@_jit
def _runs_box(runs, first, stop, h):
    """(x0, x1, y0, y1, area) of a mask's column-major runs (zeros first); x1 = -1 for an empty mask."""
    x0, x1, y0, y1 = np.int64(1 << 62), np.int64(-1), np.int64(1 << 62), np.int64(-1)
    pos = np.int64(0)
    area = np.int64(0)
    for r in range(first, stop):
        length = runs[r]
        if (r - first) % 2 == 1 and length > 0:
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
    return x0, x1, y0, y1, area


@_jit
def _fill_words(runs, first, stop, h, x0, x1, y0, y1, scratch, data, at):
    """Write the words of box (x0, x1, y0, y1) of the runs to ``data[at:]`` (word-major: word k of every column,
    then word k + 1). The bits are ORed into ``scratch`` column by column first (a column's words adjacent),
    then transposed: ORing straight into the word-major layout strides by a whole row of words per word, a
    page apart at 12 MP, and cost four times as much."""
    rows = x1 - x0 + 1
    k0 = y0 >> 6
    nwords = (y1 >> 6) - k0 + 1
    scratch[:rows * nwords] = 0
    ones = ~np.uint64(0)
    pos = np.int64(0)
    for r in range(first, stop):
        length = runs[r]
        if (r - first) % 2 == 1 and length > 0:
            x = pos // h
            y = pos - x * h
            left = length
            while left > 0:
                end = min(h, y + left)  # this column's part of the run: rows y .. end - 1
                base = (x - x0) * nwords - k0
                first_word, last_word = y >> 6, (end - 1) >> 6
                head = ones << np.uint64(y & 63)
                tail = ones >> np.uint64(63 - ((end - 1) & 63))
                if first_word == last_word:
                    scratch[base + first_word] |= head & tail
                else:
                    scratch[base + first_word] |= head
                    for k in range(first_word + 1, last_word):
                        scratch[base + k] = ones
                    scratch[base + last_word] |= tail
                left -= end - y
                x += 1
                y = 0
        pos += length
    for k in range(nwords):
        for x in range(rows):
            data[at + k * rows + x] = scratch[x * nwords + k]


@_jit
def _pack_all(runs, run_start, run_len, h, w):
    """(box int64[N, 4], area float64[N], data uint64[...], offset int64[N]) of every mask's runs; an empty
    mask gets the box (w, -1, h, -1) and no words."""
    n = run_len.shape[0]
    box = np.empty((n, 4), np.int64)
    area = np.zeros(n)
    offset = np.zeros(n, np.int64)
    total = np.int64(0)
    for i in range(n):
        x0, x1, y0, y1, a = _runs_box(runs, run_start[i], run_start[i] + run_len[i], h)
        offset[i] = total
        if x1 < 0:
            box[i, 0], box[i, 1], box[i, 2], box[i, 3] = w, -1, h, -1
            continue
        box[i, 0], box[i, 1], box[i, 2], box[i, 3] = x0, x1, y0, y1
        area[i] = a
        total += (x1 - x0 + 1) * ((y1 >> 6) - (y0 >> 6) + 1)
    data = np.empty(total, np.uint64)  # every word is written
    largest = np.int64(0)
    for i in range(n):
        largest = max(largest, (offset[i + 1] if i + 1 < n else total) - offset[i])
    scratch = np.empty(largest, np.uint64)
    for i in range(n):
        if box[i, 1] >= 0:
            _fill_words(runs, run_start[i], run_start[i] + run_len[i], h, box[i, 0], box[i, 1], box[i, 2],
                        box[i, 3], scratch, data, offset[i])
    return box, area, data, offset


def _rle_size(rle: Any, i: int, name: str) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"{name}[{i}] must be a COCO RLE dict with 'size' and 'counts', got "
                         f"{type(rle).__name__}")
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise ValueError(f"{name}[{i}] 'size' must be [H, W] of two ints >= 0, got {size!r}")
    return int(size[0]), int(size[1])


def _counts(rle: dict, i: int, name: str) -> bytes | np.ndarray:
    """One RLE's counts: compressed ``bytes`` (a ``str`` encoded) or the int64 runs of an uncompressed list."""
    counts = rle["counts"]
    if isinstance(counts, str):
        return counts.encode("ascii", errors="replace")
    if isinstance(counts, (bytes, bytearray)):
        return bytes(counts)
    if isinstance(counts, (list, tuple, np.ndarray)):
        runs = np.asarray(counts)
        if runs.ndim != 1 or not (runs.size == 0 or np.issubdtype(runs.dtype, np.integer)):
            raise ValueError(f"{name}[{i}] 'counts' must be a flat list of ints, got {runs.dtype} of shape "
                             f"{runs.shape}")
        return runs.astype(np.int64)
    raise ValueError(f"{name}[{i}] 'counts' must be bytes, str or a list of ints, got {type(counts).__name__}")


def _decoded(counts: list, size: tuple[int, int], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(runs, run_start, run_len) of every mask's counts, checked; ``ValueError`` naming the first bad one."""
    compressed = np.array([isinstance(c, bytes) for c in counts], bool)
    lengths = np.array([len(c) for c in counts], np.int64)  # chars, or runs of a list
    char_start = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.where(compressed, lengths, 0), out=char_start[1:])
    chars = np.frombuffer(b"".join(c for c in counts if isinstance(c, bytes)), np.uint8)
    run_start = np.zeros(len(counts), np.int64)  # a compressed mask has at most one run per char
    np.cumsum(lengths[:-1], out=run_start[1:])
    runs = np.empty(int(lengths.sum()), np.int64)
    for i in np.flatnonzero(~compressed):
        runs[run_start[i]:run_start[i] + lengths[i]] = counts[i]
    run_len = np.where(compressed, 0, lengths)
    problem, detail = np.zeros(len(counts), np.int64), np.zeros(len(counts), np.int64)
    _decode_all(chars, char_start, compressed, runs, run_start, run_len, size[0] * size[1], problem, detail)
    bad = np.flatnonzero(problem)
    if bad.size:
        i = int(bad[0])
        if problem[i] in (_BAD_CHAR, _TRUNCATED):
            why = "a character outside 0x30..0x6f" if problem[i] == _BAD_CHAR else "it ends inside a run"
            raise ValueError(f"{name}[{i}] 'counts' is not a valid compressed RLE string ({why})")
        if problem[i] == _NEGATIVE:
            raise ValueError(f"{name}[{i}] 'counts' must be non-negative run lengths, got {int(detail[i])}")
        raise ValueError(f"{name}[{i}] runs must sum to H * W = {size[0] * size[1]}, got {int(detail[i])}")
    return runs, run_start, run_len


def from_rle(rles: Any, name: str = "masks", size: tuple[int, int] | None = None) -> SparseMasks:
    """A sparse set from a sequence of COCO RLE dicts of one size; ``ValueError`` naming the index otherwise
    (the first bad mask's problem: its dict, size or counts)."""
    counts: list = []
    try:
        for i, rle in enumerate(rles):
            hw = _rle_size(rle, i, name)
            if size is None:
                size = hw
            elif hw != size:
                raise ValueError(f"{name}[{i}] has size {list(hw)} but {name}[0] has {list(size)}: every mask "
                                 "must have the same size")
            counts.append(_counts(rle, i, name))
    except ValueError:
        if counts:
            _decoded(counts, size, name)  # a problem in the counts of an earlier mask comes first
        raise
    if not counts:
        return empty_set(size if size is not None else (0, 0))
    runs, run_start, run_len = _decoded(counts, size, name)
    box, area, data, offset = _pack_all(runs, run_start, run_len, max(1, size[0]), size[1])
    return SparseMasks(size, box, area, data, offset)


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


@_jit
def _crop_runs(crop, x1, y1, h, w):
    """int64 column-major runs (zeros first) of the frame holding bool ``crop`` with its top-left pixel at (x1,
    y1), as pycocotools' ``encode`` counts them: a run that continues into the next column is one run, and a
    mask ending on the frame's last pixel has no final empty run."""
    ch, cw = crop.shape
    starts = 0
    for x in range(cw):
        previous = False
        for y in range(ch):
            if crop[y, x] and not previous:
                starts += 1
            previous = crop[y, x]
    runs = np.empty(2 * starts + 1, np.int64)
    m = 0
    last = np.int64(0)  # where the previous run of ones ended
    for x in range(cw):
        base = (x1 + x) * np.int64(h) + y1
        y = 0
        while y < ch:
            if not crop[y, x]:
                y += 1
                continue
            s = base + y
            while y < ch and crop[y, x]:
                y += 1
            if m > 0 and s == last:  # the previous column's run reached the frame's bottom row
                runs[m - 1] += base + y - s
            else:
                runs[m] = s - last
                runs[m + 1] = base + y - s
                m += 2
            last = base + y
    runs[m] = np.int64(h) * w - last
    m += 1
    if m > 1 and runs[m - 1] == 0:
        m -= 1
    return runs[:m]


def crop_runs(crop: np.ndarray, x1: int, y1: int, h: int, w: int) -> np.ndarray:
    """The runs of ``_crop_runs``: compiled pixel by pixel, or in NumPy from the crop's edges without Numba."""
    binary = np.ascontiguousarray(np.asarray(crop) != 0)
    if COMPILED:
        return _crop_runs(binary, x1, y1, h, w)
    edges = np.diff(np.pad(binary.T.astype(np.int8), ((0, 0), (1, 1))), axis=1)  # (x, y): column-major order
    sx, sy = np.nonzero(edges == 1)
    ex, ey = np.nonzero(edges == -1)
    starts, ends = (x1 + sx) * h + y1 + sy, (x1 + ex) * h + y1 + ey
    joined = np.flatnonzero(ends[:-1] == starts[1:])  # a run that continues into the next column
    starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
    runs = np.diff(np.concatenate([[0], np.stack([starts, ends], axis=1).reshape(-1), [h * w]]))
    return runs[:-1] if runs.shape[0] > 1 and runs[-1] == 0 else runs


@_jit
def _encode(runs, out):
    """pycocotools' compressed counts (its rleToString) of ``runs`` into ``out``; returns the length."""
    n = 0
    for i in range(runs.shape[0]):
        x = runs[i] - (runs[i - 2] if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out[n] = c + 48
            n += 1
    return n


def encode_runs(runs: np.ndarray) -> bytes:
    """pycocotools' compressed counts string of int64 uncompressed runs."""
    out = np.empty(13 * runs.shape[0], np.uint8)  # at most 13 chars of 5 bits per 64-bit delta
    return out[:_encode(np.ascontiguousarray(runs, np.int64), out)].tobytes()
