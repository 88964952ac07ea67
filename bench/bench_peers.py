#!/usr/bin/env python3
"""bench_peers.py -- shmx against its peers, from Python, one message shape for all.

Every case moves the same message: bytes 0..8 a time.monotonic_ns() stamp,
8..16 a sequence number, the last 8 bytes the sequence number again. The
producer stamps, then makes one copy into the library (whatever its API
needs: shmx append_stream, an iceoryx2 loan, a zenoh SHM buffer, pyzmq send,
eCAL send of bytes); the consumer takes the receive time as soon as the
message is in hand, reads the head and the tail (head != tail is a torn
message) and counts sequence gaps as drops.

  latency      paced messages (every 200 us .. 20 ms by size); p50/p99/p99.9
               of receive time - stamp
  throughput   the producer sends flat out for --seconds; received/s, drops
               (gaps the consumer saw), torn

A shmx reader checks Frame.valid after reading, as correct code does: a
frame the producer had to overwrite while it was held (every other slot was
pinned too) reads False and is counted as expired, not torn; torn counts
inconsistent messages that no library flagged.

Cases (peer/variant):
  shmx/spin       this package: spin on Client.frame_seq, latest_frame().raw()
  shmx/wait       this package: Client.wait_frame() (futex wake-up)
  shmx/dict       this package through the 1.0.1 API: spin on get_latest_frame()
  shmx101/dict    shmx 1.0.1 from PyPI: spin on get_latest_frame()
  shm/seqlock     multiprocessing.shared_memory, one buffer, a seqlock, spin
  shm/fifo        one buffer, then a byte into a FIFO; the reader blocks on it
                  (no consistency protocol: torn messages are counted)
  iceoryx2/spin   iceoryx2 publish-subscribe, loan_slice_uninit, receive() spin
  iceoryx2/event  the same, the reader blocks on an iceoryx2 event listener
  zmq/ipc         pyzmq PUSH/PULL over ipc://, blocking recv (zero-copy frame)
  ecal/callback   eCAL 6 publisher/subscriber (SHM layer), receive callback
  zenoh/shm       zenoh peers over loopback TCP, payload in a zenoh SHM buffer

Rounds interleave every case and size; ratios (case p50 / shmx p50 for
latency, shmx rate / case rate for throughput) are taken within each round
and their median is printed. A peer that cannot be installed or run is
reported with the reason, never left out silently.

Each side runs in its own virtual environment (this package in the running
interpreter, shmx 1.0.1 in .venv-shmx101, the other peers in .venv-peers),
built on first use from PyPI.

Usage: python bench/bench_peers.py [--quick] [--rounds N] [--sizes 64,1M]
                                   [--cases shmx/spin,zmq/ipc] [--pin|--no-pin]
                                   [--json FILE]
"""
import argparse
import json
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
# shared with bench_python.py (stdlib only, so every venv can import it)
from bench_python import clean_env, ensure_old_venv, pct, pin_cpu  # noqa: E402
KIB, MIB = 1024, 1024 * 1024
END = (1 << 63) - 1            # sequence number of the end marker
PEER_PKGS = ["iceoryx2==0.10.0", "pyzmq==27.3.0", "eclipse-zenoh==1.10.2",
             "eclipse-ecal==6.1.1"]
CASES = ["shmx/spin", "shmx/wait", "shmx/dict", "shmx101/dict", "shm/seqlock", "shm/fifo",
         "iceoryx2/spin", "iceoryx2/event", "zmq/ipc", "ecal/callback", "zenoh/shm"]
pack_into, unpack_from = struct.pack_into, struct.unpack_from
mono = time.monotonic_ns


def venv_of(case):
    peer = case.split("/")[0]
    return {"shmx": "ours", "shm": "ours", "shmx101": "old"}.get(peer, "peers")


