"""matrixnms: Matrix NMS (SOLOv2) for masks and boxes on NumPy, Torch, CuPy and Numba."""

from .cropped import CroppedMasks
from .masks import box_iou, mask_iou, masks_to_boxes
from .nms import matrix_nms
# after .nms: importing the submodule matrixnms.nms would otherwise rebind the name nms to it
from .baselines import batched_nms, mask_nms, nms, soft_nms
from .matrix_baselines import cluster_nms, fast_nms
from .multiclass import multiclass_matrix_nms, multiclass_matrix_nms_padded
from .batched import batched_matrix_nms

__version__ = "0.1.0"
__all__ = ["matrix_nms", "mask_iou", "box_iou", "masks_to_boxes", "nms", "batched_nms", "mask_nms", "soft_nms",
           "fast_nms", "cluster_nms", "batched_matrix_nms", "multiclass_matrix_nms", "multiclass_matrix_nms_padded",
           "CroppedMasks", "__version__"]
