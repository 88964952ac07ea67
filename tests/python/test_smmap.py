"""shmx.smmap: the smmap 5.x API over the C window manager (issue 5).

Every file has random content, so a byte served from the wrong place fails.
"""
import copy
import errno
import gc
import os
import pathlib
import random
import subprocess
import sys
import textwrap
import threading

import pytest

import shmx.smmap as smmap
from shmx.smmap import (
    ALLOCATIONGRANULARITY,
    SlidingWindowMapBuffer,
    SlidingWindowMapManager,
    StaticWindowMapManager,
    WindowCursor,
)
from shmx.smmap.util import (
    MapRegion,
    MapRegionList,
    MapWindow,
    align_to_mmap,
    is_64_bit,
)

G = ALLOCATIONGRANULARITY
MiB = 1024 * 1024


def make_file(tmp_path, size, seed=0, name=None):
    data = random.Random(seed).randbytes(size)
    p = tmp_path / (name or "f%d-%d.bin" % (size, seed))
    p.write_bytes(data)
    return str(p), data


@pytest.fixture
def f1m(tmp_path):
    return make_file(tmp_path, 1 * MiB + 4321, seed=1)


# ---- API surface ---------------------------------------------------------

def test_imports_match_smmap_layout():
    import shmx.smmap.buf as buf
    import shmx.smmap.mman as mman
    import shmx.smmap.util as util

    assert mman.SlidingWindowMapManager is SlidingWindowMapManager
    assert mman.StaticWindowMapManager is StaticWindowMapManager
    assert mman.WindowCursor is WindowCursor
    assert buf.SlidingWindowMapBuffer is SlidingWindowMapBuffer
    for name in ("align_to_mmap", "is_64_bit", "MapWindow", "MapRegion",
                 "MapRegionList", "ALLOCATIONGRANULARITY"):
        assert hasattr(util, name)
        assert name in util.__all__
    assert issubclass(SlidingWindowMapManager, StaticWindowMapManager)
    import mmap
    assert ALLOCATIONGRANULARITY == mmap.ALLOCATIONGRANULARITY


def test_util_arithmetic_matches_smmap():
    assert isinstance(is_64_bit(), bool) and is_64_bit() == (sys.maxsize > 2**32)
    assert align_to_mmap(1, False) == 0
    assert align_to_mmap(1, True) == G
    assert align_to_mmap(G, True) == G
    assert align_to_mmap(G + 1, False) == G
    wl, wc, wc2, wr = MapWindow(0, 1), MapWindow(1, 1), MapWindow(10, 5), MapWindow(8000, 50)
    assert (wl.ofs_end(), wc.ofs_end(), wr.ofs_end()) == (1, 2, 8050)
    wc.extend_left_to(wl, 100)
    assert (wc.ofs, wc.size) == (1, 1)
    end = wc2.ofs_end()
    wc2.extend_left_to(wc, 100)
    assert wc2.ofs == wc.ofs_end() and wc2.ofs_end() == end
    wc.extend_right_to(wr, 100)
    assert (wc.ofs, wc.size) == (1, 100)
    wc.extend_right_to(wr, sys.maxsize)
    assert wc.ofs_end() == wr.ofs
    wr.extend_left_to(wc2, 100)
    assert wr.size == 100
    wr.extend_left_to(wc2, sys.maxsize)
    assert wr.ofs == wc2.ofs_end()
    wc.align()
    assert wc.ofs == 0 and wc.size % G == 0
    assert repr(MapWindow(3, 4)) == "MapWindow(3, 4)"


@pytest.mark.parametrize("win", [1, G - 1, G, G + 1, 80051, 5 * G + 7])
def test_window_sizing_rules(tmp_path, win):
    """smmap's sizing rules as its docs state them: window_size() is the value
    as configured; a region starts at an offset aligned down to the
    allocation granularity and a full window is window_size rounded UP to
    whole granules (align_to_mmap(window_size, True)), never past the file."""
    size = 64 * G + 123
    path, data = make_file(tmp_path, size, seed=5)
    man = SlidingWindowMapManager(window_size=win)
    assert man.window_size() == win
    full = align_to_mmap(win, True)
    c = man.make_cursor(path)
    for ofs in (0, 1, G - 1, G, 7 * G + 5, size - 1):
        c.unuse_region()
        man.collect()
        assert c.use_region(ofs, 1).is_valid()
        r = c.region()
        assert r.ofs_begin() % G == 0
        assert r.ofs_begin() <= ofs < r.ofs_end() <= size
        # never more than the rounded window_size; exactly that unless the
        # end of the file stops it
        assert r.size() <= full
        assert r.size() == full or r.ofs_end() == size
        assert bytes(c.buffer()) == data[ofs:ofs + 1]
    # the first window of the file, asked at offset 0, is exactly `full`
    c.unuse_region()
    man.collect()
    assert c.use_region(0, 0).is_valid()
    assert c.region().ofs_begin() == 0 and c.region().size() == min(full, size)
    # ...while a cursor asked for "as much as possible" covers window_size as
    # configured (smmap: min(size or file_size, window_size or file_size))
    assert c.size() == min(win, size)


