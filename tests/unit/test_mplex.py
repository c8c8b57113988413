"""mplex tests: the sans-I/O engine back to back, and the asyncio adapter over memory pipes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.core.interfaces import Direction, MuxedConnection, MuxedStream
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.exceptions import (
    ConnectionClosed,
    MessageTooLarge,
    ProtocolViolation,
    StreamClosed,
    StreamReset,
)
from aiolibp2p.muxers.mplex import MplexConfig, MplexEngine, MplexMuxer, MplexSession, StreamKey
from aiolibp2p.muxers.mplex.engine import (
    DataReceived,
    MplexEvent,
    ProtocolError,
    StreamEOF,
    StreamOpened,
    StreamResetEvent,
)
from aiolibp2p.transports.memory.pipe import memory_pipe_pair
from aiolibp2p.wire.varint import encode_uvarint


def frame(sid: int, flag: int, payload: bytes = b"") -> bytes:
    return encode_uvarint(sid << 3 | flag) + encode_uvarint(len(payload)) + payload


def move(src: MplexEngine, dst: MplexEngine) -> list[MplexEvent]:
    return dst.receive_data(bytes(src.data_to_send()))


def data_of(events: list[MplexEvent], key: StreamKey) -> bytes:
    return b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived) and e.key == key)


# --- engine --------------------------------------------------------------------------------------------


def test_wire_format_matches_the_spec() -> None:
    a = MplexEngine()
    key = a.open_stream(b"name")
    a.send_data(key, b"hi")
    a.send_close(key)
    assert bytes(a.data_to_send()) == frame(0, 0, b"name") + frame(0, 2, b"hi") + frame(0, 4)


def test_both_sides_may_use_the_same_numeric_id() -> None:
    a, b = MplexEngine(), MplexEngine()
    ka = a.open_stream()
    kb = b.open_stream()
    assert ka.id == kb.id == 0
    eb = move(a, b)
    ea = move(b, a)
    assert eb == [StreamOpened(StreamKey(0, False), b"0")]
    assert ea == [StreamOpened(StreamKey(0, False), b"0")]
    a.send_data(ka, b"from a's stream")
    a.send_data(StreamKey(0, False), b"answer on b's stream")
    eb = move(a, b)
    assert data_of(eb, StreamKey(0, False)) == b"from a's stream"
    assert data_of(eb, StreamKey(0, True)) == b"answer on b's stream"


def test_close_and_reset_semantics() -> None:
    a, b = MplexEngine(), MplexEngine()
    k = a.open_stream()
    move(a, b)
    rk = StreamKey(k.id, False)
    a.send_close(k)
    assert move(a, b) == [StreamEOF(rk)]
    b.send_data(rk, b"still open this way")
    assert data_of(move(b, a), k) == b"still open this way"
    b.send_close(rk)
    assert move(b, a) == [StreamEOF(k)]
    assert a.num_streams == 0 and b.num_streams == 0
    k2 = a.open_stream()
    move(a, b)
    b.send_reset(StreamKey(k2.id, False))
    assert move(b, a) == [StreamResetEvent(k2)]
    with pytest.raises(StreamClosed):
        a.send_data(k2, b"x")


def test_large_writes_are_split_into_max_size_messages() -> None:
    a, b = MplexEngine(MplexConfig(max_message_size=1000)), MplexEngine(MplexConfig(max_message_size=1000))
    k = a.open_stream()
    a.send_data(k, bytes(2500))
    events = move(a, b)
    assert [len(e.data) for e in events if isinstance(e, DataReceived)] == [1000, 1000, 500]


def test_oversized_message_is_refused_before_buffering() -> None:
    b = MplexEngine()
    events = b.receive_data(encode_uvarint(0 << 3 | 2) + encode_uvarint(1024 * 1024 + 1))
    assert isinstance(events[-1], ProtocolError) and isinstance(events[-1].error, MessageTooLarge)
    assert b.is_dead and b.receive_data(frame(1, 0)) == []


def test_slow_reader_stream_is_reset_at_the_buffer_bound() -> None:
    a, b = MplexEngine(), MplexEngine(MplexConfig(max_stream_buffer=3000))
    k = a.open_stream()
    a.send_data(k, bytes(2000))
    rk = StreamKey(k.id, False)
    assert len(data_of(move(a, b), rk)) == 2000
    b.acknowledge_received_data(rk, 1500)  # the reader consumed some: 500 buffered
    a.send_data(k, bytes(2500))
    assert len(data_of(move(a, b), rk)) == 2500
    a.send_data(k, bytes(1))
    assert move(a, b) == [StreamResetEvent(rk, local=True)]
    assert move(b, a) == [StreamResetEvent(k)]


def test_inbound_stream_limit() -> None:
    a, b = MplexEngine(), MplexEngine(MplexConfig(max_inbound_streams=1))
    k1, k2 = a.open_stream(), a.open_stream()
    a.send_data(k2, b"dropped")
    events = move(a, b)
    assert [e for e in events if isinstance(e, StreamOpened)] == [StreamOpened(StreamKey(k1.id, False), b"0")]
    assert not any(isinstance(e, DataReceived) for e in events)
    assert move(b, a) == [StreamResetEvent(k2)]


@pytest.mark.parametrize(
    "wire",
    [frame(0, 7), frame(0, 0) + frame(0, 0), b"\x80\x00", b"\xff" * 10],
    ids=["bad-flag", "duplicate-stream", "non-minimal-varint", "long-varint"],
)
def test_violations_are_typed_errors(wire: bytes) -> None:
    events = MplexEngine().receive_data(wire)
    assert isinstance(events[-1], ProtocolError) and isinstance(events[-1].error, ProtocolViolation)


def _script() -> tuple[bytes, dict[StreamKey, bytes]]:
    a = MplexEngine(MplexConfig(max_message_size=700))
    out: dict[StreamKey, bytes] = {}
    for i in range(3):
        k = a.open_stream()
        payload = bytes([i + 1]) * (300 * i + 1000)
        a.send_data(k, payload)
        out[StreamKey(k.id, False)] = payload
    a.send_close(StreamKey(0, True))
    a.send_reset(StreamKey(1, True))
    return bytes(a.data_to_send()), out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_any_split_gives_the_same_result(cuts: list[int]) -> None:
    wire, payloads = _script()
    b = MplexEngine()
    events: list[MplexEvent] = []
    prev = 0
    for p in [*sorted(min(c, len(wire)) for c in cuts), len(wire)]:
        events += b.receive_data(wire[prev:p])
        prev = p
    assert {k: data_of(events, k) for k in payloads} == payloads
    others = [e for e in events if not isinstance(e, DataReceived)]
    assert others == [
        *(StreamOpened(k, str(k.id).encode()) for k in payloads),
        StreamEOF(StreamKey(0, False)),
        StreamResetEvent(StreamKey(1, False)),
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    b = MplexEngine(MplexConfig(max_inbound_streams=4, max_stream_buffer=100))
    for ev in b.receive_data(data):
        assert not isinstance(ev, ProtocolError) or isinstance(ev.error, ProtocolViolation)
    assert b.num_streams <= 4


# --- adapter -------------------------------------------------------------------------------------------


async def sessions(server_config: MplexConfig | None = None) -> tuple[MplexSession, MplexSession]:
    a, b = memory_pipe_pair()
    return (
        MplexMuxer().create(PipeReader(a), is_initiator=True),
        MplexMuxer(server_config).create(PipeReader(b), is_initiator=False),
    )


async def wait_for(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not cond():
            await asyncio.sleep(0.001)


async def echo(stream: MuxedStream) -> None:
    try:
        while data := await stream.read(1 << 20):
            await stream.write(data)
        await stream.close_write()
    except (StreamReset, ConnectionClosed):
        pass


async def read_all(stream: MuxedStream) -> bytes:
    out = bytearray()
    while data := await stream.read(1 << 20):
        out += data
    return bytes(out)


async def test_echo_integrity_and_concurrency() -> None:
    c, s = await sessions()
    assert MplexMuxer.protocol_id == "/mplex/6.7.0" and isinstance(c, MuxedConnection)
    tasks: list[asyncio.Task[None]] = []
    s.set_inbound_stream_handler(lambda st: tasks.append(asyncio.create_task(echo(st))))

    async def client(size: int) -> None:
        stream = await c.open_stream()
        assert stream.direction is Direction.OUTBOUND
        payload = os.urandom(size)

        async def send() -> None:
            for off in range(0, size, 300_001):
                await stream.write(payload[off : off + 300_001])
            await stream.close_write()

        sender = asyncio.create_task(send())
        assert await read_all(stream) == payload
        await sender

    async with asyncio.timeout(10):
        await asyncio.gather(client(4 * 1024 * 1024), *(client(1000 + i) for i in range(100)))
        await asyncio.gather(*tasks)
    await wait_for(lambda: c.num_streams == 0 and s.num_streams == 0)
    c.abort()


async def test_reset_both_ways_and_slow_reader_reset() -> None:
    c, s = await sessions(MplexConfig(max_stream_buffer=64 * 1024))
    inbound: asyncio.Queue[MuxedStream] = asyncio.Queue()
    s.set_inbound_stream_handler(inbound.put_nowait)
    async with asyncio.timeout(5):
        one = await c.open_stream()
        await one.write(b"x")
        peer = await inbound.get()
        assert await peer.read(10) == b"x"
        await one.reset()
        with pytest.raises(StreamReset):
            await peer.read(10)
        two = await c.open_stream()
        await two.write(b"y")
        peer2 = await inbound.get()
        await peer2.reset()
        with pytest.raises(StreamReset):
            await two.read()
        three = await c.open_stream()
        await three.write(bytes(100 * 1024))  # nobody reads: beyond the bound, the stream is dropped
        peer3 = await inbound.get()
        with pytest.raises(StreamReset) as info:
            await three.read()
        assert info.value.remote
        with pytest.raises(StreamReset) as info:
            await peer3.read()
        assert not info.value.remote
    c.abort()


async def test_close_and_pipe_loss_end_every_stream() -> None:
    c, s = await sessions()
    closed: list[BaseException | None] = []
    s.set_close_callback(closed.append)
    inbound: asyncio.Queue[MuxedStream] = asyncio.Queue()
    s.set_inbound_stream_handler(inbound.put_nowait)
    stream = await c.open_stream()
    await stream.write(b"a")
    async with asyncio.timeout(5):
        peer = await inbound.get()
        assert await peer.read() == b"a"
        await c.close()
        with pytest.raises(ConnectionClosed):
            await peer.read()
        with pytest.raises(ConnectionClosed):
            await stream.write(b"b")
        await wait_for(lambda: len(closed) == 1)
    s.abort()
    assert len(closed) == 1 and isinstance(closed[0], ConnectionClosed)
    with pytest.raises(ConnectionClosed):
        await s.open_stream()
