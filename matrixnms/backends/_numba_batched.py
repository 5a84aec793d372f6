"""Numba batched decay: the candidates of every image packed and decayed in one parallel pass.

The per-image kernels of ``_numba`` already restrict pairs to candidates of one label group (``_groups``); a
batch is one list of the real candidates of every image, image after image, each in score order, grouped by
(image, label). Then a pair of candidates in different images never counts, "higher-scored" is "earlier in
the same image", and one call of the bit-packing pass and of the two decay phases gives every image exactly
the decay ``matrix_nms`` gives it alone, bit for bit.

Why one pass rather than images spread over threads: every thread claims the next mask (then the next
column) of the whole batch from ``run_claimed``'s counter, so the work balances itself across images of
uneven sizes, a late helper finds nothing left instead of holding up the call, and the Python overhead of a
call (allocations, two thread hand-offs per phase) is paid once per batch, not once per image.

The decay, two ways:

- many groups (at least 4 per thread: labelled candidates, or many images): a thread claims a whole group,
  largest first, and walks its members in score order; member j's overlaps with the earlier members give
  ``cmax[j]`` and, since every earlier ``cmax`` is known by then, its decay at once. One parallel call for
  the batch, and no list outlives its column.
- few, large groups: ``_numba._decay``'s two phases (overlap lists, then decays) over column blocks of the
  whole batch, the threads sharing each column block. A block's lists hold at most (columns) x (largest
  group - 1) entries per thread, so a block covers many more columns than the single-image kernel assumes
  (it sizes for K - 1 entries per column): usually the whole batch is one block.

Boxes take the whole call past the candidate masks here (the ``batched_box_nms`` op): once the pair work is
cheap, NumPy's batched sorts, gathers and ranking cost more than the decay, so each image runs in one compiled pass (radix sort by score, ``pre_top_k``,
decay per label group, ``post_threshold``, radix ranking by decayed score; both sorts stable over index-ordered
input, so ties go to the lower index), the threads claiming images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dispatch import register
from .._typing import Array
from numba import njit

from . import _numba
from ._numba import (
    _box_overlaps, _column_decay, _decay_worker, _groups, _mask_overlaps, _overlaps_worker, _Packed,
    _pixels, _threads,
)
from ._numba_runtime import DONE, NEXT, host, run_claimed, take_ticket, view, wrap


def _batch_members(order: Array, in_play: Array, labels: Array | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources into the (B * N) flattened items, group key per source, in-play mask) of the real candidates,
    image by image, each image's in score order; the key is unique per (image, label)."""
    play = host(in_play, np.bool_)
    rows = host(order, np.int64)
    b = rows.shape[0]
    n_first = np.arange(b, dtype=np.int64)[:, None]
    image = np.broadcast_to(n_first, rows.shape)[play]
    if labels is not None:
        chosen = host(labels, np.int64)[play]
        low, high = (int(chosen.min()), int(chosen.max())) if chosen.size else (0, 0)
        if (high - low + 1) * b < 2**62:
            image = image * (high - low + 1) + (chosen - low)
        else:  # labels spread too wide for one int64 key: dense ranks (a sort) keep it small
            image = image * chosen.size + np.unique(chosen, return_inverse=True)[1].reshape(-1)
    # keys of 16 bits sort stably by radix in NumPy (what _groups does), in linear time
    return rows, image.astype(np.int16) if image.size and image.max() < 2**15 else image, play


@_numba._leaf
def _settle(j, index, value, count, cmax, decay, gaussian, sigma):
    """``cmax[j]``, the largest of column j's listed IoUs ``value[:count]``, and ``decay[j]`` from the list."""
    best = 0.0
    for r in range(count):
        best = max(best, value[r])
    cmax[j] = best
    decay[j] = _column_decay(index, value, count, cmax, gaussian, sigma)


