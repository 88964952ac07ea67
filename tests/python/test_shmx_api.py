"""Single-process tests of the shmx Python API: compatibility with shmx 1.0.1,
frames, typed zero-copy views, write-side zero copy, schema refresh, control
messages, inspector, exceptions."""
import gc
import os
import struct
import threading
import time

import pytest

import shmx
from shmxtest import chan, wait_until  # noqa: F401  (fixture)

np = pytest.importorskip("numpy")

S3 = [
    shmx.create_stream_spec(1, "frame_id", shmx.DT_U64, 1, 8),
    shmx.create_stream_spec(2, "timestamp", shmx.DT_F64, 1, 8),
    shmx.create_stream_spec(3, "data", shmx.DT_F32, 1, 4),
]


def make_pair(name, streams=S3, **kw):
    s = shmx.Server()
    assert s.create(name, streams=streams, **kw) is True, s.last_error
    c = shmx.Client()
    assert c.open(name) is True, c.last_error
    return s, c


def publish3(s, i, t=None):
    h = s.begin_frame()
    assert s.append_stream(h, 1, struct.pack("Q", i), 1) is True
    assert s.append_stream(h, 2, struct.pack("d", float(i) / 2), 1) is True
    assert s.append_stream(h, 3, struct.pack("10f", *range(i, i + 10)), 10) is True
    assert s.publish_frame(h, float(i) if t is None else t) is True


# ---- module-level compatibility ---------------------------------------------

def test_constants_and_helpers():
    codes = [shmx.DT_BOOL, shmx.DT_I8, shmx.DT_U8, shmx.DT_I16, shmx.DT_U16,
             shmx.DT_I32, shmx.DT_U32, shmx.DT_I64, shmx.DT_U64, shmx.DT_F16,
             shmx.DT_BF16, shmx.DT_F32, shmx.DT_F64]
    assert codes == list(range(1, 14))
    names = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32",
             "int64", "uint64", "float16", "bfloat16", "float32", "float64"]
    assert [shmx.dtype_to_string(c) for c in codes] == names
    assert shmx.dtype_to_string(0) == "unknown"
    assert shmx.dtype_to_string(99) == "unknown"
    assert shmx.layout_to_string(shmx.LAYOUT_SOA_SCALAR) == "scalar"
    assert shmx.layout_to_string(shmx.LAYOUT_AOS_VECTOR) == "vector"
    assert shmx.layout_to_string(7) == "unknown"
    assert (shmx.TLV_STATIC_DIR, shmx.TLV_FRAME_STREAM, shmx.TLV_CONTROL_USER) == \
        (0x1000, 0x2000, 0x3000)
    spec = shmx.create_stream_spec(4, "v", shmx.DT_F32, 3, 12)
    assert spec == {"id": 4, "name": "v", "dtype_code": shmx.DT_F32,
                    "components": 3, "bytes_per_elem": 12}
    spec = shmx.create_stream_spec(4, "v", shmx.DT_F32, 3, 12,
                                   layout_code=shmx.LAYOUT_AOS_VECTOR,
                                   extra=bytearray(b"xy"))
    assert spec["layout_code"] == 1 and spec["extra"] == b"xy"


def test_exception_hierarchy():
    assert issubclass(shmx.ChannelNotFoundError, FileNotFoundError)
    assert issubclass(shmx.ChannelExistsError, FileExistsError)
    assert issubclass(shmx.PermissionDeniedError, PermissionError)
    assert issubclass(shmx.ShmxTimeoutError, TimeoutError)
    assert issubclass(shmx.InvalidNameError, ValueError)
    assert issubclass(shmx.NotOpenError, shmx.ClosedError)
    assert issubclass(shmx.NotOpenError, ValueError)
    for cls in (shmx.ChannelNotFoundError, shmx.CorruptedError, shmx.ClosedError,
                shmx.ProducerDeadError, shmx.ReapedError, shmx.SizeMismatchError):
        assert issubclass(cls, shmx.ShmxError)
    assert shmx.error_for_code(shmx.E_NOCHANNEL) is shmx.ChannelNotFoundError
    assert shmx.error_for_code(shmx.E_DEAD) is shmx.ProducerDeadError
    assert shmx.err_name(shmx.E_FULL) == "SHMX_E_FULL"
    assert "reader" in shmx.strerror(shmx.E_FULL)


# ---- the 1.0.1 flow ------------------------------------------------------------

