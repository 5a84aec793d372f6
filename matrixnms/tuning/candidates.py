"""The candidate format: an instance segmenter's pre-NMS candidates as Parquet, one row per image.

Columns (``SCHEMA``; the optional ones may be absent from a file):

=============== ========================= ==========================================================
column          type                      meaning
=============== ========================= ==========================================================
image_id        int64                     the COCO image id (ground truth ``images[].id``)
height, width   int32                     image size: the size of the masks in COCO results
scores          list<float32>             candidate scores, any order (N per image)
labels          list<int32>               COCO ``category_id`` of each candidate (class-aware NMS)
masks           list<binary>              COCO RLE ``counts`` (pycocotools' compressed bytes) of the
                                          masks the NMS sees, at ``mask_height`` x ``mask_width``
mask_height,    int32, optional           size of ``masks`` (default ``height`` x ``width``); SOLOv2
mask_width                                runs its NMS on 1/4-scale masks
result_masks    list<binary>, optional    RLE counts at ``height`` x ``width`` of the mask each
                                          candidate reports when kept (default: ``masks``)
boxes           list<list<float32>>,      ``[x, y, w, h]`` of each result mask
                optional                  (``masks_to_boxes(..., "xywh")``); computed when absent
=============== ========================= ==========================================================

Row groups hold ``ROW_GROUP_SIZE`` images by default; readers stream them in batches (``iter_images``),
so no file is ever loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

ROW_GROUP_SIZE = 64
REQUIRED = ("image_id", "height", "width", "scores", "labels", "masks")
OPTIONAL = ("mask_height", "mask_width", "result_masks", "boxes")


def schema() -> Any:
    """The pyarrow schema of a candidate file, every optional column included."""
    import pyarrow as pa

    return pa.schema([
        ("image_id", pa.int64()), ("height", pa.int32()), ("width", pa.int32()),
        ("scores", pa.list_(pa.float32())), ("labels", pa.list_(pa.int32())), ("masks", pa.list_(pa.binary())),
        ("mask_height", pa.int32()), ("mask_width", pa.int32()),
        ("result_masks", pa.list_(pa.binary())), ("boxes", pa.list_(pa.list_(pa.float32()))),
    ])


class CandidateError(ValueError):
    """A candidate file or row that does not follow the format; the message names the image."""


def encode_masks(masks: np.ndarray) -> list[bytes]:
    """COCO RLE counts (compressed bytes) of binary masks (N, H, W)."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [rle["counts"] for rle in rles]


