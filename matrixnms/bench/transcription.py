"""Baselines for the benchmarks: the paper's pseudo-code transcribed literally, and greedy mask NMS as
detectors write it.

``paper_matrix_nms_numpy`` / ``paper_matrix_nms_torch`` follow Figure 1 of the SOLOv2 appendix line by line
in float32: cast the masks to float, ``intersection = mm(masks, masks.T)``, areas expanded to N x N, the union,
``triu(diagonal=1)`` of the IoU, the column maximum expanded and transposed, the kernel, the column minimum.
Figure 1 assumes its input sorted by score; a detector's output is not, so the transcription starts with the
sort (and the gather of the masks) that any caller of it has to do, which ``matrix_nms`` also does. With
``labels`` the IoU is multiplied by the upper-triangular label-equality matrix, as the SOLO code base does for
class-aware Matrix NMS (Figure 1 itself is class-agnostic).

Being literal, the transcription keeps the pseudo-code's costs (an N x (H*W) float32 copy of the masks and
several N x N float32 arrays) and its failure modes: the linear kernel divides by ``1 - cmax``, which is 0 for
an exact duplicate (inf / NaN), and two empty masks give 0 / 0. The library has neither; these functions are
baselines to time and compare against, not something to use.

``greedy_mask_nms_numpy`` / ``greedy_mask_nms_torch`` are the greedy mask NMS loops found in detection code
bases: visit the candidates by descending score; each one not yet suppressed is kept, and its IoU with every
later candidate (same label, when labelled) is computed right then, from the masks, suppressing those above
the threshold. No IoU matrix is precomputed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _check(scores: Any, masks: Any, labels: Any | None) -> None:
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (N,), got {tuple(scores.shape)}")
    if masks.ndim != 3 or masks.shape[0] != scores.shape[0]:
        raise ValueError(f"masks must have shape ({scores.shape[0]}, H, W), got {tuple(masks.shape)}")
    if labels is not None and tuple(labels.shape) != tuple(scores.shape):
        raise ValueError(f"labels must have shape ({scores.shape[0]},), got {tuple(labels.shape)}")


def _check_method(method: str) -> None:
    if method not in ("gauss", "linear"):
        raise ValueError(f"method must be 'gauss' or 'linear' (the paper's names), got {method!r}")


def paper_matrix_nms_numpy(
    scores: np.ndarray, masks: np.ndarray, labels: np.ndarray | None = None, method: str = "gauss",
    sigma: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Figure 1 of the SOLOv2 appendix in NumPy float32, preceded by the sort it assumes.

    Args:
        scores (ndarray[N], float): scores in any order.
        masks (ndarray[N, H, W], bool or 0/1): binary masks.
        labels (ndarray[N], int, optional): class labels; None means class-agnostic (Figure 1 as printed).
        method: ``"gauss"`` or ``"linear"`` (the paper's names).
        sigma: the paper's gaussian sigma.

    Returns:
        (ndarray[N] int64, ndarray[N] float32): ``order``, the input indices sorted by descending score, and
        the decayed scores in that order.
    """
    _check(scores, masks, labels)
    _check_method(method)
    # Figure 1 needs "scores in descending order": sort, and gather the masks in that order
    order = np.argsort(-scores, kind="stable")
    scores = scores[order].astype(np.float32)
    masks = masks[order]
    n = masks.shape[0]

    # reshape for computation: Nx(HW)
    masks = masks.reshape(n, -1).astype(np.float32)
    # pre-compute the IoU matrix: NxN
    intersection = masks @ masks.T
    areas = np.broadcast_to(masks.sum(axis=1), (n, n))
    union = areas + areas.T - intersection
    ious = np.triu(intersection / union, k=1)
    if labels is not None:
        sorted_labels = labels[order]
        label_x = np.broadcast_to(sorted_labels, (n, n))
        ious = ious * np.triu((label_x == label_x.T).astype(np.float32), k=1)

    # max IoU for each: NxN
    ious_cmax = ious.max(axis=0)
    ious_cmax = np.broadcast_to(ious_cmax, (n, n)).T
    # Matrix NMS, Eqn.(4): NxN
    if method == "gauss":
        decay = np.exp(-(ious**2 - ious_cmax**2) / np.float32(sigma))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # literal: a duplicate divides by zero
            decay = (1 - ious) / (1 - ious_cmax)
    # decay factor: N
    decay = decay.min(axis=0)
    return order, scores * decay