def test_roundtrip_dict_shape(chan):
    name = chan()
    s, c = make_pair(name, slots=4)
    try:
        assert c.get_latest_frame() is None
        publish3(s, 5, t=12.5)
        f = c.get_latest_frame()
        md = f["__metadata__"]
        assert md["frame_id"] == 1 and md["sim_time"] == 12.5
        assert md["tlv_count"] == 3 and md["payload_bytes"] == 8 + 8 + 40
        assert struct.unpack("Q", f["frame_id"]["data"])[0] == 5
        assert struct.unpack("d", f["timestamp"]["data"])[0] == 2.5
        d = f["data"]
        assert d["elem_count"] == 10 and d["bytes"] == 40
        mv = d["data"]
        assert isinstance(mv, memoryview) and mv.format == "B" and mv.ndim == 1
        assert mv.readonly and len(mv) == 40
        assert list(struct.unpack("10f", mv)) == [float(x) for x in range(5, 15)]
        assert int.from_bytes(f["frame_id"]["data"], "little") == 5
        assert np.frombuffer(mv, dtype=np.float32)[0] == 5.0
        with pytest.raises(TypeError):
            mv[0] = 1
        info = c.get_header_info()
        for k in ("magic", "version_major", "version_minor", "session_id", "slots",
                  "frame_bytes_cap", "reader_slots", "control_per_reader",
                  "frame_seq", "readers_connected"):
            assert k in info
        assert info["slots"] == 4 and info["frame_seq"] == 1
        assert info["readers_connected"] == 1
        assert s.get_header_info()["session_id"] == info["session_id"]
        si = c.get_streams_info()
        assert [x["name"] for x in si] == ["frame_id", "timestamp", "data"]
        assert si[2]["dtype"] == "float32" and si[2]["dtype_code"] == shmx.DT_F32
        assert si[2]["layout"] == "scalar" and si[2]["bytes_per_elem"] == 4
        assert si[0]["components"] == 1 and si[0]["id"] == 1
        assert c.is_open()
    finally:
        c.close()
        s.destroy()
    assert not c.is_open()


def test_typed_views_zero_copy(chan):
    specs = [
        shmx.create_stream_spec(1, "b", shmx.DT_BOOL, 1, 1),
        shmx.create_stream_spec(2, "i8", shmx.DT_I8, 1, 1),
        shmx.create_stream_spec(3, "u16", shmx.DT_U16, 1, 2),
        shmx.create_stream_spec(4, "i32", shmx.DT_I32, 1, 4),
        shmx.create_stream_spec(5, "u64", shmx.DT_U64, 1, 8),
        shmx.create_stream_spec(6, "f16", shmx.DT_F16, 1, 2),
        shmx.create_stream_spec(7, "pos", shmx.DT_F32, 3, 12,
                                layout_code=shmx.LAYOUT_AOS_VECTOR),
        shmx.create_stream_spec(8, "f64", shmx.DT_F64, 2, 16),
        shmx.create_stream_spec(9, "blob", 200, 1, 5),
    ]
    arrays = {
        1: np.array([True, False, True]),
        2: np.array([-1, 2, -3], dtype=np.int8),
        3: np.arange(4, dtype=np.uint16),
        4: np.array([-7, 7], dtype=np.int32),
        5: np.array([2**63 + 5], dtype=np.uint64),
        6: np.array([0.5, -2.0], dtype=np.float16),
        7: np.arange(12, dtype=np.float32).reshape(4, 3),
        8: np.arange(6, dtype=np.float64).reshape(3, 2),
        9: np.frombuffer(b"abcdefghij", dtype=np.uint8),
    }
    name = chan()
    s, c = make_pair(name, streams=specs)
    try:
        h = s.begin_frame()
        for sid, a in arrays.items():
            n = 2 if sid == 9 else a.shape[0]
            assert s.append_stream(h, sid, a, n)
        s.publish_frame(h, 0.0)
        f = c.get_latest_frame()
        by_name = {sp["name"]: arrays[sp["id"]] for sp in specs}
        for nm, a in by_name.items():
            view = f[nm]["array"]
            got = np.asarray(view)
            if nm == "blob":
                assert got.shape == (2, 5) and got.dtype == np.uint8
                assert got.tobytes() == b"abcdefghij"
            else:
                assert got.dtype == a.dtype, nm
                assert got.shape == a.shape, nm
                assert np.array_equal(got, a), nm
            assert not got.flags.writeable
            raw = np.frombuffer(f[nm]["data"], dtype=np.uint8)
            assert np.shares_memory(got, raw), nm  # both point into the slot
        fr = f["__metadata__"]["frame"]
        assert np.shares_memory(np.asarray(fr["pos"]), np.asarray(f["pos"]["array"]))
        mv = memoryview(f["pos"]["array"])
        assert mv.format == "f" and mv.shape == (4, 3) and mv.readonly
        assert f["pos"]["array"].tobytes() == arrays[7].tobytes()
    finally:
        c.close()
        s.destroy()


def test_held_frame_does_not_change(chan):
    name = chan()
    s, c = make_pair(name, slots=3)
    try:
        publish3(s, 1)
        held = c.get_latest_frame()
        before = bytes(held["data"]["data"])
        arr = np.asarray(held["data"]["array"])
        for i in range(2, 50):
            publish3(s, i)
        fr = held["__metadata__"]["frame"]
        assert fr.valid
        assert bytes(held["data"]["data"]) == before
        assert arr[0] == 1.0
        assert c.get_latest_frame()["__metadata__"]["frame_id"] == 49
    finally:
        c.close()
        s.destroy()