@njit(cache=True, nogil=True)
def _group_worker(state, total, claims, runs, use_masks, data, offset, box, area, group_boxes, group, widest,
                  gaussian, sigma, cmax, decay):
    """Claim whole groups (image, label) ``claims[t]`` and decay their members in score order, fused: when
    member j's overlaps with the earlier members are listed, every earlier ``cmax`` is known, so its decay follows
    at once from the list (``_column_decay``); no list outlives its column."""
    index = np.empty(widest, np.int64)
    value = np.empty(widest)
    while True:
        t = take_ticket(state, NEXT)
        if t >= total:
            return
        start, stop = runs[claims[t]], runs[claims[t] + 1]
        for p in range(start, stop):
            j = group[p]
            if use_masks:
                c = _mask_overlaps(data, offset, box, area, j, data, offset, box, area, group, start, p, index, value,
                                   False)  # IoU (batched calls take no metric)
            else:
                c = _box_overlaps(group_boxes, p, group, start, index, value, False)
            _settle(j, index, value, c, cmax, decay, gaussian, sigma)
        take_ticket(state, DONE)


def _grouped_decay(packed: _Packed | None, union_area: np.ndarray, sorted_boxes: np.ndarray, key: np.ndarray,
                   kernel: str, sigma: float, threads: int) -> np.ndarray:
    """float64 decay of the listed candidates, pairs only within a group of ``key``: whole groups per thread
    when there are enough of them to balance, else column blocks sized by the largest group (see the module
    docstring)."""
    k = key.shape[0]
    group, group_start, group_pos = _groups(key, k)
    widest = int(np.max(group_pos - group_start, initial=0)) + 1
    ordered = key[group]
    runs = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if k else np.zeros(0, np.int64)
    if runs.shape[0] >= 4 * threads:
        runs = np.r_[runs, k].astype(np.int64)
        claims = np.argsort(runs[:-1] - runs[1:], kind="stable").astype(np.int64)  # largest groups first
        cmax, decay = np.zeros(k), np.ones(k)
        packed_arrays = _arrays(packed, k)
        run_claimed(_group_worker, claims.shape[0], threads, claims, runs, packed is not None, *packed_arrays,
                    union_area, np.ascontiguousarray(sorted_boxes[group]), group, widest, kernel == "gaussian",
                    float(sigma), cmax, decay)
        return decay
    return _blocked_decay(packed, union_area, sorted_boxes, group, group_start, group_pos, widest, kernel, sigma,
                          threads)