def paper_matrix_nms_torch(
    scores: Any, masks: Any, labels: Any | None = None, method: str = "gauss", sigma: float = 0.5
) -> tuple[Any, Any]:
    """Figure 1 of the SOLOv2 appendix in Torch float32 (on the tensors' device), preceded by its sort.

    Args:
        scores (Tensor[N], float): scores in any order.
        masks (Tensor[N, H, W], bool or 0/1): binary masks.
        labels (Tensor[N], int, optional): class labels; None means class-agnostic.
        method: ``"gauss"`` or ``"linear"``.
        sigma: the paper's gaussian sigma.

    Returns:
        (Tensor[N] int64, Tensor[N] float32): ``order`` (descending score) and the decayed scores in that order.
    """
    import torch

    _check(scores, masks, labels)
    _check_method(method)
    order = torch.argsort(scores, descending=True, stable=True)
    scores = scores[order].float()
    masks = masks[order]
    n = masks.shape[0]

    # reshape for computation: Nx(HW)
    masks = masks.reshape(n, -1).float()
    # pre-compute the IoU matrix: NxN
    intersection = torch.mm(masks, masks.T)
    areas = masks.sum(dim=1).expand(n, n)
    union = areas + areas.T - intersection
    ious = (intersection / union).triu(diagonal=1)
    if labels is not None:
        label_x = labels[order].expand(n, n)
        ious = ious * (label_x == label_x.T).float().triu(diagonal=1)

    # max IoU for each: NxN
    ious_cmax = ious.max(0).values
    ious_cmax = ious_cmax.expand(n, n).T
    # Matrix NMS, Eqn.(4): NxN
    if method == "gauss":
        decay = torch.exp(-(ious**2 - ious_cmax**2) / sigma)
    else:
        decay = (1 - ious) / (1 - ious_cmax)
    # decay factor: N
    decay = decay.min(dim=0).values
    return order, scores * decay


def _check_threshold(iou_threshold: float) -> float:
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    return float(iou_threshold)


def _label_blocks(sorted_labels: np.ndarray | None, n: int) -> list[np.ndarray]:
    """Positions (in score order) of each label's candidates; one block of all positions without labels."""
    if sorted_labels is None:
        return [np.arange(n)]
    by_label = np.argsort(sorted_labels, kind="stable")  # stable: score order within each label
    cuts = np.flatnonzero(np.diff(sorted_labels[by_label])) + 1
    return np.split(by_label, cuts)


def greedy_mask_nms_numpy(
    scores: np.ndarray, masks: np.ndarray, iou_threshold: float = 0.5, labels: np.ndarray | None = None
) -> np.ndarray:
    """Greedy mask NMS as detection code writes it, in NumPy: per kept mask, its IoU with the later ones.

    A candidate is suppressed when its IoU with a kept, higher-scored candidate (of its label) is greater
    than ``iou_threshold`` (torchvision's rule). With labels, each class is processed on its own, as
    detectors' class-aware NMS loops do. Intersections are exact integer counts.

    Args:
        scores (ndarray[N], float): scores in any order.
        masks (ndarray[N, H, W], bool or 0/1): binary masks.
        iou_threshold: suppression threshold.
        labels (ndarray[N], int, optional): class labels; None means class-agnostic.

    Returns:
        ndarray[K], int64: kept input indices by descending score (ties: lower index first).
    """
    _check(scores, masks, labels)
    iou_threshold = _check_threshold(iou_threshold)
    order = np.argsort(-scores, kind="stable")
    n = order.shape[0]
    kept = []
    for block in _label_blocks(None if labels is None else labels[order], n):
        flat = masks[order[block]].reshape(block.shape[0], -1).astype(bool, copy=False)
        areas = np.count_nonzero(flat, axis=1)
        suppressed = np.zeros(block.shape[0], dtype=bool)
        for i in range(block.shape[0]):
            if suppressed[i]:
                continue
            kept.append(block[i])
            # the later candidates still alive: their IoU with mask i, now
            rest = np.flatnonzero(~suppressed[i + 1:]) + i + 1
            if rest.size == 0:
                break
            inter = np.count_nonzero(flat[rest] & flat[i], axis=1)
            union = areas[rest] + areas[i] - inter
            iou = np.divide(inter, union, out=np.zeros(rest.shape[0]), where=union > 0)
            suppressed[rest[iou > iou_threshold]] = True
    return order[np.sort(np.asarray(kept, dtype=np.int64))]


