"""Misuse matrix: every method in every wrong state raises, never crashes
(shmx 1.0.1 segfaulted on several of these)."""
import gc
import struct

import pytest

import shmx
from shmxtest import chan  # noqa: F401

SPECS = [shmx.create_stream_spec(1, "a", shmx.DT_U32, 1, 4)]

SERVER_CALLS = [
    ("begin_frame", ()),
    ("poll_control", ()),
    ("snapshot_readers", ()),
    ("reap_stale_readers", (0, 1)),
    ("get_header_info", ()),
    ("get_streams_info", ()),
    ("write_static_append", (b"x", 1)),
    ("add_stream", (shmx.create_stream_spec(9, "z", shmx.DT_U8, 1, 1),)),
]
CLIENT_CALLS = [
    ("get_latest_frame", ()), ("latest_frame", ()), ("wait_frame", (0,)),
    ("next_frame", ()), ("next_frame", (0.01,)), ("get_streams_info", ()),
    ("get_header_info", ()), ("refresh_static", ()), ("refresh", ()),
    ("send_control", (1, b"x")), ("send_control_empty", (1,)), ("status", ()),
    ("check", ()), ("heartbeat", ()),
]
INSPECTOR_CALLS = [("inspect", ()), ("get_header_info", ()),
                   ("get_streams_info", ()), ("get_readers_info", ()),
                   ("get_slots_info", ())]


def _failed_server(name):
    owner = shmx.Server()
    assert owner.create(name, streams=SPECS)
    s = shmx.Server()
    assert s.create(name) is False
    owner.destroy()
    return s


@pytest.mark.parametrize("state", ["never created", "destroyed", "create failed"])
def test_server_methods_in_wrong_state(chan, state):
    name = chan()
    if state == "never created":
        s = shmx.Server()
    elif state == "destroyed":
        s = shmx.Server()
        assert s.create(name, streams=SPECS)
        s.destroy()
        s.destroy()  # idempotent
    else:
        s = _failed_server(name)
    for meth, args in SERVER_CALLS:
        with pytest.raises(shmx.NotOpenError):
            getattr(s, meth)(*args)
    # frame calls with a stale or foreign handle
    other = shmx.Server(chan(), streams=SPECS)
    h = other.begin_frame()
    for meth, args in [("append_stream", (h, 1, b"abcd", 1)),
                       ("publish_frame", (h, 0.0)),
                       ("reserve_stream", (h, 1, 1)),
                       ("abort_frame", (h,))]:
        with pytest.raises(shmx.NotOpenError):
            getattr(s, meth)(*args)
    other.destroy()
    assert s.is_open() is False
    with s:  # entering is allowed (create inside the block); exit is a no-op
        pass
    assert "not created" in repr(s)


@pytest.mark.parametrize("state", ["never opened", "closed", "open failed"])
def test_client_methods_in_wrong_state(chan, state):
    name = chan()
    c = shmx.Client()
    srv = None
    if state == "closed":
        srv = shmx.Server(name, streams=SPECS)
        assert c.open(name)
        c.close()
        c.close()  # idempotent
    elif state == "open failed":
        assert c.open(name) is False
    for meth, args in CLIENT_CALLS:
        with pytest.raises(shmx.NotOpenError):
            getattr(c, meth)(*args)
    for attr in ("frame_seq", "reader_id", "stream_names"):
        with pytest.raises(shmx.NotOpenError):
            getattr(c, attr)
    with pytest.raises(shmx.NotOpenError):
        next(iter(c))
    assert c.is_open() is False
    assert "closed" in repr(c)
    if srv:
        srv.destroy()


@pytest.mark.parametrize("state", ["never opened", "closed", "open failed"])
def test_inspector_methods_in_wrong_state(chan, state):
    name = chan()
    ins = shmx.Inspector()
    if state == "closed":
        srv = shmx.Server(name)
        assert ins.open(name)
        ins.close()
        srv.destroy()
    elif state == "open failed":
        assert ins.open(name) is False
    for meth, args in INSPECTOR_CALLS:
        with pytest.raises(shmx.NotOpenError):
            getattr(ins, meth)(*args)
    ins.close()


