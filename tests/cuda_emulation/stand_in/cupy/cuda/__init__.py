"""TEST DOUBLE: cupy.cuda as the stand-in needs it: one device (id 0)."""

import types

from .device import Device

runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)

__all__ = ["Device", "runtime"]
