"""Window managers and cursors (as smmap.mman); implemented in C."""
from ._smmap import SlidingWindowMapManager, StaticWindowMapManager, WindowCursor

__all__ = ["StaticWindowMapManager", "SlidingWindowMapManager", "WindowCursor"]