def interval_ns(size):
    """Pace of the latency runs: slow enough that the consumer is idle when
    the next message starts, for every size."""
    return max(200_000, size * 2_500 // KIB)     # 64 B: 200 us; 1 MiB: 2.5 ms; 8 MiB: 20 ms


# ---------------------------------------------------------------------------
# Adapters: pub_open/pub_send/pub_close and sub_open/sub_run/sub_close;
# optional pub_warm (warm-up sends) and pub_info (a string the consumer gets
# as `info`). sub_run(on_msg) calls on_msg(buf, now[, tail_at[, frame]]) for
# each message until on_msg returns False; buf is anything
# struct.unpack_from reads (tail_at: where the tail is in it, if not at
# size - 8; frame: a shmx Frame whose `valid` to check after reading).
# ---------------------------------------------------------------------------

class Adapter:
    def __init__(self, variant, name, size, info):
        self.variant, self.name, self.size, self.info = variant, name, size, info


class Shmx(Adapter):

    def pub_open(self):
        import shmx
        self.old = not hasattr(shmx, "Recording")
        self.s = shmx.Server()
        spec = [shmx.create_stream_spec(1, "payload", shmx.DT_U8, 1, 1)]
        # the default ring (3 slots), like every peer's defaults
        assert self.s.create(self.name, frame_bytes_cap=max(65536, self.size + 4096),
                             streams=spec)

    def pub_send(self, msg):
        s = self.s
        h = s.begin_frame()
        # 1.0.1 takes bytes only (its own copy first); ours takes any buffer
        s.append_stream(h, 1, bytes(msg) if self.old else msg, self.size)
        s.publish_frame(h, 0.0)

    def pub_close(self):
        self.s.destroy()

    def sub_open(self):
        import shmx
        self.c = shmx.Client()
        assert self.c.open(self.name)

    def sub_run(self, on_msg):
        c = self.c
        if self.variant == "spin":
            last = 0
            while True:
                if c.frame_seq == last:
                    continue
                f = c.latest_frame()
                if f is None or f.frame_id == last:
                    continue
                now = mono()
                last = f.frame_id
                if not on_msg(f.raw("payload"), now, None, f):
                    return
        elif self.variant == "wait":
            while True:
                f = c.wait_frame(1.0)
                if f is None:
                    continue
                if not on_msg(f.raw("payload"), mono(), None, f):
                    return
        else:  # dict, as 1.0.1 code does it
            get = c.get_latest_frame
            last = 0
            while True:
                f = get()
                if f is None:
                    continue
                fid = f["__metadata__"]["frame_id"]
                if fid == last:
                    continue
                now = mono()
                last = fid
                # ours keeps the Frame in the metadata (1.0.1 returned copies)
                if not on_msg(f["payload"]["data"], now, None, f["__metadata__"].get("frame")):
                    return

    def sub_close(self):
        self.c.close()


class Shm(Adapter):
    """multiprocessing.shared_memory: the stdlib floor. Header line: u64 seq
    counter at 0 (seqlock: odd while writing); message at 64."""
    def __init__(self, *args):
        super().__init__(*args)
        self.fifo = os.path.join(tempfile.gettempdir(), self.name + ".fifo")

    def _attach(self, create):
        from multiprocessing import shared_memory, resource_tracker
        self.shm = shared_memory.SharedMemory(name=self.name, create=create, size=64 + self.size)
        if not create:
            resource_tracker.unregister(self.shm._name, "shared_memory")
        self.buf = self.shm.buf
        self.ctr = self.buf[:8].cast("Q")
        if create and self.variant == "fifo":
            os.mkfifo(self.fifo, 0o600)
        if self.variant == "fifo":
            self.fd = os.open(self.fifo, os.O_RDWR | (os.O_NONBLOCK if create else 0))

    def pub_open(self):
        self._attach(True)
        self.k = 0

    def pub_send(self, msg):
        buf = self.buf
        if self.variant == "seqlock":
            # the counter through a 'Q' memoryview: one 8-byte store each.
            # (struct.pack_into cannot publish it: it zeroes its target
            # before it writes, and a reader seeing that 0 takes it for even.)
            k = self.k = self.k + 2
            ctr = self.ctr
            ctr[0] = k - 1
            buf[64:64 + self.size] = msg
            ctr[0] = k
        else:
            buf[64:64 + self.size] = msg
            try:
                os.write(self.fd, b"x")
            except BlockingIOError:
                pass            # the FIFO is full: the reader has a wake-up pending anyway

    def pub_close(self):
        self.ctr.release()
        del self.buf
        self.shm.close()
        self.shm.unlink()
        if self.variant == "fifo":
            os.close(self.fd)
            os.unlink(self.fifo)

    def sub_open(self):
        self._attach(False)

    def sub_run(self, on_msg):
        buf, size = self.buf, self.size
        view = buf[64:64 + size]
        if self.variant == "seqlock":
            ctr = self.ctr
            last = 0
            while True:
                k = ctr[0]
                if k == last or k & 1:
                    continue
                now = mono()
                head = bytes(view[:16])
                tail = bytes(view[size - 8:])
                if ctr[0] != k:
                    continue    # overwritten while read: the seqlock says retry
                last = k
                if not on_msg(head + tail, now, 16):
                    return
        else:
            fd = self.fd
            while True:
                os.read(fd, 4096)
                if not on_msg(view, mono()):
                    return

    def sub_close(self):
        self.ctr.release()
        del self.buf
        self.shm.close()
        if self.variant == "fifo":
            os.close(self.fd)


class Iceoryx2(Adapter):
    def _service(self):
        import ctypes
        import iceoryx2 as iox2
        iox2.set_log_level_from_env_or(iox2.LogLevel.Fatal)
        self.node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        sname = iox2.ServiceName.new("bench/" + self.name)
        self.svc = (self.node.service_builder(sname)
                    .publish_subscribe(iox2.Slice[ctypes.c_uint8])
                    .open_or_create())
        if self.variant == "event":
            self.evt = self.node.service_builder(sname).event().open_or_create()

    def pub_open(self):
        import ctypes
        self._service()
        self.pub = self.svc.publisher_builder().initial_max_slice_len(self.size).create()
        self.memmove, self.c_bytes = ctypes.memmove, ctypes.c_char * self.size
        if self.variant == "event":
            self.notifier = self.evt.notifier_builder().create()

    def pub_send(self, msg):
        s = self.pub.loan_slice_uninit(self.size)
        self.memmove(s.payload_ptr, self.c_bytes.from_buffer(msg), self.size)
        s.assume_init().send()
        if self.variant == "event":
            self.notifier.notify()

    def pub_close(self):
        pass

    def sub_open(self):
        self._service()
        self.sub = self.svc.subscriber_builder().create()
        if self.variant == "event":
            self.listener = self.evt.listener_builder().create()

    def sub_run(self, on_msg):
        import ctypes
        size, receive = self.size, self.sub.receive
        string_at = ctypes.string_at
        while True:
            if self.variant == "event":
                self.listener.blocking_wait()
            while True:
                s = receive()
                if s is None:
                    break
                now = mono()
                p = s.payload_ptr
                msg = string_at(p, 16) + string_at(p + size - 8, 8)
                del s
                if not on_msg(msg, now, 16):
                    return

    def sub_close(self):
        pass


class Zmq(Adapter):
    def __init__(self, *args):
        super().__init__(*args)
        self.ep = "ipc://" + os.path.join(tempfile.gettempdir(), self.name + ".zmq")

    def pub_open(self):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.bind(self.ep)

    def pub_send(self, msg):
        self.sock.send(msg, copy=True)

    def pub_warm(self, msg):
        import zmq
        try:
            self.sock.send(msg, zmq.NOBLOCK)    # PUSH blocks while no peer is connected
        except zmq.Again:
            pass

    def pub_close(self):
        self.sock.close(0)
        self.ctx.term()

    def sub_open(self):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.connect(self.ep)

    def sub_run(self, on_msg):
        recv = self.sock.recv
        while True:
            fr = recv(copy=False)
            if not on_msg(fr.buffer, mono()):
                return

    def sub_close(self):
        self.sock.close(0)
        self.ctx.term()


class Ecal(Adapter):
    def pub_open(self):
        import ecal.nanobind_core as e
        e.initialize("bench_pub")
        self.e = e
        self.pub = e.Publisher(self.name)

    def pub_send(self, msg):
        self.pub.send(bytes(msg))   # the binding takes bytes only

    def pub_close(self):
        self.e.finalize()

    def sub_open(self):
        import ecal.nanobind_core as e
        e.initialize("bench_sub")
        self.e = e
        self.sub = e.Subscriber(self.name)

    def sub_run(self, on_msg):
        import threading
        done = threading.Event()

        def cb(pub_id, dti, data):
            now = mono()
            if not done.is_set() and not on_msg(data.buffer, now):
                done.set()
        self.sub.set_receive_callback(cb)
        done.wait()
        self.sub.remove_receive_callback()

    def sub_close(self):
        self.e.finalize()


class Zenoh(Adapter):
    def __init__(self, *args):
        super().__init__(*args)
        self.key = "bench/" + self.name

    def _open(self, role, port):
        import zenoh
        self.z = zenoh
        c = zenoh.Config()
        c.insert_json5("mode", '"peer"')
        c.insert_json5("scouting/multicast/enabled", "false")
        c.insert_json5("transport/shared_memory/enabled", "true")
        ep = '["tcp/127.0.0.1:%d"]' % port
        c.insert_json5("listen/endpoints" if role == "pub" else "connect/endpoints", ep)
        self.session = zenoh.open(c)

    def pub_open(self):
        import socket
        with socket.socket() as s:          # a free port for the publisher to listen on
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._open("pub", self.port)
        self.pub = self.session.declare_publisher(self.key)
        self.provider = self.z.shm.ShmProvider.default_backend(max(4 * MIB, 8 * self.size))
        self.policy = self.z.shm.BlockOn(self.z.shm.GarbageCollect())

    def pub_info(self):
        return str(self.port)

    def pub_send(self, msg):
        sb = self.provider.alloc(self.size, policy=self.policy)
        sb[:] = msg
        self.pub.put(sb)

    def pub_close(self):
        self.session.close()

    def sub_open(self):
        self._open("sub", int(self.info))   # the publisher's port
        self.sub = self.session.declare_subscriber(self.key)

    def sub_run(self, on_msg):
        recv = self.sub.recv
        while True:
            smp = recv()
            now = mono()
            if not on_msg(bytes(smp.payload), now):
                return

    def sub_close(self):
        self.session.close()


ADAPTERS = {"shmx": Shmx, "shmx101": Shmx, "shm": Shm, "iceoryx2": Iceoryx2, "zmq": Zmq,
            "ecal": Ecal, "zenoh": Zenoh}


def adapter(case, name, size, info="-"):
    peer, variant = case.split("/")
    return ADAPTERS[peer](variant, name, size, info)


# ---------------------------------------------------------------------------
# child roles
# ---------------------------------------------------------------------------

def stdin_line(timeout):
    r, _, _ = select.select([sys.stdin], [], [], timeout)
    return sys.stdin.readline().strip() if r else None


def protocol_out():
    """The parent reads this process's stdout line by line; some libraries
    print there (eCAL prints its configuration warnings): give them stderr and
    keep a private copy of stdout for the protocol."""
    global PROTO
    PROTO = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)


