"""bench/bench_async.py still runs and measures what it prints: every case
(asyncio, blocking and epoll readers, and their pipe floors) gives a latency
and a CPU figure from real frames, each shmx case a ratio to its floor, and
no channel is left behind."""
import glob
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "bench", "bench_async.py")
CASES = ["pipe_asyncio_cb", "pipe_asyncio", "shmx_async", "shmx_frames", "pipe_blocking",
         "shmx_wait", "shmx_epoll"]


@pytest.mark.nosan
def test_bench_async_quick_run():
    r = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*(.*)$", line)
        if m:
            rows[m.group(1)] = ([float(m.group(k)) for k in range(2, 6)], m.group(6))
    assert sorted(rows) == sorted(CASES), r.stdout
    for case, ((p50, p99, p999, cpu), extra) in rows.items():
        assert 0 < p50 <= p99 <= p999, (case, r.stdout)
        assert cpu > 0, (case, r.stdout)
        if case.startswith("shmx"):
            assert re.match(r"[\d.]+x, [\d.]+x of pipe_", extra), (case, extra)
    assert not glob.glob("/dev/shm/shmx.bench_async_*")


def test_bench_async_rejects_an_unknown_case():
    r = subprocess.run([sys.executable, BENCH, "--cases", "shmx_frames,nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope" in r.stderr
