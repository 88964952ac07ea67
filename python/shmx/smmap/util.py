"""Utilities with smmap's arithmetic (as smmap.util).

``align_to_mmap``, ``is_64_bit`` and ``MapWindow`` reproduce smmap 5.x
exactly; ``MapRegion`` is the C region type (also what cursors return from
``region()``); ``MapRegionList`` is smmap's list of regions for one file.
"""
import os
import sys

from ._smmap import ALLOCATIONGRANULARITY, MapRegion

__all__ = ["align_to_mmap", "is_64_bit", "MapWindow", "MapRegion",
           "MapRegionList", "ALLOCATIONGRANULARITY"]


def align_to_mmap(num, round_up):
    """Round ``num`` down (or up if ``round_up``) to ALLOCATIONGRANULARITY."""
    res = (num // ALLOCATIONGRANULARITY) * ALLOCATIONGRANULARITY
    if round_up and res != num:
        res += ALLOCATIONGRANULARITY
    return res


def is_64_bit():
    """True on a 64-bit interpreter."""
    return sys.maxsize > (1 << 32) - 1


class MapWindow:
    """A window (offset, size) that can snap toward its neighbours."""

    __slots__ = ("ofs", "size")

    def __init__(self, offset, size):
        self.ofs = offset
        self.size = size

    def __repr__(self):
        return "MapWindow(%i, %i)" % (self.ofs, self.size)

    @classmethod
    def from_region(cls, region):
        """A window covering ``region``."""
        return cls(region._b, region.size())

    def ofs_end(self):
        return self.ofs + self.size

    def align(self):
        """Align the start down and the size up, still covering the old area."""
        nofs = align_to_mmap(self.ofs, 0)
        self.size += self.ofs - nofs
        self.ofs = nofs
        self.size = align_to_mmap(self.size, 1)

    def extend_left_to(self, window, max_size):
        """Start where ``window`` ends if possible, staying within max_size."""
        rofs = self.ofs - window.ofs_end()
        nsize = rofs + self.size
        rofs -= nsize - min(nsize, max_size)
        self.ofs -= rofs
        self.size += rofs

    def extend_right_to(self, window, max_size):
        """End where ``window`` begins, staying within max_size."""
        self.size = min(self.size + (window.ofs - self.ofs_end()), max_size)


class MapRegionList(list):
    """The regions of one file (kept for smmap compatibility)."""

    __slots__ = ("_path_or_fd", "_file_size")

    def __new__(cls, path):
        return super().__new__(cls)

    def __init__(self, path_or_fd):
        self._path_or_fd = path_or_fd
        self._file_size = None

    def path_or_fd(self):
        return self._path_or_fd

    def file_size(self):
        if self._file_size is None:
            if isinstance(self._path_or_fd, int):
                self._file_size = os.fstat(self._path_or_fd).st_size
            else:
                self._file_size = os.stat(self._path_or_fd).st_size
        return self._file_size
