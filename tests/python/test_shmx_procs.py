"""Multi-process tests: producer and readers in different processes
(multiprocessing and subprocess), producer exit/crash/restart, reader crash,
Ctrl-C during a wait. Processes synchronise on state (pipes, events, polling
shared state with deadlines), never on bare sleeps."""
import multiprocessing as mp
import os
import signal
import struct

import pytest

import shmx
from shmxtest import chan, spawn, readline, finish, wait_until  # noqa: F401

SPECS = [shmx.create_stream_spec(1, "counter", shmx.DT_U64, 1, 8),
         shmx.create_stream_spec(2, "value", shmx.DT_F64, 1, 8)]

PRODUCER = r"""
import struct, sys, shmx
name, nframes = sys.argv[1], int(sys.argv[2])
specs = [shmx.create_stream_spec(1, "counter", shmx.DT_U64, 1, 8),
         shmx.create_stream_spec(2, "value", shmx.DT_F64, 1, 8)]
s = shmx.Server(name, streams=specs, slots=4)
for i in range(1, nframes + 1):
    h = s.begin_frame()
    s.append_stream(h, 1, struct.pack("Q", i), 1)
    s.append_stream(h, 2, struct.pack("d", i * 3.14), 1)
    s.publish_frame(h, float(i))
print("ready", s.get_header_info()["session_id"], flush=True)
cmd = sys.stdin.readline().strip()
if cmd == "stop":
    s.destroy()
    print("stopped", flush=True)
elif cmd == "hang":
    import time
    while True:
        time.sleep(1)
"""


def _mp_producer(name, created, ready_events, n, go):
    s = shmx.Server()
    assert s.create(name, streams=SPECS, slots=4)
    created.set()
    for e in ready_events:
        assert e.wait(20)
    assert go.wait(20)
    for i in range(1, n + 1):
        h = s.begin_frame()
        s.append_stream(h, 1, struct.pack("Q", i), 1)
        s.append_stream(h, 2, struct.pack("d", i * 3.14), 1)
        s.publish_frame(h, float(i))
        # keep the ring from overrunning slow readers: wait for them
        snaps = s.snapshot_readers
        deadline = shmx.now_ns() + 10 * 10**9
        while any(r["in_use"] and r["last_frame_seen"] < i - 2 for r in snaps()):
            if shmx.now_ns() > deadline:
                break
    s.destroy()


def _mp_consumer(name, created, ready, q):
    assert created.wait(20)
    c = shmx.Client()
    assert c.open(name), c.last_error
    ready.set()
    seen = []
    dropped = 0
    for fr in c:  # in order, until the producer closes the channel
        counter = struct.unpack("Q", fr["counter"])[0]
        value = struct.unpack("d", fr["value"])[0]
        assert fr.frame_id == counter and value == counter * 3.14
        seen.append(counter)
        dropped += fr.dropped
    c.close()
    q.put((seen, dropped))


def test_multiprocessing_producer_and_three_consumers(chan):
    name = chan()
    ctx = mp.get_context("spawn")
    created, go = ctx.Event(), ctx.Event()
    readies = [ctx.Event() for _ in range(3)]
    q = ctx.Queue()
    n = 200
    prod = ctx.Process(target=_mp_producer, args=(name, created, readies, n, go))
    cons = [ctx.Process(target=_mp_consumer, args=(name, created, r, q)) for r in readies]
    prod.start()
    for p in cons:
        p.start()
    try:
        for r in readies:
            assert r.wait(30)
        go.set()
        results = [q.get(timeout=60) for _ in cons]
    finally:
        for p in [prod] + cons:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert prod.exitcode == 0 and all(p.exitcode == 0 for p in cons)
    for seen, dropped in results:
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert seen[-1] == n
        assert len(seen) + dropped == n - seen[0] + 1


