"""Each example of the shmx 1.0.1 README, adapted into a bounded test: the
code is the README's (same calls, same return-value checks), with the
endless loops and sleeps replaced by a fixed number of iterations and state
checks, and channel names made unique."""
import multiprocessing as mp
import struct
import time

import pytest

import shmx
from shmxtest import chan  # noqa: F401

np = pytest.importorskip("numpy")


def test_quick_start_producer_consumer(chan):
    name = chan()
    streams = [
        shmx.create_stream_spec(stream_id=1, name="frame_id", dtype_code=shmx.DT_U64,
                                components=1, bytes_per_elem=8),
        shmx.create_stream_spec(stream_id=2, name="timestamp", dtype_code=shmx.DT_F64,
                                components=1, bytes_per_elem=8),
        shmx.create_stream_spec(stream_id=3, name="data", dtype_code=shmx.DT_F32,
                                components=1, bytes_per_elem=4),
    ]
    server = shmx.Server()
    assert server.create(name=name, slots=4, reader_slots=16, static_bytes_cap=4096,
                         frame_bytes_cap=65536, control_per_reader=4096,
                         streams=streams)
    assert isinstance(server.get_header_info(), dict)
    client = shmx.Client()
    assert client.open(name)
    assert len(client.get_streams_info()) == 3
    got = 0
    for i in range(100):
        frame = server.begin_frame()
        server.append_stream(frame, 1, struct.pack('Q', i), 1)
        server.append_stream(frame, 2, struct.pack('d', time.time()), 1)
        server.append_stream(frame, 3, struct.pack('10f', *range(10)), 10)
        server.publish_frame(frame, time.time())
        frame = client.get_latest_frame()
        if frame is not None:
            metadata = frame['__metadata__']
            assert metadata['frame_id'] == i + 1
            frame_id = struct.unpack('Q', frame['frame_id']['data'])[0]
            timestamp = struct.unpack('d', frame['timestamp']['data'])[0]
            assert frame_id == i and timestamp > 0
            got += 1
    assert got == 100
    client.close()
    server.destroy()


def test_example1_video_frames(chan):
    name = chan()
    streams = [
        shmx.create_stream_spec(1, "width", shmx.DT_U32, 1, 4),
        shmx.create_stream_spec(2, "height", shmx.DT_U32, 1, 4),
        shmx.create_stream_spec(3, "pixels", shmx.DT_U8, 1, 1),
    ]
    width, height = 320, 240  # README: 1920x1080; smaller keeps the test fast
    server = shmx.Server()
    assert server.create(name, slots=4, frame_bytes_cap=width * height * 3 + 1024,
                         streams=streams)
    client = shmx.Client()
    client.open(name)
    for frame_num in range(10):
        pixels = np.random.randint(0, 255, (height, width, 3), dtype=np.uint8)
        frame = server.begin_frame()
        server.append_stream(frame, 1, width.to_bytes(4, 'little'), 1)
        server.append_stream(frame, 2, height.to_bytes(4, 'little'), 1)
        server.append_stream(frame, 3, pixels.tobytes(), width * height * 3)
        server.publish_frame(frame, time.time())
        frame = client.get_latest_frame()
        assert frame
        w = int.from_bytes(frame['width']['data'], 'little')
        h = int.from_bytes(frame['height']['data'], 'little')
        view = np.frombuffer(frame['pixels']['data'], dtype=np.uint8).reshape((h, w, 3))
        assert np.array_equal(view, pixels)
        assert frame['__metadata__']['frame_id'] == frame_num + 1
    server.destroy()
    client.close()


def test_example2_sensors_with_control(chan):
    name = chan()
    CTRL_SET_RATE, CTRL_RESET = 0x1001, 0x1002
    streams = [
        shmx.create_stream_spec(1, "temperature", shmx.DT_F32, 1, 4),
        shmx.create_stream_spec(2, "pressure", shmx.DT_F32, 1, 4),
        shmx.create_stream_spec(3, "humidity", shmx.DT_F32, 1, 4),
    ]
    server = shmx.Server()
    server.create(name, streams=streams)
    client = shmx.Client()
    client.open(name)
    assert len(client.get_streams_info()) == 3
    client.send_control(CTRL_SET_RATE, struct.pack('f', 100.0))
    client.send_control_empty(CTRL_RESET)
    rate, resets = 10.0, 0
    for i in range(20):
        for msg in server.poll_control():
            if msg['type'] == CTRL_SET_RATE:
                rate = struct.unpack('f', msg['data'])[0]
            elif msg['type'] == CTRL_RESET:
                resets += 1
        frame = server.begin_frame()
        server.append_stream(frame, 1, struct.pack('f', 25.0 + i * 0.1), 1)
        server.append_stream(frame, 2, struct.pack('f', 1013.25 + i * 0.01), 1)
        server.append_stream(frame, 3, struct.pack('f', 45.0 + i * 0.05), 1)
        server.publish_frame(frame, time.time())
        readers = server.snapshot_readers()
        assert len([r for r in readers if r['in_use']]) == 1
        frame = client.get_latest_frame()
        temp = struct.unpack('f', frame['temperature']['data'])[0]
        assert abs(temp - (25.0 + i * 0.1)) < 1e-3
    assert rate == 100.0 and resets == 1
    client.close()
    server.destroy()


