"""asyncio readers (Client.fileno/arm, wait_frame_async, next_frame_async,
frames): 64 channels fed by another process in one loop, every frame in
order, idle CPU near zero; close / producer death wake a sleeping await;
cancellation leaks no fd registration and loses no frame; timeouts and
misuse. Every await is bounded by asyncio.wait_for, so a lost wake-up fails
the test instead of hanging it."""
import asyncio
import os
import random
import resource
import select
import signal
import struct
import subprocess
import sys

import pytest

import shmx
from shmxtest import chan, spawn, readline, finish, wait_until, SHM_DIR  # noqa: F401

SPECS = [shmx.create_stream_spec(1, "v", shmx.DT_U64, 1, 8)]

FEEDER = r"""
import struct, sys, time, shmx
base, nch, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
specs = [shmx.create_stream_spec(1, "v", shmx.DT_U64, 1, 8)]
srv = [shmx.Server("%s_%d" % (base, i), streams=specs, slots=64) for i in range(nch)]
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
def behind(k):
    # paced by the readers: never more than 32 frames ahead of the slowest
    # (64 slots), so a loaded machine slows the test down but drops nothing
    return any(r["in_use"] and r["last_frame_seen"] < k - 32
               for s in srv for r in s.snapshot_readers())
for k in range(1, per + 1):
    deadline = time.monotonic() + 30
    while k > 32 and behind(k) and time.monotonic() < deadline:
        time.sleep(0.001)
    for i, s in enumerate(srv):
        h = s.begin_frame()
        s.append_stream(h, 1, struct.pack("Q", k * 1000 + i), 1)
        s.publish_frame(h, float(k))
    time.sleep(0.002)
cmd = sys.stdin.readline().strip()
if cmd == "close":
    for s in srv:
        s.destroy()
print("done", flush=True)
if cmd == "hang":
    while True:
        time.sleep(1)
"""


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def publish(srv, v):
    h = srv.begin_frame()
    srv.append_stream(h, 1, struct.pack("Q", v), 1)
    srv.publish_frame(h, float(v))


def value(frame):
    return struct.unpack("Q", bytes(frame["v"]))[0]


def test_64_channels_one_loop(chan):
    base = chan("aio64")
    nch, per = 64, 100
    names = ["%s_%d" % (base, i) for i in range(nch)]
    for n in names:
        chan.names.append(n)
    p = spawn(FEEDER, base, str(nch), str(per), stdin=subprocess.PIPE)
    try:
        assert readline(p) == "ready"
        clients = [shmx.Client(n) for n in names]
        seen = [[] for _ in range(nch)]
        bad = []

        async def reader(i):
            async for f in clients[i].frames(in_order=True):
                if f.dropped or value(f) != (len(seen[i]) + 1) * 1000 + i:
                    bad.append((i, f.frame_id, f.dropped))
                seen[i].append(f.frame_id)

        async def main():
            tasks = [asyncio.create_task(reader(i)) for i in range(nch)]
            ticks = 0

            async def timer():  # the loop also runs a timer meanwhile
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            t = asyncio.create_task(timer())
            await asyncio.sleep(0.2)  # every reader is asleep on its fd
            c0 = cpu()
            await asyncio.sleep(2.0)
            idle = cpu() - c0
            p.stdin.write("go\n")
            p.stdin.flush()
            while sum(len(s) for s in seen) < nch * per and not bad:
                await asyncio.sleep(0.01)
            p.stdin.write("close\n")
            p.stdin.flush()
            await asyncio.gather(*tasks)  # iteration ends at the close
            t.cancel()
            return idle, ticks

        idle, ticks = asyncio.run(asyncio.wait_for(main(), 60))
        print("idle CPU %.4f s over 2 s, %d timer ticks" % (idle, ticks))
        assert idle < 0.2  # generous: ~64 re-arms/s of heartbeat
        assert ticks >= 30
        assert bad == []
        for s in seen:
            assert s == list(range(1, per + 1))
        assert readline(p) == "done"
    finally:
        finish(p)


