"""asyncio readers: Client.wait_frame_async, next_frame_async, frames.

Each await registers the client's event fd (Client.fileno()) with the running
loop's selector for as long as it sleeps (loop.add_reader), so one loop serves
any number of channels with no thread per client. A sleeper re-arms at least
every second (arm() heartbeats), so producers that reap by heartbeat age keep
it, and a Client closed meanwhile raises NotOpenError within that second. The
protocol is the C one (shmx_client_arm): arm(), then sleep only if it said
there is nothing to read; a publish racing the arm is never lost. Cancelling an await removes the
fd from the loop and consumes no frame, so an in-order reader loses nothing.
"""
import asyncio

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


class _Sleeper:
    """Sleeps a coroutine on one client's event fd in one loop.

    The loop's readiness callback arms on the coroutine's behalf: arm()
    says whether a frame is there, and only then (or with the error arm()
    raised) is the coroutine woken. A readiness that brings nothing (another
    reader's ring, a close elsewhere) costs one arm() and no task switch.

    arm() drains the fd only when it finds nothing to read, so the fd that
    woke us is still readable when the loop polls again before the
    coroutine runs, and that poll queues one more callback, which runs
    right after the coroutine's next arm() has drained the fd. So the first
    callback after a drain of a registered fd is skipped. Skipping is always
    safe: the fd is level-triggered and a skip drains nothing, so a ring
    that is really there is reported again at the next poll (one loop
    iteration later). A frame then costs one read(2) of the fd.

    The fd stays registered with the loop between awaits (frames() makes
    many), and is dropped when it turns readable while nobody awaits. One
    timer per sleeper (not one per await) re-arms a sleeper at least every
    _SLICE seconds and ends a sleep at its deadline."""

    def __init__(self, client, loop):
        self.client, self.loop = client, loop
        self.fd = client.fileno()
        self.fut = None
        self.deadline = None
        self.timer = None
        self.due = 0.0
        self.watching = False
        self.skip = False  # skip the next readiness (see the class doc)

    def _on_readable(self):
        if self.skip:
            self.skip = False
            return
        self._poke()

    def _poke(self):
        """The fd is readable, or a slice ended: arm, and wake the sleeper
        if a frame is there or arm() raised."""
        fut = self.fut
        if fut is None:  # nobody waits: stop watching until someone does
            self.stop()
            return
        if fut.done():
            return
        try:
            if self.client.arm():
                fut.set_result(True)
        except Exception as e:  # ClosedError, ProducerDeadError, NotOpenError, ...
            fut.set_exception(e)

    def _tick(self):
        self.timer = None
        fut = self.fut
        if fut is None or fut.done():
            return  # not asleep: the next sleep schedules a timer
        self._poke()  # arm() heartbeats, and sees a frame a ring did not bring
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
        self.skip = False
        if self.watching:
            self.watching = False
            self.loop.remove_reader(self.fd)

    async def ready(self, deadline):
        """True once arm() says a frame is there, False at the deadline."""
        if self.client.arm():  # raises ClosedError, ProducerDeadError, ...
            return True
        # arm() said 0, so it drained: a readiness the loop polled before
        # that is stale (a fresh registration below has none)
        self.skip = self.watching
        if deadline is not None and self.loop.time() >= deadline:
            return False
        if not self.watching:
            self.loop.add_reader(self.fd, self._on_readable)
            self.watching = True
        self.deadline = deadline
        self.fut = self.loop.create_future()
        self._schedule()
        try:
            return await self.fut
        finally:
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