def test_example3_numpy_particles(chan):
    name = chan()
    streams = [
        shmx.create_stream_spec(1, "positions", shmx.DT_F32, 3, 12),
        shmx.create_stream_spec(2, "velocities", shmx.DT_F32, 3, 12),
        shmx.create_stream_spec(3, "ids", shmx.DT_U32, 1, 4),
    ]
    server = shmx.Server()
    server.create(name, frame_bytes_cap=1024 * 1024, streams=streams)
    client = shmx.Client()
    client.open(name)
    num_particles = 1000
    for i in range(20):
        positions = np.random.randn(num_particles, 3).astype(np.float32)
        velocities = np.random.randn(num_particles, 3).astype(np.float32)
        ids = np.arange(num_particles, dtype=np.uint32)
        frame = server.begin_frame()
        server.append_stream(frame, 1, positions.tobytes(), num_particles)
        server.append_stream(frame, 2, velocities.tobytes(), num_particles)
        server.append_stream(frame, 3, ids.tobytes(), num_particles)
        server.publish_frame(frame, i * 0.01)
        frame_data = client.get_latest_frame()
        assert frame_data
        pos_array = np.frombuffer(frame_data['positions']['data'], dtype=np.float32).reshape(-1, 3)
        vel_array = np.frombuffer(frame_data['velocities']['data'], dtype=np.float32).reshape(-1, 3)
        assert len(pos_array) == num_particles
        assert np.array_equal(pos_array, positions) and np.array_equal(vel_array, velocities)
        # ours: the typed view needs no reshape and no copy
        typed = np.asarray(frame_data['positions']['array'])
        assert typed.shape == (num_particles, 3) and np.shares_memory(typed, pos_array)
    server.destroy()
    client.close()


def test_example4_inspector(chan):
    name = chan()
    server = shmx.Server()
    server.create(name, streams=[shmx.create_stream_spec(1, "x", shmx.DT_F32, 1, 4)])
    client = shmx.Client()
    client.open(name)
    h = server.begin_frame()
    server.append_stream(h, 1, struct.pack('f', 1.0), 1)
    server.publish_frame(h, 0.0)
    inspector = shmx.Inspector()
    assert inspector.open(name)
    report = inspector.inspect()
    assert report['frame_seq'] == 1 and report['readers_connected'] == 1
    assert report['static_gen'] >= 1 and report['session_id'] != 0
    for stream in report['streams']:
        assert stream['dtype'] == 'float32' and stream['components'] == 1
        assert stream['layout'] == 'scalar' and stream['bytes_per_elem'] == 4
    in_use = [r for r in report['readers'] if r['in_use']]
    assert len(in_use) == 1
    assert set(in_use[0]) >= {'reader_id', 'last_frame_seen', 'heartbeat'}
    inspector.close()
    assert not shmx.Inspector().open(name + "_missing")
    client.close()
    server.destroy()


def _producer_process(name, started, stop):
    streams = [
        shmx.create_stream_spec(1, "counter", shmx.DT_U64, 1, 8),
        shmx.create_stream_spec(2, "value", shmx.DT_F64, 1, 8),
    ]
    server = shmx.Server()
    assert server.create(name, streams=streams)
    started.set()
    i = 0
    while not stop.is_set() and i < 100000:
        frame = server.begin_frame()
        server.append_stream(frame, 1, struct.pack('Q', i), 1)
        server.append_stream(frame, 2, struct.pack('d', i * 3.14), 1)
        server.publish_frame(frame, time.time())
        i += 1
        stop.wait(0.001)
    server.destroy()


def _consumer_process(name, started, q):
    assert started.wait(30)
    client = shmx.Client()
    if not client.open(name):
        q.put(-1)
        return
    count = 0
    while count < 20:
        frame = client.wait_frame(timeout=10)  # instead of sleep-polling
        assert frame is not None
        counter = struct.unpack('Q', frame['counter'])[0]
        value = struct.unpack('d', frame['value'])[0]
        assert value == counter * 3.14
        count += 1
    client.close()
    q.put(count)


def test_example5_multi_process(chan):
    name = chan()
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    q = ctx.Queue()
    producer = ctx.Process(target=_producer_process, args=(name, started, stop))
    producer.start()
    consumers = [ctx.Process(target=_consumer_process, args=(name, started, q))
                 for _ in range(3)]
    for c in consumers:
        c.start()
    try:
        counts = [q.get(timeout=60) for _ in consumers]
    finally:
        stop.set()
        for p in consumers + [producer]:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert counts == [20, 20, 20]
    assert producer.exitcode == 0


def test_schema_evolution_snippet(chan):
    name = chan()
    server = shmx.Server()
    server.create(name, streams=[shmx.create_stream_spec(1, "a", shmx.DT_U8, 1, 1)])
    client = shmx.Client()
    client.open(name)
    server.write_static_append(b"extra_metadata", len(b"extra_metadata"))
    assert client.refresh_static()
    streams = client.get_streams_info()
    assert [s['name'] for s in streams] == ['a']
    assert client.get_header_info()['static_gen'] == server.get_header_info()['static_gen']
    client.close()
    server.destroy()
