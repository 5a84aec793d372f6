"""TEST DOUBLE: cupy.cuda.device.Device (one device, id 0)."""

from __future__ import annotations

from typing import Any


class Device:
    def __init__(self, device: Any = None) -> None:
        self.id = 0 if device is None else getattr(device, "id", device)
        if self.id != 0:
            raise ValueError(f"the stand-in has one device (0), got {device!r}")

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return "<CUDA Device 0 (stand-in)>"