def test_views_outlive_client_and_producer(chan):
    name = chan()
    s, c = make_pair(name)
    publish3(s, 7)
    f = c.get_latest_frame()
    view = f["data"]["data"]
    arr = np.asarray(f["data"]["array"])
    frame = f["__metadata__"]["frame"]
    c.close()
    assert not c.is_open()
    assert struct.unpack("10f", view)[0] == 7.0
    s.destroy()
    del s
    gc.collect()
    assert struct.unpack("10f", view)[0] == 7.0
    assert arr[9] == 16.0
    assert frame.valid in (True, False)
    assert "id=1" in repr(frame)
    del f, frame, arr
    gc.collect()
    assert view.tobytes()[:4] == struct.pack("f", 7.0)
    view.release()


def test_frame_object_api(chan):
    name = chan()
    s, c = make_pair(name)
    try:
        assert c.latest_frame() is None
        assert c.wait_frame(timeout=0) is None
        t0 = time.monotonic()
        assert c.wait_frame(timeout=0.05) is None
        assert time.monotonic() - t0 >= 0.04
        publish3(s, 3, t=1.25)
        fr = c.wait_frame(timeout=1)
        assert isinstance(fr, shmx.Frame)
        assert fr.frame_id == 1 and fr.sim_time == 1.25 and fr.held and fr.valid
        assert fr.streams == ("frame_id", "timestamp", "data")
        assert "data" in fr and "nope" not in fr and len(fr) == 3
        assert list(fr) == ["frame_id", "timestamp", "data"]
        assert np.asarray(fr["data"]).dtype == np.float32
        assert np.asarray(fr[3])[0] == 3.0  # by stream id too
        assert fr.raw("frame_id").tobytes() == struct.pack("Q", 3)
        assert fr.publish_ns <= shmx.now_ns()
        with pytest.raises(KeyError):
            fr["missing"]
        d = fr.to_dict()
        assert d["__metadata__"]["frame_id"] == 1
        # no newer frame: wait times out
        assert c.wait_frame(timeout=0.01) is None
        v = fr["data"]
        mv = memoryview(v)
        with pytest.raises(BufferError):
            fr.release()
        mv.release()
        del d
        fr.release()
        assert not fr.held and not fr.valid
        with pytest.raises(BufferError):
            memoryview(v)
        with pytest.raises(shmx.StateError):
            fr["data"]
        assert "released" in repr(fr)
        with c.latest_frame() as f2:
            assert f2.frame_id == 1
        assert not f2.held
    finally:
        c.close()
        s.destroy()


def test_publish_with_given_frame_id(chan):
    name = chan()
    s, c = make_pair(name, slots=4)
    try:
        for fid in (7, 8, 12):
            h = s.begin_frame()
            s.append_stream(h, 1, struct.pack("Q", fid), 1)
            assert s.publish_frame(h, fid / 2, frame_id=fid) is True
        got = []
        while (f := c.next_frame()) is not None:
            got.append((f.frame_id, f.sim_time, f.dropped,
                        struct.unpack("Q", bytes(f["frame_id"]))[0]))
            del f
        assert got == [(7, 3.5, 0, 7), (8, 4.0, 0, 8), (12, 6.0, 3, 12)]
        h = s.begin_frame()
        with pytest.raises(shmx.InvalidArgumentError, match="ids only increase"):
            s.publish_frame(h, 0.0, frame_id=12)
        with pytest.raises(TypeError):
            s.publish_frame(h, 0.0, frame_id="13")
        assert s.publish_frame(h) is True   # the frame stayed begun
        assert c.frame_seq == 13
    finally:
        c.close()
        s.destroy()


def test_next_frame_in_order_and_dropped(chan):
    name = chan()
    s, c = make_pair(name, slots=4)
    try:
        assert c.next_frame() is None
        publish3(s, 1)
        publish3(s, 2)
        a = c.next_frame()
        b = c.next_frame()
        assert (a.frame_id, b.frame_id) == (1, 2)
        assert a.dropped == 0 and b.dropped == 0
        assert c.next_frame() is None
        del a, b
        for i in range(3, 20):
            publish3(s, i)
        n = c.next_frame(timeout=1)
        assert n.frame_id > 3 and n.dropped == n.frame_id - 3
        ids = [n.frame_id]
        del n
        while True:
            f = c.next_frame()
            if f is None:
                break
            ids.append(f.frame_id)
            assert f.dropped == 0
        assert ids == list(range(ids[0], 20))
    finally:
        c.close()
        s.destroy()


