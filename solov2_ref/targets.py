"""SOLOv2 training targets: which grid cells are positive for which instance, and their mask targets.

For each ground-truth instance with box side ``sqrt(w * h)`` (the box comes from the mask with
``matrixnms.masks_to_boxes``), every grid level whose ``scale_ranges`` entry contains that side is
responsible for it. On such a level with an S x S grid over the image:

- the cell holding the mask's centre of mass is positive, and so is every cell of the *centre region*,
  the box ``centre +- pos_scale * (w / 2, h / 2)``, clipped to the 3 x 3 cells around the centre cell
  (the paper's epsilon = 0.2);
- a positive cell's category target is the instance's class (later instances overwrite earlier ones, as
  in SOLO), and its mask target is the instance's mask at the mask features' 1/4 scale.

Mask targets are the fraction of each 4 x 4 block covered by the instance (area downsampling), not a
thresholded copy: at 1/4 scale of a 128-pixel image an object edge falls inside a block, and the fraction
tells the Dice loss where inside it. (mmdetection rescales a uint8 copy bilinearly, i.e. about the same
values rounded to 0/1.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from matrixnms import masks_to_boxes

from .model import SOLOv2Config


@dataclass
class LevelTargets:
    """Targets of one image on one grid level.

    Attributes:
        labels (Tensor[S, S], int64): class per cell, ``num_classes`` for background.
        pos_index (Tensor[P], int64): flat indices ``row * S + col`` of the positive cells.
        mask_targets (Tensor[P, H/4, W/4], float32): mask target of each positive cell, values in [0, 1].
    """

    labels: torch.Tensor
    pos_index: torch.Tensor
    mask_targets: torch.Tensor


def center_of_mass(mask: torch.Tensor) -> tuple[float, float]:
    """(y, x) centre of mass of a non-empty binary mask, in pixel units with pixel centres at +0.5."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return float(ys.double().mean()) + 0.5, float(xs.double().mean()) + 0.5


def downsample_masks(masks: torch.Tensor, stride: int) -> torch.Tensor:
    """Covered fraction of each ``stride`` x ``stride`` block.

    Args:
        masks (Tensor[N, H, W], bool or 0/1): H and W multiples of ``stride``.

    Returns:
        Tensor[N, H/stride, W/stride], float32 in [0, 1].
    """
    if masks.shape[0] == 0:
        return masks.new_zeros((0, masks.shape[1] // stride, masks.shape[2] // stride), dtype=torch.float32)
    return F.avg_pool2d(masks[:, None].float(), stride)[:, 0]


def assign_targets(masks: torch.Tensor, labels: torch.Tensor, cfg: SOLOv2Config,
                   mask_stride: int = 4) -> list[LevelTargets]:
    """SOLOv2 targets for one image.

    Args:
        masks (Tensor[N, H, W], bool): instance masks at input resolution; H, W multiples of ``mask_stride``.
        labels (Tensor[N], int64): class of each instance, in [0, num_classes).
        cfg: the model's grids, scale ranges and centre-region factor.
        mask_stride: scale of the mask features relative to the input (4 in SOLOv2).

    Returns:
        list of LevelTargets, one per grid level.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}")
    if labels.shape != (masks.shape[0],):
        raise ValueError(f"labels must have shape ({masks.shape[0]},), got {tuple(labels.shape)}")
    n, height, width = masks.shape
    masks = masks.bool()
    small = downsample_masks(masks, mask_stride)
    # the array-API path: the training loop stays free of Numba's OpenMP threads (see solov2_ref/__init__.py)
    boxes = masks_to_boxes(masks, format="xyxy", backend="generic")
    sides = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    areas = masks.flatten(1).sum(1)
    centres = [center_of_mass(masks[i]) if areas[i] > 0 else None for i in range(n)]

    result = []
    for (low, high), grid in zip(cfg.scale_ranges, cfg.num_grids):
        cell_labels = torch.full((grid, grid), cfg.num_classes, dtype=torch.int64)
        owner = torch.full((grid, grid), -1, dtype=torch.int64)
        for i in range(n):
            if centres[i] is None or not (low <= float(sides[i]) <= high):
                continue
            cy, cx = centres[i]
            half_h = 0.5 * float(boxes[i, 3] - boxes[i, 1]) * cfg.pos_scale
            half_w = 0.5 * float(boxes[i, 2] - boxes[i, 0]) * cfg.pos_scale
            row, col = int(cy / height * grid), int(cx / width * grid)
            top = max(int((cy - half_h) / height * grid), 0, row - 1)
            bottom = min(int((cy + half_h) / height * grid), grid - 1, row + 1)
            left = max(int((cx - half_w) / width * grid), 0, col - 1)
            right = min(int((cx + half_w) / width * grid), grid - 1, col + 1)
            cell_labels[top:bottom + 1, left:right + 1] = labels[i]
            owner[top:bottom + 1, left:right + 1] = i
        pos_index = torch.nonzero(owner.flatten() >= 0).flatten()
        result.append(LevelTargets(cell_labels, pos_index, small[owner.flatten()[pos_index]]))
    return result
