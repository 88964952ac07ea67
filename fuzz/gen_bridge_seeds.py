#!/usr/bin/env python3
"""Write the seed corpus of fuzz_bridge (fuzz/corpus/bridge/): valid bridge
messages for the schema the target installs (sender 5, session 77, gen 1;
stream 1 'seq' u64, stream 2 'blob' u8), so the fuzzer starts deep in the
frame path. Wire format: docs/bridge.md. Run from the repository root."""
import os
import struct

OUT = "fuzz/corpus/bridge"


def hdr(typ, fid=0, n=0, sender=5, gen=1, codec=0):
    return struct.pack("<IBBBBQQIIQdQQ", 0x31425853, 1, typ, codec, 0, sender, 77,
                       gen, n, fid, fid / 4, 1, 0)


def dirent(sid, elems, nbytes, wire=None):
    return struct.pack("<IIQQQ", sid, 0, elems, nbytes, nbytes if wire is None else wire)


def rec(p1, p2=None):
    kind = 1 if p2 is not None else 0
    p2 = p2 or b""
    return struct.pack("<BHH", kind, len(p1), len(p2)) + p1 + p2


def frame(fid, blob, two=False, codec=0, wire_blob=None):
    seq = struct.pack("<Q", fid)
    wb = blob if wire_blob is None else wire_blob
    meta = hdr(2, fid, 2, codec=codec) + dirent(1, 1, 8) + dirent(2, len(blob), len(blob), len(wb))
    data = seq + wb
    return rec(meta, data) if two else rec(meta + data)


def batch(*frames):
    """A BATCH of one-part frames (records: u32 len, u32 0, bytes, pad 8)."""
    body = b""
    for m in frames:
        body += struct.pack("<II", len(m), 0) + m + b"\0" * (-len(m) % 8)
    return rec(hdr(4, 0, len(frames)) + body)


def one(fid, blob):
    return hdr(2, fid, 2) + dirent(1, 1, 8) + dirent(2, len(blob), len(blob)) + \
        struct.pack("<Q", fid) + blob


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "one-part": frame(1, b"hello"),
        "two-part": frame(1, b"a" * 300, two=True),
        "sequence": frame(1, b"x") + frame(2, b"yy", two=True) + frame(7, b"zzz"),
        "bye": rec(hdr(3), b"") + frame(2, b"late"),
        "lying-lz4": frame(1, b"q" * 64, codec=2, wire_blob=b"\x1fq\x01\x00" + b"P" * 5),
        "lying-zstd": frame(1, b"q" * 64, codec=1, wire_blob=b"\x28\xb5\x2f\xfd" + b"\0" * 8),
        "batch": batch(one(1, b"a"), one(2, b"bb"), one(5, b"ccc")) + frame(6, b"after"),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