def _arrays(packed: _Packed | None, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, offset, box) of the packed masks; empty stand-ins for boxes."""
    if packed is None:
        return np.zeros(0, np.uint64), np.zeros(k, np.int64), np.zeros((k, 4), np.int64)
    return packed.data, packed.offset, packed.box


def _blocked_decay(packed: _Packed | None, union_area: np.ndarray, sorted_boxes: np.ndarray, group: np.ndarray,
                   group_start: np.ndarray, group_pos: np.ndarray, widest: int, kernel: str, sigma: float,
                   threads: int) -> np.ndarray:
    """The two phases of ``_numba._decay`` over column blocks of the whole batch (few, large groups)."""
    k = group.shape[0]
    columns = int(min(max(k, 1), max(64, _numba.BLOCK_BYTES // (16 * widest))))  # read per call: tests shrink it
    lists = (np.empty((threads, columns * widest), np.int64), np.empty((threads, columns * widest)))
    where = (np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64))  # owner, first, count
    pixels = _arrays(packed, k)
    in_group_order = np.ascontiguousarray(sorted_boxes[group])
    cmax, decay = np.zeros(k), np.ones(k)
    for start in range(0, k, columns):
        span = min(columns, k - start)
        run_claimed(_overlaps_worker, span, threads, start, packed is not None, *pixels, union_area, in_group_order,
                    group, group_start, group_pos, *lists, *where, cmax, False)
        run_claimed(_decay_worker, span, threads, start, *lists, *where, cmax, kernel == "gaussian", float(sigma),
                    decay)
    return decay


def _scatter(decay: np.ndarray, play: np.ndarray, like: Array, dtype: Any) -> Array:
    out = np.ones(play.shape)
    out[play] = decay
    return wrap(out, like, dtype)


@register("batched_mask_decay", "numba")
def batched_mask_decay(masks: Array, order: Array, in_play: Array, labels: Array | None, kernel: str, sigma: float,
                       dtype: Any) -> Array:
    m = view(masks)
    b, n, h, w = m.shape
    rows, key, play = _batch_members(order, in_play, labels)
    sources = (rows + n * np.arange(b, dtype=np.int64)[:, None])[play]
    flat = m.reshape(b * n, h, w)
    threads = _threads(_pixels(flat, sources.shape[0]))
    packed = _Packed(flat, sources, threads)
    decay = _grouped_decay(packed, packed.area, np.zeros((sources.shape[0], 4)), key, kernel, sigma, threads)
    return _scatter(decay, play, order, dtype)


@register("batched_box_decay", "numba")
def batched_box_decay(boxes: Array, order: Array, in_play: Array, labels: Array | None, kernel: str, sigma: float,
                      dtype: Any) -> Array:
    x = view(boxes)
    b, n = x.shape[:2]
    rows, key, play = _batch_members(order, in_play, labels)
    sorted_boxes = x.reshape(b * n, 4)[(rows + n * np.arange(b, dtype=np.int64)[:, None])[play]].astype(np.float64)
    k = sorted_boxes.shape[0]
    # a box pair costs about what a mask byte does; pairs only within groups, but count them all (cheap bound)
    decay = _grouped_decay(None, np.zeros(k), sorted_boxes, key, kernel, sigma, _threads(k * k // max(1, b)))
    return _scatter(decay, play, order, dtype)


# --- boxes: the whole call per image, images over threads --------------------------------------------------


_SIGN = np.uint64(1 << 63)


@njit(cache=True, nogil=True)
def _rank(items, count, key, spare, bits, digits):
    """Sort ``items[:count]`` (indices into ``key``, ascending) by ``key`` descending, equal keys keeping their
    order: a stable LSD radix sort of 8-bit digits of an order-reversing uint64 image of each (finite) key,
    skipping the digits every key shares. ``bits`` (float64[n]) and ``digits`` (int64[8, 257]) are scratch."""
    for i in range(count):
        bits[i] = np.float64(key[items[i]]) + 0.0  # -0.0 to 0.0: they tie
    words = bits[:count].view(np.uint64)
    for i in range(count):
        u = words[i]
        words[i] = u if u & _SIGN else ~(u | _SIGN)  # descending: the complement of the ascending image
    digits[:, :] = 0
    for i in range(count):
        u = words[i]
        for d in range(8):
            digits[d, ((u >> np.uint64(8 * d)) & np.uint64(255)) + 1] += 1
    # sort (item, word) pairs: items through spare, words alongside in a second buffer
    src_items, dst_items = items, spare
    src_words = words
    dst_words = np.empty(count, np.uint64)
    moved = False
    for d in range(8):
        shift = np.uint64(8 * d)
        if count == 0 or digits[d, ((src_words[0] >> shift) & np.uint64(255)) + 1] == count:
            continue  # every key has this digit
        for v in range(256):
            digits[d, v + 1] += digits[d, v]
        for i in range(count):
            v = (src_words[i] >> shift) & np.uint64(255)
            o = digits[d, v]
            digits[d, v] = o + 1
            dst_items[o] = src_items[i]
            dst_words[o] = src_words[i]
        src_items, dst_items = dst_items, src_items
        src_words, dst_words = dst_words, src_words
        moved = not moved
    if moved:
        for i in range(count):
            items[i] = spare[i]


@njit(cache=True, nogil=True)
def _label_groups(order_labels, k, group, counts):
    """``group[:k]``: positions 0..k-1 by (label, position), a counting sort when the labels span little
    (``counts``: scratch of at least that span + 1), else a stable argsort."""
    if k == 0:
        return
    low, high = order_labels[0], order_labels[0]
    for p in range(k):
        low = min(low, order_labels[p])
        high = max(high, order_labels[p])
    span = high - low + 1
    if span < 0 or span >= counts.shape[0]:  # (span < 0: an overflowed spread)
        group[:k] = np.argsort(order_labels[:k], kind="mergesort")
        return
    counts[:span + 1] = 0
    for p in range(k):
        counts[order_labels[p] - low + 1] += 1
    for v in range(span):
        counts[v + 1] += counts[v]
    for p in range(k):
        v = order_labels[p] - low
        group[counts[v]] = p
        counts[v] += 1


@njit(cache=True, nogil=True)
def _box_image_worker(state, total, scores, candidate, boxes, labels, use_labels, pre_top_k, post_threshold, gaussian,
                      sigma, keep, kept, num_kept):
    """Claim images b and write their rows of ``keep``, ``kept`` (decayed scores, in ``scores``' dtype) and
    ``num_kept``: what ``matrix_nms`` does for one image, in its order of operations.

    The candidates (``candidate[b]``) by score, descending, ties by lower index, the first ``pre_top_k``; the
    decay per label group, each member against the earlier ones as ``_group_worker`` (the same overlap and
    decay helpers, the same lists, so the same float64 decay); decayed = score x decay in ``scores``' dtype,
    those >= ``post_threshold`` (of that dtype) ranked by decayed score, ties by lower index, the first
    ``keep.shape[1]``."""
    n = scores.shape[1]
    width = keep.shape[1]
    items = np.empty(n, np.int64)
    spare = np.empty(n, np.int64)
    bits = np.empty(n)
    digits = np.empty((8, 257), np.int64)
    order_labels = np.empty(n, np.int64)
    group = np.arange(n)
    counts = np.empty(4 * n + 2, np.int64)
    group_boxes = np.empty((n, 4))
    index = np.empty(n, np.int64)
    value = np.empty(n)
    cmax = np.empty(n)
    decay = np.empty(n)
    decayed = np.empty_like(scores[0])
    survives = np.empty(n, np.bool_)
    while True:
        b = take_ticket(state, NEXT)
        if b >= total:
            return
        row = scores[b]
        count = 0
        for i in range(n):
            if candidate[b, i]:
                items[count] = i
                count += 1
        _rank(items, count, row, spare, bits, digits)
        k = min(count, pre_top_k)
        # positions 0..k-1 in score order; group: positions by (label, position)
        if use_labels:
            for p in range(k):
                order_labels[p] = labels[b, items[p]]
            _label_groups(order_labels, k, group, counts)
        for q in range(k):
            i = items[group[q]]
            for e in range(4):
                group_boxes[q, e] = np.float64(boxes[b, i, e])
        start = 0
        for p in range(k):
            if use_labels and p > 0 and order_labels[group[p]] != order_labels[group[p - 1]]:
                start = p
            j = group[p]
            c = _box_overlaps(group_boxes, p, group, start, index, value, False)
            _settle(j, index, value, c, cmax, decay, gaussian, sigma)
        survives[:] = False
        for p in range(k):
            i = items[p]
            decayed[i] = decay[p]  # to the scores' dtype, then the product in it
            decayed[i] = row[i] * decayed[i]
            survives[i] = decayed[i] >= post_threshold
        survivors = 0
        for i in range(n):  # in index order: the stable sort keeps equal decayed scores by lower index
            if survives[i]:
                items[survivors] = i
                survivors += 1
        _rank(items, survivors, decayed, spare, bits, digits)
        kept_here = min(survivors, width)
        for r in range(kept_here):
            keep[b, r] = items[r]
            kept[b, r] = decayed[items[r]]
        num_kept[b] = kept_here
        take_ticket(state, DONE)


@register("batched_box_nms", "numba")
def batched_box_nms(scores: Array, boxes: Array, candidate: Array, labels: Array | None, kernel: str, sigma: float,
                    pre_top_k: int | None, post_threshold: float | None, post_top_k: int | None,
                    dtype: Any) -> tuple[Array, Array, Array]:
    """``batched_matrix_nms`` on boxes from its candidates (valid, finite, past ``score_threshold``): one pass
    over the images on the threads, each image's sort, decay, thresholds and ranking in compiled code.

    Pinned to ``matrix_nms`` by ``tests/test_batched.py`` (every box row; the tie orders:
    ``test_box_batches_keep_the_tie_order_of_matrix_nms``)."""
    s = view(scores)
    b, n = s.shape
    work = np.float64 if s.dtype == np.float64 else np.float32  # the compute dtype (matrix_nms's)
    s = np.ascontiguousarray(s, dtype=work)
    width = n if post_top_k is None else post_top_k
    keep = np.full((b, width), -1, np.int64)
    kept = np.zeros((b, width), work)
    num_kept = np.zeros(b, np.int64)
    threshold = work(-np.inf if post_threshold is None else post_threshold)  # compared in that dtype, as NumPy
    use_labels = labels is not None
    rows = host(labels, np.int64) if use_labels else np.zeros((1, 1), np.int64)
    # a box pair costs about what a mask byte does; all pairs of each image counted (cheap bound)
    threads = _threads(b * n * n)
    run_claimed(_box_image_worker, b, threads, s, host(candidate, np.bool_), view(boxes), rows, use_labels,
                n if pre_top_k is None else min(pre_top_k, n), threshold, kernel == "gaussian", float(sigma), keep,
                kept, num_kept)
    return wrap(keep, scores), wrap(kept, scores, dtype), wrap(num_kept, scores)

