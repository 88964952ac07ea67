"""asyncio readers: Client.wait_frame_async, next_frame_async, frames.

Each await registers the client's event fd (Client.fileno()) with the running
loop's selector for as long as it sleeps (loop.add_reader; one registration
shared by every coroutine of the loop sleeping on that client), so one loop
serves any number of channels with no thread per client. A sleeper re-arms at least
every second (arm() heartbeats), so producers that reap by heartbeat age keep
it, and a Client closed meanwhile raises NotOpenError within that second. The
protocol is the C one (shmx_client_arm): arm(), then sleep only if it said
there is nothing to read; a publish racing the arm is never lost. Cancelling an await removes the
fd from the loop and consumes no frame, so an in-order reader loses nothing.
"""
import asyncio
import weakref

from ._shmx import ClosedError


# A sleeping reader re-arms at least this often (seconds): arm() heartbeats,
# so a producer that reaps by heartbeat age sees it alive, and a Client
# closed by another task is noticed (NotOpenError) within this time.
_SLICE = 1.0


def _deadline(loop, timeout, what):
    if timeout is None:
        return None
    try:
        t = float(timeout.__float__())
    except AttributeError:
        raise TypeError("%s: timeout must be a number or None, not %s"
                        % (what, type(timeout).__name__)) from None
    if not t >= 0.0:
        raise ValueError("%s: timeout must be >= 0 or None" % what)
    return loop.time() + t


class _Watch:
    """The registration of one client's event fd with one loop, shared by
    every coroutine of that loop that sleeps on the client: a loop keeps one
    reader callback per fd, so a second add_reader would silently replace
    the first sleeper's, and its remove_reader would leave the first asleep
    until its timer.

    The loop's readiness callback arms on the sleepers' behalf: arm() says
    whether a frame is there, and only then (or with the error arm() raised)
    are they woken. A readiness that brings nothing (another reader's ring,
    a close elsewhere) costs one arm() and no task switch.

    arm() drains the fd only when it finds nothing to read, so the fd that
    woke us is still readable when the loop polls again before the
    coroutine runs, and that poll queues one more callback, which runs
    right after the coroutine's next arm() has drained the fd. So the first
    callback after a drain of a registered fd is skipped. Skipping is always
    safe: the fd is level-triggered and a skip drains nothing, so a ring
    that is really there is reported again at the next poll (one loop
    iteration later). A frame then costs one read(2) of the fd.

    The fd stays registered while any sleeper holds the watch (frames()
    holds one for the whole iteration), except that it is dropped when it
    turns readable while nobody awaits; the last holder to let go removes
    it. A watch belongs to one connection of the client: reopened (a new
    reader id, maybe the same fd number), the client gets a new watch and
    the old one is retired first."""

    def __init__(self, client, loop, ident):
        self.client, self.loop, self.ident = client, loop, ident
        self.fd = ident[0]
        self.pending = []  # sleepers whose futures wait, in arrival order
        self.holders = 0
        self.registered = False
        self.retired = False
        self.skip = False  # skip the next readiness (see above)

    @classmethod
    def acquire(cls, client, loop):
        ident = (client.fileno(), client.reader_id)  # NotOpenError if closed
        per = _watches.get(client)
        w = per.get(loop) if per is not None else None
        if w is not None and w.ident != ident:
            w.retire()
            w = None
        if w is None:
            w = cls(client, loop, ident)
            _watches.setdefault(client, {})[loop] = w
        w.holders += 1
        return w

    def release(self):
        self.holders -= 1
        if self.holders == 0:
            self.retire()

    def retire(self):
        """Remove the registration and the map entry; holders that remain
        (of a connection since closed) see `retired` and acquire anew."""
        self.unregister()
        self.retired = True
        per = _watches.get(self.client)
        if per is not None and per.get(self.loop) is self:
            del per[self.loop]
            if not per:
                del _watches[self.client]

    def register(self):
        if not self.registered:
            self.loop.add_reader(self.fd, self._on_readable)
            self.registered = True

    def unregister(self):
        self.skip = False
        if self.registered:
            self.registered = False
            self.loop.remove_reader(self.fd)

    def _on_readable(self):
        if self.skip:
            self.skip = False
            return
        if not self.pending:  # nobody waits: stop watching until someone does
            self.unregister()
            return
        self.poke()

    def drained(self):
        """arm() just said 0, so it drained the fd: a readiness the loop
        polled before that is stale (a registration made after has none)."""
        self.skip = self.registered

    def poke(self):
        """The fd is readable, or a sleeper's slice ended: arm once, and wake
        every pending sleeper if a frame is there or arm() raised (each then
        reads; those that find nothing newer sleep again)."""
        futs = [s.fut for s in self.pending if not s.fut.done()]
        if not futs:
            return
        try:
            if not self.client.arm():
                return
        except Exception as e:  # ClosedError, ProducerDeadError, NotOpenError, ...
            for f in futs:
                f.set_exception(e)
            return
        for f in futs:
            f.set_result(True)


