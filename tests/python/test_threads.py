"""Python threads meeting on one Client, one Server and one smmap manager.

Run normally and, by `make test-python-tsan`, with a ThreadSanitizer build of
the extensions (libtsan preloaded: CPython's GIL is made of pthread mutexes and
condition variables, which TSan intercepts, so GIL hand-offs order accesses).
Every frame a thread accepts is checked byte by byte; a call that finds the
client busy in another thread (the GIL is released during waits and big
copies) must raise RuntimeError, never race.
"""
import struct
import threading
import time

import shmx

from shmxtest import chan  # noqa: F401  (fixture)

N_BYTES = 300 * 1024  # > 256 KiB: appends release the GIL


def pattern(fid):
    return bytes((fid * 7 + i) & 0xFF for i in range(251)) * (N_BYTES // 251) + \
        bytes((fid * 7 + i) & 0xFF for i in range(N_BYTES % 251))


def test_threads_share_one_client(chan):  # noqa: F811
    name = chan()
    specs = [shmx.create_stream_spec(1, "id", shmx.DT_U64, 1, 8),
             shmx.create_stream_spec(2, "blob", shmx.DT_U8, 1, 1)]
    srv = shmx.Server()
    assert srv.create(name, slots=8, frame_bytes_cap=N_BYTES + 64, streams=specs)
    cl = shmx.Client()
    assert cl.open(name)
    stop = threading.Event()
    errors = []
    stats = {"latest": 0, "next": 0, "wait": 0, "busy": 0, "held_ok": 0}
    lock = threading.Lock()

    def check(fid, ident, blob):
        if ident != fid:
            raise AssertionError("frame %d carries id %d" % (fid, ident))
        if bytes(blob) != pattern(fid):
            raise AssertionError("frame %d bytes differ" % fid)

    def enough():
        with lock:
            return (min(stats["latest"], stats["next"], stats["wait"]) >= 5
                    and stats["held_ok"] >= 1)

    def producer():
        # Publish until every kind of reader succeeded a few times (bounded).
        try:
            deadline = time.monotonic() + 30
            fid = 0
            while fid < 200 or (not enough() and time.monotonic() < deadline):
                fid += 1
                h = srv.begin_frame()
                srv.append_stream(h, 1, struct.pack("<Q", fid), 1)
                srv.append_stream(h, 2, pattern(fid), N_BYTES)
                assert srv.publish_frame(h, fid * 0.01)
                time.sleep(0.001)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            stop.set()

    def reader(kind):
        held = []
        try:
            while not stop.is_set():
                try:
                    if kind == "latest":
                        d = cl.get_latest_frame()
                        if d is not None:
                            fid = d["__metadata__"]["frame_id"]
                            check(fid, struct.unpack("<Q", d["id"]["data"])[0],
                                  d["blob"]["data"])
                    else:
                        if kind == "next":
                            f = cl.next_frame(timeout=0)  # non-blocking
                        else:
                            f = cl.wait_frame(timeout=0.05)
                        if f is not None:
                            check(f.frame_id, struct.unpack("<Q", f["id"])[0], f["blob"])
                            # Keep a few frames pinned and re-check them later.
                            # Both kinds hold: "wait" takes nearly every frame
                            # (it sleeps in the wait), so "next" may get few.
                            held.append(f)
                            if len(held) > 2:
                                old = held.pop(0)
                                if old.valid:  # a held frame never changes
                                    check(old.frame_id,
                                          struct.unpack("<Q", old["id"])[0], old["blob"])
                                    with lock:
                                        stats["held_ok"] += 1
                    with lock:
                        stats[kind] += 1
                    # Leave a window with the client idle: a thread that calls
                    # back at once would keep it busy for the others.
                    time.sleep(0.0003)
                except RuntimeError:
                    with lock:
                        stats["busy"] += 1
                    time.sleep(0)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=producer)] + \
        [threading.Thread(target=reader, args=(k,)) for k in ("latest", "next", "wait")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert enough(), stats  # every kind of read ran, held frames re-checked
    cl.close()
    srv.destroy()


def test_threads_publish_and_inspect(chan):  # noqa: F811
    """A producer thread publishes while other threads inspect and poll."""
    name = chan()
    srv = shmx.Server()
    assert srv.create(name, streams=[shmx.create_stream_spec(1, "x", shmx.DT_U32, 1, 4)])
    cl = shmx.Client()
    assert cl.open(name)
    errors = []
    done = threading.Event()

    def publish():
        try:
            for i in range(2000):
                h = srv.begin_frame()
                srv.append_stream(h, 1, struct.pack("<I", i), 1)
                srv.publish_frame(h, 0.0)
                if i % 100 == 0:
                    cl.send_control(7, b"ping")
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    def inspect():
        ins = shmx.Inspector()
        assert ins.open(name)
        try:
            while not done.is_set():
                rep = ins.inspect()
                assert rep["frame_seq"] >= 0
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            ins.close()

    ts = [threading.Thread(target=publish), threading.Thread(target=inspect)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    msgs = srv.poll_control()
    assert [m["data"] for m in msgs] == [b"ping"] * 20
    cl.close()
    srv.destroy()
