"""solov2_ref: a compact SOLOv2 (Wang et al., 2020) that trains on a CPU and uses ``matrixnms`` end to end.

Modules: ``model`` (network), ``data`` (synthetic scenes), ``targets`` and ``losses`` (training),
``postprocess`` (inference, the NMS as one argument), ``train``, ``evaluate`` (COCO AP per NMS choice),
``demo`` (``matrixnms demo``), ``viz`` (figures). See ``solov2_ref/README.md``.
"""

import os

# Torch and Numba's parallel kernels both run on OpenMP. With GNU OpenMP's default active waiting, idle worker
# threads spin between parallel regions; on a small shared CPU (2 cores) that made every torch op after the
# first Numba call 10-30x slower (a training step: 0.3 s -> 5-15 s). Passive waiting costs next to nothing
# here. Only effective when set before torch / Numba load OpenMP, and a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .model import SOLOv2, SOLOv2Config  # noqa: E402
from .postprocess import NMS_CHOICES, PostprocessConfig  # noqa: E402
from .train import DEFAULT_CHECKPOINT, load_model  # noqa: E402

# the function postprocess.postprocess is not re-exported: it would shadow the module solov2_ref.postprocess
__all__ = ["SOLOv2", "SOLOv2Config", "NMS_CHOICES", "PostprocessConfig", "DEFAULT_CHECKPOINT", "load_model"]
