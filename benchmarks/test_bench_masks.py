"""Mask Matrix NMS: every path of ``matrix_nms`` vs the paper's code vs greedy mask NMS vs Soft-NMS.

One pytest-benchmark group per input, e.g. ``masks N=500 agnostic 200x336``: N masks of 200x336 (SOLOv2's
1/4 scale) from the seeded SOLO-like scene generator, class-agnostic and with 80 labels, N = 100, 500, 1000,
2000. Rows in each group (``extra_info["what"]`` says exactly what each one times):

- ``numpy-generic`` ... ``cupy-cupy``: ``matrix_nms(scores, masks, backend=...)`` on each available path
  (NumPy, Torch CPU; Torch CUDA and CuPy with a device); sort + mask IoU + decay, from unsorted scores;
- ``paper-numpy`` / ``paper-torch``: Figure 1 of the paper transcribed literally, float32, sort included;
- ``greedy-numpy`` / ``greedy-torch``: greedy mask NMS (IoU 0.5) as detectors write it;
- ``mask_nms-*`` / ``soft_nms-*``: the library's greedy mask NMS and Soft-NMS;
- ``read-floor``: ``np.packbits`` over the masks, one read of N*H*W bytes (no NMS).

Issue 4's targets are ratios within these groups (printed at the end of the run).
"""

import pytest


@pytest.mark.family("masks")
def test_masks(job, measure):
    measure(job)
