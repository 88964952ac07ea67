"""shmx.smmap -- sliding-window memory maps with the API of smmap 5.x.

A drop-in for ``smmap``: ``from shmx.smmap import SlidingWindowMapManager``
works like ``from smmap import SlidingWindowMapManager``. The window manager is
written in C (libshmx, ``shmx_window.h``); see docs/smmap.md for the
differences from smmap (real LRU, limits that hold, thread safety, files keyed
by device and inode, buffer slices that clamp and always return bytes).
"""
from .mman import *  # noqa: F401,F403
from .buf import *  # noqa: F401,F403
from .mman import __all__ as _mman_all
from .buf import __all__ as _buf_all
from .util import (  # noqa: F401
    ALLOCATIONGRANULARITY,
    MapRegion,
    MapRegionList,
    MapWindow,
    align_to_mmap,
    is_64_bit,
)
from ._smmap import (  # noqa: F401
    MapView,
    ADVICE_NORMAL,
    ADVICE_RANDOM,
    ADVICE_SEQUENTIAL,
    ADVICE_WILLNEED,
)

#: The smmap API level this package implements.
version_info = (5, 0, 3)
__version__ = ".".join(str(i) for i in version_info)

__all__ = list(_mman_all) + list(_buf_all) + [
    "align_to_mmap", "is_64_bit", "MapWindow", "MapRegion", "MapRegionList",
    "ALLOCATIONGRANULARITY", "MapView", "ADVICE_NORMAL", "ADVICE_SEQUENTIAL",
    "ADVICE_RANDOM", "ADVICE_WILLNEED",
]
