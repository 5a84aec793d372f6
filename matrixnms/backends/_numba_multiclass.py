"""Numba kernel for batched multi-class box Matrix NMS (PaddlePaddle's ``matrix_nms``).

Two compiled passes do the whole batch: one over (image, class) pairs selects, sorts and decays each class,
one over images merges the classes and keeps the best. Each pass is shared out, interleaved, to
``numba.get_num_threads()`` threads running ``nogil`` kernels (``_numba_runtime.run_shares``, which says why
not ``prange``); small problems stay on the calling thread.
The semantics are those of ``matrixnms.multiclass`` (its module docstring); this module never validates.

Why it is fast: each class needs only one pass over its pairs (i < j). Candidate j's max IoU ``cmax[j]`` and
its decay both depend on higher-ranked candidates only, so ``cmax`` is complete for every suppressor by the
time it is used and no K x K matrix is stored. The gaussian takes one ``exp`` per candidate (the minimum is
taken over the exponents; ``exp`` is monotone), not one per pair. The inner loop is branch-free over
structure-of-arrays box coordinates, so LLVM vectorises it.

All arithmetic is done in the dtype of the inputs (float32 or float64), in the order Paddle's CPU kernel
uses, so float32 results round as Paddle's do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._dispatch import register
from .._typing import Array
from ._numba_runtime import host, run_shares, thread_count, wrap

# min/max reductions vectorise only without NaN semantics; no value here is NaN (guarded divisions), and
# "contract" / "arcp" / "reassoc" stay off so that every float op rounds exactly like the reference.
_FASTMATH = {"nnan", "nsz"}


@njit(cache=True, fastmath=_FASTMATH)
def _kth_largest(vals, k):
    """The k-th largest of ``vals`` (1 <= k <= n), by quickselect on a copy.

    Hand-written: it compiles much faster than Numba's ``np.partition`` and runs as fast at these sizes.
    """
    a = vals.copy()
    lo, hi = 0, a.shape[0] - 1
    target = k - 1  # position in descending order
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i, j = lo, hi
        while i <= j:  # Hoare partition: larger values to the left
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break  # target lies between the two parts: it equals the pivot
    return a[target]


@njit(cache=True, fastmath=_FASTMATH)
def _best_stable(vals, k):
    """Positions of the ``k`` largest ``vals``, largest first; equal values keep their order (stable).

    Finds the k-th largest value first (O(n)), so only the k winners are sorted, not all n.
    """
    n = vals.shape[0]
    take = np.arange(n)
    if k == 0:
        take = take[:0]
    elif n > k:
        kth = _kth_largest(vals, k)
        ties = k
        for t in range(n):
            if vals[t] > kth:
                ties -= 1
        take = np.empty(k, dtype=np.int64)
        w = 0
        for t in range(n):
            v = vals[t]
            if v > kth or (v == kth and ties > 0):
                if v == kth:
                    ties -= 1  # the first ties in input order win
                take[w] = t
                w += 1
    keys = np.empty(take.shape[0], dtype=vals.dtype)
    for t in range(take.shape[0]):
        keys[t] = -vals[take[t]]
    return take[np.argsort(keys, kind="mergesort")]  # mergesort is stable


@njit(cache=True, fastmath=_FASTMATH)
def _select_sorted(row, thr, kc):
    """Box indices with ``row > thr``, best first (ties: lower index first), at most ``kc`` of them."""
    n = 0
    for i in range(row.shape[0]):
        if row[i] > thr:
            n += 1
    cand = np.empty(n, dtype=np.int64)
    vals = np.empty(n, dtype=row.dtype)
    n = 0
    for i in range(row.shape[0]):
        if row[i] > thr:
            cand[n] = i
            vals[n] = row[i]
            n += 1
    return cand[_best_stable(vals, kc)]


# The sweeps update every lower-ranked candidate j from one suppressor i (a row of the IoU matrix). Their
# arrays are slices that start at j = i + 1: a loop from 0 over slices vectorises, a loop from i + 1 does not
# (Numba cannot prove that index non-negative).


@njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
def _iou(x1, y1, x2, y2, area, j, ax1, ay1, ax2, ay2, aa, norm, zero, one):
    """Paddle's JaccardOverlap of box j with box a; 0 without overlap or when the union is 0 (never 0 / 0)."""
    iw = min(x2[j], ax2) - max(x1[j], ax1)
    ih = min(y2[j], ay2) - max(y1[j], ay1)
    inter = (iw + norm) * (ih + norm)
    union = aa + area[j] - inter
    overlap = (iw >= zero) & (ih >= zero) & (inter > zero)
    # dividing by one where there is no overlap keeps every intermediate free of NaN
    return min(inter / (union if overlap else one), one) if overlap else zero


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _sweep_gaussian(x1, y1, x2, y2, area, cmax, low, ax1, ay1, ax2, ay2, aa, c2, gs, norm, zero, one):
    """``low[j]``: the minimum exponent ``(cmax[i]^2 - iou^2) * gs`` (``c2 = cmax[i]^2``)."""
    for j in range(x1.shape[0]):
        iou = _iou(x1, y1, x2, y2, area, j, ax1, ay1, ax2, ay2, aa, norm, zero, one)
        cmax[j] = max(cmax[j], iou)
        low[j] = min(low[j], (c2 - iou * iou) * gs)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _sweep_linear(x1, y1, x2, y2, area, cmax, low, ax1, ay1, ax2, ay2, aa, den, norm, zero, one):
    """``low[j]``: the minimum ratio ``(1 - iou) / (1 - cmax[i])`` (``den = 1 - cmax[i] > 0``)."""
    for j in range(x1.shape[0]):
        iou = _iou(x1, y1, x2, y2, area, j, ax1, ay1, ax2, ay2, aa, norm, zero, one)
        cmax[j] = max(cmax[j], iou)
        low[j] = min(low[j], (one - iou) / den)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _sweep_cmax(x1, y1, x2, y2, area, cmax, ax1, ay1, ax2, ay2, aa, norm, zero, one):
    """Only ``cmax[j]``: for a linear suppressor with ``cmax[i] = 1``, which no longer suppresses."""
    for j in range(x1.shape[0]):
        cmax[j] = max(cmax[j], _iou(x1, y1, x2, y2, area, j, ax1, ay1, ax2, ay2, aa, norm, zero, one))


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _decay_class(boxes, row, order, post_thr, gaussian, gs, norm, zero, one, big, out_dec, out_idx):
    """Matrix NMS of one class; writes the kept (decayed score, box index) in rank order, returns the count.

    Suppressors are visited in rank order; when i is reached, every higher-ranked box has already raised
    ``cmax[i]`` to its final value, so one pass over the pairs gives both ``cmax`` and the decay.
    """
    k = order.shape[0]
    x1 = np.empty(k, dtype=boxes.dtype)
    y1 = np.empty(k, dtype=boxes.dtype)
    x2 = np.empty(k, dtype=boxes.dtype)
    y2 = np.empty(k, dtype=boxes.dtype)
    area = np.empty(k, dtype=boxes.dtype)
    for t in range(k):
        b = boxes[order[t]]
        if b[2] < b[0] or b[3] < b[1]:
            # an inverted box has area 0 and overlaps nothing: coordinates that fail every overlap test
            x1[t], y1[t], x2[t], y2[t], area[t] = big, big, -big, -big, zero
        else:
            x1[t], y1[t], x2[t], y2[t] = b[0], b[1], b[2], b[3]
            area[t] = (b[2] - b[0] + norm) * (b[3] - b[1] + norm)
    cmax = np.zeros(k, dtype=boxes.dtype)
    # gaussian: the minimum exponent (exp(0) = 1 caps the decay at 1); linear: the minimum ratio, capped at 1
    low = np.full(k, zero if gaussian else one, dtype=boxes.dtype)
    for i in range(k - 1):
        s = i + 1
        c = cmax[i]
        if gaussian:
            _sweep_gaussian(x1[s:], y1[s:], x2[s:], y2[s:], area[s:], cmax[s:], low[s:], x1[i], y1[i], x2[i],
                            y2[i], area[i], c * c, gs, norm, zero, one)
        elif one - c > zero:
            _sweep_linear(x1[s:], y1[s:], x2[s:], y2[s:], area[s:], cmax[s:], low[s:], x1[i], y1[i], x2[i],
                          y2[i], area[i], one - c, norm, zero, one)
        else:
            _sweep_cmax(x1[s:], y1[s:], x2[s:], y2[s:], area[s:], cmax[s:], x1[i], y1[i], x2[i], y2[i], area[i],
                        norm, zero, one)
    kept = 0
    for j in range(k):
        decay = np.exp(low[j]) if gaussian else low[j]
        ds = decay * row[order[j]]
        if ds > post_thr:
            out_dec[kept] = ds
            out_idx[kept] = order[j]
            kept += 1
    return kept


