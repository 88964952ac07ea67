"""Recordings as a user makes and uses them (issue 12): `shmx record`,
`shmx play`, `shmx recover`, `shmx inspect FILE.mcap` as real processes,
shmx.Recorder / shmx.Recording in this process, and the PyPI `mcap` reader
(CRC checks on) as the independent judge of every file.

A producer in this process publishes deterministic frames (the bytes follow
from frame_id), paced on the recorder's progress (its reader slot), so every
frame is recorded and every byte can be compared. Waits are on state, each
with a deadline.
"""
import json
import os
import pathlib
import signal
import struct
import subprocess
import threading
import time

import numpy as np
import pytest

import shmx
from shmxtest import chan, wait_until  # noqa: F401  (fixture)

mcap_reader = pytest.importorskip("mcap.reader")

HERE = pathlib.Path(__file__).resolve().parent
CLI = os.environ.get("SHMX_CLI") or str(HERE / ".." / ".." / "build" / "tools" / "shmx")
if not os.access(CLI, os.X_OK):
    pytest.skip(f"shmx CLI not built at {CLI}", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)


def cli_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(k, None)
    return env


def cli(*args, **kw):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True,
                          env=cli_env(), timeout=120, **kw)


def codecs():
    out = [None]
    for c in ("zstd", "lz4"):
        r = cli("record", "x", "-o", "/nonexistent/x.mcap", "--compress", c)
        if "not built in" not in r.stderr:
            out.append(c)
    return out


# ---- the producer -----------------------------------------------------------

def pos_of(k):
    n = k % 40 + 1
    return (np.arange(n * 3, dtype=np.float32) + k).reshape(n, 3)


def blob_of(k):
    n = (k * 7919) % 150000 + 1      # up to ~150 KiB: staged and writev paths
    return (np.arange(n, dtype=np.uint32) * 31 + k).astype(np.uint8)


def extra_of(k):
    return np.full(k % 4, k, np.uint16)


class Producer:
    """Publishes frames 1..n; the schema grows (stream 'extra') at grow_at."""

    def __init__(self, name, grow_at=None, slots=64):
        self.name = name
        self.grow_at = grow_at
        self.srv = shmx.Server(name, slots=slots, frame_bytes_cap=1 << 20, streams=[
            shmx.create_stream_spec(1, "pos", shmx.DT_F32, 3, 12, extra=b"meters"),
            shmx.create_stream_spec(2, "blob", shmx.DT_U8, 1, 1)])
        self.k = 0
        self.sim = {}

    def reader_progress(self):
        rs = [r for r in self.srv.snapshot_readers() if r["in_use"]]
        return min((r["last_frame_seen"] for r in rs), default=None)

    def wait_readers(self, n=1, timeout=20):
        wait_until(lambda: len([r for r in self.srv.snapshot_readers() if r["in_use"]]) >= n,
                   timeout, what="readers attached")

    def publish(self, count, ahead=32):
        """Publish `count` frames, never more than `ahead` past the slowest reader."""
        for _ in range(count):
            deadline = time.monotonic() + 30
            while True:
                seen = self.reader_progress()
                if seen is None or self.k - seen < ahead:
                    break
                assert time.monotonic() < deadline, "reader stopped reading"
                time.sleep(0.0002)
            self.k += 1
            k = self.k
            if self.grow_at and k == self.grow_at:
                self.srv.add_stream(shmx.create_stream_spec(3, "extra", shmx.DT_U16, 1, 2))
            h = self.srv.begin_frame()
            self.srv.append_stream(h, 1, pos_of(k))
            self.srv.append_stream(h, 2, blob_of(k))
            if self.grow_at and k >= self.grow_at:
                self.srv.append_stream(h, 3, extra_of(k))
            self.sim[k] = k * 0.25
            self.srv.publish_frame(h, k * 0.25)

    def expected(self, k):
        s = {"pos": pos_of(k).tobytes(), "blob": blob_of(k).tobytes()}
        if self.grow_at and k >= self.grow_at:
            s["extra"] = extra_of(k).tobytes()
        return s

    def close(self):
        self.srv.destroy()


