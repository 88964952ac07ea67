"""shmx.bridge -- carry a channel to other machines over ZeroMQ, from Python.

A thin wrapper around the ``shmx bridge`` command-line tool (the C program
does all the work; see docs/bridge.md)::

    import shmx.bridge
    with shmx.bridge.send("cam0", bind="tcp://0.0.0.0:5600", in_order=True) as tx:
        ...                       # tx.stats() -> dict of counters
    # on the other host:
    with shmx.bridge.recv("tcp://camhost:5600", as_name="cam0") as rx:
        c = shmx.Client("cam0")   # frames with the origin's frame_id/sim_time

The tool is found as ``cli=`` or ``$SHMX_CLI`` or ``shmx`` on ``PATH``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["Bridge", "BridgeError", "send", "recv", "keygen", "find_cli"]


class BridgeError(RuntimeError):
    """The bridge tool is missing, refused its arguments or failed to start."""


def find_cli(cli: Optional[str] = None) -> str:
    """Path of the ``shmx`` tool: cli, $SHMX_CLI, or ``shmx`` on PATH."""
    path = cli or os.environ.get("SHMX_CLI") or shutil.which("shmx")
    if not path or not os.access(path, os.X_OK):
        raise BridgeError("the shmx command-line tool was not found: install it "
                          "(meson install, see README) or pass cli= / set SHMX_CLI")
    return path


class Bridge:
    """A running ``shmx bridge send`` or ``recv`` process.

    ``endpoint`` is the address bound or connected (a bind to port ``*``
    reports the port chosen). ``stats()`` returns the newest counters
    (docs/bridge.md lists them); ``stop()`` ends the process cleanly
    (SIGTERM) and returns its final counters. Use it as a context manager.
    """

    def __init__(self, argv: List[str], ready_timeout: float = 15.0,
                 wrap: Sequence[str] = (), env: Optional[Dict[str, str]] = None):
        self.argv = list(wrap) + argv
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self._cond = threading.Condition()
        self._ready: Optional[Dict[str, Any]] = None
        self._last: Optional[Dict[str, Any]] = None
        self._exit: Optional[Dict[str, Any]] = None
        self._stderr: List[str] = []
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + ready_timeout
        with self._cond:
            while self._ready is None:
                left = deadline - time.monotonic()
                if self.process.poll() is not None or left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        if self._ready is None:
            exited = self.process.poll()
            self._kill()
            for t in self._threads:  # all it printed, before we quote it
                t.join(2)
            why = self.error_output() or (
                "exit status %s" % exited if exited is not None
                else "no ready line within %.0f s" % ready_timeout)
            raise BridgeError("shmx bridge did not start: " + why)
        self.role: str = self._ready["role"]
        self.endpoint: str = self._ready["endpoint"]

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                kind = ev.get("event")
                if kind == "ready":
                    self._ready = ev
                elif kind == "stats":
                    self._last = ev
                elif kind == "exit":
                    self._exit = self._last = ev
                self._cond.notify_all()

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._cond:
                self._stderr.append(line.rstrip("\n"))
                del self._stderr[:-200]

    def error_output(self) -> str:
        """What the tool printed on stderr (last 200 lines)."""
        with self._cond:
            return "\n".join(self._stderr)

    @property
    def channel(self) -> str:
        """The local channel (send: read; recv: produced, '' before a schema)."""
        s = self.stats()
        return s.get("channel", "") if s else self._ready.get("channel", "")

    def stats(self) -> Optional[Dict[str, Any]]:
        """The newest counters, or None before the first stats line."""
        with self._cond:
            return dict(self._last) if self._last else None

    def wait_stats(self, pred, timeout: float = 10.0) -> Dict[str, Any]:
        """Block until pred(stats) is true; returns those stats. Raises
        TimeoutError (with the last stats) or BridgeError if the tool exits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._last is not None and pred(self._last):
                    return dict(self._last)
                if self.process.poll() is not None and self._exit is None:
                    raise BridgeError("shmx bridge exited: " + self.error_output())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("bridge stats never matched; last: %r" % (self._last,))
                self._cond.wait(min(left, 0.1))

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> Optional[Dict[str, Any]]:
        """SIGTERM, wait, return the final counters (None if killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        for t in self._threads:
            t.join(2)
        with self._cond:
            return dict(self._exit) if self._exit else None

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to the other side."""
        self._kill()

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self) -> "Bridge":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _common(argv: List[str], hwm, stats_interval, duration, busy_poll_us) -> None:
    argv += ["--json", "--stats-interval", repr(float(stats_interval))]
    if busy_poll_us:
        argv += ["--busy-poll", str(int(busy_poll_us))]
    if hwm is not None:
        argv += ["--hwm", str(int(hwm))]
    if duration is not None:
        argv += ["--duration", repr(float(duration))]


def send(name: str, bind: str, *, in_order: bool = False, compress: Optional[str] = None,
         level: Optional[int] = None, curve_secret: Optional[str] = None,
         hwm: Optional[int] = None, wait: Optional[float] = None,
         stats_interval: float = 1.0, duration: Optional[float] = None,
         busy_poll_us: int = 0, cli: Optional[str] = None, wrap: Sequence[str] = (),
         env: Optional[Dict[str, str]] = None) -> Bridge:
    """Start ``shmx bridge send NAME --bind BIND``; returns once it is bound.
    curve_secret is the path of a secret key file from keygen(). wrap is a
    command prefix (e.g. ["ip", "netns", "exec", "ns1"])."""
    argv = [find_cli(cli), "bridge", "send", name, "--bind", bind]
    if in_order:
        argv.append("--in-order")
    if compress:
        argv += ["--compress", compress]
    if level is not None:
        argv += ["--level", str(int(level))]
    if curve_secret:
        argv += ["--curve-secret", os.fspath(curve_secret)]
    if wait is not None:
        argv += ["--wait", repr(float(wait))]
    _common(argv, hwm, stats_interval, duration, busy_poll_us)
    return Bridge(argv, wrap=wrap, env=env)


def recv(endpoint: str, *, as_name: Optional[str] = None,
         curve_server_public: Optional[str] = None, slots: Optional[int] = None,
         mode: Optional[int] = None, hwm: Optional[int] = None,
         stats_interval: float = 1.0, duration: Optional[float] = None,
         busy_poll_us: int = 0, cli: Optional[str] = None, wrap: Sequence[str] = (),
         env: Optional[Dict[str, str]] = None) -> Bridge:
    """Start ``shmx bridge recv ENDPOINT``: the local channel (as_name, or
    the sender's name) appears when the sender's schema arrives."""
    argv = [find_cli(cli), "bridge", "recv", endpoint]
    if as_name:
        argv += ["--as", as_name]
    if curve_server_public:
        argv += ["--curve-server-public", os.fspath(curve_server_public)]
    if slots is not None:
        argv += ["--slots", str(int(slots))]
    if mode is not None:
        argv += ["--mode", "%o" % int(mode)]
    _common(argv, hwm, stats_interval, duration, busy_poll_us)
    return Bridge(argv, wrap=wrap, env=env)


def keygen(prefix: str, cli: Optional[str] = None) -> tuple:
    """Write a CURVE key pair PREFIX.key (secret, mode 0600) and PREFIX.pub;
    returns (public_path, secret_path)."""
    r = subprocess.run([find_cli(cli), "bridge", "keygen", os.fspath(prefix)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BridgeError(r.stderr.strip() or "keygen failed")
    return os.fspath(prefix) + ".pub", os.fspath(prefix) + ".key"