def test_subprocess_producer_stop_and_restart(chan):
    name = chan()
    p = spawn(PRODUCER, name, 10, stdin=-1)
    try:
        line = readline(p).split()
        assert line[0] == "ready"
        session = int(line[1])
        c = shmx.Client(name)
        assert c.get_header_info()["session_id"] == session
        f = c.get_latest_frame()
        assert struct.unpack("Q", f["counter"]["data"])[0] == 10
        p.stdin.write("stop\n")
        p.stdin.flush()
        assert readline(p) == "stopped"
        assert finish(p)[0] == 0
        with pytest.raises(shmx.ClosedError):
            while True:  # frames still unread are returned first
                assert c.wait_frame(timeout=5) is not None
        assert c.status() == "SHMX_E_CLOSED"
        # held view still readable after the producer exited
        assert struct.unpack("Q", f["counter"]["data"])[0] == 10
        # restart: a new producer process takes the name, the reader reopens
        p = spawn(PRODUCER, name, 3, stdin=-1)
        line = readline(p).split()
        assert int(line[1]) != session
        assert c.open(name)
        assert struct.unpack("Q", c.get_latest_frame()["counter"]["data"])[0] == 3
        assert struct.unpack("Q", f["counter"]["data"])[0] == 10
        p.stdin.write("stop\n")
        p.stdin.flush()
        assert finish(p)[0] == 0
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_producer_crash_readers_see_dead(chan):
    name = chan()
    p = spawn(PRODUCER, name, 5, stdin=-1)
    try:
        assert readline(p).startswith("ready")
        c = shmx.Client(name)
        held = c.latest_frame()
        arr = held.raw("value")
        p.stdin.write("hang\n")
        p.stdin.flush()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        with pytest.raises(shmx.ProducerDeadError):
            while True:
                assert c.wait_frame(timeout=5) is not None
        assert struct.unpack("d", arr)[0] == 5 * 3.14  # views survive the crash
        assert held.frame_id == 5
        with shmx.Inspector(name) as ins:
            rep = ins.inspect()
            assert rep["owner_alive"] is False and rep["frame_seq"] == 5
        assert shmx.channel_owner_alive(name) is False
        # a new producer reclaims the dead segment
        s = shmx.Server()
        assert s.create(name, streams=SPECS), s.last_error
        s.destroy()
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


READER = r"""
import sys, time, shmx
c = shmx.Client(sys.argv[1])
print("open", c.reader_id, flush=True)
while True:
    time.sleep(1)
"""


def test_reader_crash_is_reaped(chan):
    name = chan()
    s = shmx.Server(name, streams=SPECS, reader_slots=1)
    r = spawn(READER, name)
    try:
        rid = int(readline(r).split()[1])
        assert s.get_header_info()["readers_connected"] == 1
        other = shmx.Client()
        assert other.open(name) is False
        assert isinstance(other.last_error, shmx.ReadersFullError)
        os.kill(r.pid, signal.SIGKILL)
        r.wait(10)

        def reaped():
            s.reap_stale_readers(0, 60 * 10**9)  # dead processes are reaped
            return s.get_header_info()["readers_connected"] == 0
        wait_until(reaped, what="dead reader reaped")
        assert not any(x["in_use"] and x["reader_id"] == rid
                       for x in s.snapshot_readers())
        assert other.open(name), other.last_error
        other.close()
    finally:
        if r.poll() is None:
            r.kill()
            r.wait()
        s.destroy()


WAITER = r"""
import signal, sys, shmx
# CPython installs no KeyboardInterrupt handler when SIGINT is ignored at
# start-up (nohup, `cmd &` in a non-interactive shell) and a child inherits
# that: set it here so the test does not depend on how it was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)
c = shmx.Client(sys.argv[1])
try:
    print("waiting", flush=True)
    c.wait_frame()
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_interrupts_wait(chan):
    name = chan()
    s = shmx.Server(name, streams=SPECS)
    w = spawn(WAITER, name)
    try:
        assert readline(w) == "waiting"
        wait_until(lambda: s.get_header_info()["readers_connected"] == 1)
        os.kill(w.pid, signal.SIGINT)
        assert readline(w, timeout=5) == "interrupted"
        assert finish(w)[0] == 0
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
        s.destroy()


CONSUMER_SUB = r"""
import struct, sys, shmx
import numpy as np
c = shmx.Client(sys.argv[1])
print("open", flush=True)
total = 0
for fr in c:
    a = np.asarray(fr["value"])
    total += int(a[0])
