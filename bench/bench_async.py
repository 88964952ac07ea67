#!/usr/bin/env python3
"""bench_async.py -- wake-up latency of Python readers that sleep (issue 15).

A producer process (with --pin: pinned to cpu0, the reader to cpu1) stamps time.monotonic_ns() into a 64 B frame (or an 8-byte
pipe message) every 2 ms; the reader sleeps between frames and records
(time it holds the frame) - (stamp). Cases, interleaved over rounds in one
run:
  pipe_asyncio_cb   lower bound: a loop.add_reader callback on a pipe reads
                    the message and stamps it (no coroutine involved)
  pipe_asyncio      floor: the same callback completes a future that a
                    coroutine awaits; stamped in the coroutine
  shmx_async        await client.wait_frame_async(timeout=10) (event fd + asyncio)
  shmx_frames       async for frame in client.frames()
  pipe_blocking     floor: os.read blocking on a pipe (GIL released)
  shmx_wait         client.wait_frame() (futex, GIL released)
  shmx_epoll        select.epoll on client.fileno(), arm(), latest_frame()
Prints p50/p99/p99.9 in us, the reader's CPU time per frame, and each shmx
case's ratio to its floor (per round, then the median over rounds).

Usage: python bench/bench_async.py [--quick] [--rounds N] [--pin] [--cases A,B]
"""
import argparse
import asyncio
import os
import struct
import subprocess
import sys
import time

SPEC = None
INTERVAL_NS = 2_000_000


PIN = os.environ.get("SHMX_BENCH_PIN") == "1"


def pin(cpu):
    if not PIN:
        return
    try:
        os.sched_setaffinity(0, {cpu % os.cpu_count()})
    except OSError:
        pass


def producer(mode, name, count, wfd):
    import shmx
    pin(0)
    srv = None
    if mode.startswith("shmx"):
        spec = [shmx.create_stream_spec(1, "t", shmx.DT_U8, 1, 1)]
        srv = shmx.Server(name, streams=spec, slots=8)
    print("ready", flush=True)
    sys.stdin.readline()
    payload = bytearray(64)
    for i in range(count + 1):
        nxt = time.monotonic_ns() + INTERVAL_NS
        while time.monotonic_ns() < nxt:
            time.sleep(0.0002)
        stamp = time.monotonic_ns() if i < count else 0
        if srv is not None:
            struct.pack_into("Q", payload, 0, stamp)
            h = srv.begin_frame()
            srv.append_stream(h, 1, payload, 64)
            srv.publish_frame(h, float(i))
        else:
            os.write(wfd, struct.pack("Q", stamp))
    sys.stdin.readline()
    if srv is not None:
        srv.destroy()


