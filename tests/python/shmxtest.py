"""Helpers shared by the shmx Python tests (not a test module).

- unique channel names (pid + counter) and a fixture that removes every
  /dev/shm/shmx.<name> a test created, even when the test fails;
- deadline-bounded polling instead of sleeps;
- child processes (subprocess) that run a short script with this interpreter.
"""
import itertools
import os
import subprocess
import sys
import textwrap
import time

import pytest

SANITIZED = bool(os.environ.get("SHMX_SANITIZED"))
SHM_DIR = "/dev/shm"
_counter = itertools.count()


def unique_name(tag="t"):
    return "pyt%s_%d_%d" % (tag, os.getpid(), next(_counter))


def remove_segment(name):
    """Remove a channel's segment and its lock file, whatever they are."""
    for f in ("shmx." + name, ".shmx." + name + ".lock"):
        try:
            os.unlink(os.path.join(SHM_DIR, f))
        except FileNotFoundError:
            pass


class Names:
    """Hands out unique channel names and remembers them for cleanup."""

    def __init__(self):
        self.names = []

    def __call__(self, tag="t"):
        n = unique_name(tag)
        self.names.append(n)
        return n

    def cleanup(self):
        for n in self.names:
            remove_segment(n)


@pytest.fixture
def chan():
    names = Names()
    try:
        yield names
    finally:
        names.cleanup()


def wait_until(pred, timeout=5.0, interval=0.001, what="condition"):
    """Poll pred() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def spawn(script, *args, stdin=None):
    """Start `python -c script args...`; stdout is a pipe (line protocol)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)] + [str(a) for a in args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=child_env(), text=True, bufsize=1)


def readline(proc, timeout=10.0):
    """Read one line from a child's stdout with a deadline."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("child sent nothing within %.1fs" % timeout)
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.poll() is not None else ""
            raise AssertionError("child closed stdout (rc=%s): %s"
                                 % (proc.poll(), err))
        return line.strip()
    finally:
        sel.close()


def finish(proc, timeout=20.0):
    """Wait for a child; kill it on timeout. Returns (rc, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("child timed out: %s" % err)
    return proc.returncode, out, err