def say(line):
    PROTO.write(line + "\n")
    PROTO.flush()


def role_pub(a):
    """Announce, send warm-up messages (seq 0) until told to go, then the run,
    then end markers until told the consumer is done."""
    protocol_out()
    if a.pin:
        pin_cpu(0)
    ad = adapter(a.case, a.name, a.size)
    ad.pub_open()
    info = ad.pub_info() if hasattr(ad, "pub_info") else "-"
    say("ready " + info)
    size = a.size
    msg = bytearray(size)
    send = ad.pub_send

    def put(seq, stamp, send=send):
        pack_into("QQ", msg, 0, stamp, seq)
        pack_into("Q", msg, size - 8, seq)
        send(msg)
    warm = getattr(ad, "pub_warm", send)
    while True:
        put(0, 0, warm)
        line = stdin_line(0.01)
        if line == "go":
            break
        if line is None:
            continue
        return 1
    sent = 0
    if a.mode == "latency":
        step = interval_ns(size)
        nxt = mono()
        for seq in range(1, a.count + 1):
            nxt += step
            put(seq, mono())
            while mono() < nxt:
                pass
        sent = a.count
    else:
        t_end = mono() + int(a.seconds * 1e9)
        seq = 0
        while True:
            seq += 1
            put(seq, mono())
            if (seq & 15) == 0 and mono() >= t_end:
                break
        sent = seq
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        put(END, 0)
        if stdin_line(0.005) == "done":
            break
    say(json.dumps({"sent": sent}))
    stdin_line(30)             # the parent says when the consumer has let go
    ad.pub_close()
    return 0


