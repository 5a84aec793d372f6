"""Chunked work gives the unchunked results: pixel chunks, row and column blocks, Numba's blocks.

Every budget is shrunk (``_config.CHUNK_BYTES`` for the generic path; ``BLOCK_BYTES``, ``SERIAL_BYTES`` and
``CONVERT_BYTES`` of ``matrixnms.backends._numba``) so that small inputs run through many chunks, and the
results are compared with the loop references, never with another path of the library. The README's scene
(500 masks of 200 x 336, 80 labels) runs through the generic path in hundreds of pixel chunks.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings

import reference
import strategies
from helpers import assert_close, requires
from matrixnms import _config, box_iou, mask_iou, matrix_nms
from matrixnms.scenes import mask_scene

# one or two pixels per chunk for the drawn masks; a (rows, K) IoU block of one row
TINY = 64


@contextmanager
def tiny_chunks():
    """Hypothesis reuses function-scoped fixtures across examples: patch inside the test instead."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_config, "CHUNK_BYTES", TINY)
        yield


@pytest.fixture(scope="module")
def readme_scene():
    return mask_scene(500, num_classes=80, seed=0)


# ---------------------------------------------------------------------------------------------- generic


@settings(max_examples=60)
@given(strategies.masks(max_n=8), strategies.masks(n=5, max_side=24))
def test_generic_mask_iou_sums_the_counts_of_every_pixel_chunk(a, b):
    with tiny_chunks():
        np.testing.assert_allclose(mask_iou(a, backend="generic"), reference.mask_iou(a, a), rtol=1e-12, atol=0)
        if b.shape[1:] == a.shape[1:]:
            np.testing.assert_allclose(mask_iou(a, b, backend="generic"), reference.mask_iou(a, b), rtol=1e-12,
                                       atol=0)


@settings(max_examples=60)
@given(strategies.mask_problems())
def test_generic_mask_matrix_nms_in_pixel_chunks_agrees_with_reference(problem):
    with tiny_chunks():
        scores, masks, labels, options = problem
        keep, decayed = matrix_nms(scores, masks, labels=labels, backend="generic", **options)
        ref_keep, ref_decayed = reference.matrix_nms(scores, masks, None, labels, **options)
        assert keep.tolist() == ref_keep
        assert_close(decayed, np.asarray(ref_decayed), "float64")


@settings(max_examples=60)
@given(strategies.box_problems(max_n=20))
def test_generic_box_matrix_nms_in_column_blocks_agrees_with_reference(problem):
    with tiny_chunks():
        scores, boxes, labels, options = problem
        keep, decayed = matrix_nms(scores, boxes=boxes, labels=labels, backend="generic", **options)
        ref_keep, ref_decayed = reference.matrix_nms(scores, None, boxes, labels, **options)
        assert keep.tolist() == ref_keep
        assert_close(decayed, np.asarray(ref_decayed), "float64")


@settings(max_examples=60)
@given(strategies.boxes(max_n=20), strategies.boxes(max_n=7))
def test_box_iou_in_row_blocks_agrees_with_reference(a, b):
    with tiny_chunks():
        # box_iou has no Numba kernel: on NumPy input this is the generic path, one row per block
        np.testing.assert_allclose(box_iou(a), reference.box_iou(a, a), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(box_iou(a, b), reference.box_iou(a, b), rtol=1e-12, atol=1e-15)


def test_box_iou_row_blocks_of_several_rows_cover_every_row(monkeypatch):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 40, (23, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, (23, 2))], axis=1)
    b = a[::2] + 1.0
    # 5 rows per block against 12 columns: blocks of 5, 5, 5, 5, 3
    monkeypatch.setattr(_config, "CHUNK_BYTES", 5 * _config.BLOCK_BYTES_PER_PAIR * len(b))
    np.testing.assert_allclose(box_iou(a, b), reference.box_iou(a, b), rtol=1e-12, atol=1e-15)


def test_generic_mask_iou_on_readme_masks_in_many_pixel_chunks(monkeypatch, readme_scene):
    masks = readme_scene.masks[:120]
    # about 2**20 / (4 * 240) = 1092 pixels per chunk: 62 chunks of the 67,200 pixels
    monkeypatch.setattr(_config, "CHUNK_BYTES", 2**20)
    np.testing.assert_allclose(mask_iou(masks, backend="generic"), reference.mask_iou(masks, masks), rtol=1e-12,
                               atol=0)
    other = readme_scene.masks[400:430]
    np.testing.assert_allclose(mask_iou(masks, other, backend="generic"), reference.mask_iou(masks, other),
                               rtol=1e-12, atol=0)


def readme_reference(scene):
    return reference.matrix_nms_by_label(scene.scores, scene.masks, labels=scene.labels, post_threshold=0.05,
                                         post_top_k=100)


def check_readme_result(scene, keep, decayed):
    """keep / decayed of the README's call equal the reference's (float32 scores: float32 tolerance)."""
    ref_keep, ref_decayed = readme_reference(scene)
    assert len(keep) == len(ref_keep) == 100
    assert_close(np.asarray(decayed), np.asarray(ref_decayed), "float32")
    assert np.asarray(keep).tolist() == ref_keep


def test_generic_matrix_nms_on_the_readme_scene_in_many_pixel_chunks(monkeypatch, readme_scene):
    # 2**20 / (4 * 1000) = 262 pixels per chunk: 257 chunks
    monkeypatch.setattr(_config, "CHUNK_BYTES", 2**20)
    keep, decayed = matrix_nms(readme_scene.scores, readme_scene.masks, labels=readme_scene.labels,
                               post_threshold=0.05, post_top_k=100, backend="generic")
    check_readme_result(readme_scene, keep, decayed)


# ---------------------------------------------------------------------------------------------- numba


@contextmanager
def tiny_numba_blocks():
    numba_backend = pytest.importorskip("matrixnms.backends._numba")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(numba_backend, "BLOCK_BYTES", 1)  # 64 decay columns per block
        patch.setattr(numba_backend, "SERIAL_BYTES", 0)  # always the threaded path
        patch.setattr(numba_backend, "CONVERT_BYTES", 3 * 16 * 16)  # 3 float masks converted at a time
        yield


@requires("numba")
@settings(max_examples=12)
@given(strategies.many_tie_mask_problems(min_n=65, max_n=140, max_side=16))
def test_numba_mask_decay_in_blocks_agrees_with_reference(problem):
    # more than 64 candidates: at least two blocks of decay columns
    scores, masks, labels, options = problem
    ref_keep, ref_decayed = reference.matrix_nms_by_label(
        scores, masks, labels=np.zeros(len(scores), int) if labels is None else labels, **options)
    for form in (masks, masks.astype(np.float32)):  # bool in place; float converted a few masks at a time
        with tiny_numba_blocks():
            keep, decayed = matrix_nms(scores, form, labels=labels, backend="numba", **options)
        assert keep.tolist() == ref_keep
        assert_close(decayed, np.asarray(ref_decayed), "float64")


@requires("numba")
def test_numba_matrix_nms_on_the_readme_scene_in_blocks(readme_scene):
    with tiny_numba_blocks():
        keep, decayed = matrix_nms(readme_scene.scores, readme_scene.masks, labels=readme_scene.labels,
                                   post_threshold=0.05, post_top_k=100, backend="numba")
    check_readme_result(readme_scene, keep, decayed)
