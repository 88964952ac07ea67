"""Names, ownership and planted files through the CLI and the Python API
(issue 11, items 1 and 3): real processes, another uid where it is about
another user (the account `make test` creates, else nobody), deadlines on
every call so that a hang fails instead of hanging the suite."""
import os
import pwd
import subprocess
import sys

import pytest

import shmx
from shmxtest import chan, remove_segment, SHM_DIR  # noqa: F401
from test_cli import CLI, cli_env, run

STALE = r"""
import os, sys, shmx
s = shmx.Server(sys.argv[1], streams=[shmx.create_stream_spec(1, "x", shmx.DT_U8, 1, 1)])
h = s.begin_frame(); s.append_stream(h, 1, b"\x01", 1); s.publish_frame(h, 0.0)
os._exit(0)  # no destroy: the segment stays, its producer is gone
"""


def make_stale(name):
    subprocess.run([sys.executable, "-c", STALE, name], check=True, timeout=30)
    assert not shmx.channel_owner_alive(name)


def other_uid():
    for n in ("shmx-other", "nobody"):
        try:
            pw = pwd.getpwnam(n)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    return 65534, 65534


def test_cli_rm_stale_racing_a_restart_never_removes_the_new_producer(chan):
    """`shmx rm --stale` racing a producer restart on a stale name: before,
    it unlinked the new, live segment in 16 of 40 rounds."""
    rounds, lost, removed_first = 40, 0, 0
    specs = [shmx.create_stream_spec(1, "x", shmx.DT_U8, 1, 1)]
    for _ in range(rounds):
        name = chan("rmrace")
        make_stale(name)
        rm = subprocess.Popen([CLI, "rm", "--stale", name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cli_env())
        srv = shmx.Server(name, streams=specs)  # the restart, racing rm
        try:
            out, err = rm.communicate(timeout=30)
            removed_first += "removed" in out
            sid = srv.get_header_info()["session_id"]
            c = shmx.Client()
            ok = c.open(name)
            if not ok or c.get_header_info()["session_id"] != sid:
                lost += 1
            if ok:
                c.close()
        finally:
            srv.destroy()
        assert not os.path.exists(os.path.join(SHM_DIR, "shmx." + name))
    print(f"rm --stale vs restart: {rounds} rounds, rm removed the stale one first "
          f"{removed_first}, live segments lost {lost}")
    assert lost == 0


@pytest.fixture
def planted_fifo(chan):
    """A FIFO at /dev/shm/shmx.NAME made by another user (root: a real other
    uid; otherwise our own, which is the same to open())."""
    name = chan("fifo")
    path = os.path.join(SHM_DIR, "shmx." + name)
    uid, gid = other_uid()

    pid = os.fork()
    if pid == 0:  # the other user makes it
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            os.mkfifo(path, 0o666)
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    yield name
    remove_segment(name)


def test_cli_never_blocks_on_a_planted_fifo(planted_fifo):
    name = planted_fifo
    r = run("ls", timeout=10)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith(name)]
    assert line and "not a channel" in line[0] and "FIFO" in line[0], r.stdout
    r = run("ls", "--json", timeout=10)
    import json
    ent = [c for c in json.loads(r.stdout)["channels"] if c["name"] == name][0]
    assert ent["status"] == "not a channel" and ent["file_type"] == "FIFO"
    r = run("inspect", name, timeout=10)
    assert r.returncode != 0 and "is a FIFO, not a channel file" in r.stderr
    r = run("rm", name, timeout=10)
    assert r.returncode != 0 and "FIFO" in r.stderr
    r = run("rm", "--stale", name.split("-")[0] + "*", timeout=10)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(SHM_DIR, "shmx." + name))  # not ours to remove


def test_python_never_blocks_on_a_planted_fifo(planted_fifo):
    name = planted_fifo
    # in a child with a deadline: a blocking open would hang it, not us
    code = r"""
import sys, shmx
name = sys.argv[1]
c = shmx.Client()
assert c.open(name) is False
assert isinstance(c.last_error, shmx.CorruptedError), repr(c.last_error)
assert "FIFO" in str(c.last_error)
try:
    shmx.Inspector(name)
except shmx.CorruptedError as e:
    assert "FIFO" in str(e)
else:
    raise SystemExit("Inspector opened a FIFO")
s = shmx.Server()
assert s.create(name, streams=[shmx.create_stream_spec(1, "x", shmx.DT_U8, 1, 1)]) is False
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code, name], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
