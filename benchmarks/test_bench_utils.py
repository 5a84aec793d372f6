"""Utilities: ``mask_iou`` vs pycocotools ``encode`` + ``iou``; ``masks_to_boxes`` vs NumPy and pycocotools.

Groups ``mask_iou N=...`` and ``masks_to_boxes N=...`` (200x336 masks of the SOLO-like scenes):

- ``mask_iou`` on every path; pycocotools with the RLE encoding timed (``pycocotools-encode-iou``: what a
  user holding (N, H, W) masks pays) and on RLEs encoded beforehand (``pycocotools-iou``);
- ``masks_to_boxes`` on every path; the NumPy any-over-rows/columns approach (``numpy-any``); pycocotools
  ``toBbox`` after ``encode`` and on RLEs encoded beforehand.
"""

import pytest


@pytest.mark.family("mask_iou")
def test_mask_iou(job, measure):
    measure(job)


@pytest.mark.family("masks_to_boxes")
def test_masks_to_boxes(job, measure):
    measure(job)