def test_close_and_death_wake_a_sleeping_await(chan):
    for cmd, exc in (("close", shmx.ClosedError), ("hang", shmx.ProducerDeadError)):
        base = chan("aiod")
        name = base + "_0"
        chan.names.append(name)
        p = spawn(FEEDER, base, "1", "3", stdin=subprocess.PIPE)
        try:
            assert readline(p) == "ready"
            c = shmx.Client(name)
            p.stdin.write("go\n")
            p.stdin.flush()

            async def main():
                for k in (1, 2, 3):
                    f = await asyncio.wait_for(c.next_frame_async(), 10)
                    assert f.frame_id == k
                sleeper = asyncio.create_task(c.wait_frame_async())
                await asyncio.sleep(0.05)
                assert not sleeper.done()
                p.stdin.write(cmd + "\n")
                p.stdin.flush()
                if cmd == "hang":
                    assert (await asyncio.to_thread(readline, p)) == "done"
                    p.send_signal(signal.SIGKILL)
                with pytest.raises(exc):
                    await asyncio.wait_for(sleeper, 10)

            asyncio.run(main())
            c.close()
        finally:
            finish(p)


def test_cancellation_loses_nothing(chan):
    name = chan("aioc")
    srv = shmx.Server(name, streams=SPECS, slots=64)
    c = shmx.Client(name)
    fd = c.fileno()
    rnd = random.Random(7)

    async def main():
        loop = asyncio.get_running_loop()
        published = got = 0
        for _ in range(300):
            t = asyncio.create_task(c.next_frame_async())
            # publish before, while or after the await goes to sleep, and
            # cancel it at a random point too
            for _ in range(rnd.randrange(3)):
                await asyncio.sleep(0)
            if rnd.random() < 0.5:
                published += 1
                publish(srv, published)
            for _ in range(rnd.randrange(3)):
                await asyncio.sleep(0)
            t.cancel()
            try:
                f = await t
            except asyncio.CancelledError:
                f = None
            if f is not None:
                got += 1
                assert f.frame_id == got and f.dropped == 0
            assert not loop.remove_reader(fd)  # nothing left registered
        # every frame published is still there, in order
        while got < published:
            f = await asyncio.wait_for(c.next_frame_async(), 5)
            got += 1
            assert f.frame_id == got and f.dropped == 0
        return published

    assert asyncio.run(main()) > 100
    c.close()
    srv.destroy()


def test_readiness_without_a_frame_wakes_no_coroutine(chan, monkeypatch):
    """The loop's readiness callback arms for the sleeping coroutine: a ring
    with no frame behind it (here a pwrite at the bell by someone who may
    write the segment, as another reader's ring would be) is drained in the
    callback and the coroutine's future stays pending; the one timer a
    sleeper keeps re-arms it every slice (heartbeats move); a publish wakes
    it; a ring that the skip after a drain passes over still wakes it."""
    from shmx import _aio
    monkeypatch.setattr(_aio, "_SLICE", 0.05)
    name = chan("aios")
    srv = shmx.Server(name, streams=SPECS, slots=8)
    c = shmx.Client(name)
    fd = c.fileno()
    seg = os.open(os.path.join(SHM_DIR, "shmx." + name), os.O_WRONLY)

    def heartbeat():
        return [r for r in srv.snapshot_readers() if r["in_use"]][0]["heartbeat"]

    async def main():
        loop = asyncio.get_running_loop()
        sleeper = _aio._Sleeper(c, loop)
        task = asyncio.create_task(sleeper.ready(None))
        for _ in range(1000):  # until it sleeps: armed, with a future
            await asyncio.sleep(0)
            if sleeper.fut is not None and srv.get_header_info()["fd_armed"]:
                break
        fut = sleeper.fut
        assert fut is not None and not fut.done()
        for _ in range(20):
            os.pwrite(seg, b"\0", 384)  # the bell: readable, no frame
            for _ in range(1000):
                await asyncio.sleep(0)
                if not select.select([fd], [], [], 0)[0]:
                    break  # drained by the callback
            assert not select.select([fd], [], [], 0)[0]
            assert sleeper.fut is fut and not fut.done() and not task.done()
        hb = heartbeat()
        await asyncio.wait_for(loop.run_in_executor(None, wait_until,
                                                    lambda: heartbeat() > hb), 5)
        assert sleeper.fut is fut and not task.done()  # re-armed, still asleep
        publish(srv, 1)
        assert await asyncio.wait_for(task, 5) is True
        assert c.latest_frame().frame_id == 1

        async def asleep():
            t = asyncio.create_task(sleeper.ready(None))
            for _ in range(1000):
                await asyncio.sleep(0)
                if sleeper.fut is not None:
                    return t
            raise AssertionError("the sleeper never slept")

        # A sleep that drains a registered fd skips the next readiness (the
        # one the loop polled before the drain); with none pending, the
        # ring it skips is reported again and still wakes the sleeper.
        t = await asleep()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert sleeper.watch.registered
        t = await asleep()
        assert sleeper.watch.skip  # nothing stale is queued: the ring gets skipped once
        publish(srv, 2)
        assert await asyncio.wait_for(t, 5) is True
        assert not sleeper.watch.skip
        assert c.latest_frame().frame_id == 2
        sleeper.stop()
        assert not loop.remove_reader(fd)

    try:
        asyncio.run(main())
    finally:
        os.close(seg)
    c.close()
    srv.destroy()