def test_iteration_until_closed(chan):
    name = chan()
    s, c = make_pair(name, slots=4)
    got = []

    def reader():
        for fr in c:
            got.append(fr.frame_id)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1, 6):
            publish3(s, i)
            wait_until(lambda: len(got) >= i, what="reader got frame %d" % i)
    finally:
        s.destroy()
        t.join(10)
    assert not t.is_alive()
    assert got == [1, 2, 3, 4, 5]
    c.close()


def _busy(c):
    try:
        c.get_latest_frame()
        return False
    except RuntimeError:
        return True


def test_wait_releases_gil_and_close_from_other_thread(chan):
    name = chan()
    s, c = make_pair(name)
    res = {}

    def waiter():
        res["frame"] = c.wait_frame(timeout=5)

    t = threading.Thread(target=waiter)
    t.start()
    # this thread runs while the other waits (the GIL is released), and sees
    # the client busy inside the wait
    wait_until(lambda: _busy(c), what="waiter inside wait_frame")
    publish3(s, 9)
    t.join(5)
    assert res["frame"] is not None and res["frame"].frame_id == 1
    del res["frame"]

    # a second thread's call on a busy client raises instead of racing
    errs = []

    def waiter2():
        try:
            c.wait_frame(timeout=5)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    t = threading.Thread(target=waiter2)
    t.start()
    wait_until(lambda: _busy(c), what="client busy in other thread")
    c.close()  # the waiter notices within one slice
    t.join(5)
    assert not t.is_alive()
    assert errs and isinstance(errs[0], shmx.NotOpenError)
    s.destroy()


def test_append_any_buffer_single_copy_and_big(chan):
    specs = [shmx.create_stream_spec(1, "u8", shmx.DT_U8, 1, 1),
             shmx.create_stream_spec(2, "f", shmx.DT_F32, 1, 4)]
    name = chan()
    s, c = make_pair(name, streams=specs, frame_bytes_cap=2 * 1024 * 1024 + 4096)
    try:
        big = np.random.randint(0, 255, 1024 * 1024, dtype=np.uint8)
        for data in (b"abcd", bytearray(b"abcd"), memoryview(b"xxabcdxx")[2:6],
                     np.frombuffer(b"abcd", dtype=np.uint8)):
            h = s.begin_frame()
            assert s.append_stream(h, 1, data, 4)
            assert s.publish_frame(h, 0)
            assert c.get_latest_frame()["u8"]["data"].tobytes() == b"abcd"
        h = s.begin_frame()
        assert s.append_stream(h, 1, big, big.size)          # GIL released path
        assert s.append_stream(h, 2, np.ones(1000, np.float32), 1000)
        s.publish_frame(h, 1.0)
        f = c.get_latest_frame()
        assert np.array_equal(np.asarray(f["u8"]["array"]), big)
        assert np.asarray(f["f"]["array"]).sum() == 1000
        strided = np.arange(10, dtype=np.float32)[::2]
        h = s.begin_frame()
        with pytest.raises((BufferError, ValueError)):
            s.append_stream(h, 2, strided, 5)
        with pytest.raises(TypeError):
            s.append_stream(h, 1, "text", 4)
        with pytest.raises(shmx.SizeMismatchError):
            s.append_stream(h, 2, b"12345678", 3)
        with pytest.raises(shmx.UnknownStreamError):
            s.append_stream(h, 99, b"1", 1)
        with pytest.raises(shmx.CapacityError):
            s.append_stream(h, 1, np.zeros(3 * 1024 * 1024, np.uint8), 3 * 1024 * 1024)
        assert s.append_stream(h, 1, b"ok", 2)
        with pytest.raises(shmx.DuplicateError):
            s.append_stream(h, 1, b"ok", 2)
        assert s.publish_frame(h, 2.0)
        assert c.get_latest_frame()["u8"]["data"].tobytes() == b"ok"
    finally:
        c.close()
        s.destroy()


def test_reserve_stream_write_zero_copy(chan):
    specs = [shmx.create_stream_spec(1, "pos", shmx.DT_F32, 3, 12)]
    name = chan()
    s, c = make_pair(name, streams=specs)
    try:
        h = s.begin_frame()
        mv = s.reserve_stream(h, 1, 4)
        assert isinstance(mv, memoryview) and not mv.readonly and mv.nbytes == 48
        a = np.frombuffer(mv, dtype=np.float32)
        a[:] = np.arange(12)
        with pytest.raises(BufferError):
            s.publish_frame(h, 0.5)  # a writable view is still exported
        del a
        mv.release()
        assert s.publish_frame(h, 0.5)
        f = c.latest_frame()
        assert np.array_equal(np.asarray(f["pos"]), np.arange(12, dtype=np.float32).reshape(4, 3))
        h = s.begin_frame()
        with s.reserve_stream(h, 1, 2, typed=True) as tv:
            assert tv.format == "f" and tv.shape == (2, 3)
            np.asarray(tv)[:] = 7
        s.publish_frame(h, 1.0)
        assert np.all(np.asarray(c.latest_frame()["pos"]) == 7)
        with pytest.raises(shmx.UnknownStreamError):
            s.reserve_stream(s.begin_frame(), 5, 1)
    finally:
        c.close()
        s.destroy()