# Client -> {loop: _Watch}, only while some sleeper holds a watch.
_watches = weakref.WeakKeyDictionary()


class _Sleeper:
    """Sleeps a coroutine on one client in one loop, through the client's
    _Watch there. One timer per sleeper (not one per await) re-arms it at
    least every _SLICE seconds and ends a sleep at its deadline."""

    def __init__(self, client, loop):
        self.client, self.loop = client, loop
        self.watch = _Watch.acquire(client, loop)
        self.fut = None
        self.deadline = None
        self.timer = None
        self.due = 0.0

    def _tick(self):
        self.timer = None
        fut = self.fut
        if fut is None or fut.done():
            return  # not asleep: the next sleep schedules a timer
        self.watch.poke()  # arm() heartbeats, and sees a frame a ring did not bring
        if fut.done():
            return
        if self.deadline is not None and self.due >= self.deadline:
            fut.set_result(False)  # the timer that just ran was the deadline's
        else:
            self._schedule()

    def _schedule(self):
        when = self.loop.time() + _SLICE
        if self.deadline is not None and self.deadline < when:
            when = self.deadline
        if self.timer is not None:
            if self.timer.when() <= when:
                return
            self.timer.cancel()
        self.due = when
        self.timer = self.loop.call_at(when, self._tick)

    def stop(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watch is not None:
            self.watch.release()
            self.watch = None

    async def ready(self, deadline):
        """True once arm() says a frame is there, False at the deadline."""
        if self.client.arm():  # raises ClosedError, ProducerDeadError, ...
            return True
        w = self.watch
        if w.retired:  # the client was reopened: its new connection's watch
            w.release()
            w = self.watch = _Watch.acquire(self.client, self.loop)
        w.drained()
        if deadline is not None and self.loop.time() >= deadline:
            return False
        w.register()
        self.deadline = deadline
        self.fut = self.loop.create_future()
        w.pending.append(self)
        self._schedule()
        try:
            return await self.fut
        finally:
            w.pending.remove(self)
            self.fut = None


async def _await_ready(client, timeout, what):
    loop = asyncio.get_running_loop()
    deadline = _deadline(loop, timeout, what)
    sleeper = _Sleeper(client, loop)  # registers nothing unless it must sleep
    try:
        return await sleeper.ready(deadline)
    finally:
        sleeper.stop()


async def _await_frame(client, timeout, what, get):
    """The frame get() returns once arm() says one is there; None at the timeout."""
    while await _await_ready(client, timeout, what):
        f = get()
        if f is not None:
            return f
    return None


async def wait_frame_async(self, timeout=None):
    """await wait_frame_async(timeout=None) -> Frame | None

    The asyncio form of wait_frame(): sleeps in the running loop (no thread)
    until a frame newer than the last one returned is published, and returns
    the newest. None on timeout. Raises ClosedError / ProducerDeadError /
    ProducerRestartedError when the channel ends."""
    return await _await_frame(self, timeout, "wait_frame_async", self.latest_frame)


async def next_frame_async(self, timeout=None):
    """await next_frame_async(timeout=None) -> Frame | None

    The asyncio form of next_frame(timeout): the next frame in order after the
    last one returned (Frame.dropped counts frames lost before it), waiting
    in the running loop. None on timeout. Cancelling it loses no frame."""
    return await _await_frame(self, timeout, "next_frame_async", self.next_frame)


async def frames(self, in_order=False):
    """async for frame in client.frames(in_order=False)

    Every frame in order (in_order=True; Frame.dropped counts the gaps) or
    the newest one each time the loop gets to it. Ends when the producer
    closes the channel; raises ProducerDeadError etc. like the awaits. The
    event fd stays registered with the loop for the whole iteration."""
    loop = asyncio.get_running_loop()
    get = self.next_frame if in_order else self.latest_frame
    sleeper = None
    try:
        while True:
            try:
                if sleeper is None:
                    sleeper = _Sleeper(self, loop)
                await sleeper.ready(None)  # arms first: no sleep if a frame is there
            except ClosedError:
                if not self.is_open():
                    raise  # closed by us, not by the producer
                return
            f = get()
            if f is not None:
                yield f
    finally:
        if sleeper is not None:
            sleeper.stop()