@njit(cache=True, fastmath=_FASTMATH)
def _merge_image(dec, idx, cnt, classes, width, out_dec, out_lab, out_idx):
    """Merge one image's classes: the ``width`` best decayed scores, ties in (class, rank) order."""
    n = 0
    for g in range(cnt.shape[0]):
        n += cnt[g]
    vals = np.empty(n, dtype=dec.dtype)
    lab = np.empty(n, dtype=np.int64)
    box = np.empty(n, dtype=np.int64)
    w = 0
    for g in range(cnt.shape[0]):
        for r in range(cnt[g]):
            vals[w] = dec[g, r]
            lab[w] = classes[g]
            box[w] = idx[g, r]
            w += 1
    ranked = _best_stable(vals, width)
    for t in range(ranked.shape[0]):
        out_dec[t] = vals[ranked[t]]
        out_lab[t] = lab[ranked[t]]
        out_idx[t] = box[ranked[t]]
    return ranked.shape[0]


@njit(cache=True)
def _pair_work(scores, classes, thr, kc):
    """Number of IoU pairs the decay will visit: sum over (image, class) of min(candidates, kc)^2 / 2."""
    total = 0.0
    for b in range(scores.shape[0]):
        for g in range(classes.shape[0]):
            row = scores[b, classes[g]]
            n = 0
            for i in range(row.shape[0]):
                if row[i] > thr:
                    n += 1
            n = min(n, kc)
            total += 0.5 * n * n
    return total