def test_defaults():
    big = 64 * 1024 if not is_64_bit() else 1024 * 1024
    s = SlidingWindowMapManager()
    assert s.window_size() == big * 1024
    assert s.max_mapped_memory_size() == (8192 if is_64_bit() else 1024) * MiB
    st = StaticWindowMapManager()
    assert st.window_size() == 0
    assert st.max_mapped_memory_size() == s.max_mapped_memory_size()
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 1 <= s.max_file_handles() <= max(1, soft // 2)
    assert StaticWindowMapManager(0, 0, 7).max_file_handles() == 7
    for m in (s, st):
        assert m.num_file_handles() == 0 and m.num_open_files() == 0
        assert m.mapped_memory_size() == 0
        assert m.force_map_handle_removal_win("/tmp") is None
        assert m.collect() == 0
    with pytest.raises(ValueError):
        SlidingWindowMapManager(max_open_handles=0)


# ---- cursors ---------------------------------------------------------------

@pytest.mark.parametrize("mtype", [StaticWindowMapManager, SlidingWindowMapManager])
def test_cursor_basics(tmp_path, f1m, mtype):
    path, data = f1m
    man = mtype()
    ci = WindowCursor(man)
    assert not ci.is_valid() and not ci.is_associated() and ci.size() == 0
    with pytest.raises(ValueError):
        ci.use_region(0, 1)
    fd = os.open(path, os.O_RDONLY)
    try:
        for item in (path, fd):
            c = man.make_cursor(item)
            assert c.path_or_fd() is item
            assert not c.is_valid() and c.is_associated()
            assert c.file_size() == len(data)
            assert c.use_region(10, 10) is c
            assert c.is_valid()
            assert (c.ofs_begin(), c.size(), c.ofs_end()) == (10, 10, 20)
            assert bytes(c.buffer()) == data[10:20]
            assert c.includes_ofs(10) and c.includes_ofs(19)
            assert not c.includes_ofs(9) and not c.includes_ofs(20)
            r = c.region()
            assert r.ofs_begin() % G == 0 and r.includes_ofs(10)
            assert r.client_count() == 2  # the manager and the cursor
            assert bytes(c.map()) == data[r.ofs_begin():r.ofs_end()]
            if isinstance(item, int):
                assert c.fd() == fd
                with pytest.raises(ValueError):
                    c.path()
            else:
                assert c.path() == path
                with pytest.raises(ValueError):
                    c.fd()
            # an offset at or past the end gives an invalid cursor, no error
            assert not c.use_region(len(data), 1).is_valid()
            assert not c.use_region(len(data) + 12345).is_valid()
            assert c.use_region(len(data) - 1).size() == 1
            c.unuse_region()
            c.unuse_region()
            assert not c.is_valid()
            with pytest.raises(ValueError):
                c.buffer()
            del c, r
        assert man.num_open_files() == 1  # path and fd are the same file
    finally:
        os.close(fd)


def test_cursor_copy_assign_and_context(f1m):
    path, data = f1m
    man = SlidingWindowMapManager(window_size=16 * G)
    c = man.make_cursor(path)
    c.use_region(100, 50)
    c2 = copy.copy(c)
    assert c2.is_valid() and c2.region() == c.region()
    assert c.region().client_count() == 3
    c.unuse_region()
    assert bytes(c2.buffer()) == data[100:150]
    c2.use_region(300 * 1024, 10)  # later moves keep working
    assert bytes(c2.buffer()) == data[300 * 1024:300 * 1024 + 10]
    c3 = WindowCursor()
    c3.assign(c2)
    assert c3.is_associated() and bytes(c3.buffer()) == bytes(c2.buffer())
    c3.use_region(5, 5)
    assert bytes(c3.buffer()) == data[5:10]
    cio = copy.copy(man.make_cursor(path))
    assert cio.is_associated() and not cio.is_valid()
    with man.make_cursor(path) as cm:
        cm.use_region(700 * 1024, 1)  # a region no other cursor uses
        region = cm.region()
        assert region.client_count() == 2
    assert not cm.is_valid() and region.client_count() == 1
    with pytest.raises(TypeError):
        c3.assign(object())


def test_pathlib_and_bytes_paths(f1m):
    path, data = f1m
    man = SlidingWindowMapManager()
    for item in (pathlib.Path(path), os.fsencode(path)):
        c = man.make_cursor(item)
        assert c.path() is item
        assert bytes(c.use_region(7, 9).buffer()) == data[7:16]
    assert man.num_open_files() == 1
    with pytest.raises(FileNotFoundError):
        man.make_cursor(path + ".missing")


def test_regions_shared_by_inode_not_path(tmp_path, f1m):
    path, data = f1m
    link = str(tmp_path / "hardlink")
    os.link(path, link)
    man = SlidingWindowMapManager()
    a = man.make_cursor(path).use_region(0, 10)
    b = man.make_cursor(link).use_region(20, 10)
    assert a.region() == b.region()
    assert man.num_file_handles() == 1 and man.num_open_files() == 1


def test_reused_fd_never_serves_another_file(tmp_path):
    pa, da = make_file(tmp_path, 3 * MiB, seed=10, name="a")
    pb, db = make_file(tmp_path, 3 * MiB, seed=11, name="b")
    man = SlidingWindowMapManager(window_size=G * 4)
    fd = os.open(pa, os.O_RDONLY)
    ca = man.make_cursor(fd)
    assert bytes(ca.use_region(0, 100).buffer()) == da[:100]
    os.close(fd)
    fd2 = os.open(pb, os.O_RDONLY)
    try:
        assert fd2 == fd  # the number is reused
        cb = man.make_cursor(fd2)
        assert bytes(cb.use_region(0, 100).buffer()) == db[:100]
        assert bytes(cb.use_region(2 * MiB, 100).buffer()) == db[2 * MiB:2 * MiB + 100]
        # the old cursor still reads its mapped window correctly...
        assert bytes(ca.use_region(50, 10).buffer()) == da[50:60]
        # ...but refuses to map a new window through the reused number
        with pytest.raises(OSError) as ei:
            ca.use_region(2 * MiB, 100)
        assert ei.value.errno == errno.EBADF
        assert man.num_open_files() == 2
    finally:
        os.close(fd2)


def test_replaced_path_never_mixes_files(tmp_path):
    pa, da = make_file(tmp_path, 8 * G, seed=14, name="a")
    pb, db = make_file(tmp_path, 8 * G, seed=15, name="b")
    man = SlidingWindowMapManager(window_size=G)
    c = man.make_cursor(pa)
    assert bytes(c.use_region(0, 10).buffer()) == da[:10]
    c.unuse_region()
    man.collect()  # no descriptor left: the next window reopens the path
    os.replace(pb, pa)
    with pytest.raises(FileNotFoundError):
        c.use_region(4 * G, 10)
    with pytest.raises(FileNotFoundError):
        c.check()
    c2 = man.make_cursor(pa)  # a new cursor sees the new file
    assert bytes(c2.use_region(4 * G, 10).buffer()) == db[4 * G:4 * G + 10]


# ---- data checks: seeded random accesses --------------------------------

def _managers(size):
    return [
        ("static", StaticWindowMapManager()),
        ("sliding", SlidingWindowMapManager()),
        ("sliding-small", SlidingWindowMapManager(window_size=size // 100,
                                                  max_memory_size=size // 3,
                                                  max_open_handles=15)),
        ("static-limited", StaticWindowMapManager(0, size // 3, 15)),
    ]


@pytest.mark.parametrize("kind", ["path", "fd"])
@pytest.mark.parametrize("mi", range(4))
def test_random_accesses_match_file(tmp_path, kind, mi):
    size = 4 * MiB + 5195
    path, data = make_file(tmp_path, size, seed=3)
    name, man = _managers(size)[mi]
    fd = os.open(path, os.O_RDONLY)
    try:
        c = man.make_cursor(path if kind == "path" else fd)
        rnd = random.Random(1234 + mi)
        req = max(man.window_size() // 2, 1) if man.window_size() else 0
        for _ in range(1500):
            ofs = rnd.randrange(size)
            assert c.use_region(ofs, req or rnd.randrange(1, 200000)).is_valid()
            n = c.size()
            assert n >= 1 and c.ofs_begin() == ofs
            assert bytes(c.buffer()) == data[ofs:ofs + n]
            assert c.includes_ofs(ofs + n - 1) and not c.includes_ofs(ofs + n)
            assert man.num_file_handles() <= man.max_file_handles()
            if name.endswith("small"):
                # only the cursor's region may exceed the memory limit
                assert man.mapped_memory_size() <= man.max_mapped_memory_size() + c.region().size()
        buf = SlidingWindowMapBuffer(c)
        for _ in range(1500):
            a = rnd.randrange(size)
            b = min(size, a + rnd.randrange(0, 300000))
            assert buf[a] == data[a]
            assert buf[a:b] == data[a:b]
        c.unuse_region()
        buf.end_access()
        assert man.collect() >= 1
        assert man.num_file_handles() == 0 and man.mapped_memory_size() == 0
    finally:
        os.close(fd)


# ---- SlidingWindowMapBuffer ---------------------------------------------

def test_buffer_semantics(f1m):
    path, data = f1m
    for man in (SlidingWindowMapManager(window_size=8 * G), StaticWindowMapManager()):
        c = man.make_cursor(path)
        with pytest.raises(ValueError):
            SlidingWindowMapBuffer(WindowCursor())  # not associated
        with pytest.raises(ValueError):
            SlidingWindowMapBuffer(c, len(data))  # offset too large
        buf = SlidingWindowMapBuffer()
        assert buf.cursor() is None and len(buf) == 0
        buf.end_access()
        buf.end_access()
        assert buf.begin_access(c, len(data)) is False
        off = 100
        assert buf.begin_access(c, off) is True
        assert len(buf) == len(data) - off and buf.cursor() is c
        view = data[off:]
        # indexing is relative to the offset
        assert buf[0] == view[0] and buf[5] == view[5]
        assert buf[-1] == view[-1] and buf[-len(buf)] == view[0]
        for bad in (len(buf), len(buf) + 1, -len(buf) - 1, 2**70):
            with pytest.raises(IndexError):
                buf[bad]
        # slices clamp, honour steps and are always read-only memoryviews
        cases = [slice(0, 100), slice(-10, None), slice(len(buf) - 5, len(buf) + 100),
                 slice(None, None, 4096 * 3 + 1), slice(None, None, -70001),
                 slice(5, 2), slice(10, 9000, 7), slice(-5, -1), slice(2**70, None),
                 slice(60000, 200000), slice(0, len(buf))]
        for s in cases:
            got = buf[s]
            assert type(got) is memoryview and got.readonly, s
            assert got == view[s] and bytes(got) == view[s], s
        with pytest.raises(TypeError):
            buf["x"]
        # the buffer still works after an IndexError
        assert buf[1] == view[1]
        buf.end_access()
        assert not c.is_valid() and c.is_associated() and len(buf) == 0
        with pytest.raises(IndexError):
            buf[0]
        assert buf.begin_access() is True and len(buf) == len(data)
        assert buf[:10] == data[:10]
        # from offset 0 with the whole file in one window, the buffer and
        # the window coincide (the Static manager): same answers
        for s in cases + [slice(-3, None, -1), slice(None, None, -1), slice(len(data) - 1, 0, -4097)]:
            got = buf[s]
            assert type(got) is memoryview and got.readonly, s
            assert got == data[s], s
        with SlidingWindowMapBuffer(c, 10, 20) as b2:
            assert len(b2) == 20 and b2[:] == data[10:30] and b2[-1] == data[29]
        assert not c.is_valid()


def test_buffer_adaptive_reads(tmp_path):
    """Scattered reads under tight limits are served without remapping, and
    the buffer maps windows again once reads become sequential."""
    path, data = make_file(tmp_path, 8 * MiB, seed=13)
    rnd = random.Random(5)
    offs = [rnd.randrange(len(data) - 4096) for _ in range(3000)]
    maps = {}
    for adaptive in (True, False):
        man = SlidingWindowMapManager(window_size=256 * 1024, max_memory_size=1 * MiB)
        buf = SlidingWindowMapBuffer(man.make_cursor(path))
        assert buf.adaptive_reads is True
        buf.adaptive_reads = adaptive
        for o in offs:
            assert buf[o] == data[o]
        for o in offs:
            assert buf[o:o + 4096] == data[o:o + 4096]
        for o in offs[:300]:
            assert buf[o:o + 30000:4099] == data[o:o + 30000:4099]
        maps[adaptive] = man._stats()["maps"]
        assert man.mapped_memory_size() <= 1 * MiB
        # sequential reads: back to windows, all bytes right
        before = man._stats()["maps"]
        got = bytearray()
        for o in range(0, len(data), 1024):
            got += buf[o:o + 1024]
        assert got == data
        assert man._stats()["maps"] - before <= len(data) // (256 * 1024) + 40
        assert buf.cursor().is_valid()
    assert maps[True] * 5 < maps[False], maps


def test_map_is_mmap_like(f1m):
    """map() behaves like smmap's mmap object, as gitdb uses it."""
    import struct
    path, data = f1m
    for man in (StaticWindowMapManager(), SlidingWindowMapManager(window_size=64 * G)):
        c = man.make_cursor(path).use_region(0)
        m = c.map()
        r = c.region()
        assert len(m) == r.size()
        assert m[0] == data[0] and m[-1] == data[r.ofs_end() - 1]
        assert type(m[10:30]) is bytes and m[10:30] == data[10:30]
        assert m[10:30] < m[10:31] and m[-20:] == data[r.ofs_end() - 20:r.ofs_end()]
        assert m[::4097] == data[:r.size():4097]
        assert struct.unpack_from(">L", m, 8) == struct.unpack_from(">L", data, 8)
        assert bytes(memoryview(m)[5:9]) == data[5:9]
        needle = data[5000:5008]
        assert m.find(needle) == data.find(needle, 0, r.size())
        assert m.rfind(needle) == data.rfind(needle, 0, r.size())
        assert m.find(needle, 5001) == data.find(needle, 5001, r.size())
        assert m.find(b"") == 0 and m.rfind(b"", 3, 7) == 7
        with pytest.raises(IndexError):
            m[len(m)]
        with pytest.raises(TypeError):
            m["a"]
        with pytest.raises(TypeError):
            memoryview(m)[0] = 0
        c.unuse_region()
        assert man.collect() == 0  # m keeps its region
        del m
        assert man.collect() == 1


# ---- limits, LRU, collect ------------------------------------------------

def test_lru_evicts_least_recently_used(tmp_path):
    path, data = make_file(tmp_path, 64 * G, seed=5)
    man = SlidingWindowMapManager(window_size=G, max_open_handles=3)
    c = man.make_cursor(path)
    regions = {}
    for k in (0, 10, 20):  # A, B, C
        regions[k] = c.use_region(k * G, 1).region()
    c.unuse_region()
    assert man.num_file_handles() == 3
    c.use_region(0, 1)  # touch A: B is now the least recently used
    c.unuse_region()
    c.use_region(30 * G, 1)  # D evicts B
    assert regions[10].client_count() == 0  # unmapped
    assert regions[0].client_count() == 1 and regions[20].client_count() == 1
    c.use_region(40 * G, 1)  # E evicts C (A was used after C)
    assert regions[20].client_count() == 0 and regions[0].client_count() == 1
    assert man.num_file_handles() == 3
    assert man._stats()["evictions"] == 2


def test_handle_limit_all_in_use_raises_emfile(tmp_path):
    path, data = make_file(tmp_path, 16 * G, seed=6)
    man = SlidingWindowMapManager(window_size=G, max_open_handles=2)
    c1 = man.make_cursor(path).use_region(0, 1)
    c2 = man.make_cursor(path).use_region(5 * G, 1)
    c3 = man.make_cursor(path)
    with pytest.raises(OSError) as ei:
        c3.use_region(10 * G, 1)
    assert ei.value.errno == errno.EMFILE
    assert man.num_file_handles() == 2
    c1.unuse_region()
    assert bytes(c3.use_region(10 * G, 3).buffer()) == data[10 * G:10 * G + 3]
    assert man.num_file_handles() == 2 and c2.is_valid()


def test_static_manager_honours_handle_and_memory_limits(tmp_path):
    files = [make_file(tmp_path, 3 * G + i, seed=20 + i) for i in range(6)]
    man = StaticWindowMapManager(0, 7 * G, 2)
    for rnd in range(3):
        for p, d in files:
            c = man.make_cursor(p)
            assert bytes(c.use_region(G, 5).buffer()) == d[G:G + 5]
            assert c.region().size() == len(d)  # whole file
            assert man.num_file_handles() <= 2
            assert man.mapped_memory_size() <= 7 * G
            del c
    assert man._stats()["evictions"] > 0


def test_memory_limit_holds_with_unused_regions(tmp_path):
    path, data = make_file(tmp_path, 2 * MiB, seed=7)
    man = SlidingWindowMapManager(window_size=64 * 1024, max_memory_size=256 * 1024)
    c = man.make_cursor(path)
    rnd = random.Random(3)
    for _ in range(300):
        o = rnd.randrange(len(data))
        c.use_region(o, 10)
        assert man.mapped_memory_size() <= 256 * 1024
    # many cursors holding regions may exceed it, only by regions in use
    held = [man.make_cursor(path).use_region(i * 64 * 1024, 1) for i in range(8)]
    used = sum(h.region().size() for h in held) + c.region().size()
    assert man.mapped_memory_size() <= max(256 * 1024, used)
    del held


def test_collect_with_live_memoryview(f1m):
    path, data = f1m
    man = SlidingWindowMapManager(window_size=16 * G)
    c = man.make_cursor(path)
    mv = c.use_region(1000, 100).buffer()
    whole = c.map()
    region = c.region()
    c.unuse_region()
    assert man.collect() == 0  # the views keep their region
    assert bytes(mv) == data[1000:1100] and region.client_count() == 3
    sub = mv[10:20]
    del mv, whole
    gc.collect()
    assert man.collect() == 0  # a slice of a view still keeps it
    assert bytes(sub) == data[1010:1020]
    sub.release()
    del sub
    assert man.collect() == 1
    assert man.num_file_handles() == 0 and region.client_count() == 0
    with pytest.raises(ValueError):
        region.buffer()
    with pytest.raises(TypeError):
        memoryview(c.use_region(0, 1).buffer())[0] = 1  # read-only


def test_buffer_slices_are_zero_copy_views(f1m):
    """A buffer slice inside the cursor's window is a view of the mapping: it
    keeps that region mapped (collect() and eviction spare it) and still reads
    the file's bytes after the buffer moved on. A slice wider than a window
    is assembled into a copy, of the same type."""
    path, data = f1m
    win = 64 * 1024
    man = SlidingWindowMapManager(window_size=win, max_memory_size=4 * win)
    buf = SlidingWindowMapBuffer(man.make_cursor(path))
    v = buf[100:200]  # maps the first window
    region = buf.cursor().region()
    # the cursor, its view of the window (which v is a slice of) and the
    # MapRegion object
    assert region.includes_ofs(100) and region.client_count() == 3
    w = buf[1000:3000:7]
    back = buf[3000:1000:-3]
    assert w == data[1000:3000:7] and back == data[3000:1000:-3]
    wide = buf[10000:10000 + 3 * win]
    assert type(wide) is memoryview and wide == data[10000:10000 + 3 * win]
    for o in range(0, len(data), win // 2):  # walk the file: evicts windows
        assert buf[o] == data[o]
    buf.end_access()
    man.collect()
    # the cursor has moved on; v, w and back still hold the window's view
    assert region.client_count() == 2
    assert man.mapped_memory_size() == region.size()
    assert v == data[100:200] and w == data[1000:3000:7] and back == data[3000:1000:-3]
    del v, w, back
    gc.collect()
    assert region.client_count() == 1
    man.collect()
    assert man.mapped_memory_size() == 0


def test_map_region_standalone(f1m):
    path, data = f1m
    rofs = align_to_mmap(4200, False)
    rfull = MapRegion(path, 0, len(data))
    rhalf = MapRegion(path, rofs, len(data))
    fd = os.open(path, os.O_RDONLY)
    try:
        rfd = MapRegion(fd, 0, len(data) // 2)
    finally:
        os.close(fd)
    assert rfull.ofs_begin() == 0 and rfull.size() == len(data) and rfull.ofs_end() == len(data)
    assert rhalf.ofs_begin() == rofs and rhalf.size() == len(data) - rofs
    assert rfd.size() == len(data) // 2
    assert bytes(rhalf.buffer()[:50]) == data[rofs:rofs + 50]
    assert rfull.includes_ofs(0) and not rfull.includes_ofs(-1)
    assert not rfull.includes_ofs(sys.maxsize)
    assert rfull.client_count() == 1
    w = MapWindow.from_region(rfull)
    assert w.ofs == 0 and w.ofs_end() == len(data)
    mv = rfd.map()
    rfd.release()
    assert rfd.client_count() == 0 and bytes(mv[:10]) == data[:10]  # view survives
    with pytest.raises(ValueError):
        MapRegion(path, 1, 10)  # unaligned
    ml = MapRegionList(path)
    assert len(ml) == 0 and ml.path_or_fd() == path and ml.file_size() == len(data)


# ---- files that change -----------------------------------------------------

def test_file_growth_is_seen(tmp_path):
    path, data = make_file(tmp_path, 3 * G + 10, seed=8)
    man = SlidingWindowMapManager(window_size=G)
    c = man.make_cursor(path)
    assert not c.use_region(len(data) + 5, 1).is_valid()
    extra = random.Random(9).randbytes(2 * G)
    with open(path, "ab") as f:
        f.write(extra)
    full = data + extra
    assert c.use_region(len(data) + 5, 10).is_valid()
    assert bytes(c.buffer()) == full[len(data) + 5:len(data) + 15]
    assert c.file_size() == len(full)
    buf = SlidingWindowMapBuffer(c)
    assert buf[:] == full


def test_file_shrink_is_detected(tmp_path):
    path, data = make_file(tmp_path, 8 * G, seed=12)
    man = SlidingWindowMapManager(window_size=2 * G)
    c = man.make_cursor(path)
    c.use_region(6 * G, G)
    c.check()  # fine so far
    os.truncate(path, 3 * G)
    with pytest.raises(OSError, match="shr"):
        c.check()
    c.unuse_region()
    # an offset the file lost is past the end: invalid cursor, never SIGBUS
    assert not c.use_region(6 * G + 5, 10).is_valid()
    assert c.file_size() == 3 * G
    assert not c.use_region(3 * G, 1).is_valid()
    assert bytes(c.use_region(G, 5).buffer()) == data[G:G + 5]
    b = SlidingWindowMapBuffer(c)
    assert len(b) == 3 * G and b[:] == data[:3 * G]
    b2 = SlidingWindowMapBuffer(c)
    os.truncate(path, 2 * G)  # shrinks under the buffer: IndexError, no SIGBUS
    c.unuse_region()
    with pytest.raises(IndexError):
        b2[2 * G + 5]
    with pytest.raises(IndexError):
        b2[2 * G - 5:2 * G + 5]
    assert b2[:10] == data[:10]


@pytest.mark.parametrize("adaptive", [True, False])
def test_shrink_under_a_window_in_use(tmp_path, adaptive):
    # The buffer's window stays mapped across the truncation: reads of the
    # lost bytes fault, the SIGBUS guard gives zeros, and the buffer must
    # notice and raise IndexError instead of returning them.
    path, data = make_file(tmp_path, 64 * G, seed=13)
    man = SlidingWindowMapManager(window_size=128 * G)
    c = man.make_cursor(path)
    b = SlidingWindowMapBuffer(c)
    b.adaptive_reads = adaptive
    assert b[40 * G] == data[40 * G] and b[:G] == data[:G]  # window covers it all
    os.truncate(path, 16 * G)
    for i in (40 * G, 16 * G, 64 * G - 1):
        with pytest.raises(IndexError):
            b[i]
    with pytest.raises(IndexError):
        b[16 * G - 8:16 * G + 8]
    with pytest.raises(IndexError):
        b[20 * G:30 * G:3]
    # what the file still holds reads right, through a fresh window
    assert b[16 * G - 1] == data[16 * G - 1]
    assert bytes(b[:16 * G]) == data[:16 * G]
    assert bytes(b[G:16 * G:7]) == data[G:16 * G:7]
    # the file grows back with other bytes: those, never zeros, are read
    new = bytes(range(1, 256)) * (48 * G // 255 + 1)
    with open(path, "ab") as f:
        f.write(new[:48 * G])
    assert b[40 * G] == new[24 * G] and b[64 * G - 1] == new[48 * G - 1]
    assert bytes(b[15 * G:17 * G]) == data[15 * G:16 * G] + new[:G]


# ---- threads ---------------------------------------------------------------

@pytest.mark.parametrize("mtype", ["sliding", "static"])
def test_threads_share_one_manager(tmp_path, mtype):
    size = 2 * MiB + 77
    files = [make_file(tmp_path, size, seed=30 + i) for i in range(3)]
    if mtype == "sliding":
        man = SlidingWindowMapManager(window_size=16 * G, max_memory_size=40 * 16 * G,
                                      max_open_handles=8)
    else:
        # 4 threads hold at most 4 regions at once: 4 handles always suffice
        man = StaticWindowMapManager(0, size * 2, 4)
    errors = []
    start = threading.Barrier(4)

    def work(seed):
        try:
            rnd = random.Random(seed)
            start.wait(timeout=30)
            for i in range(400):
                p, d = files[rnd.randrange(len(files))]
                c = man.make_cursor(p)
                o = rnd.randrange(size)
                if c.use_region(o, 5000).is_valid():
                    assert bytes(c.buffer()) == d[o:o + c.size()]
                b = SlidingWindowMapBuffer(c)
                a = rnd.randrange(size)
                assert b[a:a + 3000] == d[a:a + 3000]
                assert man.num_file_handles() <= man.max_file_handles()
                b.end_access()
                if i % 50 == 0:
                    man.collect()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors[0]
    st = man._stats()
    assert st["regions_used"] == 0
    assert st["regions"] == man.num_file_handles() <= man.max_file_handles()
    man.collect()
    assert man.num_file_handles() == 0 and man.mapped_memory_size() == 0
    assert man._stats()["open_fds"] == 0


def test_one_cursor_misused_by_threads_never_crashes(tmp_path):
    """A cursor belongs to one thread; sharing one anyway gives correct bytes
    or RuntimeError, never a crash or wrong bytes."""
    path, data = make_file(tmp_path, 4 * MiB, seed=16)
    man = SlidingWindowMapManager(window_size=4 * G, max_memory_size=16 * G)
    c = man.make_cursor(path)
    buf = SlidingWindowMapBuffer(c)
    buf.adaptive_reads = False  # every miss goes through the cursor
    errors, busy = [], [0]
    stop = threading.Event()

    def work(seed):
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                o = rnd.randrange(len(data) - 5000)
                try:
                    if rnd.random() < 0.5:
                        got = buf[o:o + 5000]
                        assert got == data[o:o + 5000]
                    else:
                        c.use_region(o, 100)
                        mv = c.buffer()  # another thread may have moved c
                        assert 1 <= len(mv) <= 100 and bytes(mv) in data
                except RuntimeError:
                    busy[0] += 1
                except ValueError:
                    pass  # the other thread moved the cursor off the end/unused it
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    threading.Event().wait(1.5)
    stop.set()
    for t in ts:
        t.join(timeout=30)
    assert not errors, errors[0]
    assert man._stats()["maps"] > 10
    print("RuntimeError (cursor busy) raised %d times" % busy[0])


# ---- process limits (subprocess) -----------------------------------------

def _run(code, tmp_path):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.nosan
def test_ulimit_48_many_files(tmp_path):
    for i in range(70):
        make_file(tmp_path, 3 * G + i, seed=100 + i, name="u%02d" % i)
    out = _run("""
        import os, random, resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        from shmx.smmap import SlidingWindowMapManager, StaticWindowMapManager, SlidingWindowMapBuffer
        d = sys.argv[1]
        names = sorted(n for n in os.listdir(d) if n.startswith("u"))
        data = {n: open(os.path.join(d, n), "rb").read() for n in names}
        for man in (SlidingWindowMapManager(), StaticWindowMapManager(),
                    SlidingWindowMapManager(window_size=4096)):
            assert 1 <= man.max_file_handles() <= 24, man.max_file_handles()
            rnd = random.Random(1)
            cursors = {n: man.make_cursor(os.path.join(d, n)) for n in names}
            for i in range(2000):
                n = names[rnd.randrange(len(names))]
                c = cursors[n]
                o = rnd.randrange(len(data[n]))
                assert bytes(c.use_region(o, 100).buffer()) == data[n][o:o + c.size()]
                c.unuse_region()
                assert man.num_file_handles() <= man.max_file_handles()
                assert man._stats()["open_fds"] <= man.max_file_handles()
            # all in use: the limit holds with a clear OSError(EMFILE)
            held = []
            try:
                for n in names:
                    held.append(cursors[n].use_region(0, 1))
            except OSError as e:
                import errno
                assert e.errno == errno.EMFILE, e
                assert len(held) == man.max_file_handles()
            else:
                raise AssertionError("limit not enforced")
            for c in held:
                c.unuse_region()
            del held, cursors
            # each manager keeps <= max_file_handles() descriptors; free them
            # before the next manager (three caches would not fit in 48 fds)
            man.collect()
            assert man._stats()["open_fds"] == 0
        print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


@pytest.mark.nosan
def test_mmap_enomem_raises_memoryerror(tmp_path):
    p = tmp_path / "sparse"
    with open(p, "wb") as f:
        f.truncate(8 << 30)  # sparse 8 GiB
    out = _run("""
        import resource, sys
        from shmx.smmap import StaticWindowMapManager
        man = StaticWindowMapManager()
        c = man.make_cursor(sys.argv[1] + "/sparse")
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.RLIM_INFINITY))
        try:
            c.use_region(0, 10)
        except MemoryError as e:
            print("MemoryError", e)
        else:
            print("mapped?")
    """, tmp_path)
    assert out.startswith("MemoryError"), out


def test_package_exports():
    for name in ("StaticWindowMapManager", "SlidingWindowMapManager", "WindowCursor",
                 "SlidingWindowMapBuffer", "align_to_mmap", "is_64_bit"):
        assert name in smmap.__all__ and hasattr(smmap, name)
    assert smmap.version_info[0] == 5
