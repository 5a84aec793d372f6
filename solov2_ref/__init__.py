"""solov2_ref: a compact SOLOv2 (Wang et al., 2020) that trains on a CPU and uses ``matrixnms`` end to end.

Modules: ``model`` (network), ``data`` (synthetic scenes), ``targets`` and ``losses`` (training),
``postprocess`` (inference, the NMS as one argument), ``train``, ``evaluate`` (COCO AP per NMS choice),
``demo`` (``matrixnms demo``), ``viz`` (figures), ``deploy`` (the model and its post-processing as one
static graph, exported to ONNX). See ``solov2_ref/README.md``.
"""

from .model import SOLOv2, SOLOv2Config
from .postprocess import NMS_CHOICES, PostprocessConfig
from .train import DEFAULT_CHECKPOINT, load_model

# the function postprocess.postprocess is not re-exported: it would shadow the module solov2_ref.postprocess
__all__ = ["SOLOv2", "SOLOv2Config", "NMS_CHOICES", "PostprocessConfig", "DEFAULT_CHECKPOINT", "load_model"]