def test_schema_refresh(chan):
    name = chan()
    s, c = make_pair(name, streams=S3[:1])
    try:
        gen0 = c.get_header_info()["static_gen"]
        assert s.write_static_append(b"extra_metadata", len(b"extra_metadata")) is True
        assert s.add_stream(shmx.create_stream_spec(7, "late", shmx.DT_I16, 2, 4)) is True
        assert [x["name"] for x in c.get_streams_info()] == ["frame_id"]
        h = s.begin_frame()
        s.append_stream(h, 1, struct.pack("Q", 1), 1)
        s.append_stream(h, 7, struct.pack("4h", 1, 2, 3, 4), 2)
        s.publish_frame(h, 0)
        f = c.get_latest_frame()  # the new stream's name is found by itself
        assert "late" in f and f["late"]["elem_count"] == 2
        assert np.asarray(f["late"]["array"]).tolist() == [[1, 2], [3, 4]]
        assert c.refresh_static() is True
        assert [x["name"] for x in c.get_streams_info()] == ["frame_id", "late"]
        assert c.get_header_info()["static_gen"] > gen0
        assert c.refresh() is False
        with pytest.raises(shmx.DuplicateError):
            s.add_stream(shmx.create_stream_spec(7, "again", shmx.DT_I16, 1, 2))
        with pytest.raises(shmx.InvalidNameError):
            s.add_stream(shmx.create_stream_spec(8, "__metadata__", shmx.DT_I16, 1, 2))
    finally:
        c.close()
        s.destroy()


def test_control_messages(chan):
    name = chan()
    s, c = make_pair(name, control_per_reader=256)
    try:
        assert c.send_control(0x1001, struct.pack("f", 100.0)) is True
        assert c.send_control_empty(0x1002) is True
        assert c.send_control(5, bytearray(b"ba")) is True
        msgs = s.poll_control()
        assert [m["type"] for m in msgs] == [0x1001, 0x1002, 5]
        assert struct.unpack("f", msgs[0]["data"])[0] == 100.0
        assert msgs[1]["data"] == b"" and msgs[2]["data"] == b"ba"
        assert all(m["reader_id"] == c.reader_id for m in msgs)
        assert s.poll_control() == []
        n = 0
        while c.send_control(1, b"x" * 40):
            n += 1
            assert n < 100
        assert isinstance(c.last_error, shmx.RingFullError)
        assert len(s.poll_control(max_messages=2)) == 2
        assert len(s.poll_control()) == n - 2
        with pytest.raises(shmx.InvalidArgumentError):
            c.send_control(1, b"x" * 100000)  # can never fit
        with pytest.raises(TypeError):
            c.send_control(1, "str")
    finally:
        c.close()
        s.destroy()


def test_inspector_and_readers(chan):
    name = chan()
    s, c = make_pair(name)
    try:
        publish3(s, 1)
        ins = shmx.Inspector()
        assert ins.open(name) is True
        rep = ins.inspect()
        for k in ("session_id", "static_gen", "frame_seq", "readers_connected",
                  "streams", "readers"):
            assert k in rep
        assert rep["frame_seq"] == 1 and rep["readers_connected"] == 1
        assert [x["name"] for x in rep["streams"]] == ["frame_id", "timestamp", "data"]
        used = [r for r in rep["readers"] if r["in_use"]]
        assert len(used) == 1 and used[0]["reader_id"] == c.reader_id
        assert ins.get_header_info()["session_id"] == s.get_header_info()["session_id"]
        assert ins.get_streams_info() == rep["streams"]
        assert len(ins.get_readers_info()) == 16
        assert any(sl["latest"] for sl in ins.get_slots_info())
        readers = s.snapshot_readers()
        assert len(readers) == 16
        mine = [r for r in readers if r["in_use"]]
        assert len(mine) == 1
        assert set(mine[0]) >= {"reader_id", "heartbeat", "last_frame_seen", "in_use"}
        assert s.reap_stale_readers(0, 10**12) == 0
        assert s.reap_stale_readers(shmx.now_ns() + 10**10, 1) == 1
        assert s.get_header_info()["readers_connected"] == 0
        with pytest.raises(shmx.ReapedError):
            c.latest_frame()
        assert c.get_latest_frame() is None
        assert isinstance(c.last_error, shmx.ReapedError)
        assert "open" in repr(ins)
        ins.close()
        assert not ins.is_open()
        assert ins.open("pytno_such_channel_x") is False
        assert isinstance(ins.last_error, shmx.ChannelNotFoundError)
    finally:
        c.close()
        s.destroy()


