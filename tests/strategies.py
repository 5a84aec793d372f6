"""Hypothesis strategies: masks(), boxes(), scores(), labels() and whole Matrix NMS problems.

Arrays are built from a drawn structure (how many items, which are duplicates, jitter, empties) and a drawn
seed, so that overlaps, exact duplicates, empty masks and score ties are common, not rare.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def scores(draw, n: int, dtype=np.float64):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["random", "ties", "all_equal"]))
    if style == "random":
        s = rng.random(n)
    elif style == "ties":
        s = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9], size=n)
    else:
        s = np.full(n, 0.5)
    return s.astype(dtype)


@st.composite
def masks(draw, n: int | None = None, max_n: int = 12, max_side: int = 24):
    """(N, H, W) bool masks: rectangles and blobs, jittered copies, exact duplicates, empty masks."""
    if n is None:
        n = draw(st.integers(0, max_n))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p_dup = draw(st.sampled_from([0.0, 0.2, 0.5]))
    p_empty = draw(st.sampled_from([0.0, 0.1, 0.3]))
    out = np.zeros((n, h, w), dtype=bool)
    for k in range(n):
        r = rng.random()
        if k and r < p_dup:
            src = out[rng.integers(k)]
            if rng.random() < 0.5:
                out[k] = src  # exact duplicate
            else:
                out[k] = np.roll(src, (rng.integers(-2, 3), rng.integers(-2, 3)), axis=(0, 1))
        elif r < p_dup + p_empty:
            continue
        elif rng.random() < 0.7:
            y0, y1 = sorted(rng.integers(0, h + 1, 2))
            x0, x1 = sorted(rng.integers(0, w + 1, 2))
            out[k, y0:y1 + 1, x0:x1 + 1] = True
        else:
            out[k] = rng.random((h, w)) < rng.uniform(0.1, 0.9)
    return out


@st.composite
def boxes(draw, n: int | None = None, max_n: int = 12, integer: bool = False):
    """(N, 4) float64 xyxy boxes with jittered copies, exact duplicates and zero-area boxes."""
    if n is None:
        n = draw(st.integers(0, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 4))
    for k in range(n):
        r = rng.random()
        if k and r < 0.3:
            out[k] = out[rng.integers(k)]
            if rng.random() < 0.5:
                out[k] += rng.normal(0, 2, 4) if not integer else rng.integers(-2, 3, 4)
        elif r < 0.35:
            x, y = rng.uniform(0, 50, 2)
            out[k] = [x, y, x, y + rng.uniform(0, 5)]  # zero area
        else:
            x, y = rng.uniform(0, 50, 2)
            out[k] = [x, y, x + rng.uniform(0, 30), y + rng.uniform(0, 30)]
        if integer:
            out[k] = np.round(out[k])
        out[k, 2] = max(out[k, 2], out[k, 0])
        out[k, 3] = max(out[k, 3], out[k, 1])
    return out


@st.composite
def labels(draw, n: int):
    classes = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, classes, n).astype(np.int64)


@st.composite
def optional_labels(draw, n: int):
    """labels(n) or None (class-agnostic), each about half of the time."""
    return draw(labels(n)) if draw(st.booleans()) else None


@st.composite
def nms_options(draw, n: int):
    """Keyword arguments for matrix_nms: kernel, sigma, thresholds and top-k, each sometimes unset."""
    opts = {
        "kernel": draw(st.sampled_from(["gaussian", "linear"])),
        "sigma": draw(st.sampled_from([0.5, 0.1, 1.0, 2.0])),
    }
    if draw(st.booleans()):
        opts["score_threshold"] = draw(st.sampled_from([0.0, 0.2, 0.5]))
    if draw(st.booleans()):
        opts["post_threshold"] = draw(st.sampled_from([0.0, 0.05, 0.3]))
    if draw(st.booleans()):
        opts["pre_top_k"] = draw(st.integers(0, n + 1))
    if draw(st.booleans()):
        opts["post_top_k"] = draw(st.integers(0, n + 1))
    return opts


@st.composite
def mask_problems(draw, max_n: int = 12, max_side: int = 24):
    """(scores, masks, labels or None, options) for Matrix NMS on masks."""
    m = draw(masks(max_n=max_n, max_side=max_side))
    n = len(m)
    s = draw(scores(n))
    lab = draw(optional_labels(n))
    return s, m, lab, draw(nms_options(n))


@st.composite
def box_problems(draw, max_n: int = 12):
    b = draw(boxes(max_n=max_n))
    n = len(b)
    s = draw(scores(n))
    lab = draw(optional_labels(n))
    return s, b, lab, draw(nms_options(n))


# --- many exact ties: 40-200 candidates, few distinct scores, duplicated masks / boxes ---------------------
#
# Sorts that must be stable (argsort(..., stable=True), Numba's kind="mergesort") are only distinguishable
# from unstable ones on long runs of equal keys: NumPy's and Numba's quicksorts are insertion sorts below 16
# elements, hence stable there. These problems have runs of dozens of equal scores per label.

TIE_SCORES = (0.25, 0.5, 0.75, 0.9)


@st.composite
def tie_scores(draw, n: int, dtype=np.float64):
    """(N,) scores drawn from one to four values of ``TIE_SCORES``: long runs of exact ties."""
    values = draw(st.lists(st.sampled_from(TIE_SCORES), min_size=1, max_size=4, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).choice(values, size=n).astype(dtype)


@st.composite
def tie_labels(draw, n: int):
    """labels with one to three classes (dozens of candidates per class), or None."""
    if draw(st.booleans()):
        return None
    classes = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, classes, n).astype(np.int64)


@st.composite
def tie_masks(draw, n: int, max_side: int = 16):
    """(N, H, W) masks copied from a few base rectangles: exact duplicates, shifted copies, empty masks."""
    h = draw(st.integers(4, max_side))
    w = draw(st.integers(4, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bases = np.zeros((draw(st.integers(1, 8)), h, w), dtype=bool)
    for base in bases:
        y0, y1 = sorted(rng.integers(0, h, 2))
        x0, x1 = sorted(rng.integers(0, w, 2))
        base[y0:y1 + 1, x0:x1 + 1] = True
    p_empty = draw(st.sampled_from([0.0, 0.2, 0.5]))
    out = np.zeros((n, h, w), dtype=bool)
    for k in range(n):
        r = rng.random()
        if r < p_empty:
            continue  # empty: overlaps nothing, keeps its score, ties with its equals
        out[k] = bases[rng.integers(len(bases))]
        if r > 0.8:
            out[k] = np.roll(out[k], (rng.integers(-1, 2), rng.integers(-1, 2)), axis=(0, 1))
    return out


@st.composite
def tie_boxes(draw, n: int):
    """(N, 4) boxes copied from a few bases: exact duplicates, integer shifts, disjoint far-away boxes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    corner = np.round(rng.uniform(0, 20, (draw(st.integers(1, 8)), 2)))
    bases = np.concatenate([corner, corner + np.round(rng.uniform(2, 12, corner.shape))], axis=1)
    p_far = draw(st.sampled_from([0.0, 0.2, 0.5]))
    out = np.zeros((n, 4))
    for k in range(n):
        r = rng.random()
        if r < p_far:
            out[k] = [1000.0 + 10 * k, 0.0, 1005.0 + 10 * k, 5.0]  # disjoint from everything
            continue
        out[k] = bases[rng.integers(len(bases))]
        if r > 0.8:
            out[k] += rng.integers(-1, 2, 4).clip(0, None) * [0, 0, 1, 1]
    return out


@st.composite
def tie_options(draw, n: int):
    """matrix_nms options for tie problems: the kernel, and sometimes a top-k that cuts through a tie."""
    opts = {"kernel": draw(st.sampled_from(["gaussian", "linear"]))}
    if draw(st.booleans()):
        opts["pre_top_k"] = draw(st.integers(1, n))
    if draw(st.booleans()):
        opts["post_top_k"] = draw(st.integers(1, n))
    return opts


@st.composite
def many_tie_mask_problems(draw, min_n: int = 40, max_n: int = 200, max_side: int = 16):
    """(scores, masks, labels or None, options) with ``min_n``-``max_n`` candidates and many exact ties."""
    n = draw(st.integers(min_n, max_n))
    return draw(tie_scores(n)), draw(tie_masks(n, max_side)), draw(tie_labels(n)), draw(tie_options(n))


@st.composite
def many_tie_box_problems(draw, min_n: int = 40, max_n: int = 200):
    """(scores, boxes, labels or None, options) with ``min_n``-``max_n`` candidates and many exact ties."""
    n = draw(st.integers(min_n, max_n))
    return draw(tie_scores(n)), draw(tie_boxes(n)), draw(tie_labels(n)), draw(tie_options(n))