print("total", total, flush=True)
"""


def test_subprocess_consumer_numpy_in_order(chan):
    pytest.importorskip("numpy")
    name = chan()
    s = shmx.Server(name, streams=SPECS, slots=8)
    r = spawn(CONSUMER_SUB, name)
    try:
        assert readline(r) == "open"
        n = 50
        for i in range(1, n + 1):
            h = s.begin_frame()
            s.append_stream(h, 1, struct.pack("Q", i), 1)
            s.append_stream(h, 2, struct.pack("d", float(i)), 1)
            s.publish_frame(h, float(i))
            # stay within the ring: wait until the reader has seen frame i-4
            wait_until(lambda: any(x["in_use"] and x["last_frame_seen"] >= i - 4
                                   for x in s.snapshot_readers()),
                       what="reader progress")
        wait_until(lambda: any(x["in_use"] and x["last_frame_seen"] >= n
                               for x in s.snapshot_readers()), what="reader done")
        s.destroy()
        line = readline(r).split()
        assert line == ["total", str(n * (n + 1) // 2)]
        assert finish(r)[0] == 0
    finally:
        if r.poll() is None:
            r.kill()
            r.wait()
        s.destroy()


SCRIBBLER = r"""
import os, random, struct, sys, shmx
name, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
specs = [shmx.create_stream_spec(1, "counter", shmx.DT_U64, 1, 8)]
s = shmx.Server(name, streams=specs)
h = s.begin_frame(); s.append_stream(h, 1, struct.pack("Q", 1), 1); s.publish_frame(h, 1.0)
c = shmx.Client(name)
held = c.get_latest_frame()
path = "/dev/shm/shmx." + name
size = os.path.getsize(path)
fd = os.open(path, os.O_RDWR)
for round_ in range(40):
    # overwrite random bytes (never truncate: that is SIGBUS territory, see shmx.h)
    for _ in range(rnd.randint(1, 64)):
        off = rnd.randrange(size)
        os.pwrite(fd, bytes([rnd.randrange(256)]), off)
    for call in (c.get_latest_frame, c.latest_frame, c.next_frame, c.get_streams_info,
                 c.get_header_info, c.refresh_static, c.status,
                 lambda: c.wait_frame(timeout=0), lambda: c.send_control(1, b"x"),
                 s.poll_control, s.snapshot_readers, s.get_header_info,
                 lambda: shmx.Inspector(name).inspect(),
                 lambda: shmx.Client(name).get_latest_frame()):
        try:
            r = call()
        except shmx.ShmxError:
            pass
    try:
        h = s.begin_frame(); s.append_stream(h, 1, struct.pack("Q", round_), 1); s.publish_frame(h, 0.0)
    except shmx.ShmxError:
        pass
    bytes(held["counter"]["data"])  # the held view stays readable
os.close(fd)
print("survived", flush=True)
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scribbled_segment_never_crashes(chan, seed):
    """Random bytes written into a live segment: every call returns or raises
    a ShmxError; the process never dies of a signal."""
    name = chan()
    p = spawn(SCRIBBLER, name, seed)
    rc, out, err = finish(p, timeout=60)
    assert rc == 0, "rc=%s stderr=%s" % (rc, err[-2000:])
    assert "survived" in out


def test_not_a_segment(chan):
    name = chan()
    with open("/dev/shm/shmx." + name, "wb") as f:
        f.write(os.urandom(8192))
    c = shmx.Client()
    assert c.open(name) is False
    assert isinstance(c.last_error, (shmx.CorruptedError, shmx.ShmxError))
    with pytest.raises(shmx.ShmxError):
        shmx.Inspector(name)


def test_fork_child_cannot_break_parent_handles(chan):
    """A child forked after create/open must not publish on, close or destroy
    the parent's handles (multiprocessing's default 'fork' context makes this
    easy to do by accident); it can open its own."""
    name = chan()
    s = shmx.Server(name, streams=SPECS)
    c = shmx.Client(name)
    h = s.begin_frame()
    s.append_stream(h, 1, struct.pack("Q", 7), 1)
    s.append_stream(h, 2, struct.pack("d", 1.5), 1)
    s.publish_frame(h, 1.0)
    held = c.get_latest_frame()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            ok = []
            for call in (s.begin_frame, s.get_header_info, c.get_latest_frame,
                         c.latest_frame, lambda: c.wait_frame(0)):
                try:
                    call()
                    ok.append(False)
                except shmx.StateError:
                    ok.append(True)
            # inherited views stay readable in the child
            ok.append(struct.unpack("Q", held["counter"]["data"])[0] == 7)
            mine = shmx.Client(name)  # a handle of its own works
            ok.append(struct.unpack("Q", mine.get_latest_frame()["counter"]["data"])[0] == 7)
            mine.close()
            s.destroy()  # detaches in the child: must not close the parent's channel
            c.close()
            ok.append(not s.is_open())
            code = 0 if all(ok) else 2
            os.write(w, repr(ok).encode())
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    report = os.read(r, 4096).decode()
    os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report
    # the parent's channel and reader are untouched
    assert s.is_open() and c.is_open()
    assert s.get_header_info()["readers_connected"] == 1
    assert not s.get_header_info()["closed"]
    h = s.begin_frame()
    s.append_stream(h, 1, struct.pack("Q", 8), 1)
    s.append_stream(h, 2, struct.pack("d", 2.5), 1)
    s.publish_frame(h, 2.0)
    assert struct.unpack("Q", c.get_latest_frame()["counter"]["data"])[0] == 8
    c.close()
    s.destroy()
