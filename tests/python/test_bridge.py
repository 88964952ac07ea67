"""shmx bridge as a user runs it: real `shmx bridge send/recv` processes
(through shmx.bridge), real TCP sockets, a producer and readers in this
process. Every frame's bytes, frame_id and sim_time are compared; late
joiners, schema growth, kills and restarts of either side, a stalled link,
CURVE keys, garbage on the port, and two network namespaces joined by a veth
pair (with tc netem) when root.

Synchronisation is on state (bridge stats lines, channel contents), never
on sleeps; every wait has a deadline.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import struct
import threading
import time
import uuid

import pytest

import shmx
import shmx.bridge as bridge
from shmxtest import chan, remove_segment, wait_until  # noqa: F401  (fixture)

HERE = pathlib.Path(__file__).resolve().parent
CLI = os.environ.get("SHMX_CLI") or str(HERE / ".." / ".." / "build" / "tools" / "shmx")
if not os.access(CLI, os.X_OK):
    pytest.skip(f"shmx CLI not built at {CLI}", allow_module_level=True)
if subprocess.run([CLI, "bridge", "--help"], capture_output=True).returncode != 0:
    pytest.skip("this shmx CLI was built without libzmq (no bridge)", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)

PATTERN = bytes(range(256)) * 1100   # blob of frame s = PATTERN[s % 256:][:size(s)]
STAT = 0.05                          # stats interval of the tools (s)


def cli_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(k, None)
    return env


def tx_start(name, bind="tcp://127.0.0.1:*", **kw):
    kw.setdefault("stats_interval", STAT)
    return bridge.send(name, bind, cli=CLI, env=cli_env(), **kw)


def rx_start(endpoint, as_name, **kw):
    kw.setdefault("stats_interval", STAT)
    return bridge.recv(endpoint, as_name=as_name, cli=CLI, env=cli_env(), **kw)


def size_of(seq, max_blob):
    return (seq * 977) % max_blob + 1


class Producer:
    def __init__(self, name, max_blob=4096, slots=8):
        self.name, self.max_blob, self.seq = name, max_blob, 0
        self.srv = shmx.Server()
        assert self.srv.create(name, slots=slots, frame_bytes_cap=max_blob + 4096, streams=[
            shmx.create_stream_spec(1, "seq", shmx.DT_U64, 1, 8),
            shmx.create_stream_spec(2, "blob", shmx.DT_U8, 1, 1, extra=b"w=64;h=8"),
        ]), self.srv.last_error
        self.srv.write_static_append(b"calibration-v1")

    def publish(self, n=1):
        for _ in range(n):
            self.seq += 1
            s = self.seq
            blob = PATTERN[s % 256:][:size_of(s, self.max_blob)]
            h = self.srv.begin_frame()
            self.srv.append_stream(h, 1, struct.pack("<Q", s), 1)
            self.srv.append_stream(h, 2, blob, len(blob))
            self.srv.publish_frame(h, s * 0.125)

    def close(self):
        self.srv.destroy()


def check_frame(f, max_blob):
    """The frame is exactly what the producer published under its id."""
    s = struct.unpack("<Q", bytes(f["seq"]))[0]
    assert s == f.frame_id
    assert f.sim_time == s * 0.125
    assert bytes(f["blob"]) == PATTERN[s % 256:][:size_of(s, max_blob)]
    return s


def open_client(name, timeout=15):
    """A reader of the receiver's channel, which appears when the schema
    arrives (raises ShmxTimeoutError if it does not within timeout)."""
    return shmx.Client(name, timeout=timeout)


def pump(prod, c, n, window=8, timeout=60):
    """Publish n frames, never more than `window` ahead of reader c, and
    return the frame ids c read (checked byte for byte), in order."""
    ids, deadline = [], time.monotonic() + timeout
    base = prod.seq
    target = base + n
    while True:
        while prod.seq < target and prod.seq - (ids[-1] if ids else base) < window:
            prod.publish()
        f = c.next_frame(timeout=0.2)
        if f is not None:
            ids.append(check_frame(f, prod.max_blob))
            del f
            if ids[-1] >= target:
                return ids
        assert time.monotonic() < deadline, f"stalled at {ids[-1:]} of {target}"


@pytest.fixture
def prod(chan):
    ps = []

    def make(**kw):
        p = Producer(chan("bsrc"), **kw)
        ps.append(p)
        return p
    yield make
    for p in ps:
        try:
            p.close()
        except Exception:
            pass


def test_in_order_every_frame_with_schema(prod, chan):
    p = prod(max_blob=60000)
    dst = chan("bdst")
    with tx_start(p.name, in_order=True) as tx, rx_start(tx.endpoint, dst) as rx:
        c = open_client(dst)
        # the schema came across whole: streams, types, sizes
        want = [(s["id"], s["name"], s["dtype_code"], s["bytes_per_elem"])
                for s in p.srv.get_streams_info()]
        got = [(s["id"], s["name"], s["dtype_code"], s["bytes_per_elem"])
               for s in c.get_streams_info()]
        assert got == want
        hi_src, hi_dst = p.srv.get_header_info(), c.get_header_info()
        for k in ("slots", "frame_bytes_cap", "reader_slots", "static_bytes_used"):
            assert hi_dst[k] == hi_src[k], k
        ids = pump(p, c, 1500)
        first = ids[0]
        assert ids == list(range(first, first + 1500))
        st = tx.wait_stats(lambda s: s["frames"] >= 1500)
        assert st["dropped_net"] == 0 and st["torn"] == 0
        st = rx.wait_stats(lambda s: s["frames"] >= 1500)
        assert st["bad"] == 0
        assert st["lat_p50_us"] > 0
        c.close()
    # the receiver removed its channel when it stopped
    assert not os.path.exists(f"/dev/shm/shmx.{dst}")


def test_latest_mode_and_compression(prod, chan):
    p = prod(max_blob=200000)
    for codec in ("zstd", "lz4"):
        if subprocess.run([CLI, "bridge", "send", "x", "--bind", "tcp://127.0.0.1:*",
                           "--compress", codec], capture_output=True, env=cli_env()
                          ).returncode == 2:
            pytest.skip(f"built without {codec}")
        dst = chan("bz")
        with tx_start(p.name, compress=codec, busy_poll_us=200) as tx, \
                rx_start(tx.endpoint, dst, busy_poll_us=200):
            c = open_client(dst)
            ids = pump(p, c, 200, window=1)
            assert ids[-1] == p.seq
            st = tx.wait_stats(lambda s: s["frames"] >= 200)
            assert st["wire_bytes"] < st["bytes"] / 2   # PATTERN compresses well
            c.close()


def test_late_joiner_and_schema_growth(prod, chan):
    p = prod()
    d1, d2 = chan("bl1"), chan("bl2")
    with tx_start(p.name, in_order=True) as tx, rx_start(tx.endpoint, d1):
        c1 = open_client(d1)
        pump(p, c1, 100)
        # the producer adds a stream mid-run: it reaches the receiver's channel
        assert p.srv.add_stream(shmx.create_stream_spec(3, "temp", shmx.DT_F32, 1, 4))
        h = p.srv.begin_frame()
        p.seq += 1
        p.srv.append_stream(h, 1, struct.pack("<Q", p.seq), 1)
        p.srv.append_stream(h, 2, PATTERN[p.seq % 256:][:size_of(p.seq, p.max_blob)],
                            size_of(p.seq, p.max_blob))
        p.srv.append_stream(h, 3, struct.pack("<f", 21.5), 1)
        p.srv.publish_frame(h, p.seq * 0.125)
        f = c1.next_frame(timeout=10)
        assert f is not None and f.frame_id == p.seq
        c1.refresh()
        assert "temp" in f and struct.unpack("<f", bytes(f["temp"]))[0] == 21.5
        del f
        assert [s["name"] for s in c1.get_streams_info()] == ["seq", "blob", "temp"]
        # a receiver started now gets the grown schema without a sender restart
        with rx_start(tx.endpoint, d2):
            c2 = open_client(d2)
            assert [s["name"] for s in c2.get_streams_info()] == ["seq", "blob", "temp"]
            p.publish(5)
            for c in (c1, c2):
                got = []
                while len(got) < 5:
                    f = c.next_frame(timeout=10)
                    assert f is not None
                    got.append(check_frame(f, p.max_blob))
                    del f
                assert got == list(range(p.seq - 4, p.seq + 1))
            c2.close()
        c1.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sender_and_receiver_killed_and_restarted(prod, chan):
    p = prod()
    dst = chan("brk")
    ep = f"tcp://127.0.0.1:{free_port()}"
    tx = tx_start(p.name, bind=ep, in_order=True)
    rx = rx_start(ep, dst)
    try:
        c = open_client(dst)
        pump(p, c, 50)
        # sender SIGKILLed and restarted: the receiver notices the new sender
        # and re-creates its channel; readers reopen and continue
        tx.kill()
        tx = tx_start(p.name, bind=ep, in_order=True)
        rx.wait_stats(lambda s: s["recreated"] >= 1, timeout=20)
        wait_until(lambda: c.status() != "ok", timeout=10, what="old channel closed")
        c.close()
        c = open_client(dst)
        ids = pump(p, c, 50)
        assert ids[-1] == p.seq
        # receiver SIGKILLed: its channel is left with a dead producer; a new
        # receiver takes the name over and republishes
        rx.kill()
        wait_until(lambda: c.status() != "ok", timeout=10, what="reader sees the dead receiver")
        c.close()
        rx = rx_start(ep, dst)
        c = open_client(dst)
        ids = pump(p, c, 50)
        assert ids[-1] == p.seq
        c.close()
    finally:
        tx.stop()
        rx.stop()


def sender_lag(p):
    """Frames published that the bridge's reader has not read yet."""
    rd = [r for r in p.srv.snapshot_readers() if r["in_use"]]
    return p.seq - max(r["last_frame_seen"] for r in rd)


