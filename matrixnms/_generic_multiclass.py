"""Array-API implementation of Paddle-style per-class box Matrix NMS (``matrixnms.multiclass``).

A padded, batched formulation for Torch, CuPy and ``backend="generic"``: each class padded to ``nms_top_k``
sorted candidates, batched (K, K) IoU blocks, masks instead of data-dependent loops, chunked within
``_config.CHUNK_BYTES``. The semantics are in ``matrixnms.multiclass``; ``tests/test_multiclass.py`` pins this
path to the loop reference of Paddle's algorithm (``tests/reference_paddle.py``).
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from . import _config
from ._dispatch import register
from ._typing import Array

# temporaries of one (K, K) IoU block, in units of K * K elements
_BLOCK_TEMPORARIES = 12


@register("multiclass_matrix_nms", "generic")
def multiclass_matrix_nms(boxes: Array, scores: Array, classes: tuple[int, ...], score_threshold: float,
                    post_threshold: float, kc: int, width: int, kernel: str, sigma: float, normalized: bool,
                    static: bool) -> tuple[Array, Array, Array, Array]:
    """The array-API formulation: every class padded to ``kc`` sorted candidates, decayed in batched blocks.

    Candidates that fail ``score_threshold`` sort last (key -inf), so the first ``count`` slots of a class
    are exactly its candidates and every higher-ranked slot of a valid candidate is valid too: the decay
    needs no mask beyond ``i < j``. Unless ``static``, the padding shrinks to the largest class's count (one
    scalar read back), which makes sparse scores cheap.
    """
    xp = array_api_compat.array_namespace(scores)
    device = array_api_compat.device(scores)
    work = scores.dtype
    n_img, n_cls, m = scores.shape
    n_fg = len(classes)
    class_ids = xp.asarray(classes, dtype=xp.int64, device=device)
    s = scores if n_fg == n_cls else xp.take(scores, class_ids, axis=1)  # (B, G, M)

    def typed(value: float) -> Any:
        return xp.asarray(value, dtype=work, device=device)

    passed = s > typed(score_threshold)
    key = xp.where(passed, s, typed(-float("inf")))
    count = xp.minimum(xp.sum(xp.astype(passed, xp.int64), axis=2), kc)
    if not static:
        kc = int(xp.max(count))
        if kc == 0:
            return (xp.zeros((n_img, width), dtype=work, device=device),
                    xp.full((n_img, width), -1, dtype=xp.int64, device=device),
                    xp.full((n_img, width), -1, dtype=xp.int64, device=device), xp.zeros_like(count[:, 0]))
    order = xp.argsort(key, axis=2, descending=True, stable=True)[:, :, :kc]  # (B, G, kc)
    valid = xp.arange(kc, dtype=xp.int64, device=device)[None, None, :] < count[:, :, None]
    sorted_scores = xp.where(valid, xp.take_along_axis(s, order, axis=2), typed(0.0))

    pairs = n_img * n_fg
    flat = order + xp.arange(n_img, dtype=xp.int64, device=device)[:, None, None] * m
    cand = xp.reshape(xp.take(xp.reshape(boxes, (n_img * m, 4)), xp.reshape(flat, (-1,)), axis=0),
                      (pairs, kc, 4))
    consts = {"zero": typed(0.0), "one": typed(1.0), "gs": typed(1.0 / sigma),
              "norm": typed(0.0 if normalized else 1.0)}
    decay = _decay_all(xp, cand, None if static else xp.reshape(count, (pairs,)), kernel == "gaussian", consts)
    decayed = xp.reshape(decay, (n_img, n_fg, kc)) * sorted_scores
    keep = valid & (decayed > typed(post_threshold))

    # merge classes: a stable sort over (class, rank) order puts ties in that order
    merged = xp.reshape(xp.where(keep, decayed, typed(-float("inf"))), (n_img, n_fg * kc))
    rank = xp.argsort(merged, axis=1, descending=True, stable=True)[:, :width]
    counts = xp.minimum(xp.sum(xp.astype(xp.reshape(keep, (n_img, n_fg * kc)), xp.int64), axis=1), width)
    out_dec = xp.take_along_axis(merged, rank, axis=1)
    out_lab = xp.take(class_ids, xp.reshape(rank // kc, (-1,)), axis=0)
    out_lab = xp.reshape(out_lab, rank.shape)
    out_idx = xp.take_along_axis(xp.reshape(order, (n_img, n_fg * kc)), rank, axis=1)
    short = width - rank.shape[1]
    if short > 0:  # keep_top_k larger than any image can fill
        out_dec = xp.concat([out_dec, xp.zeros((n_img, short), dtype=work, device=device)], axis=1)
        pad = xp.full((n_img, short), -1, dtype=xp.int64, device=device)
        out_lab, out_idx = xp.concat([out_lab, pad], axis=1), xp.concat([out_idx, pad], axis=1)
    return out_dec, out_lab, out_idx, counts


def _decay_all(xp: Any, cand: Array, count: Array | None, gaussian: bool, consts: dict) -> Array:
    """Decay factors (P, K) of P classes' sorted, padded candidates (P, K, 4), in memory-bounded chunks.

    With ``count`` (P,) (candidates per class; read back once), classes are processed by decreasing count
    in chunks padded only to their own largest count, halving from chunk to chunk, so the work is within a
    small factor of sum(count^2) instead of P * K^2. Without it (static shapes) every chunk has width K.
    """
    pairs, kc = cand.shape[0], cand.shape[1]
    itemsize = 8 if cand.dtype == xp.float64 else 4

    def rows(width: int) -> int:  # classes per chunk within the chunk budget
        return max(1, _config.CHUNK_BYTES // (_BLOCK_TEMPORARIES * max(width, 1) ** 2 * itemsize))

    if count is None:
        return xp.concat([_decay_block(xp, cand[s:s + rows(kc)], gaussian, consts)
                          for s in range(0, pairs, rows(kc))], axis=0)
    by_size = xp.argsort(count, descending=True, stable=True)
    sizes = [int(v) for v in xp.take(count, by_size).tolist()]
    ones = xp.ones((pairs, kc), dtype=cand.dtype, device=array_api_compat.device(cand))
    blocks, start = [], 0
    while start < pairs and sizes[start] > 0:
        width = sizes[start]
        stop = min(pairs, start + rows(width))
        stop = next((t for t in range(start, stop) if sizes[t] <= width // 2), stop)
        block = _decay_block(xp, xp.take(cand, by_size[start:stop], axis=0)[:, :width], gaussian, consts)
        blocks.append(xp.concat([block, ones[start:stop, width:]], axis=1))
        start = stop
    blocks.append(ones[start:])  # classes without candidates
    return xp.take(xp.concat(blocks, axis=0), xp.argsort(by_size), axis=0)


def _decay_block(xp: Any, cand: Array, gaussian: bool, c: dict) -> Array:
    """Decay factors (P, K) of P classes' sorted candidate boxes (P, K, 4), from their (P, K, K) IoU."""
    zero, one, norm = c["zero"], c["one"], c["norm"]
    x1, y1, x2, y2 = (cand[:, :, t] for t in range(4))
    inverted = (x2 < x1) | (y2 < y1)
    area = xp.where(inverted, zero, (x2 - x1 + norm) * (y2 - y1 + norm))
    # axis 1: the higher-ranked suppressor i, axis 2: the candidate j
    iw = xp.minimum(x2[:, :, None], x2[:, None, :]) - xp.maximum(x1[:, :, None], x1[:, None, :])
    ih = xp.minimum(y2[:, :, None], y2[:, None, :]) - xp.maximum(y1[:, :, None], y1[:, None, :])
    inter = (iw + norm) * (ih + norm)
    union = area[:, None, :] + area[:, :, None] - inter
    k = cand.shape[1]
    position = xp.arange(k, device=array_api_compat.device(cand))
    upper = position[:, None] < position[None, :]
    ok = upper & (iw >= zero) & (ih >= zero) & (inter > zero) & ~inverted[:, :, None] & ~inverted[:, None, :]
    iou = xp.where(ok, xp.minimum(inter / xp.where(ok, union, one), one), zero)
    cmax = xp.max(iou, axis=1)
    if gaussian:
        exponent = xp.where(upper, ((cmax * cmax)[:, :, None] - iou * iou) * c["gs"], zero)
        return xp.exp(xp.min(exponent, axis=1))
    den = one - cmax
    usable = den > zero  # a suppressor duplicating a higher box (cmax = 1) no longer suppresses
    ratio = (one - iou) / xp.where(usable, den, one)[:, :, None]
    return xp.min(xp.where(upper & usable[:, :, None], ratio, one), axis=1)
