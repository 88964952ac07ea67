#!/usr/bin/env python3
"""bench_python.py -- shmx (this package) vs shmx 1.0.1 vs multiprocessing.shared_memory.

One run measures, per side, with per-operation timing (p50/p99/p99.9):
  get_latest     get_latest_frame() of a frame with 3 small streams (the
                 same frame each call, as a polling reader sees it)
  get_latest_new get_latest_frame() right after each publish (a new frame
                 every call; only the get is timed)
  publish_small  begin + 3 small appends + publish
  publish_1m     begin + one 1 MiB append + publish
  lat_64         cross-process one-way latency, 64 B frame: the producer
                 stamps time.monotonic_ns() into the frame, a reader spins on
                 get_latest_frame() until the new frame shows up
  lat_64_frame   ours only: the same, the reader spinning on Client.frame_seq
                 and reading a Frame (latest_frame()) instead of the dict
  lat_1m         the same with a 1 MiB frame (stamp, then copy, then publish)

Sides:
  ours    this package (must be importable by the interpreter running this)
  old     shmx 1.0.1 from PyPI, in its own virtual environment (default
          ./.venv-shmx101, created on first use; 1.0.1 is an sdist that needs
          pybind11, which is installed from PyPI first). It runs in a
          subprocess of that venv's interpreter.
  shm     multiprocessing.shared_memory with struct.pack_into / slice copies
          (no consistency protocol at all: a lower bound for "raw Python")

Usage: python bench/bench_python.py [--quick] [--venv DIR] [--json OUT]
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1024 * 1024


def pct(samples):
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return None

    def q(p):
        return s[min(n - 1, int(p * n))]
    return {"p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "n": n}


# ---------------------------------------------------------------------------
# shmx sides (ours and 1.0.1 run the same code: the API is the same)
# ---------------------------------------------------------------------------

def small_specs(shmx):
    return [shmx.create_stream_spec(1, "frame_id", shmx.DT_U64, 1, 8),
            shmx.create_stream_spec(2, "timestamp", shmx.DT_F64, 1, 8),
            shmx.create_stream_spec(3, "data", shmx.DT_F32, 1, 4)]


def uniq(tag):
    return "pybench_%s_%d_%d" % (tag, os.getpid(), time.monotonic_ns() % 100000)


def cleanup(name):
    for p in ("/dev/shm/shmx." + name, "/dev/shm/" + name):
        try:
            os.unlink(p)
        except OSError:
            pass


def bench_get_latest(shmx, n):
    name = uniq("gl")
    s = shmx.Server()
    assert s.create(name, slots=4, streams=small_specs(shmx))
    c = shmx.Client()
    assert c.open(name)
    h = s.begin_frame()
    s.append_stream(h, 1, struct.pack("Q", 1), 1)
    s.append_stream(h, 2, struct.pack("d", 2.0), 1)
    s.append_stream(h, 3, struct.pack("10f", *range(10)), 10)
    s.publish_frame(h, 1.0)
    clock = time.perf_counter_ns
    get = c.get_latest_frame
    for _ in range(1000):
        f = get()
    assert f is not None
    del f
    out = [0] * n
    for i in range(n):
        t0 = clock()
        f = get()
        del f
        out[i] = clock() - t0
    c.close()
    s.destroy()
    cleanup(name)
    return out


def bench_get_latest_new(shmx, n):
    """get_latest_frame() right after a publish: every call sees a new frame
    (no per-client reuse possible). Only the get is timed."""
    name = uniq("gn")
    s = shmx.Server()
    assert s.create(name, slots=4, streams=small_specs(shmx))
    c = shmx.Client()
    assert c.open(name)
    a, b, d = struct.pack("Q", 1), struct.pack("d", 2.0), struct.pack("10f", *range(10))
    clock = time.perf_counter_ns
    get = c.get_latest_frame
    out = [0] * n
    for i in range(-1000, n):
        h = s.begin_frame()
        s.append_stream(h, 1, a, 1)
        s.append_stream(h, 2, b, 1)
        s.append_stream(h, 3, d, 10)
        s.publish_frame(h, 1.0)
        t0 = clock()
        f = get()
        del f
        if i >= 0:
            out[i] = clock() - t0
    c.close()
    s.destroy()
    cleanup(name)
    return out


def bench_publish_small(shmx, n):
    name = uniq("ps")
    s = shmx.Server()
    assert s.create(name, slots=4, streams=small_specs(shmx))
    a = struct.pack("Q", 1)
    b = struct.pack("d", 2.0)
    d = struct.pack("10f", *range(10))
    clock = time.perf_counter_ns
    begin, append, publish = s.begin_frame, s.append_stream, s.publish_frame
    out = [0] * n
    for i in range(-1000, n):
        t0 = clock()
        h = begin()
        append(h, 1, a, 1)
        append(h, 2, b, 1)
        append(h, 3, d, 10)
        publish(h, 1.0)
        if i >= 0:
            out[i] = clock() - t0
    s.destroy()
    cleanup(name)
    return out


def bench_publish_1m(shmx, n):
    name = uniq("pm")
    s = shmx.Server()
    spec = [shmx.create_stream_spec(1, "blob", shmx.DT_U8, 1, 1)]
    assert s.create(name, slots=3, frame_bytes_cap=MIB + 4096, streams=spec)
    data = os.urandom(MIB)
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(-20, n):
        t0 = clock()
        h = s.begin_frame()
        s.append_stream(h, 1, data, MIB)
        s.publish_frame(h, 1.0)
        if i >= 0:
            out[i] = clock() - t0
    s.destroy()
    cleanup(name)
    return out


def pin_cpu(idx):
    """Pin this process to one CPU (producer and reader on different ones),
    the same for every side; no-op with fewer than 2 CPUs."""
    if os.environ.get("SHMX_BENCH_NOPIN"):
        return
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[idx % len(cpus)]})
    except (AttributeError, OSError):
        pass


def latency_producer(side, name, size, count, interval_ns):
    """Child process: publish `count` stamped frames, then an end marker."""
    pin_cpu(0)
    if side == "shm":
        from multiprocessing import shared_memory
        from multiprocessing import resource_tracker
        shm = shared_memory.SharedMemory(name=name)
        # attaching registers it for unlink at exit (Python < 3.13): undo that
        resource_tracker.unregister(shm._name, "shared_memory")
        buf = shm.buf
        payload = bytes(size - 8)
        print("ready", flush=True)
        sys.stdin.readline()  # reader attached
        for i in range(1, count + 2):
            nxt = time.monotonic_ns() + interval_ns
            stamp = time.monotonic_ns() if i <= count else 0
            struct.pack_into("Q", buf, 16, stamp)
            buf[24:16 + size] = payload
            struct.pack_into("q", buf, 0, i)
            while time.monotonic_ns() < nxt:
                pass
        del buf
        shm.close()
        return
    import shmx
    s = shmx.Server()
    spec = [shmx.create_stream_spec(1, "payload", shmx.DT_U8, 1, 1)]
    assert s.create(name, slots=4, frame_bytes_cap=max(65536, size + 4096), streams=spec)
    payload = bytearray(size)
    print("ready", flush=True)
    sys.stdin.readline()  # reader attached
    for i in range(1, count + 2):
        nxt = time.monotonic_ns() + interval_ns
        struct.pack_into("Q", payload, 0, time.monotonic_ns() if i <= count else 0)
        h = s.begin_frame()
        s.append_stream(h, 1, bytes(payload) if side == "old" else payload, size)
        s.publish_frame(h, float(i))
        while time.monotonic_ns() < nxt:
            pass
    # keep the channel until the reader has seen the end marker
    sys.stdin.readline()
    s.destroy()


def bench_latency(side, size, count, interval_ns, api="dict"):
    name = uniq("lat%d" % size)
    shm = None
    if side == "shm":
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(name=name, create=True, size=16 + size)
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "producer",
                          "--side", side, "--name", name, "--size", str(size),
                          "--count", str(count), "--interval", str(interval_ns)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out = []
    saved = os.sched_getaffinity(0)
    pin_cpu(1)
    try:
        assert p.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        mono = time.monotonic_ns
        if side == "shm":
            buf = shm.buf
            unpack = struct.unpack_from
            last = 0
            p.stdin.write("go\n")
            p.stdin.flush()
            while time.monotonic() < deadline:
                seq = unpack("Q", buf, 0)[0]
                if seq != last:
                    now = mono()
                    last = seq
                    stamp = unpack("Q", buf, 16)[0]
                    if stamp == 0:
                        break
                    out.append(now - stamp)
            del buf
        elif api == "frame":
            # this package's own API: spin on the frame counter, read a Frame
            import shmx
            c = shmx.Client(name)
            p.stdin.write("go\n")
            p.stdin.flush()
            unpack = struct.unpack_from
            last = 0
            while time.monotonic() < deadline:
                if c.frame_seq == last:
                    continue
                f = c.latest_frame()
                if f is None or f.frame_id == last:
                    continue
                now = mono()
                last = f.frame_id
                stamp = unpack("Q", f.raw("payload"), 0)[0]
                if stamp == 0:
                    break
                out.append(now - stamp)
                del f
            c.close()
        else:
            import shmx
            c = shmx.Client()
            assert c.open(name)
            p.stdin.write("go\n")
            p.stdin.flush()
            get = c.get_latest_frame
            unpack = struct.unpack_from
            last = 0
            while time.monotonic() < deadline:
                f = get()
                if f is None:
                    continue
                fid = f["__metadata__"]["frame_id"]
                if fid != last:
                    now = mono()
                    last = fid
                    stamp = unpack("Q", f["payload"]["data"], 0)[0]
                    if stamp == 0:
                        break
                    out.append(now - stamp)
                del f
            c.close()
        p.stdin.write("done\n")
        p.stdin.flush()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if shm is not None:
            shm.close()
            shm.unlink()
        cleanup(name)
        os.sched_setaffinity(0, saved)
    return out


# ---------------------------------------------------------------------------
# multiprocessing.shared_memory side (publish only; get_latest does not apply)
# ---------------------------------------------------------------------------

def shm_publish_small(n):
    from multiprocessing import shared_memory
    shm = shared_memory.SharedMemory(create=True, size=4096)
    buf = shm.buf
    pack = struct.pack_into
    vals = tuple(range(10))
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(-1000, n):
        t0 = clock()
        pack("Q", buf, 8, 1)
        pack("d", buf, 16, 2.0)
        pack("10f", buf, 24, *vals)
        pack("q", buf, 0, i)
        if i >= 0:
            out[i] = clock() - t0
    del buf
    shm.close()
    shm.unlink()
    return out


def shm_publish_1m(n):
    from multiprocessing import shared_memory
    shm = shared_memory.SharedMemory(create=True, size=MIB + 64)
    buf = shm.buf
    data = os.urandom(MIB)
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(-20, n):
        t0 = clock()
        buf[64:64 + MIB] = data
        struct.pack_into("q", buf, 0, i)
        if i >= 0:
            out[i] = clock() - t0
    del buf
    shm.close()
    shm.unlink()
    return out


def run_side(side, quick, only):
    k = 5 if quick else 1
    res = {}
    if only:
        res = {}
        if "lat_64" in only:
            res["lat_64"] = pct(bench_latency(side, 64, 5000 // k, 200_000))
        if "lat_1m" in only:
            res["lat_1m"] = pct(bench_latency(side, MIB, 400 // k, 5_000_000))
        if "lat_64_frame" in only and side == "ours":
            res["lat_64_frame"] = pct(bench_latency(side, 64, 5000 // k, 200_000, "frame"))
        return res
    if side == "shm":
        res["publish_small"] = pct(shm_publish_small(20000 // k))
        res["publish_1m"] = pct(shm_publish_1m(2000 // k))
    else:
        import shmx
        res["version"] = getattr(shmx, "__version__", "?")
        res["get_latest"] = pct(bench_get_latest(shmx, 20000 // k))
        res["get_latest_new"] = pct(bench_get_latest_new(shmx, 20000 // k))
        res["publish_small"] = pct(bench_publish_small(shmx, 20000 // k))
        res["publish_1m"] = pct(bench_publish_1m(shmx, 2000 // k))
    res["lat_64"] = pct(bench_latency(side, 64, 5000 // k, 200_000))
    if side == "ours":
        res["lat_64_frame"] = pct(bench_latency(side, 64, 5000 // k, 200_000, "frame"))
    res["lat_1m"] = pct(bench_latency(side, MIB, 400 // k, 5_000_000))
    return res


# ---------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------

def clean_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the old side must not see this package
    return env


def ensure_old_venv(venv):
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import shmx, sys; sys.exit(0 if shmx.__version__ == '1.0.1' else 1)"]
    if os.path.exists(py) and subprocess.call(probe, cwd="/", env=clean_env(), stderr=subprocess.DEVNULL) == 0:
        return py, None
    print("setting up %s with shmx==1.0.1 from PyPI ..." % venv, file=sys.stderr)
    try:
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", venv])
        pip = [py, "-m", "pip", "install", "-q"]
        subprocess.check_call(pip + ["pybind11", "cmake", "setuptools", "wheel"])
        cmakedir = subprocess.check_output([py, "-m", "pybind11", "--cmakedir"], text=True).strip()
        env = dict(clean_env(), CMAKE_PREFIX_PATH=cmakedir)
        # 1.0.1 is an sdist whose CMake fetches pybind11 from GitHub unless it
        # finds an installed one: point it at the one from PyPI.
        subprocess.check_call(pip + ["--no-build-isolation", "shmx==1.0.1"], env=env)
    except (subprocess.CalledProcessError, OSError) as e:
        return None, "could not install shmx 1.0.1 from PyPI: %s" % e
    if subprocess.call(probe, cwd="/", env=clean_env()) != 0:
        return None, "shmx 1.0.1 installed but does not import"
    return py, None


def run_child(py, side, quick, only=None):
    cmd = [py, os.path.abspath(__file__), "--role", "side", "--side", side]
    if quick:
        cmd.append("--quick")
    if only:
        cmd += ["--only"] + list(only)
    env = clean_env() if side == "old" else dict(os.environ)
    out = subprocess.check_output(cmd, env=env, cwd="/", text=True, timeout=900)
    return json.loads(out.strip().splitlines()[-1])


def fmt_us(ns):
    return "%9.2f" % (ns / 1000.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", default="main", choices=["main", "side", "producer"])
    ap.add_argument("--side", default="ours")
    ap.add_argument("--quick", action="store_true", help="5x fewer samples")
    ap.add_argument("--venv", default=os.path.join(ROOT, ".venv-shmx101"))
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternate the sides this many times; per benchmark "
                         "the round with the lower p50 is kept for the table, "
                         "and ratios are also taken within each round (default 2)")
    ap.add_argument("--only", nargs="*", help="run only these latency benchmarks (lat_64 lat_1m)")
    ap.add_argument("--name")
    ap.add_argument("--size", type=int)
    ap.add_argument("--count", type=int)
    ap.add_argument("--interval", type=int)
    a = ap.parse_args()
    if a.role == "producer":
        latency_producer(a.side, a.name, a.size, a.count, a.interval)
        return 0
    if a.role == "side":
        print(json.dumps(run_side(a.side, a.quick, a.only)))
        return 0

    import shmx
    if getattr(shmx, "__version__", "") != "2.2.0":
        print("this interpreter's shmx is %r, not this project's 2.2.0 (run `make py`"
              " and use .venv/bin/python)" % getattr(shmx, "__version__", None))
        return 2
    results = {"ours": None, "old": None, "shm": None}
    old_py, why = ensure_old_venv(a.venv)
    if not old_py:
        print("old:  NOT MEASURED -- %s" % why)
    sides = [("ours", sys.executable), ("old", old_py), ("shm", sys.executable)]

    def merge(prev, new):
        # keep, per benchmark, the round with the lower p50 (the machine is
        # shared: rounds alternate the sides so load hits them alike)
        if prev is None:
            return new
        for k, v in new.items():
            if isinstance(v, dict) and (k not in prev or v["p50"] < prev[k]["p50"]):
                prev[k] = v
        return prev
    per_round = {"ours": [], "old": [], "shm": []}
    for rnd in range(a.rounds):
        for side, py in sides:
            if py is None:
                continue
            print("round %d: %s (%s)" % (rnd + 1, side, py), file=sys.stderr)
            r = run_child(py, side, a.quick, a.only)
            per_round[side].append(r)
            # merge() replaces entries of the dict it keeps: give it its own
            results[side] = merge(results[side], dict(r))

    def round_ratios(r, other, other_key=None):
        # other p50 / ours p50 within each round: sides measured a minute
        # apart, so the host's slow and fast phases hit both alike
        out = []
        for o, x in zip(per_round["ours"], per_round[other]):
            a_, b_ = o.get(r), x.get(other_key or r)
            if a_ and b_:
                out.append(b_["p50"] / a_["p50"])
        return sorted(out)

    try:
        print("load average at the end: %.2f %.2f %.2f on %d CPUs"
              % (os.getloadavg() + (os.cpu_count(),)))
    except OSError:
        pass
    targets = {"get_latest": 3.0, "publish_small": 2.0, "publish_1m": 5.0, "lat_64": 2.0}
    rows = ["get_latest", "get_latest_new", "publish_small", "publish_1m", "lat_64",
            "lat_64_frame", "lat_1m"]
    print("\nall times in microseconds (best of %d alternating rounds by p50); "
          "ratio = other p50 / ours p50 (higher is better for us), from the best "
          "p50s and per round (median, min-max); targets are judged on the "
          "per-round median" % a.rounds)
    print("%-14s %-5s %9s %9s %9s %8s" % ("benchmark", "side", "p50", "p99", "p99.9", "n"))
    for r in rows:
        for side in ("ours", "old", "shm"):
            st = (results.get(side) or {}).get(r)
            if not st:
                continue
            print("%-14s %-5s %s %s %s %8d" % (r, side, fmt_us(st["p50"]), fmt_us(st["p99"]),
                                              fmt_us(st["p999"]), st["n"]))
    print()
    for r in rows:
        ours = (results.get("ours") or {}).get(r)
        old = (results.get("old") or {}).get(r)
        shm = (results.get("shm") or {}).get(r)
        if not ours:
            continue
        line = "%-14s" % r
        if r == "lat_64_frame":
            old = (results.get("old") or {}).get("lat_64")  # vs 1.0.1's only way
        if ours and old:
            ratio = old["p50"] / ours["p50"]
            line += " vs 1.0.1: %6.2fx (best p50s)" % ratio
            rr = round_ratios(r, "old", "lat_64" if r == "lat_64_frame" else None)
            if rr:
                med = statistics.median(rr)
                line += ", per round median %.2fx (%.2f-%.2f)" % (med, rr[0], rr[-1])
                ratio = med
            if r in targets:
                line += " (target >= %.0fx: %s)" % (targets[r], "met" if ratio >= targets[r] else "MISSED")
        if ours and shm:
            line += "   vs shared_memory: %6.2fx" % (shm["p50"] / ours["p50"])
        print(line)
    if a.json:
        results["per_round"] = per_round
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
