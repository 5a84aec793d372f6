"""Cropped masks: each instance as a 0/1 crop inside its box, as Mask R-CNN-style heads and supervision's
``CompactMask`` keep them; full frames exist only on request (:meth:`CroppedMasks.to_dense`).

Every function that takes a mask set accepts a :class:`CroppedMasks` and gives exactly the results of the
same masks as a dense (N, H, W) array: the overlap work runs on the CPU on the crops' bits (see
``matrixnms._sparse``), results follow ``scores``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _sparse


class CroppedMasks:
    """N binary masks of one (H, W) frame, each given as a crop inside its box.

    Args:
        crops (sequence of N 2-D arrays, bool or 0/1): crop ``i`` has shape ``(y2 - y1, x2 - x1)`` of box ``i``;
            NumPy arrays, Torch CPU/CUDA tensors and CuPy arrays are read once (copied to the host).
        boxes (array-like (N, 4), integers): ``x1, y1, x2, y2`` pixel edges of each crop in the frame
            (``x2``, ``y2`` exclusive, as ``masks_to_boxes(format="xyxy")`` gives them); a crop need not be
            tight (zero margins are fine).
        size ((H, W)): the frame.

    A box that reaches outside the frame (``x1 < 0``, ``y1 < 0``, ``x2 > W`` or ``y2 > H``) is rejected with a
    ``ValueError`` naming its index: clip the box and its crop first (pixels outside the frame would change
    no IoU computed on the frame, but silently dropping them hides a caller's coordinate mix-up).

    Raises:
        ValueError: a box with non-integer or inverted coordinates, outside the frame, a crop of another shape
            than its box, values other than 0/1, a bad ``size``, or ``len(crops) != len(boxes)``.
    """

    def __init__(self, crops: Sequence[Any], boxes: Any, size: tuple[int, int]):
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)):
            raise ValueError(f"size must be (H, W), two ints >= 0, got {size!r}")
        h, w = int(size[0]), int(size[1])
        b = np.asarray(_host(boxes))
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {b.shape}")
        if len(crops) != b.shape[0]:
            raise ValueError(f"crops must have one crop per box: expected {b.shape[0]}, got {len(crops)}")
        if not np.array_equal(b, np.round(b)) if b.size else False:
            i = int(np.flatnonzero(np.any(b != np.round(b), axis=1))[0])
            raise ValueError(f"boxes must be integer pixel edges, got {b[i].tolist()} at index {i}")
        b = b.astype(np.int64)
        parts, kept = [], []
        for i, crop in enumerate(crops):
            x1, y1, x2, y2 = (int(v) for v in b[i])
            if x2 < x1 or y2 < y1:
                raise ValueError(f"boxes must satisfy x2 >= x1 and y2 >= y1, got {b[i].tolist()} at index {i}")
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                raise ValueError(f"boxes[{i}] = {b[i].tolist()} reaches outside the frame (H, W) = {(h, w)}: "
                                 "clip the box and its crop")
            c = np.asarray(_host(crop))
            if c.shape != (y2 - y1, x2 - x1):
                raise ValueError(f"crops[{i}] must have the shape (y2 - y1, x2 - x1) = {(y2 - y1, x2 - x1)} of "
                                 f"its box, got {c.shape}")
            if c.dtype != bool and c.size and not np.all((c == 0) | (c == 1)):
                raise ValueError(f"crops[{i}] must hold only 0 and 1 (binary masks), got other values")
            kept.append(c)
            parts.append(_sparse.pack_crop(c, x1, y1, w, h))
        self.crops: list[np.ndarray] = kept
        self.boxes: np.ndarray = b
        self.size: tuple[int, int] = (h, w)
        self._sparse = _sparse.concat(parts, self.size)

    def __len__(self) -> int:
        return len(self.crops)

    def __repr__(self) -> str:
        return f"CroppedMasks({len(self)} masks, size={self.size})"

    @classmethod
    def from_dense(cls, masks: Any) -> "CroppedMasks":
        """Tight crops of (N, H, W) 0/1 masks (an empty mask gets the box ``[0, 0, 0, 0]`` and a 0 x 0 crop)."""
        m = np.asarray(_host(masks))
        if m.ndim != 3:
            raise ValueError(f"masks must have shape (N, H, W), got {m.shape}")
        binary = m != 0
        crops, boxes = [], []
        for i in range(m.shape[0]):
            ys, xs = np.flatnonzero(binary[i].any(axis=1)), np.flatnonzero(binary[i].any(axis=0))
            if ys.size == 0:
                boxes.append([0, 0, 0, 0])
                crops.append(np.zeros((0, 0), bool))
                continue
            boxes.append([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1])
            crops.append(binary[i, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1])
        return cls(crops, np.array(boxes, np.int64).reshape(-1, 4), m.shape[1:])

    @classmethod
    def from_rle(cls, rles: Sequence[dict]) -> "CroppedMasks":
        """Tight crops of COCO RLEs (compressed or uncompressed counts), decoded run by run, never to frames."""
        sparse = _sparse.from_rle(rles, "rles")
        pairs = [_sparse.unpack_crop(sparse, i) for i in range(sparse.n)]
        boxes = np.array([p[0] for p in pairs], np.int64).reshape(-1, 4)
        return cls([p[1] for p in pairs], boxes, sparse.size)

    def to_dense(self) -> np.ndarray:
        """(N, H, W) bool masks."""
        out = np.zeros((len(self), *self.size), bool)
        for i, (x1, y1, x2, y2) in enumerate(self.boxes):
            out[i, y1:y2, x1:x2] = self.crops[i] != 0
        return out

    def to_rle(self) -> list[dict]:
        """COCO RLEs ``{"size": [H, W], "counts": bytes}`` (compressed, as pycocotools' ``encode``), built from
        each crop's runs: no frame is allocated."""
        h, w = self.size
        out = []
        for (x1, y1, _, _), crop in zip(self.boxes, self.crops):
            runs = _sparse.crop_runs(crop, int(x1), int(y1), h, w)
            out.append({"size": [h, w], "counts": _sparse.encode_runs(runs)})
        return out


def _host(x: Any) -> Any:
    """A NumPy view or copy of a NumPy array, a Torch tensor or a CuPy array; anything else as it is."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return x


def sparse_of(masks: CroppedMasks) -> _sparse.SparseMasks:
    return masks._sparse


__all__ = ["CroppedMasks"]
