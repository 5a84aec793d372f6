"""Drop-ins for the Matrix NMS functions of mmdetection, SOLO and AdelaiDet: their exact signatures,
defaults and returns, computed by :func:`matrixnms.matrix_nms` (no NaN, sorted internally, faster).

    from matrixnms.compat import mmdet, solo, adelaidet
    mmdet.mask_matrix_nms(masks, labels, scores, filter_thr=0.05, nms_pre=500, max_num=100)
    solo.matrix_nms(seg_masks, cate_labels, cate_scores, kernel='gaussian', sigma=2.0)
    adelaidet.matrix_nms(cate_labels, seg_masks, sum_masks, cate_scores, sigma=2.0, kernel='gaussian')

    from matrixnms import compat
    compat.patch("mmdet")   # or "solo" / "adelaidet": rebinds the peer's function where it was imported

``sigma`` keeps the peers' convention, the reciprocal of the paper's (their 2.0 is ``matrix_nms``'s 0.5).
Each module's docstring lists what differs from its peer.
"""

from . import adelaidet, mmdet, solo
from ._common import UnsupportedKernelError
from ._patch import PEERS, Patch, patch

__all__ = ["mmdet", "solo", "adelaidet", "patch", "Patch", "PEERS", "UnsupportedKernelError"]
