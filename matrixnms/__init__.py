"""matrixnms: Matrix NMS (SOLOv2) for masks and boxes on NumPy, Torch, CuPy and Numba."""

from .masks import box_iou, mask_iou, masks_to_boxes
from .nms import matrix_nms

__version__ = "0.1.0"
__all__ = ["matrix_nms", "mask_iou", "box_iou", "masks_to_boxes", "__version__"]
