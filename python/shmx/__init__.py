"""shmx: zero-copy shared-memory frame streaming between processes.

A drop-in replacement for the Python package shmx 1.0.1 (same classes,
methods, return values and dict shapes) built on the C library libshmx, plus a
Pythonic layer: exceptions, context managers, blocking waits, in-order reads,
Frame objects with typed zero-copy views (numpy.asarray(frame['pos']) gives a
float32 (n, 3) array without copying) and write-side zero copy.

Quick start::

    import shmx
    streams = [shmx.create_stream_spec(1, "pos", shmx.DT_F32, 3, 12)]
    with shmx.Server("demo", streams=streams) as srv:      # raises on failure
        h = srv.begin_frame()
        srv.append_stream(h, 1, positions, len(positions))  # any buffer
        srv.publish_frame(h, sim_time)

    with shmx.Client("demo") as cl:
        frame = cl.wait_frame(timeout=1.0)                   # GIL released
        pos = numpy.asarray(frame["pos"])                    # zero copy

See docs/python.md for the full reference.
"""

from ._shmx import (  # noqa: F401
    # classes
    Server, Client, Inspector, Frame, FrameHandle, View, Recording, Recorder,
    # exceptions
    ShmxError, ChannelNotFoundError, ChannelExistsError, PermissionDeniedError,
    CorruptedError, VersionError, ChecksumError, ClosedError,
    ProducerDeadError, ProducerRestartedError, ReapedError, ReadersFullError,
    ShmxTimeoutError, FrameExpiredError, NoFrameError, InvalidArgumentError,
    InvalidNameError, UnknownStreamError, SizeMismatchError, CapacityError,
    DuplicateError, StateError, NotOpenError, RingFullError, BusyError,
    ShmxOSError,
    # constants
    DT_BOOL, DT_I8, DT_U8, DT_I16, DT_U16, DT_I32, DT_U32, DT_I64, DT_U64,
    DT_F16, DT_BF16, DT_F32, DT_F64,
    LAYOUT_SOA_SCALAR, LAYOUT_AOS_VECTOR,
    TLV_STATIC_DIR, TLV_STATIC_USER, TLV_FRAME_STREAM, TLV_CONTROL_USER,
    VERSION_MAJOR, VERSION_MINOR, NAME_MAX, STREAM_NAME_MAX, LIB_VERSION,
    # functions
    dtype_to_string, layout_to_string, dtype_size, dtype_format, strerror,
    err_name, error_for_code, now_ns, list_channels, remove_channel,
    channel_owner_alive,
)
from . import _shmx as _ext
from . import _aio
from . import _recording

# asyncio readers (shmx/_aio.py): methods of Client, written in Python
Client.wait_frame_async = _aio.wait_frame_async
Client.next_frame_async = _aio.next_frame_async
Client.frames = _aio.frames
# recordings: iteration helpers of Recording, Recorder.record (shmx/_recording.py)
_recording.install(Recording, Recorder)

__version__ = "2.2.0"

# Error codes as module constants: E_NOCHANNEL, E_EXISTS, ..., E_ENOENT, ...
globals().update({k: getattr(_ext, k) for k in dir(_ext) if k.startswith("E_")})


def create_stream_spec(stream_id, name, dtype_code, components, bytes_per_elem,
                       layout_code=None, extra=None):
    """Build a stream specification dict for Server.create() / add_stream().

    stream_id: unique int id; name: unique str (not '__metadata__');
    dtype_code: DT_* constant; components: scalars per element (>= 1);
    bytes_per_elem: bytes of one element (all components); layout_code:
    LAYOUT_* (default scalar); extra: optional opaque bytes.
    Returns the dict shmx 1.0.1 returned ('id', 'name', 'dtype_code',
    'components', 'bytes_per_elem' and, when given, 'layout_code', 'extra').
    """
    spec = {
        "id": stream_id,
        "name": name,
        "dtype_code": dtype_code,
        "components": components,
        "bytes_per_elem": bytes_per_elem,
    }
    if layout_code is not None:
        spec["layout_code"] = layout_code
    if extra is not None:
        spec["extra"] = extra if isinstance(extra, bytes) else bytes(extra)
    return spec


__all__ = [
    "Server", "Client", "Inspector", "Frame", "FrameHandle", "View",
    "Recording", "Recorder", "ShmxError", "ChannelNotFoundError", "ChannelExistsError",
    "PermissionDeniedError", "CorruptedError", "VersionError", "ChecksumError",
    "ClosedError", "ProducerDeadError", "ProducerRestartedError", "ReapedError",
    "ReadersFullError", "ShmxTimeoutError", "FrameExpiredError", "NoFrameError",
    "InvalidArgumentError", "InvalidNameError", "UnknownStreamError",
    "SizeMismatchError", "CapacityError", "DuplicateError", "StateError",
    "NotOpenError", "RingFullError", "BusyError", "ShmxOSError",
    "DT_BOOL", "DT_I8", "DT_U8", "DT_I16", "DT_U16", "DT_I32", "DT_U32",
    "DT_I64", "DT_U64", "DT_F16", "DT_BF16", "DT_F32", "DT_F64",
    "LAYOUT_SOA_SCALAR", "LAYOUT_AOS_VECTOR",
    "TLV_STATIC_DIR", "TLV_STATIC_USER", "TLV_FRAME_STREAM", "TLV_CONTROL_USER",
    "VERSION_MAJOR", "VERSION_MINOR",
    "create_stream_spec", "dtype_to_string", "layout_to_string", "dtype_size",
    "dtype_format", "strerror", "err_name", "error_for_code", "now_ns",
    "list_channels", "remove_channel", "channel_owner_alive", "__version__",
]
