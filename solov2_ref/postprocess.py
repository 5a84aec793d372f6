"""SOLOv2 inference: from the network's raw outputs to instance masks, with the NMS as one argument.

Per image, as in SOLOv2 (and SOLO / mmdetection's defaults, ``PostprocessConfig``):

1. sigmoid of the category grids, then *point NMS*: a cell keeps its score only where it is the maximum of
   its 2 x 2 neighbourhood (per class);
2. every (cell, class) with ``score > score_thr`` (0.1) is a candidate; its mask is the sigmoid of the
   dynamic 1x1 convolution of the mask features with the cell's kernel, at 1/4 scale;
3. binary mask ``prob > mask_thr`` (0.5); candidates whose mask area is not above the level's stride are
   dropped; *maskness* re-scoring: score x mean probability inside the binary mask;
4. the NMS (``nms``), on the binary 1/4-scale masks, class-aware, among the ``nms_pre`` (500) best:

   - ``"matrix-gaussian"``: ``matrixnms.matrix_nms`` gaussian, sigma 0.5 (= SOLO's sigma 2.0), then
     ``decayed >= update_thr`` (0.05) and the ``max_per_img`` (100) best, all inside the one call;
   - ``"matrix-linear"``: the same with the linear kernel;
   - ``"greedy"``: ``matrixnms.mask_nms`` at IoU 0.5 (suppress when IoU > 0.5);
   - ``"soft"``: ``matrixnms.soft_nms`` gaussian, sigma 0.5, dropping scores below ``update_thr``;
   - ``"fast"``: ``matrixnms.fast_nms`` at IoU 0.5 (YOLACT's Fast NMS: suppressed masks still suppress);
   - ``"cluster"``: ``matrixnms.cluster_nms`` at IoU 0.5 (Cluster-NMS: the same masks as ``"greedy"``);
   - ``"none"``: no suppression.

   Every choice ends with the same ``score >= update_thr`` filter and the same ``max_per_img`` cap, so the
   only difference between them is the suppression itself.
5. the kept probabilities are upsampled (bilinear) to the input size and thresholded at ``mask_thr``.

Only the public ``matrixnms`` API is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from matrixnms import batched_matrix_nms, cluster_nms, fast_nms, mask_nms, matrix_nms, soft_nms

from .losses import dynamic_masks
from .model import HeadOutputs

NMS_CHOICES = ("matrix-gaussian", "matrix-linear", "greedy", "soft", "fast", "cluster", "none")
NMSChoice = Literal["matrix-gaussian", "matrix-linear", "greedy", "soft", "fast", "cluster", "none"]


@dataclass(frozen=True)
class PostprocessConfig:
    """Inference thresholds; the defaults are SOLOv2's.

    Attributes:
        score_thr: category score a candidate must exceed (strict).
        mask_thr: probability threshold of the binary masks.
        nms_pre: candidates kept, by score, before the NMS.
        update_thr: score a result must reach after the NMS (kept if >=).
        max_per_img: results kept per image.
        sigma: gaussian sigma in the paper's convention (Matrix NMS and Soft-NMS).
        greedy_iou: IoU threshold of the hard mask NMS choices (greedy, Fast NMS, Cluster-NMS).
    """

    score_thr: float = 0.1
    mask_thr: float = 0.5
    nms_pre: int = 500
    update_thr: float = 0.05
    max_per_img: int = 100
    sigma: float = 0.5
    greedy_iou: float = 0.5


@dataclass
class Candidates:
    """One image's candidates before the NMS (steps 1-3).

    Attributes:
        probs (Tensor[K, h, w], float32): mask probabilities at 1/4 scale.
        masks (Tensor[K, h, w], bool): ``probs > mask_thr``.
        areas (Tensor[K], float32): pixels in each binary mask.
        scores (Tensor[K], float32): category score times maskness.
        labels (Tensor[K], int64): class of each candidate.
        levels (Tensor[K], int64): grid level each candidate comes from.
        cells (Tensor[K], int64): flat cell index within its level.
    """

    probs: torch.Tensor
    masks: torch.Tensor
    areas: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    levels: torch.Tensor
    cells: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Detections:
    """Final instances of one image, by decreasing score.

    Attributes:
        masks (Tensor[K, H, W], bool): masks at input resolution.
        scores (Tensor[K], float32): scores after the NMS.
        labels (Tensor[K], int64): classes.
        nms_seconds: wall time of the NMS step alone (step 4).
    """

    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    nms_seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def point_nms(probs: torch.Tensor) -> torch.Tensor:
    """Zero every cell that is not the maximum of its 2 x 2 window (SOLO's point NMS).

    Args:
        probs (Tensor[B, C, S, S]): category probabilities.

    Returns:
        Tensor[B, C, S, S]: ``probs`` where the cell is a local maximum, else 0.
    """
    local_max = F.max_pool2d(probs, 2, stride=1, padding=1)[..., :-1, :-1]
    return probs * (local_max == probs)


@torch.no_grad()
def candidates(outputs: HeadOutputs, index: int, strides: tuple[int, ...],
               cfg: PostprocessConfig = PostprocessConfig()) -> Candidates:
    """Steps 1-3 for image ``index`` of a batch: scored candidates with their 1/4-scale masks."""
    if not 0 <= index < outputs.mask_feats.shape[0]:
        raise IndexError(f"index must be in [0, {outputs.mask_feats.shape[0]}), got {index}")
    if len(strides) != len(outputs.cls_preds):
        raise ValueError(f"strides must have one entry per level ({len(outputs.cls_preds)}), got {strides}")
    scores, labels, levels, cells, kernels, min_area = [], [], [], [], [], []
    for level, (cls_pred, kernel_pred) in enumerate(zip(outputs.cls_preds, outputs.kernel_preds)):
        probs = point_nms(torch.sigmoid(cls_pred[index:index + 1].float()))[0]  # (C, S, S)
        c, s, _ = probs.shape
        flat = probs.reshape(c, s * s)
        label, cell = torch.nonzero(flat > cfg.score_thr, as_tuple=True)
        scores.append(flat[label, cell])
        labels.append(label)
        cells.append(cell)
        levels.append(torch.full_like(cell, level))
        kernels.append(kernel_pred[index].float().reshape(kernel_pred.shape[1], s * s)[:, cell].T)
        min_area.append(torch.full((cell.shape[0],), float(strides[level])))
    scores, labels, levels = torch.cat(scores), torch.cat(labels), torch.cat(levels)
    cells, kernels, min_area = torch.cat(cells), torch.cat(kernels), torch.cat(min_area)

    probs = torch.sigmoid(dynamic_masks(kernels, outputs.mask_feats[index].float()))
    masks = probs > cfg.mask_thr
    areas = masks.flatten(1).sum(1).float()
    keep = areas > min_area  # masks no larger than the level's stride are noise
    probs, masks, areas = probs[keep], masks[keep], areas[keep]
    maskness = (probs * masks).flatten(1).sum(1) / areas
    return Candidates(probs, masks, areas, scores[keep] * maskness, labels[keep], levels[keep], cells[keep])


def suppress(cands: Candidates, nms: NMSChoice = "matrix-gaussian",
             cfg: PostprocessConfig = PostprocessConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 4: the NMS.

    Args:
        cands: one image's candidates.
        nms: one of ``NMS_CHOICES``.
        cfg: thresholds.

    Returns:
        (Tensor[K] int64, Tensor[K] float32): indices into ``cands`` by decreasing final score, and the scores.
    """
    if nms not in NMS_CHOICES:
        raise ValueError(f"nms must be one of {NMS_CHOICES}, got {nms!r}")
    scores, masks, labels = cands.scores, cands.masks, cands.labels
    if nms.startswith("matrix-"):
        return matrix_nms(scores, masks, labels=labels, kernel=nms.removeprefix("matrix-"), sigma=cfg.sigma,
                          pre_top_k=cfg.nms_pre, post_threshold=cfg.update_thr, post_top_k=cfg.max_per_img,
                          mask_areas=cands.areas)
    # the same nms_pre for every choice: the NMS sees the same candidates. Every NMS sorts (stably) by itself,
    # so the masks are gathered only when there are more candidates than nms_pre (a copy of K masks otherwise)
    if scores.shape[0] > cfg.nms_pre:
        order = torch.argsort(scores, descending=True, stable=True)[:cfg.nms_pre]
        scores, masks, labels = scores[order], masks[order], labels[order]
    else:
        order = torch.arange(scores.shape[0])
    if nms in ("greedy", "fast", "cluster"):
        if nms == "greedy":
            keep = mask_nms(masks, scores, cfg.greedy_iou, labels=labels)
        else:
            hard = fast_nms if nms == "fast" else cluster_nms
            keep = hard(scores, masks, labels=labels, iou_threshold=cfg.greedy_iou)
        kept_scores = scores[keep]
    elif nms == "soft":
        keep, kept_scores = soft_nms(scores, masks, labels=labels, kernel="gaussian", sigma=cfg.sigma,
                                     score_threshold=cfg.update_thr)
    else:
        keep = torch.argsort(scores, descending=True, stable=True)
        kept_scores = scores[keep]
    passed = kept_scores >= cfg.update_thr
    keep, kept_scores = keep[passed][:cfg.max_per_img], kept_scores[passed][:cfg.max_per_img]
    return order[keep], kept_scores


def finalize(cands: Candidates, keep: torch.Tensor, scores: torch.Tensor, image_size: tuple[int, int],
             cfg: PostprocessConfig = PostprocessConfig()) -> Detections:
    """Step 5: upsample the kept mask probabilities to ``image_size`` (H, W) and threshold them."""
    probs = cands.probs[keep]
    if probs.shape[0]:
        probs = F.interpolate(probs[None], size=image_size, mode="bilinear", align_corners=False)[0]
        masks = probs > cfg.mask_thr
    else:
        masks = torch.zeros((0, *image_size), dtype=torch.bool)
    return Detections(masks, scores.float(), cands.labels[keep])


def postprocess(outputs: HeadOutputs, strides: tuple[int, ...], image_size: tuple[int, int],
                nms: NMSChoice = "matrix-gaussian",
                cfg: PostprocessConfig = PostprocessConfig()) -> list[Detections]:
    """Instances for every image of a batch.

    Args:
        outputs: the network's outputs for B images.
        strides: each grid level's stride (the model config's ``strides``).
        image_size: (H, W) of the input images.
        nms: ``"matrix-gaussian"`` (SOLOv2's), ``"matrix-linear"``, ``"greedy"``, ``"soft"``, ``"fast"``,
            ``"cluster"`` or ``"none"``.
        cfg: thresholds.

    Returns:
        list of B Detections.
    """
    if nms not in NMS_CHOICES:
        raise ValueError(f"nms must be one of {NMS_CHOICES}, got {nms!r}")
    results = []
    for b in range(outputs.mask_feats.shape[0]):
        cands = candidates(outputs, b, strides, cfg)
        start = time.perf_counter()
        keep, scores = suppress(cands, nms, cfg)
        elapsed = time.perf_counter() - start
        det = finalize(cands, keep, scores, image_size, cfg)
        det.nms_seconds = elapsed
        results.append(det)
    return results


# --- batches: step 4 for several images in one call ----------------------------------------------------------


def suppress_batch(batch: Sequence[Candidates], nms: NMSChoice = "matrix-gaussian",
                   cfg: PostprocessConfig = PostprocessConfig()) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Step 4 for several images: the Matrix NMS choices in one ``matrixnms.batched_matrix_nms`` call (each
    image's candidates padded to the largest count, the padding marked invalid), the others image by image.

    Returns:
        per image, what ``suppress`` returns for it: the same indices and scores.
    """
    if nms not in NMS_CHOICES:
        raise ValueError(f"nms must be one of {NMS_CHOICES}, got {nms!r}")
    if not nms.startswith("matrix-") or not batch:
        return [suppress(cands, nms, cfg) for cands in batch]
    width = max(len(cands) for cands in batch)
    size = tuple(batch[0].masks.shape[1:])
    scores = torch.zeros((len(batch), width))
    masks = torch.zeros((len(batch), width, *size), dtype=torch.bool)
    labels = torch.zeros((len(batch), width), dtype=torch.int64)
    valid = torch.zeros((len(batch), width), dtype=torch.bool)
    for b, cands in enumerate(batch):
        k = len(cands)
        scores[b, :k], masks[b, :k], labels[b, :k], valid[b, :k] = cands.scores, cands.masks, cands.labels, True
    keep, decayed, num_kept = batched_matrix_nms(
        scores, masks, valid=valid, labels=labels, kernel=nms.removeprefix("matrix-"), sigma=cfg.sigma,
        pre_top_k=cfg.nms_pre, post_threshold=cfg.update_thr, post_top_k=cfg.max_per_img)
    return [(keep[b, :count], decayed[b, :count]) for b, count in enumerate(num_kept.tolist())]


def postprocess_batched(outputs: HeadOutputs, strides: tuple[int, ...], image_size: tuple[int, int],
                        nms: NMSChoice = "matrix-gaussian",
                        cfg: PostprocessConfig = PostprocessConfig()) -> list[Detections]:
    """``postprocess`` with step 4 for the whole batch in one call (``suppress_batch``): the same detections.
    Each image's ``nms_seconds`` is its share of the batched call."""
    batch = [candidates(outputs, b, strides, cfg) for b in range(outputs.mask_feats.shape[0])]
    start = time.perf_counter()
    kept = suppress_batch(batch, nms, cfg)
    share = (time.perf_counter() - start) / max(1, len(batch))
    results = []
    for cands, (keep, scores) in zip(batch, kept):
        det = finalize(cands, keep, scores, image_size, cfg)
        det.nms_seconds = share
        results.append(det)
    return results