def greedy_mask_nms_torch(scores: Any, masks: Any, iou_threshold: float = 0.5, labels: Any | None = None) -> Any:
    """Greedy mask NMS as detection code writes it, in Torch (on the tensors' device).

    Same rule and result as :func:`greedy_mask_nms_numpy`. The per-step IoU is a float32 matrix-vector
    product of all later masks (of the class) with the kept one, exact for counts below 2**24; already
    suppressed ones are included because gathering the survivors costs Torch more than it saves.

    Returns:
        Tensor[K], int64: kept input indices by descending score.
    """
    import torch

    _check(scores, masks, labels)
    iou_threshold = _check_threshold(iou_threshold)
    order = torch.argsort(scores, descending=True, stable=True)
    n = order.shape[0]
    sorted_labels = None if labels is None else labels[order].cpu().numpy()
    kept = []
    for block in _label_blocks(sorted_labels, n):
        flat = masks[order[torch.from_numpy(block).to(order.device)]].reshape(block.shape[0], -1).float()
        areas = flat.sum(dim=1)
        # the loop's control flow runs on the host, as in detection code bases
        suppressed = torch.zeros(block.shape[0], dtype=torch.bool, device=flat.device)
        for i in range(block.shape[0]):
            if bool(suppressed[i]):
                continue
            kept.append(int(block[i]))
            if i + 1 == block.shape[0]:
                break
            inter = flat[i + 1:] @ flat[i]
            # the ratio in float64, so that an IoU at the threshold compares as in the NumPy version
            inter, union = inter.double(), (areas[i + 1:] + areas[i]).double() - inter.double()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
            suppressed[i + 1:] |= iou > iou_threshold
    positions = torch.tensor(sorted(kept), dtype=torch.int64, device=order.device)
    return order[positions]


def mmdet_mask_matrix_nms_torch(
    masks: Any, labels: Any, scores: Any, filter_thr: float = -1, nms_pre: int = -1, max_num: int = -1,
    kernel: str = "gaussian", sigma: float = 2.0, mask_area: Any | None = None,
) -> tuple[Any, Any, Any, Any]:
    """mmdetection 3.x's ``mask_matrix_nms`` algorithm, transcribed step by step in Torch (the baseline of
    ``benchmarks/test_bench_compat.py``, and the peer the compat tests compare with).

    A transcription of the algorithm as mmdetection documents and runs it, written here, not their code:
    sort the scores (descending) and keep the ``nms_pre`` highest; flatten the masks to float32 and take the
    dense ``(N, H*W) @ (H*W, N)`` matmul as the intersections; areas expanded to (N, N), the union, the
    upper-triangular IoU; the upper-triangular label-equality matrix; the column maximum (``cmax``) expanded
    and transposed; the kernel in mmdetection's form (``exp(-sigma * iou^2) / exp(-sigma * cmax^2)``, sigma
    2.0, or ``(1 - iou) / (1 - cmax)``) and its column minimum; ``scores * decay``; keep ``>= filter_thr``;
    sort again and keep ``max_num``. Each limit is active only when > 0.

    It keeps their costs (an N x (H*W) float32 copy, several N x N float32 arrays) and failure modes (NaN for
    two empty masks and for linear-kernel duplicates; non-stable sorts). Same returns as
    ``matrixnms.compat.mmdet.mask_matrix_nms``: (scores, labels, masks, keep_inds).
    """
    import torch

    if len(labels) == 0:
        return scores.new_zeros(0), labels.new_zeros(0), masks.new_zeros(0, *masks.shape[-2:]), labels.new_zeros(0)
    if mask_area is None:
        mask_area = masks.sum((1, 2)).float()
    scores, order = torch.sort(scores, descending=True)
    if nms_pre > 0:
        order, scores = order[:nms_pre], scores[:nms_pre]
    keep_inds = order
    masks, mask_area, labels = masks[order], mask_area[order], labels[order]
    n = len(labels)

    flat = masks.reshape(n, -1).float()
    intersection = torch.mm(flat, flat.T)
    areas = mask_area.expand(n, n)
    ious = (intersection / (areas + areas.T - intersection)).triu(diagonal=1)
    labels_x = labels.expand(n, n)
    same_label = (labels_x == labels_x.T).triu(diagonal=1)
    ious = ious * same_label
    cmax = ious.max(0).values.expand(n, n).T
    if kernel == "gaussian":
        decay = (torch.exp(-sigma * ious**2) / torch.exp(-sigma * cmax**2)).min(0).values
    elif kernel == "linear":
        decay = ((1 - ious) / (1 - cmax)).min(0).values
    else:
        raise NotImplementedError(f"{kernel} kernel is not supported in matrix nms")
    scores = scores * decay

    if filter_thr > 0:
        passed = scores >= filter_thr
        if not bool(passed.any()):
            return scores.new_zeros(0), labels.new_zeros(0), masks.new_zeros(0, *masks.shape[-2:]), labels.new_zeros(0)
        keep_inds, masks, scores, labels = keep_inds[passed], masks[passed], scores[passed], labels[passed]
    scores, order = torch.sort(scores, descending=True)
    if max_num > 0:
        order, scores = order[:max_num], scores[:max_num]
    return scores, labels[order], masks[order], keep_inds[order]