def role_sub(a):
    protocol_out()
    if a.pin:
        pin_cpu(1)
    ad = adapter(a.case, a.name, a.size, a.info)
    ad.sub_open()
    size = a.size
    st = {"lat": [], "recv": 0, "drops": 0, "torn": 0, "stale": 0, "expired": 0, "first": 0,
          "last_t": 0, "last": 0,
          "ready": False}
    lat = st["lat"]

    def on_msg(buf, now, tail_at=None, frame=None):
        stamp, seq = unpack_from("QQ", buf, 0)
        tail = unpack_from("Q", buf, size - 8 if tail_at is None else tail_at)[0]
        if frame is not None and not frame.valid:
            # shmx overwrote a frame this reader held because every other
            # slot was pinned too, and says so: what correct code checks
            st["expired"] += 1
            return True
        if seq == 0:
            if not st["ready"]:
                st["ready"] = True
                say("ready")
            return True
        if seq == END:
            return False
        if tail != seq:
            st["torn"] += 1
            return True
        last = st["last"]
        if seq <= last:
            st["stale"] += 1      # not newer than one already received
            return True
        if st["recv"] == 0:
            st["first"] = now
        st["recv"] += 1
        st["drops"] += seq - last - 1
        st["last"] = seq
        st["last_t"] = now
        if a.mode == "latency":
            lat.append(now - stamp)
        return True
    ad.sub_run(on_msg)
    out = {k: st[k] for k in ("recv", "drops", "torn", "stale", "expired", "last")}
    if a.mode == "latency":
        out["lat"] = pct(lat)
    else:
        span = (st["last_t"] - st["first"]) / 1e9
        out["rate"] = (st["recv"] - 1) / span if span > 0 else 0.0
    say(json.dumps(out))
    ad.sub_close()
    return 0


