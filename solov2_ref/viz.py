"""Figures for the demo: coloured instance overlays and the grid of mask-feature channels (appendix Fig. 3).

Uses matplotlib's object API (``matplotlib.figure.Figure``) so that no GUI backend is ever needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data import CLASSES, Scene
from .postprocess import Detections

# well-separated colours; instance k gets colour k (cycled)
_PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
], dtype=np.float32) / 255.0


def _edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay(image: np.ndarray, masks: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """RGB float image with each mask tinted in its own colour and outlined.

    Args:
        image (ndarray[H, W, 3], uint8): the picture.
        masks (ndarray[K, H, W], bool): drawn back to front: the first mask ends on top.

    Returns:
        ndarray[H, W, 3], float in [0, 1].
    """
    # a dimmed grey picture, so that the instance colours are the only colours
    grey = image.astype(np.float32).mean(-1, keepdims=True) / 255.0
    out = np.repeat(0.25 + 0.5 * grey, 3, axis=-1)
    for k in range(len(masks) - 1, -1, -1):
        colour = _PALETTE[k % len(_PALETTE)]
        m = masks[k]
        out[m] = (1 - alpha) * out[m] + alpha * colour
        out[_edges(m)] = colour
    return out


def _annotate(ax, masks: np.ndarray, labels: Sequence[int], scores: Sequence[float] | None, scale: float) -> None:
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            continue
        text = CLASSES[int(labels[k])][:4] + ("" if scores is None else f" {scores[k]:.2f}")
        ax.text(xs.mean() * scale, ys.mean() * scale, text, fontsize=6.5, ha="center", va="center",
                color="black", bbox={"boxstyle": "round,pad=0.15", "fc": (*_PALETTE[k % len(_PALETTE)], 0.85),
                                     "ec": "none"})


def save_overlays(path: Path, scenes: Sequence[Scene], columns: dict[str, Sequence[Detections]],
                  rows: Sequence[int], score_min: float = 0.3, upscale: int = 3, dpi: int = 100) -> Path:
    """A grid: one row per scene, columns image | ground truth | one per NMS result set.

    Args:
        path: PNG to write.
        scenes: the scenes the detections belong to.
        columns: title -> detections per scene (same order as ``scenes``).
        rows: which scenes to draw.
        score_min: draw detections with at least this score (the rest would hide the picture).
        upscale: nearest-neighbour upscaling of the small images, so outlines and text stay legible.
        dpi: resolution of the PNG (each panel is 2.6 inches wide).

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    ncols = 2 + len(columns)
    panel = 2.6
    fig = Figure(figsize=(panel * ncols, panel * len(rows) + 0.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, index in enumerate(rows):
        scene = scenes[index]
        big = np.kron(scene.image, np.ones((upscale, upscale, 1), dtype=np.uint8))
        panels = [("image", big, None, None),
                  (f"ground truth: {len(scene.labels)}", scene.masks, scene.labels, None)]
        for title, dets in columns.items():
            det = dets[index]
            shown = det.scores >= score_min
            panels.append((f"{title}: {int(shown.sum())} drawn / {len(det)} kept", det.masks[shown].numpy(),
                           det.labels[shown].tolist(), det.scores[shown].tolist()))
        for c, (title, masks, labels, scores) in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is None:
                ax.imshow(masks)
            else:
                big_masks = np.kron(masks.astype(np.uint8), np.ones((1, upscale, upscale), dtype=np.uint8)) > 0
                ax.imshow(overlay(big, big_masks))
                _annotate(ax, masks, labels, scores, upscale)
            ax.set_title(title, fontsize=9)
    note = "; greedy NMS = mask NMS at IoU 0.5" if any(title.startswith("greedy") for title in columns) else ""
    # two lines when the grid is narrow: one line would run past the figure's edges
    sep = "\n" if ncols < 4 else " "
    fig.suptitle(f"coloured instances: detections with score >= {score_min} are drawn{sep}(label: class, score)"
                 f"{note}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def save_feature_grid(path: Path, image: np.ndarray, mask_feats: torch.Tensor, columns: int = 8) -> Path:
    """Every channel of one image's unified mask features, as in the appendix's Figure 3.

    Args:
        path: PNG to write.
        image (ndarray[H, W, 3], uint8): the input, drawn first.
        mask_feats (Tensor[E, h, w]): the mask features of that image.
        columns: channels per row.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    feats = mask_feats.detach().float().numpy()
    e = feats.shape[0]
    rows = -(-e // columns)
    fig = Figure(figsize=(1.3 * (columns + 2), 1.3 * rows + 0.6), dpi=100, layout="constrained")
    grid = fig.add_gridspec(rows, columns + 2)
    ax = fig.add_subplot(grid[: min(rows, 2), :2])
    ax.imshow(image)
    ax.set_title("input", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for k in range(e):
        ax = fig.add_subplot(grid[k // columns, 2 + k % columns])
        f = feats[k]
        # per-channel contrast: the pattern matters, not the scale
        lo, hi = float(f.min()), float(f.max())
        ax.imshow((f - lo) / (hi - lo) if hi > lo else np.zeros_like(f), cmap="gray", vmin=0, vmax=1)
        ax.set_title(str(k), fontsize=7, pad=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"the {e} channels of the unified mask feature F (1/4 scale), each scaled to its own range",
                 fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