def test_expected_failures_return_false_with_reason(chan):
    name = chan()
    c = shmx.Client()
    assert c.open(name) is False
    e = c.last_error
    assert isinstance(e, shmx.ChannelNotFoundError) and e.code == shmx.E_NOCHANNEL
    assert e.name == "SHMX_E_NOCHANNEL"
    with pytest.raises(shmx.ChannelNotFoundError):
        shmx.Client(name)
    with pytest.raises(FileNotFoundError):
        shmx.Inspector(name)
    s = shmx.Server()
    assert s.create(name) is True
    s2 = shmx.Server()
    assert s2.create(name) is False
    assert isinstance(s2.last_error, shmx.ChannelExistsError)
    assert str(s.get_header_info()["owner_pid"]) in str(s2.last_error)
    with pytest.raises(shmx.ChannelExistsError):
        shmx.Server(name)
    c2 = shmx.Client(name)
    c2.close()
    s.destroy()
    assert c.open(name) is False  # destroyed: unlinked


def test_context_managers_and_repr(chan):
    name = chan()
    with shmx.Server(name, streams=S3, slots=3) as s:
        assert "live" in repr(s) and name in repr(s)
        with shmx.Client(name) as c:
            assert "open" in repr(c)
            publish3(s, 1)
            assert c.frame_seq == 1
        assert not c.is_open() and "closed" in repr(c)
        with shmx.Inspector(name) as ins:
            assert ins.inspect()["frame_seq"] == 1
        assert not ins.is_open()
        assert shmx.channel_owner_alive(name) is True
        assert name in shmx.list_channels()
        with pytest.raises(shmx.ChannelExistsError):
            shmx.remove_channel(name)
    assert not s.is_open() and "not created" in repr(s)
    assert name not in shmx.list_channels()
    h = repr(shmx.Server())
    assert "not created" in h
    # 1.0.1 style inside a with block: create/open after entering
    with shmx.Server() as s2:
        assert s2.create(name, streams=S3)
        with shmx.Client() as c2, shmx.Inspector() as i2:
            assert c2.open(name) and i2.open(name)
        assert not c2.is_open() and not i2.is_open()
    assert not s2.is_open() and name not in shmx.list_channels()


def test_producer_restart_same_process(chan):
    name = chan()
    s, c = make_pair(name)
    publish3(s, 1)
    old = c.get_latest_frame()
    s.destroy()
    assert c.status() == "SHMX_E_CLOSED"
    with pytest.raises(shmx.ClosedError):
        c.check()
    s2 = shmx.Server(name, streams=S3)
    publish3(s2, 42)
    assert c.status() in ("SHMX_E_CLOSED", "SHMX_E_RESTARTED")
    assert c.open(name) is True
    assert struct.unpack("Q", c.get_latest_frame()["frame_id"]["data"])[0] == 42
    assert struct.unpack("Q", old["frame_id"]["data"])[0] == 1  # old mapping kept
    c.close()
    s2.destroy()


def test_repeated_get_latest_frame_is_independent(chan):
    """Repeated calls on an unchanged frame are served from a per-client
    template; each result must still behave like a fresh dict."""
    name = chan()
    s, c = make_pair(name)
    try:
        publish3(s, 4)
        a = c.get_latest_frame()
        b = c.get_latest_frame()
        d = c.get_latest_frame()
        assert a is not b and a["data"] is not b["data"]
        assert a["__metadata__"] == b["__metadata__"]
        b["data"]["elem_count"] = -1
        b["junk"] = 1
        del b["frame_id"]
        e = c.get_latest_frame()
        assert e["data"]["elem_count"] == 10 and "junk" not in e and "frame_id" in e
        # a released memoryview does not poison later results
        with d["data"]["data"] as mv:
            assert mv.format == "B" and mv.shape == (40,)
        f = c.get_latest_frame()
        assert struct.unpack("10f", f["data"]["data"])[0] == 4.0
        assert np.asarray(f["data"]["array"]).shape == (10,)
        # a new frame replaces the reused one; old results keep their bytes
        publish3(s, 5)
        g = c.get_latest_frame()
        assert g["__metadata__"]["frame_id"] == 2
        assert struct.unpack("10f", a["data"]["data"])[0] == 4.0
        assert struct.unpack("10f", g["data"]["data"])[0] == 5.0
        # producer gone: None with the reason, not the stale frame
        s.destroy()
        assert c.get_latest_frame() is None or c.get_latest_frame() is None
        assert isinstance(c.last_error, shmx.ClosedError)
    finally:
        c.close()
        s.destroy()


def _check_fresh(d, i):
    """d is exactly what get_latest_frame() returns for frame i of publish3."""
    assert list(d) == ["__metadata__", "frame_id", "timestamp", "data"]
    md = d["__metadata__"]
    assert list(md) == ["frame_id", "sim_time", "payload_bytes", "tlv_count", "frame"]
    assert md["sim_time"] == float(i) and md["tlv_count"] == 3
    assert md["frame"].frame_id == md["frame_id"]
    for k in ("frame_id", "timestamp", "data"):
        assert list(d[k]) == ["data", "elem_count", "bytes", "array"]
        assert type(d[k]["data"]) is memoryview
    assert d["data"]["elem_count"] == 10 and d["data"]["bytes"] == 40
    assert struct.unpack("Q", d["frame_id"]["data"])[0] == i
    assert struct.unpack("10f", d["data"]["data"])[0] == float(i)
    assert np.asarray(d["data"]["array"])[9] == float(i + 9)