# ---------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------

def ensure_peers_venv(venv):
    py = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".peers-" + "-".join(p.replace("==", "") for p in PEER_PKGS))
    if os.path.exists(stamp):
        return py, {}
    print("setting up %s with %s from PyPI ..." % (venv, " ".join(PEER_PKGS)), file=sys.stderr)
    why = {}
    try:
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", venv])
            subprocess.check_call([py, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    except (subprocess.CalledProcessError, OSError) as e:
        return None, {p: "no virtual environment: %s" % e for p in ("iceoryx2", "zmq", "ecal", "zenoh")}
    for pkg, peer in zip(PEER_PKGS, ("iceoryx2", "zmq", "zenoh", "ecal")):
        r = subprocess.run([py, "-m", "pip", "install", "-q", pkg], capture_output=True, text=True)
        if r.returncode != 0:
            why[peer] = "pip install %s failed: %s" % (pkg, (r.stderr.strip().splitlines() or ["?"])[-1])
    if not why:
        open(stamp, "w").close()
    return py, why


def run_case(py, case, size, mode, a):
    name = "pb%d_%d" % (os.getpid(), time.monotonic_ns() % 10**9)
    common = ["--case", case, "--name", name, "--size", str(size), "--mode", mode,
              "--count", str(a.count_for(size)), "--seconds", str(a.seconds)]
    if a.pin:
        common.append("--pin")
    env = clean_env() if venv_of(case) != "ours" else dict(os.environ)
    me = os.path.abspath(__file__)
    pub = subprocess.Popen([py, me, "--role", "pub"] + common, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd="/")
    sub = None
    try:
        line = read_line(pub, 60)
        if not line.startswith("ready"):
            return {"error": "producer did not start: " + tail_err(pub)}
        info = line.split(" ", 1)[1]
        sub = subprocess.Popen([py, me, "--role", "sub", "--info", info] + common,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd="/")
        if read_line(sub, 60) != "ready":
            return {"error": "consumer saw nothing within 60 s: " + tail_err(sub)}
        pub.stdin.write("go\n")
        pub.stdin.flush()
        budget = 60 + (a.count_for(size) * interval_ns(size) / 1e9 if mode == "latency" else a.seconds)
        res = read_line(sub, budget)
        if not res.startswith("{"):
            return {"error": "consumer gave no result: " + tail_err(sub)}
        out = json.loads(res)
        pub.stdin.write("done\n")
        pub.stdin.flush()
        sent = read_line(pub, 30)
        if sent.startswith("{"):
            out.update(json.loads(sent))
        sub.wait(30)
        pub.stdin.write("bye\n")
        pub.stdin.flush()
        pub.wait(30)
        return out
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}
    finally:
        for p in (sub, pub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for path in ("/dev/shm/shmx." + name, "/dev/shm/.shmx.%s.lock" % name, "/dev/shm/" + name,
                     os.path.join(tempfile.gettempdir(), name + ".fifo"),
                     os.path.join(tempfile.gettempdir(), name + ".zmq")):
            try:
                os.unlink(path)
            except OSError:
                pass


def read_line(p, timeout):
    r, _, _ = select.select([p.stdout], [], [], timeout)
    if not r:
        raise subprocess.TimeoutExpired(p.args[:4], timeout)
    return p.stdout.readline().strip()


def tail_err(p):
    if p.poll() is None:
        p.kill()
    try:
        err = p.stderr.read()
    except (OSError, ValueError):
        err = ""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "exit %s" % p.poll()


def size_label(n):
    if n % MIB == 0:
        return "%d MiB" % (n // MIB)
    if n % KIB == 0:
        return "%d KiB" % (n // KIB)
    return "%d B" % n


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": KIB, "M": MIB}.get(s[-1:], 1)
    return int(s[:-1] if mult > 1 else s) * mult


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", default="main", choices=["main", "pub", "sub"])
    ap.add_argument("--case")
    ap.add_argument("--name")
    ap.add_argument("--info", default="-")
    ap.add_argument("--size", type=int)
    ap.add_argument("--mode", default="latency", choices=["latency", "throughput"])
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=3.0, help="throughput run length (3 s)")
    ap.add_argument("--pin", action="store_true", default=None,
                    help="pin the producer to the first CPU, the consumer to the second")
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--quick", action="store_true", help="fewer samples, 1 s throughput runs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="64,64K,1M,8M")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--modes", default="latency,throughput")
    ap.add_argument("--json", help="write one JSON line per measurement to this file")
    ap.add_argument("--venv-old", default=os.path.join(ROOT, ".venv-shmx101"))
    ap.add_argument("--venv-peers", default=os.path.join(ROOT, ".venv-peers"))
    a = ap.parse_args()
    if a.role == "pub":
        return role_pub(a)
    if a.role == "sub":
        return role_sub(a)

    if a.pin is None:
        a.pin = True
    if a.quick:
        a.seconds = min(a.seconds, 1.0)
    lat_count = {64: 3000, 64 * KIB: 2000, MIB: 400, 8 * MIB: 100}
    a.count_for = lambda n: max(20, lat_count.get(n, 400) // (4 if a.quick else 1))
    sizes = [parse_size(s) for s in a.sizes.split(",")]
    cases = [c for c in a.cases.split(",") if c]
    modes = a.modes.split(",")
    for c in cases:
        if c not in CASES:
            ap.error("unknown case %r (known: %s)" % (c, ", ".join(CASES)))

    import shmx
    if not hasattr(shmx, "Recording"):
        print("this interpreter's shmx (%s) is not this project's: run `make py` and use "
              ".venv/bin/python" % getattr(shmx, "__version__", "?"), file=sys.stderr)
        return 2
    pys, why = {"ours": sys.executable}, {}
    if any(venv_of(c) == "old" for c in cases):
        pys["old"], w = ensure_old_venv(a.venv_old)
        if w:
            why["shmx101"] = w
    if any(venv_of(c) == "peers" for c in cases):
        pys["peers"], w = ensure_peers_venv(a.venv_peers)
        why.update(w)
    versions = {"shmx": shmx.__version__, "python": sys.version.split()[0]}
    if pys.get("peers"):
        vs = subprocess.run([pys["peers"], "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, env=clean_env())
        try:
            for d in json.loads(vs.stdout):
                if d["name"].lower() in ("iceoryx2", "pyzmq", "eclipse-zenoh", "eclipse-ecal"):
                    versions[d["name"].lower()] = d["version"]
        except ValueError:
            pass
    if pys.get("old"):
        versions["shmx101"] = "1.0.1"
    shm_before = set(os.listdir("/dev/shm"))
    jf = open(a.json, "w") if a.json else None
    results = {}          # (case, size, mode) -> [round results]
    errors = {}
    t0 = time.monotonic()
    for rnd in range(a.rounds):
        for size in sizes:
            for mode in modes:
                for case in cases:
                    peer = case.split("/")[0]
                    if peer in why:
                        errors[(case, size, mode)] = why[peer]
                        continue
                    r = run_case(pys[venv_of(case)], case, size, mode, a)
                    r.update(round=rnd, case=case, size=size, mode=mode, pinned=a.pin)
                    if "error" in r:
                        errors[(case, size, mode)] = r["error"]
                    else:
                        results.setdefault((case, size, mode), []).append(r)
                    print("round %d %-15s %-7s %-10s %s" % (rnd + 1, case, size_label(size), mode,
                          "ERROR " + r["error"] if "error" in r else
                          ("p50 %.1f us" % (r["lat"]["p50"] / 1e3) if mode == "latency" and r.get("lat")
                           else "%.0f/s" % r.get("rate", 0))), file=sys.stderr)
                    if jf:
                        jf.write(json.dumps(r) + "\n")
                        jf.flush()
    report(results, errors, sizes, cases, modes, a, versions, time.monotonic() - t0)
    # iceoryx2, zenoh and eCAL leave their own files in /dev/shm: remove the
    # ones that appeared during this run
    for f in set(os.listdir("/dev/shm")) - shm_before:
        if f.startswith(("iox2_", "ecal", "pb")) or f.endswith(".zenoh"):
            try:
                os.unlink(os.path.join("/dev/shm", f))
            except OSError:
                pass
    if jf:
        jf.write(json.dumps({"versions": versions, "errors": {"%s %d %s" % k: v for k, v in errors.items()}}) + "\n")
        jf.close()
    return 0


def report(results, errors, sizes, cases, modes, a, versions, took):
    print("\nbench_peers: %d round(s), %s, %s; %s; %.0f s" % (
        a.rounds, "producer pinned to cpu0, consumer to cpu1" if a.pin else "not pinned",
        "load %.2f" % os.getloadavg()[0], ", ".join("%s %s" % kv for kv in versions.items()), took))
    base = "shmx/spin"       # the ratios' reference, in both modes
    for mode in modes:
        print()
        if mode == "latency":
            print("latency, us (median over rounds of each round's p50 / p99 / p99.9); "
                  "x = case p50 / %s p50 per round, median" % base)
        else:
            print("throughput, messages/s received (median over rounds); drops and torn summed; "
                  "x = %s rate / case rate per round, median" % base)
        head = "%-15s" % "case"
        for size in sizes:
            head += " | %-31s" % size_label(size)
        print(head)
        for case in cases:
            line = "%-15s" % case
            for size in sizes:
                rs = results.get((case, size, mode))
                if not rs:
                    e = errors.get((case, size, mode))
                    line += " | %-31s" % ("n/a" if e else "-")
                    continue
                by_round = {r["round"]: r for r in results.get((base, size, mode), [])}
                ratios = []
                if mode == "latency":
                    p = [statistics.median(r["lat"][k] for r in rs if r.get("lat")) / 1e3
                         for k in ("p50", "p99", "p999")]
                    for r in rs:
                        b = by_round.get(r["round"])
                        if b and b.get("lat") and r.get("lat"):
                            ratios.append(r["lat"]["p50"] / b["lat"]["p50"])
                    cell = "%7.1f %7.1f %7.1f" % tuple(p)
                else:
                    rate = statistics.median(r["rate"] for r in rs)
                    for r in rs:
                        b = by_round.get(r["round"])
                        if b and r["rate"] > 0:
                            ratios.append(b["rate"] / r["rate"])
                    cell = "%8.0f d%-6s t%-3s" % (rate, short(sum(r["drops"] for r in rs)),
                                                  short(sum(r["torn"] for r in rs)))
                cell += " %5.2fx" % statistics.median(ratios) if ratios else "       "
                line += " | %-31s" % cell
            print(line)
    flagged = [(c, sz, m, sum(r.get("expired", 0) for r in rs))
               for (c, sz, m), rs in sorted(results.items())]
    flagged = [x for x in flagged if x[3]]
    if flagged:
        print("\nframes overwritten while held and flagged (Frame.valid False; not torn):")
        for c, sz, m, n in flagged:
            print("  %-15s %-7s %-10s %d" % (c, size_label(sz), m, n))
    if errors:
        print("\nnot measured:")
        seen = set()
        for (case, size, mode), e in sorted(errors.items()):
            key = (case, e)
            if key in seen:
                continue
            seen.add(key)
            print("  %-15s %s" % (case, e))


def short(n):
    if n >= 10**6:
        return "%.1fM" % (n / 1e6)
    if n >= 10**4:
        return "%.0fk" % (n / 1e3)
    return str(n)


if __name__ == "__main__":
    sys.exit(main())