@pytest.mark.parametrize("in_order", [True, False], ids=["in_order", "latest"])
def test_stalled_link_drops_whole_frames_counted(prod, chan, in_order):
    """The receiver stops reading the network (SIGSTOP): TCP buffers and the
    sender's queue fill. Latest mode drops whole frames at the sender
    (dropped_net); in-order mode holds its place and the channel's slots
    overwrite what it could not take (skipped). Both are counted, in the
    stats and among the bridge reader's drops; no frame arrives torn."""
    p = prod(max_blob=200000, slots=16)
    dst = chan("bst")
    with tx_start(p.name, in_order=in_order, hwm=2) as tx, \
            rx_start(tx.endpoint, dst, hwm=2) as rx:
        c = open_client(dst)
        pump(p, c, 10, window=1)   # one frame in flight: hwm 2 never drops it
        os.kill(rx.process.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 60
            while (tx.stats() or {}).get("dropped_net", 0) < 20 and sender_lag(p) < 40:
                p.publish()
                time.sleep(0.0005)
                assert time.monotonic() < deadline, "the stall never showed"
        finally:
            os.kill(rx.process.pid, signal.SIGCONT)
        # after the stall every frame that arrives is complete and in order,
        # and frames published after it flow again
        last, gaps, stall_end = 10, 0, p.seq
        deadline = time.monotonic() + 60
        while last <= stall_end:
            f = c.next_frame(timeout=0.2)
            if f is None:
                p.publish()     # frames at the end of the stall may be lost too
                assert time.monotonic() < deadline, "frames stopped after the stall"
                continue
            s = check_frame(f, p.max_blob)
            gaps += f.dropped
            assert s > last
            last = s
            del f
        assert gaps > 0
        st = tx.wait_stats(lambda s: s["frames"] + s["dropped_net"] + s["skipped"] >= last)
        lost = st["dropped_net"] + st["skipped"]
        assert (st["skipped"] if in_order else st["dropped_net"]) > 0
        # shown among the bridge reader's drops (shmx top, shmx inspect):
        # frames dropped at the queue, and in order the ones it skipped
        # (a latest reader skips by design; that is not counted as a drop)
        rd = [r for r in p.srv.snapshot_readers() if r["in_use"]]
        counted = st["dropped_net"] + (st["skipped"] if in_order else 0)
        assert lost > 0 and rd[0]["frames_dropped"] >= counted > 0
        # the receiver counted the missing ids (a reader may also have lost
        # some locally in the burst after the stall: its gaps are >=)
        st = rx.wait_stats(lambda s: s["frames"] >= last - gaps and s["skipped"] > 0)
        assert st["bad"] == 0 and 0 < st["skipped"] <= gaps
        c.close()


def test_curve_keys(prod, chan, tmp_path):
    p = prod()
    pub, key = bridge.keygen(str(tmp_path / "srv"), cli=CLI)
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    wpub, _ = bridge.keygen(str(tmp_path / "wrong"), cli=CLI)
    with pytest.raises(bridge.BridgeError):    # never overwrites a key
        bridge.keygen(str(tmp_path / "srv"), cli=CLI)
    good, bad, plain = chan("bcg"), chan("bcb"), chan("bcp")
    with tx_start(p.name, in_order=True, curve_secret=key) as tx, \
            rx_start(tx.endpoint, bad, curve_server_public=wpub) as rb, \
            rx_start(tx.endpoint, plain) as rp, \
            rx_start(tx.endpoint, good, curve_server_public=pub) as rg:
        c = open_client(good)
        pump(p, c, 100)
        rg.wait_stats(lambda s: s["frames"] >= 100)
        # the others were connected all along and got nothing at all
        for r in (rb, rp):
            s = r.wait_stats(lambda s: True)
            assert s["frames"] == 0 and s["schemas"] == 0 and not s["attached"]
        assert not os.path.exists(f"/dev/shm/shmx.{bad}")
        assert not os.path.exists(f"/dev/shm/shmx.{plain}")
        st = tx.wait_stats(lambda s: s["frames"] >= 100)   # a line this new
        assert st["subscribers"] == 1, json.dumps(st)
        c.close()
    # a secret key others can read is refused
    os.chmod(key, 0o644)
    with pytest.raises(bridge.BridgeError, match="readable by others"):
        tx_start(p.name, curve_secret=key)


def test_garbage_on_the_port_is_survived(chan):
    """A peer that is not a ZeroMQ sender (random bytes, then a ZMTP greeting
    followed by nonsense): the receiver stays up and creates nothing."""
    dst = chan("bgb")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    stop = threading.Event()

    def serve():
        lsock.settimeout(0.2)
        blobs = [os.urandom(4096), b"\xff" + b"\0" * 8 + b"\x7f\x03\x00NULL" + b"\0" * 16 +
                 b"\x00" + os.urandom(200), b"\x04\xff" + b"\xff" * 64]
        i = 0
        while not stop.is_set():
            try:
                s, _ = lsock.accept()
            except socket.timeout:
                continue
            try:
                s.sendall(blobs[i % len(blobs)])
                s.settimeout(0.3)
                try:
                    s.recv(1024)
                except OSError:
                    pass
            except OSError:
                pass
            s.close()
            i += 1
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with rx_start(f"tcp://127.0.0.1:{port}", dst) as rx:
            rx.wait_stats(lambda s: True)
            time_to = time.monotonic() + 2   # several reconnects, each fed garbage
            while time.monotonic() < time_to:
                assert rx.running()
                rx.wait_stats(lambda s: True)
                time.sleep(0.05)
            assert rx.running()
            assert not os.path.exists(f"/dev/shm/shmx.{dst}")
    finally:
        stop.set()
        t.join(5)
        lsock.close()


def test_sender_waits_for_its_channel(chan):
    """--wait: a sender started before its producer is ready as soon as the
    channel is live, and says why when it never comes."""
    name = chan("bw")
    made = threading.Event()

    def late():
        time.sleep(0.5)
        made.p = Producer(name)
        made.set()
    t = threading.Thread(target=late)
    t.start()
    try:
        t0 = time.monotonic()
        with tx_start(name, wait=10) as tx:
            assert made.is_set() and time.monotonic() - t0 < 8
            assert tx.wait_stats(lambda s: s["attached"] == 1)["attached"] == 1
    finally:
        t.join()
        made.p.close()
    with pytest.raises(bridge.BridgeError, match="not ready in time"):
        tx_start(chan("bw2"), wait=0.3)


def test_usage_errors():
    r = subprocess.run([CLI, "bridge", "send", "x"], capture_output=True, text=True,
                       env=cli_env())
    assert r.returncode == 2 and "--bind" in r.stderr
    r = subprocess.run([CLI, "bridge", "send", "no_such_chan_zz", "--bind",
                        "tcp://127.0.0.1:*"], capture_output=True, text=True, env=cli_env())
    assert r.returncode == 1 and "no_such_chan_zz" in r.stderr
    r = subprocess.run([CLI, "bridge", "recv", "bogus://x"], capture_output=True, text=True,
                       env=cli_env())
    assert r.returncode == 1 and "bogus" in r.stderr
    with pytest.raises(bridge.BridgeError):
        bridge.find_cli("/nonexistent/shmx")


# ---- two hosts: network namespaces joined by a veth pair --------------------

def _ip(*args, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (skipped: not root)")
    tag = uuid.uuid4().hex[:6]
    a, b = f"shmxa{tag}", f"shmxb{tag}"
    va, vb = f"va{tag}", f"vb{tag}"
    made = []
    try:
        for ns in (a, b):
            r = _ip("ip", "netns", "add", ns, check=False)
            if r.returncode != 0:
                pytest.skip(f"cannot create network namespaces: {r.stderr.strip()}")
            made.append(ns)
        _ip("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        _ip("ip", "link", "set", va, "netns", a)
        _ip("ip", "link", "set", vb, "netns", b)
        _ip("ip", "addr", "add", "10.201.0.1/24", "dev", va, ns=a)
        _ip("ip", "addr", "add", "10.201.0.2/24", "dev", vb, ns=b)
        for ns, v in ((a, va), (b, vb)):
            _ip("ip", "link", "set", v, "up", ns=ns)
            _ip("ip", "link", "set", "lo", "up", ns=ns)
        yield {"a": a, "b": b, "va": va, "addr_a": "10.201.0.1"}
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_two_namespaces_over_veth(prod, chan, two_hosts):
    """Sender in namespace A, receiver in namespace B (separate network
    stacks, /dev/shm shared as on two hosts' local channels). Every frame
    crosses the veth; then tc (netem, else tbf) throttles the link and the sender drops
    whole frames, counted, and what arrives is intact."""
    h = two_hosts
    p = prod(max_blob=100000, slots=16)
    dst = chan("bns")
    ep = f"tcp://{h['addr_a']}:5611"
    with tx_start(p.name, bind=ep, in_order=True, wrap=["ip", "netns", "exec", h["a"]]) as tx, \
            rx_start(ep, dst, wrap=["ip", "netns", "exec", h["b"]]) as rx:
        c = open_client(dst)
        ids = pump(p, c, 300)
        assert ids[-1] == p.seq
        assert tx.wait_stats(lambda s: s["frames"] >= 300)["dropped_net"] == 0
        # a slow link: 8 Mbit/s (netem with 20 ms delay, or a token bucket
        # where the kernel has no netem)
        for shape in (["netem", "rate", "8mbit", "delay", "20ms", "limit", "100"],
                      ["tbf", "rate", "8mbit", "burst", "32kbit", "latency", "400ms"]):
            tc = _ip("tc", "qdisc", "add", "dev", h["va"], "root", *shape, ns=h["a"],
                     check=False)
            if tc.returncode == 0:
                break
        else:
            pytest.skip(f"no tc qdisc to shape the link: {tc.stderr.strip()}")
        last = p.seq
        deadline = time.monotonic() + 60
        while tx.stats()["dropped_net"] < 20 and sender_lag(p) < 40:
            p.publish()
            time.sleep(0.002)
            assert time.monotonic() < deadline, "no losses on an 8 Mbit/s link"
        _ip("tc", "qdisc", "del", "dev", h["va"], "root", ns=h["a"])
        gaps, throttle_end = 0, p.seq
        deadline = time.monotonic() + 60
        while last <= throttle_end:
            f = c.next_frame(timeout=0.2)
            if f is None:
                p.publish()
                assert time.monotonic() < deadline, "frames stopped after the throttle"
                continue
            s = check_frame(f, p.max_blob)
            assert s > last
            gaps += f.dropped
            last = s
            del f
        assert gaps > 0
        assert rx.wait_stats(lambda s: s["frames"] > 0)["bad"] == 0
        c.close()


def test_bridge_bench_runs():
    """bench/bench_bridge.c in its quick mode: it runs, measures every case
    against bare libzmq in the same run, and says so in JSON (figures are
    not checked: speed is for the benchmark, not a test)."""
    exe = pathlib.Path(CLI).resolve().parents[1] / "bench" / "shmx-bench-bridge"
    if not exe.exists():
        pytest.skip(f"{exe} not built")
    r = subprocess.run([str(exe), "--quick", "--json"], capture_output=True, text=True,
                       timeout=120, env=cli_env())
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    rnd, summary = lines[0], lines[-1]
    assert summary["summary"] is True and summary["rounds"] == 1
    for k in ("zmq_lat_64B", "bridge_lat_64B"):
        assert 0 < rnd[k]["p50_ns"] <= rnd[k]["p99_ns"] <= rnd[k]["p999_ns"]
    for size in ("64B", "1048576B"):
        t = rnd["tput_" + size]
        assert t["zmq_msgs_s"] > 0 and t["republished_s"] > 0 and t["bridge_frames_s"] > 0
