"""Type aliases used across the package."""

from __future__ import annotations

from typing import Any

# A NumPy, Torch or CuPy array (the array API gives them no common static type).
Array = Any

__all__ = ["Array"]