def test_coroutines_sharing_a_client_share_its_fd(chan, monkeypatch):
    """Several coroutines of one loop sleeping on one Client share one
    registration of its fd (a loop has one reader callback per fd): every
    one of them is woken by the ring, not by its re-arm timer (set here far
    beyond the test's timeouts); a wait_frame_async() inside an async-for
    over frames() of the same client does not take frames()'s wake-ups away;
    a client reopened while a coroutine sleeps on its old connection gets
    a fresh registration."""
    from shmx import _aio
    monkeypatch.setattr(_aio, "_SLICE", 60.0)
    name = chan("aiosh")
    srv = shmx.Server(name, streams=SPECS, slots=8)
    c = shmx.Client(name)

    async def until(pred):
        for _ in range(10000):
            if pred():
                return
            await asyncio.sleep(0)
        raise AssertionError("timed out waiting for a state")

    def pending():
        return sum(len(w.pending) for w in _aio._watches.get(c, {}).values())

    async def main():
        loop = asyncio.get_running_loop()
        for round_ in range(1, 6):  # gather of waits: all woken by one ring
            tasks = [asyncio.create_task(c.wait_frame_async(timeout=10)) for _ in range(3)]
            await until(lambda: pending() == 3)
            assert len(_aio._watches[c]) == 1
            publish(srv, round_)
            frames = await asyncio.wait_for(asyncio.gather(*tasks), 5)
            assert [f.frame_id for f in frames] == [round_] * 3
            assert c not in _aio._watches  # the last holder let go
        got = []

        async def follow():
            async for f in c.frames(in_order=True):
                got.append(f.frame_id)
                if f.frame_id == 5 + 6:
                    return

        fl = asyncio.create_task(follow())
        for k in range(6, 12):
            await until(lambda: pending() == 1)  # frames() asleep
            if k % 2:  # a second sleeper on the same client, then gone again
                w = asyncio.create_task(c.wait_frame_async(timeout=10))
                await until(lambda: pending() == 2)
                publish(srv, k)
                assert (await asyncio.wait_for(w, 5)).frame_id == k
            else:
                publish(srv, k)
            await until(lambda: got and got[-1] == k)
        await asyncio.wait_for(fl, 5)
        assert got == list(range(6, 12))
        assert c not in _aio._watches and not loop.remove_reader(c.fileno())
        # Reopened while a coroutine still sleeps on the old connection
        # (same fd number, new reader): a new sleeper gets a new registration
        # and the ring reaches it; the old sleeper lives on its timer.
        monkeypatch.setattr(_aio, "_SLICE", 0.1)
        a = asyncio.create_task(c.wait_frame_async(timeout=0.5))
        await until(lambda: pending() == 1)
        old = next(iter(_aio._watches[c].values()))
        c.close()
        c.open(name)
        assert c.latest_frame().frame_id == 11  # caught up: the next await sleeps
        b = asyncio.create_task(c.wait_frame_async(timeout=10))
        await until(lambda: old.retired and pending() == 1)
        new = next(iter(_aio._watches[c].values()))
        assert new is not old and new.registered and not old.registered
        publish(srv, 12)
        assert (await asyncio.wait_for(b, 5)).frame_id == 12
        assert await asyncio.wait_for(a, 5) is None  # b took frame 12 first
        assert c not in _aio._watches and not loop.remove_reader(c.fileno())

    asyncio.run(main())
    c.close()
    srv.destroy()


