"""SlidingWindowMapBuffer (as smmap.buf); implemented in C.

Indexing is relative to the offset given to ``begin_access``; integer indices
out of range raise IndexError; slices clamp like Python slices, honour the
step and always return ``bytes``.
"""
from ._smmap import SlidingWindowMapBuffer

__all__ = ["SlidingWindowMapBuffer"]
