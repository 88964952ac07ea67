"""Write the seed recordings of fuzz_mcap into fuzz/corpus/mcap/.

Run with the shmx package importable:  python fuzz/gen_mcap_seeds.py
Small recordings (a few KiB to ~40 KiB) that reach every parser: stored,
zstd and lz4 chunks, a schema that grows (two channels), two topics, a
restart (two sessions), several chunks, protobuf channels beside the shmx
ones (--foxglove); plus a .part cut mid-chunk and a
truncated file for the recovery scanner.
"""
import os
import pathlib
import tempfile
import threading

import numpy as np

import shmx

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "mcap"


def record(path, names, frames, compression="none", grow_at=None, restart_at=None,
           chunk_ms=1, foxglove=False):
    srvs = {}

    def make(n):
        return shmx.Server(n, slots=64, streams=[
            shmx.create_stream_spec(1, "pos", shmx.DT_F32, 3, 12, extra=b"m"),
            shmx.create_stream_spec(2, "img", shmx.DT_U8, 1, 1,
                                    extra=b"image:30x30" if foxglove else None)])

    for n in names:
        srvs[n] = make(n)
    rec = shmx.Recorder(path, names, compression=compression, chunk_bytes=65536,
                        chunk_ms=chunk_ms, foxglove=foxglove)
    done = threading.Event()
    t = threading.Thread(target=lambda: (rec.run(timeout=10, max_frames=frames * len(names)),
                                         done.set()))
    t.start()
    for k in range(1, frames + 1):
        for n, s in list(srvs.items()):
            if restart_at and k == restart_at:
                s.destroy()
                s = srvs[n] = make(n)
            if grow_at and k == grow_at:
                s.add_stream(shmx.create_stream_spec(3, "t", shmx.DT_U16, 1, 2))
            h = s.begin_frame()
            s.append_stream(h, 1, np.full((k % 5 + 1, 3), k, np.float32))
            s.append_stream(h, 2, np.arange(k * 37 % 900, dtype=np.uint8))
            if grow_at and k >= grow_at:
                s.append_stream(h, 3, np.arange(2, dtype=np.uint16))
            s.publish_frame(h, k * 0.5)
        threading.Event().wait(0.002)
    t.join()
    rec.close()
    for s in srvs.values():
        s.destroy()


def open_chunk(data):
    """What a recorder killed inside a stored chunk leaves: everything up to
    its last chunk, whose header is still zero (written at close), and part
    of that chunk's records."""
    off, last = 8, None
    while off + 9 <= len(data):
        op, n = data[off], int.from_bytes(data[off + 1:off + 9], "little")
        if op == 0x06:
            last = (off, n)
        if op == 0x0F:
            break
        off += 9 + n
    at, n = last
    head = bytearray(data[at:at + 49])
    head[1:] = bytes(48)             # length and fixed fields zero, as written
    return data[:at] + bytes(head) + data[at + 49:at + 9 + n - n // 3]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tag = "seed%d" % os.getpid()
    with tempfile.TemporaryDirectory() as d:
        jobs = {
            "stored.mcap": dict(names=[tag + "a"], frames=30, chunk_ms=1000),
            "grow.mcap": dict(names=[tag + "b"], frames=20, grow_at=10),
            "two.mcap": dict(names=[tag + "c", tag + "d"], frames=10),
            "restart.mcap": dict(names=[tag + "e"], frames=12, restart_at=6),
            "zstd.mcap": dict(names=[tag + "f"], frames=30, compression="zstd"),
            "lz4.mcap": dict(names=[tag + "g"], frames=30, compression="lz4"),
            "foxglove.mcap": dict(names=[tag + "h"], frames=10, foxglove=True),
        }
        for leaf, kw in jobs.items():
            p = os.path.join(d, leaf)
            record(p, **kw)
            data = open(p, "rb").read()
            (OUT / leaf).write_bytes(data)
        stored = (OUT / "stored.mcap").read_bytes()
        (OUT / "truncated.mcap").write_bytes(stored[: len(stored) * 2 // 3])
        (OUT / "open-chunk.part").write_bytes(open_chunk(stored))
    for f in sorted(OUT.iterdir()):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