def test_timeouts_fileno_and_misuse(chan):
    name = chan("aiot")
    srv = shmx.Server(name, streams=SPECS, slots=8)
    c = shmx.Client(name)
    fd = c.fileno()
    assert fd == c.fileno() and fd >= 0
    assert c.arm() is False
    assert select.select([fd], [], [], 0)[0] == []
    publish(srv, 1)
    assert select.select([fd], [], [], 5)[0] == [fd]  # plain select works
    assert c.arm() is True

    async def main():
        assert (await c.wait_frame_async(timeout=0)).frame_id == 1
        assert await c.wait_frame_async(timeout=0.05) is None
        assert await c.next_frame_async(timeout=0) is None
        with pytest.raises(ValueError):
            await c.wait_frame_async(timeout=-1)
        with pytest.raises(TypeError):
            await c.wait_frame_async(timeout="x")
        # a Client closed by another task while one sleeps: NotOpenError
        sleeper = asyncio.create_task(c.wait_frame_async())
        await asyncio.sleep(0.05)
        c.close()
        with pytest.raises(shmx.NotOpenError):
            await asyncio.wait_for(sleeper, 5)

    asyncio.run(main())
    for call in (c.fileno, c.arm):
        with pytest.raises(shmx.NotOpenError):
            call()

    async def closed():
        with pytest.raises(shmx.NotOpenError):
            await c.wait_frame_async()
        with pytest.raises(shmx.NotOpenError):
            async for _ in c.frames():
                pass

    asyncio.run(closed())
    srv.destroy()


def test_example_async_readers_runs():
    """examples/async_readers.py: three channels and a timer in one loop."""
    import ast
    here = os.path.dirname(os.path.abspath(__file__))
    ex = os.path.join(here, "..", "..", "examples", "async_readers.py")
    from shmxtest import child_env
    r = subprocess.run([sys.executable, ex], capture_output=True, text=True,
                       timeout=90, env=child_env())
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("frames:")][0]
    counts = ast.literal_eval(line.split(":", 1)[1].strip())
    # 3 s at 30 / 200 / 2 Hz (~90 / 600 / 6 frames; bounds loose for a
    # loaded machine): every channel was read in the same loop
    assert counts["imu"] >= 300 and counts["status"] >= 3
    assert counts["camera"] >= 30


NS_READER = r"""
import asyncio, shmx, sys
c = shmx.Client(sys.argv[1])
print("attached", flush=True)
async def main():
    ids = [f.frame_id async for f in c.frames(in_order=True)]
    print("got", len(ids), ids == list(range(1, len(ids) + 1)), flush=True)
asyncio.run(asyncio.wait_for(main(), 30))
"""


def test_reader_in_other_pid_and_mount_namespace(chan):
    """A container-like reader (own pid and mount namespaces, /dev/shm
    shared) is rung by the producer and sees the close."""
    import shutil
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make namespaces")
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("namespaces not permitted here: %s" % probe.stderr.decode().strip())
    from shmxtest import child_env
    name = chan("aions")
    srv = shmx.Server(name, streams=SPECS, slots=64)
    p = subprocess.Popen(["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                          sys.executable, "-c", NS_READER, name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=child_env())
    try:
        assert readline(p, 30) == "attached"
        # the reader armed (it sleeps in its loop): the frames ring it
        ins = shmx.Inspector(name)
        wait_until(lambda: ins.get_header_info()["fd_armed"] == 1, 10,
                   what="the namespaced reader to arm")
        ins.close()
        for i in range(1, 51):
            publish(srv, i)
        srv.destroy()
        assert readline(p, 30) == "got 50 True"
    finally:
        finish(p)
