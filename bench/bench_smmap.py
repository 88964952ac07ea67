#!/usr/bin/env python3
"""Benchmark shmx.smmap against smmap (PyPI) and plain mmap.

Workloads, all through SlidingWindowMapBuffer (plain mmap: the mmap object)
on one 64 MiB file of random bytes:
  index1   random 1-byte indexing          (timed in batches of 64, per op)
  slice4k  random 4 KiB slices, each turned into bytes (a copy on every side)
  seq64k   sequential scan in 64 KiB slices, each turned into bytes
  slice4k-view, seq64k-view
           the same slices used as handed out: the consumer reads the last
           byte (a view must be usable) and copies nothing. shmx and smmap
           may hand out views of the mapping; plain mmap is sliced through
           one memoryview of the mmap (mmap's own slices are copies)
Configurations:
  remap    window 1 MiB, memory limit 8 MiB: most random accesses remap
  whole    defaults (1 GiB windows, 8 GiB limit): the whole file stays mapped

Prints p50/p99/p99.9 latency per operation (ns) and same-run ratios.
"shmx" is the default buffer; "shmx-maponly" sets adaptive_reads = False, so
every miss maps a window (no pread fallback) as smmap does.
The smmap column needs the PyPI package: it is imported if installed,
otherwise installed with pip into .venv-smmap/site (next to the repo's
.venv); if that fails the column is skipped with a message.

  .venv/bin/python bench/bench_smmap.py [--quick] [--size-mib N]
"""
import argparse
import gc
import mmap
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMMAP_SITE = os.path.join(ROOT, ".venv-smmap", "site")


def load_pypi_smmap():
    """Return the PyPI smmap package, or (None, reason)."""
    def try_import():
        try:
            import smmap  # noqa: F401
            import smmap.buf  # noqa: F401
            import smmap.mman  # noqa: F401
            return smmap
        except ImportError:
            return None

    m = try_import()
    if m is not None:
        return m, "installed (%s)" % m.__version__
    if not os.path.isdir(SMMAP_SITE):
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target",
                            SMMAP_SITE, "smmap>=5,<6"], capture_output=True, text=True)
        if r.returncode != 0:
            return None, "pip install smmap failed: " + r.stderr.strip()[-300:]
    sys.path.insert(0, SMMAP_SITE)
    m = try_import()
    if m is None:
        return None, "smmap not importable from " + SMMAP_SITE
    return m, "from %s (%s)" % (SMMAP_SITE, m.__version__)


WORKLOADS = ("index1", "slice4k", "seq64k", "slice4k-view", "seq64k-view")


def pct(samples, q):
    s = sorted(samples)
    i = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[i]


def run_index1(get, offsets, batch=64):
    out = []
    clock = time.perf_counter_ns
    for i in range(0, len(offsets) - batch + 1, batch):
        chunk = offsets[i:i + batch]
        t0 = clock()
        for o in chunk:
            get[o]
        out.append((clock() - t0) / batch)
    return out


def run_slices(get, starts, n):
    out = []
    clock = time.perf_counter_ns
    for a in starts:
        t0 = clock()
        bytes(get[a:a + n])  # the bytes themselves: smmap may hand out a lazy view
        out.append(clock() - t0)
    return out


def run_slice_views(get, starts, n):
    out = []
    clock = time.perf_counter_ns
    for a in starts:
        t0 = clock()
        get[a:a + n][-1]  # use the slice as handed out; copy nothing
        out.append(clock() - t0)
    return out


