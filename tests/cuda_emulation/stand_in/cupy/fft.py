"""TEST DOUBLE: cupy.fft as numpy.fft over stand-in arrays (array-api-compat imports it)."""

import numpy as _np

from . import _device_function

for _name in getattr(_np.fft, "__all__", dir(_np.fft)):
    if not _name.startswith("_") and callable(getattr(_np.fft, _name)):
        globals()[_name] = _device_function(getattr(_np.fft, _name))
