"""Box NMS: ``matrix_nms`` on boxes (every path) vs greedy ``nms`` / ``batched_nms`` vs ``soft_nms``.

One pytest-benchmark group per input, e.g. ``boxes N=1000 80 classes``: N boxes in an 800x1344 image from the
seeded scene generator (the standard case is 1000 boxes of 80 classes, class-aware as PaddlePaddle's
``matrix_nms`` is per class); class-agnostic groups compare with ``nms``, labelled ones with ``batched_nms``.
Every row includes the box IoU. The multi-class (Paddle-style) operator is in ``test_bench_multiclass.py``.
"""

import pytest


@pytest.mark.family("boxes")
def test_boxes(job, measure):
    measure(job)