def test_get_latest_frame_recycles_only_dropped_untouched_results(chan):
    """A result the caller let go of unmodified is handed out again (same
    frame) or refilled in place (new frame); a result that is still held, in
    whole or in part, never changes, and one modified before it was dropped
    is never handed out again."""
    name = chan()
    s, c = make_pair(name)
    try:
        publish3(s, 1)
        a = c.get_latest_frame()
        ia = id(a)
        del a
        b = c.get_latest_frame()
        assert id(b) == ia  # unchanged frame: the same dict again
        _check_fresh(b, 1)
        del b
        publish3(s, 2)
        b = c.get_latest_frame()
        assert id(b) == ia  # new frame: refilled in place
        _check_fresh(b, 2)
        # a held result never changes, whatever arrives later
        publish3(s, 3)
        b2 = c.get_latest_frame()
        assert b2 is not b
        _check_fresh(b, 2)
        _check_fresh(b2, 3)
        # nor do the parts of a dropped result that are still held
        inner, mv, md = b2["data"], b2["data"]["data"], b2["__metadata__"]
        del b, b2
        for i in (4, 5, 6):
            publish3(s, i)
            _check_fresh(c.get_latest_frame(), i)
        assert inner["elem_count"] == 10 and struct.unpack("10f", inner["data"])[0] == 3.0
        assert struct.unpack("10f", mv)[0] == 3.0 and md["frame_id"] == 3
        # modified, then dropped: never handed out again, on the same frame
        # or a new one
        mutations = [
            lambda d: d.__setitem__("junk", 1),
            lambda d: d.pop("timestamp"),
            lambda d: d.clear(),
            lambda d: d["data"].__setitem__("elem_count", -1),
            lambda d: d["data"].__setitem__("data", b"x"),
            lambda d: d["__metadata__"].pop("frame"),
            lambda d: d["__metadata__"].__setitem__("sim_time", -1.0),
            lambda d: d["frame_id"]["data"].release(),
        ]
        i = 6
        for mutate in mutations:
            for new_frame in (False, True):
                for _ in range(2):  # both records of the pool
                    d = c.get_latest_frame()
                    mutate(d)
                    del d
                if new_frame:
                    i += 1
                    publish3(s, i)
                _check_fresh(c.get_latest_frame(), i)
                _check_fresh(c.get_latest_frame(), i)
    finally:
        c.close()
        s.destroy()


def test_get_latest_frame_pins_only_the_latest_beyond_what_is_held(chan):
    """Recycling keeps no older frame pinned: with 3 slots, a reader that
    holds one old result and polls in the usual `f = get()` loop leaves the
    producer a free slot, so the held result never expires."""
    name = chan()
    s, c = make_pair(name)  # 3 slots
    try:
        publish3(s, 1)
        keep = c.get_latest_frame()
        f = None
        for i in range(2, 14):
            publish3(s, i)  # needs a slot that nobody pins
            assert keep["__metadata__"]["frame"].valid
            _check_fresh(keep, 1)
            for _ in range(1 + i % 3):  # one call per frame, or polls too
                f = c.get_latest_frame()
            _check_fresh(f, i)
        del f
    finally:
        c.close()
        s.destroy()


def test_stubs_and_docstrings_cover_public_names():
    import ast
    import os
    pyi = os.path.join(os.path.dirname(shmx.__file__), "__init__.pyi")
    assert os.path.exists(os.path.join(os.path.dirname(shmx.__file__), "py.typed"))
    tree = ast.parse(open(pyi).read())
    names = set()
    for n in tree.body:
        if isinstance(n, (ast.ClassDef, ast.FunctionDef)):
            names.add(n.name)
        elif isinstance(n, ast.AnnAssign):
            names.add(n.target.id)
    import types
    public = [k for k in dir(shmx) if not k.startswith("_")
              and not isinstance(getattr(shmx, k), types.ModuleType)]  # shmx.smmap
    assert [k for k in public if k not in names] == []
    for cls in (shmx.Server, shmx.Client, shmx.Inspector, shmx.Frame, shmx.View):
        assert cls.__doc__
        for attr, obj in vars(cls).items():
            if not attr.startswith("_") and callable(obj):
                assert obj.__doc__, "%s.%s has no docstring" % (cls.__name__, attr)
    for fn in (shmx.create_stream_spec, shmx.dtype_to_string, shmx.list_channels):
        assert fn.__doc__