def test_bad_names_and_specs(chan):
    s = shmx.Server()
    for bad in ("a/b", "", "x" * 300, "sp ace", "nul\0x", "../etc"):
        with pytest.raises(shmx.InvalidNameError):
            s.create(bad)
        with pytest.raises(ValueError):
            shmx.Client().open(bad)
        with pytest.raises(ValueError):
            shmx.Inspector().open(bad)
    for bad in (None, 12, b"bytes"):
        with pytest.raises(TypeError):
            s.create(bad)
        with pytest.raises(TypeError):
            shmx.Client().open(bad)
    name = chan()
    spec = shmx.create_stream_spec
    cases = [
        ([spec(1, "__metadata__", shmx.DT_U8, 1, 1)], shmx.InvalidNameError),
        ([spec(1, "a", shmx.DT_U8, 1, 1), spec(1, "b", shmx.DT_U8, 1, 1)],
         shmx.DuplicateError),
        ([spec(1, "a", shmx.DT_U8, 1, 1), spec(2, "a", shmx.DT_U8, 1, 1)],
         shmx.DuplicateError),
        ([spec(1, "", shmx.DT_U8, 1, 1)], shmx.InvalidNameError),
        ([spec(1, "a", shmx.DT_U8, 0, 1)], shmx.InvalidArgumentError),
        ([spec(1, "a", shmx.DT_U8, 1, 0)], shmx.InvalidArgumentError),
        ([spec(-1, "a", shmx.DT_U8, 1, 1)], ValueError),
        ([spec(2**32, "a", shmx.DT_U8, 1, 1)], ValueError),
        ([spec(1.5, "a", shmx.DT_U8, 1, 1)], TypeError),
        ([spec(1, 5, shmx.DT_U8, 1, 1)], TypeError),
        ([{"id": 1}], KeyError),
        (["notadict"], TypeError),
        (5, TypeError),
    ]
    for streams, exc in cases:
        with pytest.raises(exc):
            s.create(name, streams=streams)
        assert not s.is_open()
    for kw in ({"slots": 0}, {"slots": 1}, {"reader_slots": 0},
               {"frame_bytes_cap": 0}, {"slots": -3}):
        with pytest.raises(ValueError):
            s.create(name, **kw)
    with pytest.raises(TypeError):
        s.create(name, slots="3")


def test_frame_call_misuse(chan):
    name = chan()
    s = shmx.Server(name, streams=SPECS, frame_bytes_cap=64)
    c = shmx.Client(name)
    h = s.begin_frame()
    with pytest.raises(TypeError):
        s.append_stream(object(), 1, b"abcd", 1)
    with pytest.raises(TypeError):
        s.append_stream(h, 1, 1234, 1)
    with pytest.raises(TypeError):
        s.append_stream(h, 1)   # no data (elem_count may be left out, data not)
    with pytest.raises(TypeError):
        s.append_stream(h, "1", b"abcd", 1)
    with pytest.raises(ValueError):
        s.append_stream(h, 1, b"abcd", -1)
    with pytest.raises(TypeError):
        s.append_stream(h, 1, b"abcd", 1.0)
    with pytest.raises(TypeError):
        s.append_stream(h, 1, b"abcd", 1, bogus=2)
    with pytest.raises(shmx.UnknownStreamError):
        s.append_stream(h, 2, b"abcd", 1)
    with pytest.raises(shmx.SizeMismatchError):
        s.append_stream(h, 1, b"abcd", 2)
    with pytest.raises(shmx.CapacityError):
        s.append_stream(h, 1, b"\0" * 400, 100)
    with pytest.raises(TypeError):
        s.publish_frame(h, "soon")
    assert s.append_stream(frame_handle=h, stream_id=1, data=b"abcd", elem_count=1)
    assert s.publish_frame(h, sim_time=1.0)
    # a published handle is finished
    with pytest.raises(shmx.StateError):
        s.append_stream(h, 1, b"abcd", 1)
    with pytest.raises(shmx.StateError):
        s.publish_frame(h, 1.0)
    # begin twice: the first handle is replaced, the new one works
    h1 = s.begin_frame()
    h2 = s.begin_frame()
    with pytest.raises(shmx.StateError):
        s.publish_frame(h1, 0)
    assert s.append_stream(h2, 1, struct.pack("I", 9), 1)
    assert s.publish_frame(h2, 2.0)
    h3 = s.begin_frame()
    s.abort_frame(h3)
    with pytest.raises(shmx.StateError):
        s.abort_frame(h3)
    assert c.get_latest_frame()["__metadata__"]["frame_id"] == 2
    # handle of another server
    other = shmx.Server(chan(), streams=SPECS)
    oh = other.begin_frame()
    with pytest.raises(shmx.StateError):
        s.append_stream(oh, 1, b"abcd", 1)
    other.destroy()
    with pytest.raises(TypeError):
        c.wait_frame(timeout="x")
    with pytest.raises(ValueError):
        c.wait_frame(timeout=-1)
    with pytest.raises(TypeError):
        shmx.Frame()
    with pytest.raises(TypeError):
        shmx.View()
    with pytest.raises(shmx.InvalidArgumentError):
        s.write_static_append(b"abc", 10)
    with pytest.raises(TypeError):
        s.write_static_append("abc", 3)
    # destroy with a reserved writable view alive is refused (it would dangle)
    h = s.begin_frame()
    mv = s.reserve_stream(h, 1, 1)
    with pytest.raises(BufferError):
        s.destroy()
    mv.release()
    s.destroy()
    c.close()
    gc.collect()