def decode(data):
    """A shmx.frame/1 message body (docs/format.md) -> (id, sim, {sid: bytes})."""
    fid, sim, _pub, dropped, n, zero = struct.unpack_from("<QdQQII", data, 0)
    assert zero == 0
    streams = {}
    for i in range(n):
        sid, z, elems, nbytes, off = struct.unpack_from("<IIQQQ", data, 40 + 32 * i)
        assert z == 0 and off + nbytes <= len(data)
        streams[sid] = bytes(data[off:off + nbytes])
    return fid, sim, dropped, streams


SID = {"pos": 1, "blob": 2, "extra": 3}


def check_with_mcap(path, prod, first=1, last=None, check_order=True):
    """The PyPI reader, CRCs on: summary, every message, both directions."""
    last = prod.k if last is None else last
    with open(path, "rb") as f:
        r = mcap_reader.make_reader(f, validate_crcs=True)
        summ = r.get_summary()
        assert summ.statistics.message_count == last - first + 1
        assert summ.chunk_indexes
        for ch in summ.channels.values():
            assert ch.topic == prod.name and ch.message_encoding == "shmx.frame/1"
            assert summ.schemas[ch.schema_id].encoding == "shmx.schema/1"
        ids = []
        for _schema, channel, msg in r.iter_messages(log_time_order=True):
            fid, sim, dropped, streams = decode(msg.data)
            assert msg.sequence == fid & 0xFFFFFFFF
            assert msg.log_time >= msg.publish_time
            assert sim == prod.sim[fid] and dropped == 0
            exp = prod.expected(fid)
            assert set(streams) == {SID[n] for n in exp}
            for n, b in exp.items():
                assert streams[SID[n]] == b, (fid, n)
            ids.append(fid)
        assert ids == list(range(first, last + 1))
        rev = [decode(m.data)[0] for _s, _c, m in r.iter_messages(reverse=True)]
        assert rev == ids[::-1]
        # a time window through the index
        mid = summ.statistics.message_start_time + (
            summ.statistics.message_end_time - summ.statistics.message_start_time) // 2
        try:
            it = r.iter_messages(starting_at=mid)      # mcap >= 1.6
        except TypeError:
            it = r.iter_messages(start_time=mid)
        window = [decode(m.data)[0] for _s, _c, m in it]
        assert window and window == ids[-len(window):]


def check_with_recording(path, prod, first=1, last=None):
    last = prod.k if last is None else last
    with shmx.Recording(path) as rec:
        assert len(rec) == last - first + 1
        for i, f in enumerate(rec):
            k = first + i
            assert f.frame_id == k and f.sim_time == prod.sim[k] and f.channel == prod.name
            exp = prod.expected(k)
            assert f.keys() == list(exp)
            for n, b in exp.items():
                assert f[n].tobytes() == b
            assert np.asarray(f["pos"]).shape == (k % 40 + 1, 3)
            f.release()