def run_case(mode, count):
    import shmx
    name = "bench_async_%d_%s" % (os.getpid(), mode)
    rfd, wfd = os.pipe()
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--produce", mode,
                          name, str(count), str(wfd)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         pass_fds=(wfd,))
    os.close(wfd)
    out = []
    saved = os.sched_getaffinity(0)
    pin(1)
    try:
        assert p.stdout.readline().strip() == "ready"
        c = shmx.Client(name) if mode.startswith("shmx") else None
        p.stdin.write("go\n")
        p.stdin.flush()
        mono = time.monotonic_ns
        cpu0 = time.process_time_ns()

        def stamp_of(f):
            return struct.unpack_from("Q", memoryview(f["t"]))[0]

        def take(now, stamp):
            """Record one sample; False at the end marker (stamp 0)."""
            if stamp == 0:
                return False
            out.append(now - stamp)
            return True

        if mode == "shmx_wait":
            while True:
                f = c.wait_frame(timeout=10)
                if not take(mono(), stamp_of(f)):
                    break
        elif mode == "shmx_epoll":
            import select
            ep = select.epoll()
            ep.register(c.fileno(), select.EPOLLIN)
            while True:
                while not c.arm():
                    ep.poll(10)
                f = c.latest_frame()
                if not take(mono(), stamp_of(f)):
                    break
            ep.close()
        elif mode == "pipe_blocking":
            while True:
                b = os.read(rfd, 8)
                if not take(mono(), struct.unpack("Q", b)[0]):
                    break
        else:
            async def main():
                loop = asyncio.get_running_loop()
                if mode == "shmx_async":
                    while True:
                        f = await c.wait_frame_async(timeout=10)
                        if not take(mono(), stamp_of(f)):
                            return
                if mode == "shmx_frames":
                    async for f in c.frames():
                        if not take(mono(), stamp_of(f)):
                            return
                # The pipe floors: the loop's reader callback reads the
                # message and completes a future the coroutine awaits;
                # pipe_asyncio stamps when the coroutine has it (as the
                # shmx cases do), pipe_asyncio_cb already in the callback.
                in_cb = mode == "pipe_asyncio_cb"
                got = []
                fut = None

                def on_readable():
                    got.append((mono() if in_cb else 0, os.read(rfd, 8)))
                    if fut is not None and not fut.done():
                        fut.set_result(None)

                loop.add_reader(rfd, on_readable)
                try:
                    while True:
                        if not got:
                            fut = loop.create_future()
                            timer = loop.call_later(10, fut.cancel)
                            await fut
                            timer.cancel()
                        now, b = got.pop(0)
                        if not take(now or mono(), struct.unpack("Q", b)[0]):
                            return
                finally:
                    loop.remove_reader(rfd)
            asyncio.run(main())
        cpu = (time.process_time_ns() - cpu0) / max(1, len(out))
        if c is not None:
            c.close()
        p.stdin.write("done\n")
        p.stdin.flush()
        p.wait(30)
    finally:
        os.sched_setaffinity(0, saved)
        os.close(rfd)
        if p.poll() is None:
            p.kill()
            p.wait()
    return out, cpu


def pct(v):
    v = sorted(v)
    q = lambda x: v[min(len(v) - 1, int(x * len(v)))]
    return q(0.5), q(0.99), q(0.999)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--produce":
        producer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--cases", help="comma-separated subset of the cases")
    a = ap.parse_args()
    if a.pin:
        os.environ["SHMX_BENCH_PIN"] = "1"  # the producer children read it
        global PIN
        PIN = True
    count = 100 if a.quick else 1000
    modes = ["pipe_asyncio_cb", "pipe_asyncio", "shmx_async", "shmx_frames", "pipe_blocking",
             "shmx_wait", "shmx_epoll"]
    if a.cases:
        unknown = set(a.cases.split(",")) - set(modes)
        if unknown:
            ap.error("unknown case(s): %s" % ", ".join(sorted(unknown)))
        modes = [m for m in modes if m in a.cases.split(",")]
    samples = {m: [] for m in modes}
    rounds = {m: [] for m in modes}  # per round: (p50, p99, cpu per frame)
    for _ in range(1 if a.quick else a.rounds):
        for m in modes:
            out, cpu = run_case(m, count)
            samples[m] += out
            p50, p99, _ = pct(out)
            rounds[m].append((p50, p99, cpu))
    st = {m: pct(samples[m]) for m in modes}
    med = lambda v: sorted(v)[len(v) // 2]
    print("one-way wake-up latency of a sleeping Python reader, 64 B every 2 ms, us;")
    print("cpu = the reader's CPU time per frame, us; ratios: median over rounds of")
    print("the round's p50 (p99) over its floor's in the same round")
    print("%-16s %8s %8s %8s %7s  %s" % ("case", "p50", "p99", "p99.9", "cpu", "vs floor (p50, p99)"))
    floor = {"shmx_async": "pipe_asyncio", "shmx_frames": "pipe_asyncio",
             "shmx_wait": "pipe_blocking", "shmx_epoll": "pipe_blocking"}
    for m in modes:
        p50, p99, p999 = st[m]
        cpu = med([r[2] for r in rounds[m]])
        extra = ""
        if m in floor and floor[m] in st:
            b = rounds[floor[m]]
            r50 = med([x[0] / y[0] for x, y in zip(rounds[m], b)])
            r99 = med([x[1] / y[1] for x, y in zip(rounds[m], b)])
            extra = "%.2fx, %.2fx of %s" % (r50, r99, floor[m])
        print("%-16s %8.1f %8.1f %8.1f %7.1f  %s" % (m, p50 / 1e3, p99 / 1e3, p999 / 1e3,
                                                   cpu / 1e3, extra))


if __name__ == "__main__":
    main()
