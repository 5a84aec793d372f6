"""Tunables shared by every implementation, defined once.

``CHUNK_BYTES`` bounds the temporaries of one chunked step (pixel chunks of the overlap counts, row blocks of
the (K, K) IoU, decay column blocks); tests shrink it with ``monkeypatch`` so that several chunks run on small
inputs. ``EXACT_F32`` is the count below which float32 sums of 0/1 values are exact integers.
"""

from __future__ import annotations

# the memory budget of one chunked step of the generic path, the Torch and CuPy kernels
CHUNK_BYTES = 256 * 2**20
# float32 sums of 0/1 values are exact integers below 2**24 (the float32 significand has 24 bits)
EXACT_F32 = 2**24
# temporaries of one (rows, K) float64 IoU block (inter, union, ratio, masks, clips), in bytes per entry
BLOCK_BYTES_PER_PAIR = 8 * 6

__all__ = ["CHUNK_BYTES", "EXACT_F32", "BLOCK_BYTES_PER_PAIR"]
