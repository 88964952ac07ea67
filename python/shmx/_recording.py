"""Iteration over a Recording (methods of shmx.Recording, written in Python).

The C type does the work (index look-ups, reads, zero-copy frames); these
walk positions with Recording.step and turn seconds into positions.
"""


def _positions(rec, channel, start, end, reverse):
    n = len(rec)
    if n == 0:
        return
    lo = 0 if start is None else rec.find_time(start)
    hi = n - 1 if end is None else rec.find_time(end)
    if start is not None:  # find_time gives the frame at or before start
        f = rec.read(lo)
        t0 = rec.info["start_ns"] + int(start * 1e9)
        late = f.log_ns < t0
        f.release()
        if late:
            lo += 1
    if lo > hi:
        return
    pos = hi if reverse else lo
    step = -1 if reverse else 1
    if channel is not None and rec.read(pos).channel != channel:
        pos = rec.step(pos, step, channel)
    while pos is not None and lo <= pos <= hi:
        yield pos
        pos = rec.step(pos, step, channel)


def frames(self, channel=None, start=None, end=None, reverse=False):
    """Iterate over the recording's frames as Frame objects.

    channel: only frames of this channel (name); start, end: seconds after
    the first frame (inclusive); reverse: last frame first. Each Frame holds
    its bytes until released or garbage collected.
    """
    for pos in _positions(self, channel, start, end, reverse):
        yield self.read(pos)


def __iter__(self):
    return frames(self)


def __reversed__(self):
    return frames(self, reverse=True)


@property
def duration(self):
    """Seconds between the first and the last frame's log times."""
    i = self.info
    return (i["end_ns"] - i["start_ns"]) / 1e9 if i["frames"] else 0.0


def record(self, duration=None, frames=None):
    """Record for `duration` seconds (None: until stop()) or until `frames`
    frames were recorded in all, then return (the file stays open; close()
    or the with block finishes it)."""
    self.run(timeout=duration, max_frames=frames or 0)


def install(Recording, Recorder):
    Recording.frames = frames
    Recording.__iter__ = __iter__
    Recording.__reversed__ = __reversed__
    Recording.duration = duration
    Recorder.record = record