def test_frame_invalid_when_every_slot_is_pinned(chan):
    """With every slot held the producer must overwrite one: that frame says
    valid == False, and reading its views still never crashes."""
    name = chan()
    s, c = make_pair(name, slots=2)
    try:
        publish3(s, 1)
        a = c.latest_frame()
        publish3(s, 2)
        b = c.latest_frame()
        assert a.valid and b.valid and a.frame_id == 1 and b.frame_id == 2
        publish3(s, 3)  # both slots pinned: the oldest (a's) is reused
        assert not a.valid and b.valid
        assert "expired" in repr(a)
        np.asarray(a["data"]).sum()  # readable (bytes of frame 3), no crash
        assert struct.unpack("Q", b["frame_id"])[0] == 2
    finally:
        c.close()
        s.destroy()


@pytest.mark.nosan  # ASan's allocator makes tracemalloc figures meaningless
def test_no_memory_growth_in_hot_paths(chan):
    """Repeating every hot path many times must not grow Python memory
    (reference leaks in the extension would show up here)."""
    import tracemalloc
    name = chan()
    s, c = make_pair(name, slots=4)
    buf = np.arange(10, dtype=np.float32)

    def work(n):
        for i in range(n):
            h = s.begin_frame()
            s.append_stream(h, 1, struct.pack("Q", i), 1)
            s.append_stream(h, 2, b"\0" * 8, 1)
            s.append_stream(h, 3, buf, 10)
            s.publish_frame(h, 1.0)
            f = c.get_latest_frame()
            f = c.get_latest_frame()
            np.asarray(f["data"]["array"]).sum()
            fr = c.latest_frame()
            fr["data"], fr.raw("timestamp"), fr.to_dict(), repr(fr)
            c.next_frame()
            c.wait_frame(timeout=0)
            c.send_control(1, b"x")
            s.poll_control()
            try:
                s.append_stream(h, 1, b"x", 1)
            except shmx.StateError:
                pass
            if i % 100 == 0:
                assert not shmx.Client().open("pytno_such_%d" % os.getpid())
            del f, fr
    try:
        work(300)
        gc.collect()
        tracemalloc.start()
        work(2000)
        gc.collect()
        snap1 = tracemalloc.get_traced_memory()[0]
        work(2000)
        gc.collect()
        snap2 = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert snap2 - snap1 < 64 * 1024, (snap1, snap2)
    finally:
        c.close()
        s.destroy()


# ---- waiting for a channel; elem_count from the buffer (issue 16) ------------

def test_open_waits_for_the_channel(chan):
    import signal
    name = chan()
    c = shmx.Client()
    t0 = time.monotonic()
    assert c.open(name, timeout=0.3) is False
    assert 0.25 <= time.monotonic() - t0 < 5
    assert isinstance(c.last_error, shmx.ShmxTimeoutError)
    assert "no such channel" in str(c.last_error)
    with pytest.raises(shmx.ShmxTimeoutError):
        shmx.Client(name, timeout=0.1)
    with pytest.raises(TypeError):
        shmx.Client(timeout=1)
    with pytest.raises(ValueError):
        c.open(name, timeout=-1)
    # a producer that comes later: open returns as soon as it is live
    made = threading.Event()

    def late():
        time.sleep(0.3)
        s = shmx.Server()
        assert s.create(name, streams=S3)
        made.set()
        publish3(s, 1)
        time.sleep(2)
        s.destroy()
    t = threading.Thread(target=late)
    t.start()
    try:
        t0 = time.monotonic()
        c2 = shmx.Client(name, timeout=10)
        assert made.is_set() and time.monotonic() - t0 < 3
        f = c2.wait_frame(timeout=5)
        assert f is not None and f.frame_id == 1
        del f
        c2.close()
    finally:
        t.join()
    # a signal handler's exception interrupts a wait without timeout

    class Stop(Exception):
        pass

    def on_alarm(signum, frame):
        raise Stop()
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Stop):
            c.open(name, timeout=None)
        assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_append_stream_elem_count_from_the_buffer(chan):
    name = chan()
    s, c = make_pair(name)
    try:
        h = s.begin_frame()
        assert s.append_stream(h, 1, struct.pack("Q", 7)) is True
        with pytest.raises(shmx.SizeMismatchError, match="whole number"):
            s.append_stream(h, 3, b"\0" * 10)           # 10 bytes of 4-byte floats
        with pytest.raises(shmx.UnknownStreamError):
            s.append_stream(h, 99, b"\0" * 8)
        assert s.append_stream(h, 3, struct.pack("5f", *range(5)), None) is True
        s.publish_frame(h, 1.0)
        f = c.latest_frame()
        assert struct.unpack("5f", bytes(f["data"])) == (0.0, 1.0, 2.0, 3.0, 4.0)
        assert f["data"].shape == (5,) or len(bytes(f["data"])) == 20
        del f
    finally:
        c.close()
        s.destroy()