def bench_one(make, workload, offsets, starts, size, passes):
    gc.collect()
    gc.disable()
    try:
        obj, close = make()
        try:
            if workload == "index1":
                return run_index1(obj, offsets)
            run = run_slice_views if workload.endswith("-view") else run_slices
            if workload.startswith("slice4k"):
                return run(obj, starts, 4096)
            seq = list(range(0, size, 65536)) * passes
            return run(obj, seq, 65536)
        finally:
            close()
    finally:
        gc.enable()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="fewer operations")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    import shmx.smmap as ours

    pypi, how = load_pypi_smmap()
    if pypi is not None and getattr(pypi, "__file__", "").startswith(
            os.path.dirname(ours.__file__)):
        pypi, how = None, "import smmap resolved to shmx.smmap"
    print("smmap (PyPI):", how if pypi else "SKIPPED - " + how)

    size = args.size_mib << 20
    nops = 20000 if args.quick else 100000
    passes = 1 if args.quick else 3
    rnd = random.Random(args.seed)
    offsets = [rnd.randrange(size) for _ in range(nops)]
    starts = [rnd.randrange(size - 4096) for _ in range(nops // 4)]

    tmpdir = tempfile.mkdtemp(prefix="shmx-bench-smmap-")
    path = os.path.join(tmpdir, "data.bin")
    try:
        with open(path, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        with open(path, "rb") as f:  # page cache warm for everyone
            while f.read(1 << 24):
                pass

        configs = {
            "remap": dict(window_size=1 << 20, max_memory_size=8 << 20),
            "whole": dict(),
        }

        def maker(mod, cfg, adaptive=True):
            def make():
                man = mod.mman.SlidingWindowMapManager(**cfg)
                buf = mod.buf.SlidingWindowMapBuffer(man.make_cursor(path))
                if not adaptive:
                    buf.adaptive_reads = False

                def close():
                    buf.end_access()
                    man.collect()
                return buf, close
            return make

        def make_mmap(view=False):
            f = open(path, "rb")
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            mv = memoryview(m) if view else None

            def close():
                if mv is not None:
                    mv.release()
                m.close()
                f.close()
            return (mv if view else m), close

        import shmx.smmap.buf  # noqa: F401
        import shmx.smmap.mman  # noqa: F401
        impls = [("shmx", lambda cfg: maker(ours, cfg)),
                 ("shmx-maponly", lambda cfg: maker(ours, cfg, adaptive=False))]
        if pypi is not None:
            impls.append(("smmap", lambda cfg: maker(pypi, cfg)))

        results = {}
        for workload in WORKLOADS:
            for cname, cfg in configs.items():
                for iname, mk in impls:
                    results[(workload, cname, iname)] = bench_one(
                        mk(cfg), workload, offsets, starts, size, passes)
            view = workload.endswith("-view")
            results[(workload, "-", "mmap")] = bench_one(
                lambda: make_mmap(view), workload, offsets, starts, size, passes)

        print()
        print("file %d MiB, %d random ops, seq scan x%d; ns per operation"
              % (args.size_mib, nops, passes))
        print()
        print("| workload | config | impl | p50 | p99 | p99.9 |")
        print("|---|---|---|---:|---:|---:|")
        for (w, c, i), s in results.items():
            print("| %s | %s | %s | %.0f | %.0f | %.0f |"
                  % (w, c, i, pct(s, .5), pct(s, .99), pct(s, .999)))
        print()
        print("| workload | smmap/shmx p50 (remap) | smmap/shmx p50 (whole) "
              "| shmx/mmap p50 (whole) | shmx/mmap mean (whole) |")
        print("|---|---:|---:|---:|---:|")
        for w in WORKLOADS:
            def p50(c, i):
                return pct(results[(w, c, i)], .5)

            def mean(c, i):
                s = results[(w, c, i)]
                return sum(s) / len(s)
            sr = "%.1fx" % (p50("remap", "smmap") / p50("remap", "shmx")) if pypi else "n/a"
            sw = "%.1fx" % (p50("whole", "smmap") / p50("whole", "shmx")) if pypi else "n/a"
            print("| %s | %s | %s | %.2f | %.2f |" % (
                w, sr, sw, p50("whole", "shmx") / p50("-", "mmap"),
                mean("whole", "shmx") / mean("-", "mmap")))
        if pypi is not None:
            print()
            print("| workload | smmap/shmx mean (remap) | smmap/shmx-maponly p50 (remap) "
                  "| smmap/shmx-maponly mean (remap) |")
            print("|---|---:|---:|---:|")
            for w in WORKLOADS:
                a = results[(w, "remap", "smmap")]
                b = results[(w, "remap", "shmx")]
                m = results[(w, "remap", "shmx-maponly")]
                print("| %s | %.1fx | %.1fx | %.1fx |" % (
                    w, (sum(a) / len(a)) / (sum(b) / len(b)), pct(a, .5) / pct(m, .5),
                    (sum(a) / len(a)) / (sum(m) / len(m))))
    finally:
        try:
            os.unlink(path)
        finally:
            os.rmdir(tmpdir)


if __name__ == "__main__":
    main()
