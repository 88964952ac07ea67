"""The peer benchmark's harness (bench/bench_peers.py) measures what it says:
every case it can run gives latency samples and a rate from real messages,
shmx never delivers a torn one, and a peer it cannot install is reported
with the reason rather than left out. The peers themselves come from PyPI
under `make bench-peers`; this runs only the cases this venv has."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "bench", "bench_peers.py")
OURS = ["shmx/spin", "shmx/wait", "shmx/dict", "shm/seqlock", "shm/fifo"]


@pytest.mark.nosan
def test_harness_measures_every_local_case(tmp_path):
    out = tmp_path / "peers.jsonl"
    r = subprocess.run(
        [sys.executable, BENCH, "--quick", "--rounds", "1", "--sizes", "64,64K",
         "--seconds", "0.3", "--cases", ",".join(OURS + ["zmq/ipc"]), "--no-pin",
         "--venv-peers", "/proc/no-such-dir/venv", "--json", str(out)],
        capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    runs = [x for x in lines if "case" in x]
    assert {(x["case"], x["size"], x["mode"]) for x in runs} == {
        (c, s, m) for c in OURS for s in (64, 65536) for m in ("latency", "throughput")}
    for x in runs:
        assert x["recv"] > 0, x
        assert x["sent"] >= x["last"] > 0, x
        # every sequence number up to the last one seen is received or counted
        # as dropped (latest-value readers drop on a loaded machine)
        assert x["recv"] + x["drops"] == x["last"], x
        if x["mode"] == "latency":
            assert x["lat"]["n"] == x["recv"] and x["lat"]["p50"] > 0, x
        else:
            assert x["rate"] > 0, x
        if x["case"] != "shm/fifo":     # the one case without a protocol
            assert x["torn"] == 0 and x["stale"] == 0, x
    # the peer that could not be installed is named with its reason
    summary = lines[-1]
    assert any(k.startswith("zmq/ipc") and "virtual environment" in v
               for k, v in summary["errors"].items()), summary
    assert "not measured:" in r.stdout and "zmq/ipc" in r.stdout
    assert "shmx/spin" in r.stdout and "latency, us" in r.stdout