def start_recorder(chan_name, out, *extra):
    p = subprocess.Popen([CLI, "record", chan_name, "-o", str(out), "--json", *map(str, extra)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cli_env())
    line = json.loads(p.stdout.readline())
    assert line["event"] == "ready" and line["path"].endswith(".part")
    return p


def stop(p, sig=signal.SIGINT):
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


# ---- tests ------------------------------------------------------------------------

@pytest.mark.parametrize("codec", codecs())
def test_record_play_roundtrip(chan, tmp_path, codec):
    """Record a live multi-stream channel (its schema grows halfway), check
    the file with the PyPI reader and shmx.Recording, replay it, and compare
    every frame_id, sim_time and byte a reader of the replay sees."""
    name = chan("rec")
    prod = Producer(name, grow_at=61)
    out = tmp_path / "run.mcap"
    args = ["--chunk-size", 65536] + (["--compress", codec] if codec else [])
    rec = start_recorder(name, out, *args)
    try:
        prod.wait_readers()
        prod.publish(120)
        wait_until(lambda: prod.reader_progress() == 120, 20, what="recorder read all")
    finally:
        rc, stdout, err = stop(rec)
    assert rc == 0, err
    exitline = json.loads(stdout.strip().splitlines()[-1])
    assert exitline["event"] == "exit" and exitline["frames"] == 120 and exitline["dropped"] == 0
    assert not (tmp_path / "run.mcap.part").exists()
    assert (out.stat().st_mode & 0o777) == 0o600
    check_with_mcap(out, prod)
    check_with_recording(out, prod)

    # Replay into another channel name; an in-order reader sees it all.
    play_name = chan("play")
    seen = []
    errors = []

    def reader():
        try:
            c = shmx.Client(play_name, timeout=20)
            while True:
                f = c.next_frame(timeout=20)
                if f is None:
                    errors.append("timeout")
                    return
                seen.append((f.frame_id, f.sim_time, {n: f[n].tobytes() for n in f.keys()},
                             f.dropped))
                f.release()
                if f.frame_id == 120:
                    return
        except shmx.ClosedError:
            return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    r = cli("play", out, "--as", play_name, "--wait-readers", 1, "--slots", 256, "--rate", 20,
            "--json")
    t.join(60)
    assert r.returncode == 0, r.stderr
    assert not errors, errors
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[-1]["frames"] == 120 and lines[-1]["errors"] == 0
    assert lines[-1]["late_p99_us"] >= 0
    assert [s[0] for s in seen] == list(range(1, 121))
    for fid, sim, streams, dropped in seen:
        assert sim == prod.sim[fid] and dropped == 0
        assert streams == prod.expected(fid)
    prod.close()


def test_sigkill_then_recover(chan, tmp_path):
    """A recorder killed with SIGKILL leaves a .part the PyPI reader cannot
    index; `shmx recover` gives every frame of every complete chunk, a prefix
    of what was published, and a file the PyPI reader checks clean."""
    name = chan("kill")
    prod = Producer(name)
    out = tmp_path / "killed.mcap"
    rec = start_recorder(name, out, "--chunk-size", 65536)
    part = tmp_path / "killed.mcap.part"
    try:
        prod.wait_readers()
        while part.stat().st_size < 1_500_000:
            prod.publish(5)
    finally:
        rc, _out, _err = stop(rec, signal.SIGKILL)
    assert rc == -signal.SIGKILL and not out.exists()
    with open(part, "rb") as f:
        with pytest.raises(Exception):
            mcap_reader.make_reader(f, validate_crcs=True).get_summary()
    fixed = tmp_path / "fixed.mcap"
    r = cli("recover", part, "-o", fixed, "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["chunks"] >= 5 and st["bad_chunks"] == 0
    n = st["frames"]
    assert 0 < n <= prod.k
    check_with_mcap(fixed, prod, 1, n)
    check_with_recording(fixed, prod, 1, n)
    # never overwrites
    r = cli("recover", part, "-o", fixed)
    assert r.returncode == 1 and "exists" in r.stderr
    prod.close()


def test_split_files_cover_the_run(chan, tmp_path):
    name = chan("split")
    prod = Producer(name)
    out = tmp_path / "s.mcap"
    rec = start_recorder(name, out, "--split-size", 1 << 20, "--chunk-size", 65536)
    try:
        prod.wait_readers()
        prod.publish(150)
        wait_until(lambda: prod.reader_progress() == 150, 20, what="recorder read all")
    finally:
        rc, _o, err = stop(rec)
    assert rc == 0, err
    files = sorted(tmp_path.glob("s-*.mcap"))
    assert len(files) >= 4 and not list(tmp_path.glob("*.part"))
    ids = []
    for p in files:
        with shmx.Recording(p) as r:
            ids += [f.frame_id for f in r]
        with open(p, "rb") as f:
            assert mcap_reader.make_reader(f, validate_crcs=True).get_summary().chunk_indexes
    assert ids == list(range(1, 151))   # no gap, no duplicate across the cuts
    # the pieces play one after another
    seen = []
    play_name = chan("splay")

    def reader():
        c = shmx.Client(play_name, timeout=20)
        while len(seen) < 150:
            f = c.next_frame(timeout=20)
            if f is None:
                return
            seen.append(f.frame_id)

    t = threading.Thread(target=reader)
    t.start()
    r = cli("play", *files, "--as", play_name, "--fast", "--slots", 256, "--wait-readers", 1)
    t.join(60)
    assert r.returncode == 0, r.stderr
    assert seen == list(range(1, 151))
    prod.close()


def test_recorder_and_recording_from_python(chan, tmp_path):
    name = chan("py")
    prod = Producer(name, grow_at=20)
    path = tmp_path / "py.mcap"
    rec = shmx.Recorder(path, [name], chunk_bytes=65536)
    assert rec.path == str(path) + ".part"
    t = threading.Thread(target=rec.record, kwargs={"frames": 40})
    t.start()
    prod.wait_readers()
    prod.publish(40)
    t.join(30)
    assert not t.is_alive()
    st = rec.stats()
    assert st["frames"] == 40 and st["dropped"] == 0 and st["attached"] == 1
    rec.close()
    rec.close()   # twice: no-op
    with pytest.raises(shmx.NotOpenError):
        rec.run(0.01)
    r = shmx.Recording(path)
    assert len(r) == 40 and r.info["frames"] == 40 and r.duration > 0
    chans = r.channels
    assert [c["name"] for c in chans] == [name, name]
    assert [len(c["streams"]) for c in chans] == [2, 3]
    assert chans[0]["streams"][0]["extra"] == b"meters"
    # by id, by time, backwards, by channel
    for k in (1, 17, 20, 40):
        f = r.frame(k)
        assert f.frame_id == k and f.position == k - 1
        assert f["blob"].tobytes() == blob_of(k).tobytes()
    assert r.at(0).frame_id == 1
    assert r.at(1e6).frame_id == 40
    assert r.at(r.duration / 2).frame_id in range(1, 41)
    assert [f.frame_id for f in reversed(r)] == list(range(40, 0, -1))
    assert [f.frame_id for f in r.frames(channel=name, reverse=True)][:3] == [40, 39, 38]
    half = r.read(10).log_ns - r.info["start_ns"]
    assert [f.frame_id for f in r.frames(end=half / 1e9)] == list(range(1, 12))
    assert r[-1].frame_id == 40 and r[0].frame_id == 1
    assert r.count_dropped() == 0
    with pytest.raises(shmx.NoFrameError):
        r.frame(41)
    with pytest.raises(shmx.UnknownStreamError):
        r.frame(1, channel="not-there")
    with pytest.raises(IndexError):
        r[40]
    with pytest.raises(IndexError):
        r[-41]
    # zero copy: two reads of one frame view the same mapped bytes
    a, b = r.frame(30), r.frame(30)
    pa, pb = np.asarray(a["blob"]), np.asarray(b["blob"])
    assert pa.__array_interface__["data"][0] == pb.__array_interface__["data"][0]
    assert pa.__array_interface__["data"][0] % 64 == 0     # >= 256 bytes: 64-aligned
    assert not pa.flags.writeable
    # frames outlive the recording; a released frame refuses its views
    r.close()
    assert pa[0] == blob_of(30)[0] and a.valid
    with pytest.raises(shmx.NotOpenError):
        len(r)
    with pytest.raises(BufferError):
        a.release()          # pa still exports it
    del pa
    a.release()
    with pytest.raises(shmx.StateError):
        a["blob"]
    prod.close()


def test_inspect_recording(chan, tmp_path):
    name = chan("insp")
    prod = Producer(name)
    path = tmp_path / "i.mcap"
    with shmx.Recorder(path, [name]) as rec:
        t = threading.Thread(target=rec.record, kwargs={"frames": 10})
        t.start()
        prod.wait_readers()
        prod.publish(10)
        t.join(30)
    r = cli("inspect", path, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["frames"] == 10 and d["dropped"] == 0 and d["compression"] == "none"
    assert d["channels"][0]["topic"] == name
    assert [s["name"] for s in d["channels"][0]["streams"]] == ["pos", "blob"]
    r = cli("inspect", path)
    assert r.returncode == 0 and "10 frames" in r.stdout and name in r.stdout
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"\x89MCAP0\r\n" + b"\0" * 100)
    r = cli("inspect", bad)
    assert r.returncode == 1 and "footer" in r.stderr
    prod.close()


def test_play_loop_keeps_ids_rising(chan, tmp_path):
    name = chan("loop")
    prod = Producer(name)
    path = tmp_path / "loop.mcap"
    with shmx.Recorder(path, [name]) as rec:
        t = threading.Thread(target=rec.record, kwargs={"frames": 10})
        t.start()
        prod.wait_readers()
        for _ in range(10):           # a recording paced at ~200 Hz
            prod.publish(1)
            time.sleep(0.005)
        t.join(30)
    play_name = chan("lp")
    # 256 slots hold every frame the reader checks, however late it reads
    p = subprocess.Popen([CLI, "play", str(path), "--as", play_name, "--loop",
                          "--slots", "256", "--wait-readers", "1"], env=cli_env(),
                         stderr=subprocess.PIPE, text=True)
    try:
        c = shmx.Client(play_name, timeout=20)
        ids = []
        while len(ids) < 35:
            f = c.next_frame(timeout=20)
            assert f is not None
            ids.append(f.frame_id)
            f.release()
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    assert ids == list(range(1, 36))      # 10, then 11..20 for the second pass, ...
    prod.close()


def test_misuse_raises(tmp_path, chan):
    with pytest.raises(FileNotFoundError):
        shmx.Recording(tmp_path / "absent.mcap")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(shmx.CorruptedError):
        shmx.Recording(junk)
    with pytest.raises(TypeError):
        shmx.Recording(123)
    with pytest.raises(ValueError):
        shmx.Recorder(tmp_path / "x.mcap", ["a"], compression="brotli")
    with pytest.raises(shmx.InvalidNameError):
        shmx.Recorder(tmp_path / "x.mcap", ["bad/name"])
    with pytest.raises(shmx.DuplicateError):
        shmx.Recorder(tmp_path / "x.mcap", ["a", "a"])
    with pytest.raises(ValueError):
        shmx.Recorder(tmp_path / "x.mcap", [])
    assert not list(tmp_path.glob("x.mcap*"))   # nothing left by refusals
    with shmx.Recorder(tmp_path / "x.mcap", ["a"]) as r:
        r.run(timeout=0.05)
    with pytest.raises(FileExistsError):
        shmx.Recorder(tmp_path / "x.mcap", ["a"])
    with shmx.Recording(tmp_path / "x.mcap") as empty:
        assert len(empty) == 0 and list(empty) == []
        with pytest.raises(shmx.NoFrameError):
            empty.at(0)
    # usage errors of the tools
    assert cli("record", "x").returncode == 2
    assert cli("play").returncode == 2
    assert cli("recover", junk).returncode == 2
    r = cli("play", junk)
    assert r.returncode == 1 and "not an MCAP file" in r.stderr


def test_recorder_stop_from_another_thread(chan, tmp_path):
    """run() in one thread, stop() and stats() from another (also under TSan:
    make test-python-tsan)."""
    name = chan("stop")
    prod = Producer(name)
    rec = shmx.Recorder(tmp_path / "st.mcap", [name])
    t = threading.Thread(target=rec.run)          # until stop()
    t.start()
    prod.wait_readers()
    prod.publish(20)
    wait_until(lambda: rec.stats()["frames"] == 20, 20, what="20 frames recorded")
    with pytest.raises(RuntimeError):
        rec.close()                               # running in another thread
    with pytest.raises(RuntimeError):
        rec.path                                  # changes at a split: not now
    rec.stop()
    t.join(5)
    assert not t.is_alive()
    rec.close()
    with shmx.Recording(tmp_path / "st.mcap") as r:
        assert [f.frame_id for f in r] == list(range(1, 21))
    prod.close()


def test_foxglove_channels_decode(chan, tmp_path):
    """--foxglove: image and point-cloud streams also go out as
    foxglove.RawImage / foxglove.PointCloud protobuf channels; the PyPI
    protobuf decoder (mcap-protobuf-support) decodes every message to the
    published pixels and points, and shmx.Recording still sees only the
    shmx frames."""
    decoder_mod = pytest.importorskip("mcap_protobuf.decoder")
    name = chan("fox")
    w, h = 32, 24
    srv = shmx.Server(name, slots=64, frame_bytes_cap=1 << 16, streams=[
        shmx.create_stream_spec(1, "cam", shmx.DT_U8, 3, 3, extra=b"image:32x24"),
        shmx.create_stream_spec(2, "cloud", shmx.DT_F32, 3, 12),
        shmx.create_stream_spec(3, "depth", shmx.DT_U16, 1, 2, extra=b"image:32x24:16UC1"),
        shmx.create_stream_spec(4, "other", shmx.DT_F32, 1, 4)])
    path = tmp_path / "fox.mcap"
    rec = shmx.Recorder(path, [name], foxglove=True, compression="zstd" if "zstd" in codecs()
                        else "none")
    t = threading.Thread(target=rec.record, kwargs={"frames": 10})
    t.start()
    wait_until(lambda: [x for x in srv.snapshot_readers() if x["in_use"]], 20, what="recorder")
    imgs, clouds, depths = {}, {}, {}
    for k in range(1, 11):
        imgs[k] = (np.arange(w * h * 3, dtype=np.uint32) * k % 251).astype(np.uint8)
        clouds[k] = (np.arange(k * 5 * 3, dtype=np.float32) * 0.5 + k).reshape(-1, 3)
        depths[k] = (np.arange(w * h, dtype=np.uint32) * 7 + k).astype(np.uint16)
        hd = srv.begin_frame()
        srv.append_stream(hd, 1, imgs[k], w * h)
        srv.append_stream(hd, 2, clouds[k])
        if k != 5:                                  # frame 5: a depth of the wrong size
            srv.append_stream(hd, 3, depths[k])
        else:
            srv.append_stream(hd, 3, depths[k][:10])
        srv.append_stream(hd, 4, np.ones(3, np.float32))
        srv.publish_frame(hd, float(k))
    t.join(30)
    rec.close()
    srv.destroy()
    with open(path, "rb") as f:
        reader = mcap_reader.make_reader(f, validate_crcs=True,
                                         decoder_factories=[decoder_mod.DecoderFactory()])
        got = {"cam": {}, "cloud": {}, "depth": {}}
        for schema, channel, msg, proto in reader.iter_decoded_messages(
                topics=[f"{name}/cam", f"{name}/cloud", f"{name}/depth"]):
            stream = channel.topic.split("/")[-1]
            got[stream][msg.sequence] = (schema.name, proto)
    assert sorted(got["cam"]) == list(range(1, 11))
    assert sorted(got["cloud"]) == list(range(1, 11))
    assert sorted(got["depth"]) == [k for k in range(1, 11) if k != 5]
    for k in range(1, 11):
        sname, img = got["cam"][k]
        assert sname == "foxglove.RawImage"
        assert (img.width, img.height, img.encoding, img.step) == (w, h, "rgb8", w * 3)
        assert img.data == imgs[k].tobytes() and img.frame_id == name
        assert img.timestamp.seconds > 1_600_000_000
        sname, pc = got["cloud"][k]
        assert sname == "foxglove.PointCloud" and pc.point_stride == 12
        assert [(x.name, x.offset, x.type) for x in pc.fields] == [("x", 0, 7), ("y", 4, 7),
                                                                   ("z", 8, 7)]
        assert pc.pose.orientation.w == 1.0
        assert np.frombuffer(pc.data, np.float32).tolist() == clouds[k].ravel().tolist()
        if k != 5:
            _, d = got["depth"][k]
            assert d.encoding == "16UC1" and d.step == w * 2 and d.data == depths[k].tobytes()
    with shmx.Recording(path) as r:
        assert len(r) == 10 and [c["name"] for c in r.channels] == [name]
        assert [f.frame_id for f in r] == list(range(1, 11))
    r = cli("inspect", path, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["frames"] == 10
    assert "--foxglove" in cli("record", "--help").stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_and_limits_finish_the_file(chan, tmp_path, sig):
    """SIGTERM and SIGHUP finish and rename the file like SIGINT; --frames
    stops the recorder by itself with a finished file."""
    name = chan("sig")
    prod = Producer(name)
    out = tmp_path / "s.mcap"
    rec = start_recorder(name, out)
    prod.wait_readers()
    prod.publish(5)
    wait_until(lambda: prod.reader_progress() == 5, 20, what="recorder read 5")
    rc, _o, err = stop(rec, sig)
    assert rc == 0, err
    assert out.exists() and not (tmp_path / "s.mcap.part").exists()
    with shmx.Recording(out) as r:
        assert [f.frame_id for f in r] == [1, 2, 3, 4, 5]
    out2 = tmp_path / "limit.mcap"
    rec = start_recorder(name, out2, "--frames", 3)   # frames 1..5 still in the slots
    _out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    with shmx.Recording(out2) as r:
        assert [f.frame_id for f in r] == [1, 2, 3]   # a new reader starts at the oldest
    prod.close()
