"""SOLOv2 losses: sigmoid focal loss on the category grids, Dice loss on the masks of positive cells.

``loss = loss_cls + 3 * loss_mask`` (the paper's lambda = 3):

- ``loss_cls``: focal loss (alpha 0.25, gamma 2) summed over every cell and class of every level, divided
  by ``num_pos + 1`` (mmdetection's ``avg_factor``).
- ``loss_mask``: ``1 - 2 sum(p q) / (sum(p^2) + sum(q^2))`` per positive cell, with ``p`` the predicted mask
  (sigmoid of the dynamic convolution) and ``q`` its target, averaged over positive cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import HeadOutputs
from .targets import LevelTargets

MASK_LOSS_WEIGHT = 3.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
# keeps the Dice ratio finite for an all-zero prediction and target (SOLO adds 0.001 to each sum)
_DICE_EPS = 2e-3


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = FOCAL_ALPHA,
                       gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Element-wise focal loss (Lin et al., 2017).

    Args:
        logits (Tensor[...], float): raw scores.
        targets (Tensor[...], float): 0/1 targets, same shape.

    Returns:
        Tensor[...]: the loss of each element.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


def dice_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss per mask.

    Args:
        pred (Tensor[P, h, w]): probabilities.
        target (Tensor[P, h, w]): targets in [0, 1].

    Returns:
        Tensor[P]: ``1 - dice`` of each mask.
    """
    p, q = pred.flatten(1), target.flatten(1)
    return 1 - 2 * (p * q).sum(1) / ((p * p).sum(1) + (q * q).sum(1) + _DICE_EPS)


def dynamic_masks(kernels: torch.Tensor, mask_feats: torch.Tensor) -> torch.Tensor:
    """Masks logits from 1x1 dynamic kernels.

    Args:
        kernels (Tensor[P, E]): one kernel per positive (or candidate) cell.
        mask_feats (Tensor[E, h, w]): one image's mask features.

    Returns:
        Tensor[P, h, w]: logits ``kernels @ mask_feats``.
    """
    e, h, w = mask_feats.shape
    return (kernels @ mask_feats.reshape(e, h * w)).reshape(-1, h, w)


def solov2_loss(outputs: HeadOutputs, targets: list[list[LevelTargets]]) -> dict[str, torch.Tensor]:
    """The SOLOv2 training loss for a batch.

    Args:
        outputs: the network's outputs for B images.
        targets: ``targets[b][level]`` from ``assign_targets`` for image b.

    Returns:
        dict with ``loss`` (the total to minimise), ``loss_cls``, ``loss_mask`` (scalars) and ``num_pos``.
    """
    batch = outputs.mask_feats.shape[0]
    if len(targets) != batch:
        raise ValueError(f"targets must have one entry per image ({batch}), got {len(targets)}")
    mask_logits, mask_targets = [], []
    cls_terms = []
    num_pos = 0
    for level, (kernel_pred, cls_pred) in enumerate(zip(outputs.kernel_preds, outputs.cls_preds)):
        num_classes = cls_pred.shape[1]
        for b in range(batch):
            t = targets[b][level]
            if t.pos_index.numel():
                kernels = kernel_pred[b].flatten(1)[:, t.pos_index].T  # (P, E)
                mask_logits.append(dynamic_masks(kernels, outputs.mask_feats[b]))
                mask_targets.append(t.mask_targets)
                num_pos += int(t.pos_index.numel())
        labels = torch.stack([targets[b][level].labels for b in range(batch)]).flatten()  # (B*S*S,)
        # background is label num_classes: its one-hot row is all zeros
        one_hot = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(cls_pred.dtype)
        logits = cls_pred.permute(0, 2, 3, 1).reshape(-1, num_classes)
        cls_terms.append(sigmoid_focal_loss(logits, one_hot).sum())
    loss_cls = torch.stack(cls_terms).sum() / (num_pos + 1)
    if mask_logits:
        pred = torch.sigmoid(torch.cat(mask_logits))
        loss_mask = dice_loss(pred, torch.cat(mask_targets)).mean()
    else:
        # keep the graph connected so an image without instances still trains the category branch
        loss_mask = outputs.mask_feats.sum() * 0.0
    loss = loss_cls + MASK_LOSS_WEIGHT * loss_mask
    return {"loss": loss, "loss_cls": loss_cls.detach(), "loss_mask": loss_mask.detach(),
            "num_pos": torch.tensor(num_pos)}