def rle_pixels(counts: Sequence[bytes]) -> np.ndarray:
    """Total run length (pixels covered, 0s and 1s) of each compressed RLE ``counts``; -1 where malformed.

    pycocotools' ``decode`` silently reads uninitialised memory for an RLE shorter than its size, so the
    sizes are checked here first, vectorised over the masks of one image (decoding as pycocotools'
    ``rleFrString``: 5 bits per character, continuation bit 0x20, sign bit 0x10, runs from the third on
    stored as differences to the run two before).
    """
    n = len(counts)
    if n == 0:
        return np.zeros(0, np.int64)
    lengths = np.fromiter((len(c) for c in counts), np.int64, n)
    chars = np.frombuffer(b"".join(counts), np.uint8).astype(np.int64) - 48
    result = np.full(n, -1, np.int64)
    if chars.size == 0:  # every counts empty: no runs
        return np.zeros(n, np.int64)
    mask_of_char = np.repeat(np.arange(n), lengths)
    valid_chars = np.bincount(mask_of_char, weights=(chars < 0) | (chars > 63), minlength=n) == 0
    chars = np.clip(chars, 0, 63)
    last_of_mask = np.cumsum(lengths) - 1
    ends = (chars & 0x20) == 0
    # a mask must end on a complete token
    complete = np.ones(n, bool)
    complete[lengths > 0] = ends[last_of_mask[lengths > 0]]
    token_of_char = np.concatenate([[0], np.cumsum(ends)[:-1]])
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    position = np.arange(chars.size) - starts[token_of_char]
    if position.max(initial=0) > 11:  # beyond int64: nothing a real image produces
        return result
    values = np.add.reduceat((chars & 0x1f) << (5 * position), starts)
    token_lengths = np.diff(np.append(starts, chars.size))
    last = chars[starts + token_lengths - 1]
    values = np.where(last & 0x10, values - (1 << (5 * token_lengths)), values)
    mask_of_token = mask_of_char[starts]
    tokens = np.bincount(mask_of_token, minlength=n)
    index = np.arange(starts.size) - np.concatenate([[0], np.cumsum(tokens)[:-1]])[mask_of_token]
    total = tokens[mask_of_token]
    # run i (i >= 1) is x_1 + x_3 + ... (odd) or x_2 + x_4 + ... (even): x_i counts once per later same-parity run
    weight = np.where(index == 0, 1, (total - 1 - index) // 2 + 1)
    pixels = np.bincount(mask_of_token, weights=(values * weight).astype(np.float64), minlength=n).astype(np.int64)
    # a negative run length is malformed too
    ok = complete & valid_chars & (lengths > 0) & (np.bincount(mask_of_token, weights=(values < 0) & (index < 3), minlength=n) == 0)
    result[ok] = pixels[ok]
    result[lengths == 0] = 0
    return result


@dataclass
class ImageCandidates:
    """One row of a candidate file, checked.

    Attributes:
        image_id: COCO image id.
        height, width: image size (of ``result_masks``).
        scores (ndarray[N], float32), labels (ndarray[N], int64): candidate scores and category ids.
        masks (list[bytes]): RLE counts at ``mask_size`` (the NMS input).
        mask_size: (h, w) of ``masks``.
        result_masks (list[bytes]): RLE counts at (height, width) (``masks`` when the file has none).
        boxes (ndarray[N, 4], float32 or None): xywh boxes of ``result_masks``, None when the file has none.
    """

    image_id: int
    height: int
    width: int
    scores: np.ndarray
    labels: np.ndarray
    masks: list[bytes]
    mask_size: tuple[int, int]
    result_masks: list[bytes]
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def check_columns(names: Sequence[str], source: str = "candidate file") -> None:
    """Raise CandidateError naming the required columns missing from ``names``."""
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CandidateError(f"{source} lacks the required column(s) {', '.join(missing)} "
                             f"(has {', '.join(names) or 'none'}); see matrixnms.tuning.candidates")
    if ("mask_height" in names) != ("mask_width" in names):
        raise CandidateError(f"{source} has only one of mask_height and mask_width")


def _checked(row: dict[str, Any]) -> ImageCandidates:
    image_id = row["image_id"]
    where = f"image_id {image_id}"
    if image_id is None or row["height"] is None or row["width"] is None:
        raise CandidateError(f"{where}: image_id, height and width must not be null")
    nulls = [c for c in ("scores", "labels", "masks") if row.get(c) is None]
    if nulls:
        raise CandidateError(f"{where}: {', '.join(nulls)} must not be null (an empty list for no candidates)")
    height, width = int(row["height"]), int(row["width"])
    mask_size = (int(row.get("mask_height") or height), int(row.get("mask_width") or width))
    scores = np.asarray(row["scores"] or [], np.float32)
    labels = np.asarray(row["labels"] or [], np.int64)
    masks = list(row["masks"] or [])
    result_masks = list(row.get("result_masks") or []) if row.get("result_masks") is not None else masks
    boxes = row.get("boxes")
    n = scores.shape[0]
    sizes = {"scores": n, "labels": labels.shape[0], "masks": len(masks), "result_masks": len(result_masks)}
    if boxes is not None:
        sizes["boxes"] = len(boxes)
    if len(set(sizes.values())) > 1:
        raise CandidateError(f"{where}: one entry per candidate expected, got "
                             + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    if not np.isfinite(scores).all():
        raise CandidateError(f"{where}: scores must be finite")
    for name, rles, (h, w) in (("masks", masks, mask_size), ("result_masks", result_masks, (height, width))):
        if name == "result_masks" and rles is masks and mask_size == (height, width):
            continue
        pixels = rle_pixels(rles)
        bad = np.flatnonzero(pixels != h * w)
        if bad.size:
            i = int(bad[0])
            raise CandidateError(f"{where}: {name}[{i}] is not an RLE of {h} x {w} (= {h * w} pixels): "
                                 + ("malformed counts" if pixels[i] < 0 else f"its runs cover {pixels[i]} pixels")
                                 + (" (masks at another size than the image need mask_height and mask_width)"
                                    if name == "masks" and rles is result_masks else ""))
    box_array = None
    if boxes is not None:
        box_array = np.asarray([list(b) for b in boxes], np.float32).reshape(n, -1)
        if box_array.shape[1] != 4:
            raise CandidateError(f"{where}: boxes must hold 4 values [x, y, w, h] each")
    return ImageCandidates(int(image_id), height, width, scores, labels, masks, mask_size, result_masks, box_array)


def images_of(batch: Any) -> list[ImageCandidates]:
    """The checked images of a pyarrow RecordBatch or Table of candidate rows."""
    check_columns(batch.schema.names, "candidate batch")
    return [_checked(row) for row in batch.to_pylist()]


def open_parquet(path: str | Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` of a local path or of a URI pyarrow knows (``s3://``, ``gs://``, ...)."""
    import pyarrow.parquet as pq

    text = str(path)
    if "://" in text and not text.startswith("file://"):
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(text)
        return pq.ParquetFile(filesystem.open_input_file(inner))
    return pq.ParquetFile(text.removeprefix("file://"))


def open_candidates(path: str | Path) -> Any:
    """``open_parquet(path)``, its columns checked (``check_columns``: a clear error before any row is read)."""
    file = open_parquet(path)
    check_columns(file.schema_arrow.names, str(path))
    return file


def iter_images(path: str | Path, batch_size: int = ROW_GROUP_SIZE) -> Iterator[ImageCandidates]:
    """Stream the images of a candidate file, ``batch_size`` rows at a time (bounded memory)."""
    file = open_candidates(path)
    for batch in file.iter_batches(batch_size=batch_size):
        yield from images_of(batch)


def count_images(path: str | Path) -> int:
    """Rows of a candidate file, from its metadata."""
    return open_parquet(path).metadata.num_rows


class CandidateWriter:
    """Write a candidate file one image at a time; a row group every ``row_group_size`` images.

    Usage::

        with CandidateWriter("val.parquet") as out:
            out.write(image_id, height, width, scores, labels, encode_masks(masks))
    """

    def __init__(self, path: str | Path, row_group_size: int = ROW_GROUP_SIZE) -> None:
        self.path, self.row_group_size = Path(path), int(row_group_size)
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None

    def write(self, image_id: int, height: int, width: int, scores: Any, labels: Any, masks: Sequence[bytes], *,
              mask_size: tuple[int, int] | None = None, result_masks: Sequence[bytes] | None = None,
              boxes: Any = None) -> None:
        row = {"image_id": int(image_id), "height": int(height), "width": int(width),
               "scores": np.asarray(scores, np.float32).tolist(), "labels": np.asarray(labels).astype(int).tolist(),
               "masks": list(masks),
               "mask_height": None if mask_size is None else int(mask_size[0]),
               "mask_width": None if mask_size is None else int(mask_size[1]),
               "result_masks": None if result_masks is None else list(result_masks),
               "boxes": None if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4).tolist()}
        _checked(row)
        self._rows.append(row)
        if len(self._rows) >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=schema())
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, schema())
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self._rows = []

    def close(self) -> None:
        self.flush()
        if self._writer is None:  # no rows: still a valid, empty file
            import pyarrow.parquet as pq

            pq.write_table(schema().empty_table(), self.path)
        else:
            self._writer.close()
        self._writer = None

    def __enter__(self) -> CandidateWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
