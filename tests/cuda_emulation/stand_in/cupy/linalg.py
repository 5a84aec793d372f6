"""TEST DOUBLE: cupy.linalg as numpy.linalg over stand-in arrays (array-api-compat imports it)."""

import numpy as _np

from . import _device_function

for _name in getattr(_np.linalg, "__all__", dir(_np.linalg)):
    if not _name.startswith("_") and callable(getattr(_np.linalg, _name)):
        globals()[_name] = _device_function(getattr(_np.linalg, _name))
