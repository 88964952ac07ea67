"""One asyncio loop reading three shmx channels and running a timer, with no
thread per channel (issue 15).

    python examples/async_readers.py                   # starts its own producers
    python examples/async_readers.py --produce PREFIX  # (the producer side)

The producer process publishes a camera-like stream at 30 Hz, an IMU-like
stream at 200 Hz and a slow status stream at 2 Hz for three seconds, then
closes the channels. The reader awaits all three in one loop
(`async for frame in client.frames(...)`) and prints a line per second from
a timer task; each iteration ends when its producer closes the channel.
"""
import asyncio
import os
import struct
import subprocess
import sys
import time

import shmx

# (short name, rate in Hz, frame bytes); channel names get a per-run prefix
STREAMS = [("camera", 30.0, 4096), ("imu", 200.0, 64), ("status", 2.0, 16)]
SPEC = [shmx.create_stream_spec(1, "data", shmx.DT_U8, 1, 1)]
SECONDS = 3.0


def produce(prefix):
    servers = [(shmx.Server(prefix + name, streams=SPEC, slots=64), 1.0 / hz, size)
               for name, hz, size in STREAMS]
    print("ready", flush=True)
    t0 = time.monotonic()
    due = [t0] * len(servers)
    while time.monotonic() - t0 < SECONDS:
        now = time.monotonic()
        for i, (srv, period, size) in enumerate(servers):
            if now >= due[i]:
                h = srv.begin_frame()
                srv.append_stream(h, 1, struct.pack("d", now).ljust(size, b"\0"), size)
                srv.publish_frame(h, now - t0)
                due[i] += period
        time.sleep(max(0.0, min(due) - time.monotonic()))
    for srv, _, _ in servers:
        srv.destroy()


async def read(prefix, name, in_order, counts, lat):
    with shmx.Client(prefix + name) as client:
        async for frame in client.frames(in_order=in_order):
            (sent,) = struct.unpack_from("d", memoryview(frame["data"]))
            lat.append(time.monotonic() - sent)
            counts[name] = counts.get(name, 0) + 1


async def main(prefix):
    counts, lat = {}, []

    async def timer():
        while True:
            await asyncio.sleep(1.0)
            print("  t+1s:", ", ".join("%s %d" % kv for kv in sorted(counts.items())))

    tick = asyncio.create_task(timer())
    await asyncio.gather(*(read(prefix, name, name != "camera", counts, lat)
                           for name, _, _ in STREAMS))
    tick.cancel()
    lat.sort()
    print("frames:", counts)
    print("publish -> await latency: p50 %.1f us, p99 %.1f us"
          % (lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--produce"]:
        produce(sys.argv[2])
        sys.exit(0)
    prefix = "ex%d_" % os.getpid()  # two runs at once do not collide
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--produce", prefix],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        asyncio.run(asyncio.wait_for(main(prefix), 30))
    finally:
        p.wait(timeout=30)