@njit(cache=True, nogil=True)
def _classes_share(boxes, scores, classes, score_thr, post_thr, gaussian, gs, norm, zero, one, big, dec, idx, cnt,
                   first, step):
    """Select, sort and decay the (image, class) tasks first, first + step, ...; results into dec/idx/cnt."""
    g_total = classes.shape[0]
    for task in range(first, scores.shape[0] * g_total, step):
        b = task // g_total
        g = task - b * g_total
        row = scores[b, classes[g]]
        order = _select_sorted(row, score_thr, dec.shape[2])
        cnt[b, g] = _decay_class(boxes[b], row, order, post_thr, gaussian, gs, norm, zero, one, big,
                                 dec[b, g], idx[b, g])


@njit(cache=True, nogil=True)
def _merge_share(dec, idx, cnt, classes, out_dec, out_lab, out_idx, counts, first, step):
    """Merge the classes of images first, first + step, ..."""
    for b in range(first, dec.shape[0], step):
        counts[b] = _merge_image(dec[b], idx[b], cnt[b], classes, out_dec.shape[1], out_dec[b], out_lab[b],
                                 out_idx[b])


# Below this many IoU pairs a second thread costs more than it saves.
_PARALLEL_PAIRS = 200_000


@register("multiclass_matrix_nms", "numba")
def multiclass_matrix_nms(boxes: Array, scores: Array, classes: tuple[int, ...], score_threshold: float,
                          post_threshold: float, kc: int, width: int, kernel: str, sigma: float,
                          normalized: bool, static: bool) -> tuple[Array, Array, Array, Array]:
    """The ``"multiclass_matrix_nms"`` kernel contract (see ``matrixnms.multiclass._run``).

    Args:
        boxes (Array[B, M, 4]), scores (Array[B, C, M]): NumPy or CPU torch, both float32 or both float64.
        classes: the class indices to process (background removed), ascending.
        kc: candidates per class after ``nms_top_k``; width: result rows per image (``keep_top_k``).
        static: whether shapes may depend on the data; nothing here does (work is sized inside the
            compiled code, outputs are (B, width)).

    Returns:
        (decayed (B, width) scores.dtype, labels (B, width) int64, box index (B, width) int64, counts (B,)
        int64), in the caller's library; rows at or beyond ``counts[b]`` are padding.

    Pinned to the loop reference of Paddle's algorithm (``tests/reference_paddle.py``) by
    ``tests/test_multiclass.py::test_float64_batches_agree_with_the_paddle_reference``.
    """
    b = host(boxes)
    s = host(scores)
    t = s.dtype.type
    n_img = s.shape[0]
    class_ids = np.asarray(classes, dtype=np.int64)
    score_thr = t(score_threshold)
    dec = np.empty((n_img, len(classes), kc), dtype=s.dtype)
    idx = np.empty((n_img, len(classes), kc), dtype=np.int64)
    cnt = np.zeros((n_img, len(classes)), dtype=np.int64)
    threads = thread_count(_pair_work(s, class_ids, score_thr, kc), _PARALLEL_PAIRS)
    # sentinel coordinates of inverted boxes: any pair with one has a negative overlap width, and the
    # sentinel-sentinel "intersection" (2 big)^2 stays finite
    big = t(np.sqrt(np.finfo(s.dtype).max) / 4)
    run_shares(_classes_share, n_img * len(classes), threads, b, s, class_ids, score_thr, t(post_threshold),
               kernel == "gaussian", t(1.0 / sigma), t(0.0 if normalized else 1.0), t(0.0), t(1.0), big, dec, idx,
               cnt)
    out_dec = np.zeros((n_img, width), dtype=s.dtype)
    out_lab = np.full((n_img, width), -1, dtype=np.int64)
    out_idx = np.full((n_img, width), -1, dtype=np.int64)
    counts = np.zeros(n_img, dtype=np.int64)
    run_shares(_merge_share, n_img, threads, dec, idx, cnt, class_ids, out_dec, out_lab, out_idx, counts)
    return tuple(wrap(r, scores) for r in (out_dec, out_lab, out_idx, counts))
