"""Yamux asyncio adapter tests over in-memory pipes (real async delivery and backpressure)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from aiolibp2p.core.interfaces import Direction, MuxedConnection, MuxedStream, MuxerFactory
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.exceptions import ConnectionClosed, ProtocolViolation, StreamClosed, StreamReset
from aiolibp2p.muxers.yamux import YamuxConfig, YamuxMuxer, YamuxSession
from aiolibp2p.muxers.yamux.engine import FLAG_SYN, TYPE_GO_AWAY, TYPE_PING, encode_header
from aiolibp2p.transports.memory.pipe import MemoryPipe, memory_pipe_pair

FAST = YamuxConfig(keepalive_interval=0, rtt_measure_interval=0)


@dataclass
class Side:
    session: YamuxSession
    pipe: MemoryPipe
    inbound: asyncio.Queue[MuxedStream] = field(default_factory=asyncio.Queue)
    closed: list[BaseException | None] = field(default_factory=list)

    async def accept(self) -> MuxedStream:
        async with asyncio.timeout(5):
            return await self.inbound.get()


def make_side(
    pipe: MemoryPipe, is_initiator: bool, config: YamuxConfig, reader: PipeReader | None = None
) -> Side:
    session = YamuxMuxer(config).create(reader or PipeReader(pipe), is_initiator=is_initiator)
    side = Side(session, pipe)
    session.set_inbound_stream_handler(side.inbound.put_nowait)
    session.set_close_callback(side.closed.append)
    return side


async def make_pair(
    config: YamuxConfig = FAST, server_config: YamuxConfig | None = None
) -> tuple[Side, Side]:
    a, b = memory_pipe_pair()
    return make_side(a, True, config), make_side(b, False, server_config or config)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Side, Side]]:
    c, s = await make_pair()
    yield c, s
    c.session.abort()
    s.session.abort()


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
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


def test_factory_and_session_implement_the_interfaces() -> None:
    muxer: MuxerFactory = YamuxMuxer()
    assert muxer.protocol_id == "/yamux/1.0.0"

    async def run() -> None:
        c, s = await make_pair()
        assert isinstance(c.session, MuxedConnection)
        stream = await c.session.open_stream()
        assert isinstance(stream, MuxedStream)
        assert stream.direction is Direction.OUTBOUND and stream.stream_id == 1
        assert (await s.accept()).direction is Direction.INBOUND
        c.session.abort()

    asyncio.run(run())


async def test_echo_4mib_integrity(pair: tuple[Side, Side]) -> None:
    c, s = pair
    payload = os.urandom(4 * 1024 * 1024)
    stream = await c.session.open_stream()

    async def send() -> None:
        for off in range(0, len(payload), 100_003):  # odd sizes: frames never line up with writes
            await stream.write(payload[off : off + 100_003])
        await stream.close_write()

    async with asyncio.timeout(10):
        sender = asyncio.create_task(send())
        server = asyncio.create_task(echo(await s.accept()))
        received = await read_all(stream)
        await sender
        await server
    assert received == payload
    await wait_for(lambda: c.session.num_streams == 0 and s.session.num_streams == 0)


async def test_100_concurrent_streams(pair: tuple[Side, Side]) -> None:
    c, s = pair
    tasks: list[asyncio.Task[None]] = []

    async def serve() -> None:
        for _ in range(100):
            tasks.append(asyncio.create_task(echo(await s.accept())))

    async def client(i: int) -> bytes:
        stream = await c.session.open_stream()
        msg = os.urandom(1000 + i * 517)
        await stream.write(msg)
        await stream.close_write()
        assert await read_all(stream) == msg
        return msg

    async with asyncio.timeout(10):
        server = asyncio.create_task(serve())
        results = await asyncio.gather(*(client(i) for i in range(100)))
        await server
        await asyncio.gather(*tasks)
    assert len(results) == 100
    await wait_for(lambda: c.session.num_streams == 0 and s.session.num_streams == 0)


async def test_half_close_keeps_the_other_direction_open(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    await stream.write(b"request")
    await stream.close_write()
    with pytest.raises(StreamClosed):
        await stream.write(b"more")
    peer = await s.accept()
    async with asyncio.timeout(5):
        assert await read_all(peer) == b"request"
        await peer.write(b"response part 1, ")
        await peer.write(b"part 2")
        assert not peer.is_closed()
        await peer.close_write()
        assert await read_all(stream) == b"response part 1, part 2"
    assert stream.is_closed() and peer.is_closed()


async def test_readexactly_beyond_the_window_and_at_eof(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    payload = os.urandom(1024 * 1024 + 5)  # larger than the 256 KiB window: credit flows while reading
    async with asyncio.timeout(5):
        writer = asyncio.create_task(stream.write(payload))
        peer = await s.accept()
        assert await peer.readexactly(len(payload) - 5) == payload[:-5]
        await writer
        await stream.close_write()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await peer.readexactly(10)
        assert info.value.partial == payload[-5:]


async def test_reset_by_the_writer_is_seen_by_the_reader(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    await stream.write(b"partial")
    peer = await s.accept()
    async with asyncio.timeout(5):
        assert await peer.read() == b"partial"
        await stream.reset()
        with pytest.raises(StreamReset) as info:
            await peer.read()
        assert info.value.remote
        with pytest.raises(StreamReset):
            await peer.write(b"x")
    with pytest.raises(StreamReset) as info:
        await stream.read()
    assert not info.value.remote
    assert stream.is_closed()
    await wait_for(lambda: s.session.num_streams == 0 and c.session.num_streams == 0)


async def test_reset_by_the_reader_stops_a_blocked_writer(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    async with asyncio.timeout(5):
        writer = asyncio.create_task(stream.write(bytes(4 * 1024 * 1024)))  # blocks on the window
        peer = await s.accept()
        await wait_for(lambda: peer.buffered >= 256 * 1024)  # type: ignore[attr-defined]
        assert not writer.done()
        await peer.reset()
        with pytest.raises(StreamReset):
            await writer


async def test_write_waits_for_the_reader_backpressure(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    writer = asyncio.create_task(stream.write(bytes(1024 * 1024)))
    peer = await s.accept()
    await asyncio.sleep(0.05)
    assert not writer.done()
    assert peer.buffered <= 256 * 1024  # type: ignore[attr-defined]
    async with asyncio.timeout(5):
        got = 0
        while got < 1024 * 1024:
            got += len(await peer.read(1 << 20))
        await writer


async def test_close_discards_further_input_but_credits_it(pair: tuple[Side, Side]) -> None:
    c, s = pair
    stream = await c.session.open_stream()
    await stream.write(b"hello")
    peer = await s.accept()
    await peer.close()
    with pytest.raises(StreamClosed):
        await peer.read()
    async with asyncio.timeout(5):
        await stream.write(bytes(1024 * 1024))  # more than a window: completes only if credited
        assert await stream.read() == b""
        await stream.close()
    await wait_for(lambda: s.session.num_streams == 0 and c.session.num_streams == 0)


async def test_graceful_close_is_seen_by_the_remote() -> None:
    c, s = await make_pair()
    stream = await c.session.open_stream()
    await stream.write(b"x")
    peer = await s.accept()
    reading = asyncio.create_task(peer.read(1))
    assert await reading == b"x"
    reading = asyncio.create_task(peer.read())
    await c.session.close()
    assert c.session.is_closed() and c.closed == [None]
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed) as info:
            await reading
        assert info.value.cause == "remote-goaway"
        await wait_for(lambda: len(s.closed) == 1)
    assert s.session.is_closed()
    assert isinstance(s.closed[0], ConnectionClosed)
    with pytest.raises(ConnectionClosed):
        await s.session.open_stream()
    with pytest.raises(ConnectionClosed):
        await stream.write(b"y")


async def test_pipe_abort_ends_every_stream_and_calls_back_once() -> None:
    c, s = await make_pair()
    streams = [await c.session.open_stream() for _ in range(5)]
    for st in streams:
        await st.write(b"ping")
    peers = [await s.accept() for _ in range(5)]
    blocked_writer = asyncio.create_task(streams[0].write(bytes(4 * 1024 * 1024)))
    readers = [asyncio.create_task(p.read()) for p in peers]
    await asyncio.sleep(0.01)
    c.pipe.abort()
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed):
            await blocked_writer
        for r in readers:
            data = await r
            assert data == b"ping"
        for p in peers:
            with pytest.raises(ConnectionClosed):  # buffered bytes stay readable, then the loss shows
                while True:
                    assert await p.read(1 << 20)
        for st in streams:
            with pytest.raises(ConnectionClosed):
                await st.read()
        await wait_for(lambda: len(s.closed) == 1 and len(c.closed) == 1)
    c.session.abort()
    s.session.abort()
    await asyncio.sleep(0.01)
    assert len(c.closed) == 1 and len(s.closed) == 1
    assert c.session.num_streams == 0 and s.session.num_streams == 0


async def test_keepalive_timeout_when_the_peer_stops_answering() -> None:
    cfg = YamuxConfig(keepalive_interval=0.05, keepalive_timeout=0.1, rtt_measure_interval=0)
    c, s = await make_pair(cfg, server_config=FAST)
    stream = await c.session.open_stream()
    await s.accept()

    class BlackHole:
        def pipe_data_received(self, data: bytes) -> None:
            pass

        def pipe_eof_received(self) -> None:
            pass

        def pipe_connection_lost(self, exc: BaseException | None) -> None:
            pass

    s.pipe.set_receiver(BlackHole())  # the peer process hangs: nothing is answered any more
    reading = asyncio.create_task(stream.read())
    async with asyncio.timeout(2):
        with pytest.raises(ConnectionClosed) as info:
            await reading
    assert info.value.cause == "keepalive-timeout"
    assert len(c.closed) == 1 and isinstance(c.closed[0], ConnectionClosed)
    assert c.closed[0].cause == "keepalive-timeout"


async def test_keepalive_keeps_an_idle_answering_connection_alive() -> None:
    cfg = YamuxConfig(keepalive_interval=0.02, keepalive_timeout=0.05, rtt_measure_interval=0)
    c, s = await make_pair(cfg)
    await asyncio.sleep(0.3)
    assert not c.session.is_closed() and not s.session.is_closed()
    assert c.session.rtt is not None  # keep-alive pings measure the RTT too
    c.session.abort()


async def test_rtt_is_measured_at_start() -> None:
    c, s = await make_pair(YamuxConfig(keepalive_interval=0))
    await wait_for(lambda: c.session.rtt is not None and s.session.rtt is not None)
    rtt = c.session.rtt
    assert rtt is not None and 0 <= rtt < 1
    c.session.abort()


async def test_leftover_bytes_are_handed_over() -> None:
    a, b = memory_pipe_pair()
    c = make_side(a, True, FAST)
    stream = await c.session.open_stream()
    await stream.write(b"early data")
    reader = PipeReader(b)  # the server is still negotiating: bytes wait in the handshake reader
    await wait_for(lambda: reader.buffered > 0)
    s = make_side(b, False, FAST, reader)  # hand_over feeds them to the new session
    peer = await s.accept()
    async with asyncio.timeout(5):
        assert await peer.read() == b"early data"
    c.session.abort()


async def test_streams_arriving_before_the_handler_are_queued() -> None:
    a, b = memory_pipe_pair()
    c = make_side(a, True, FAST)
    server = YamuxMuxer(FAST).create(PipeReader(b), is_initiator=False)
    for _ in range(3):
        await (await c.session.open_stream()).write(b"x")
    await wait_for(lambda: server.num_streams == 3)
    got: list[MuxedStream] = []
    server.set_inbound_stream_handler(got.append)
    assert [st.stream_id for st in got] == [1, 3, 5]
    c.session.abort()


async def test_open_waits_while_the_ack_backlog_is_full() -> None:
    a, b = memory_pipe_pair()
    cfg = YamuxConfig(keepalive_interval=0, rtt_measure_interval=0, max_ack_backlog=2)
    c = make_side(a, True, cfg)
    reader = PipeReader(b)  # nobody acknowledges yet
    await c.session.open_stream()
    await c.session.open_stream()
    third = asyncio.create_task(c.session.open_stream())
    await asyncio.sleep(0.02)
    assert not third.done()
    make_side(b, False, FAST, reader)  # the server starts and ACKs
    async with asyncio.timeout(5):
        assert (await third).stream_id == 5
    assert reader.buffered == 0
    c.session.abort()


async def test_inbound_stream_limit_refuses_excess_streams() -> None:
    c, s = await make_pair(FAST, server_config=YamuxConfig(max_inbound_streams=2, **_no_timers()))
    streams = [await c.session.open_stream() for _ in range(3)]
    async with asyncio.timeout(5):
        with pytest.raises(StreamReset):
            await streams[2].read()
        await streams[0].write(b"ok")
        assert await (await s.accept()).read() == b"ok"
    c.session.abort()


def _no_timers() -> dict[str, Any]:
    return {"keepalive_interval": 0, "rtt_measure_interval": 0}


async def test_protocol_violation_ends_the_session_with_go_away() -> None:
    a, b = memory_pipe_pair()
    c = make_side(a, True, FAST)
    stream = await c.session.open_stream()
    raw = PipeReader(b)
    b.write(b"\x05" + bytes(11))  # unknown version
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed) as info:
            await stream.read()
        assert info.value.cause == "protocol-error"
        await wait_for(lambda: len(c.closed) == 1)
        assert isinstance(c.closed[0], ProtocolViolation)
        got = await raw.read_some(1000) + await raw.read_some(1000)
    assert encode_header(TYPE_GO_AWAY, 0, 0, 1) in got


async def test_remote_go_away_with_error_code_ends_the_session() -> None:
    a, b = memory_pipe_pair()
    c = make_side(a, True, FAST)
    raw = PipeReader(b)
    raw.write(encode_header(TYPE_PING, FLAG_SYN, 0, 7) + encode_header(TYPE_GO_AWAY, 0, 0, 2))
    async with asyncio.timeout(5):
        await wait_for(lambda: len(c.closed) == 1)
        err = c.closed[0]
        assert isinstance(err, ConnectionClosed) and err.cause == "remote-goaway" and err.code == 2
        # the ping was answered before the GoAway was processed
        assert await raw.readexactly(12) == encode_header(TYPE_PING, 2, 0, 7)


async def test_remote_go_away_code_survives_an_answer_that_cannot_be_written() -> None:
    """The peer sent frames that need an answer, then a GoAway with an error code, then closed its end: the
    answer cannot be written any more, and the session still ends with the GoAway's code, not the write's
    error (over WebSocket the peer's close frame can arrive in the same read as its GoAway)."""
    a, b = memory_pipe_pair()
    c = make_side(a, True, FAST)

    def refuse(data: object) -> None:
        raise ConnectionClosed("write on a pipe the peer closed", cause="remote-closed")

    c.session._pipe_write = refuse  # what the session hands its output to
    raw = PipeReader(b)
    raw.write(encode_header(TYPE_PING, FLAG_SYN, 0, 7) + encode_header(TYPE_GO_AWAY, 0, 0, 42))
    async with asyncio.timeout(5):
        await wait_for(lambda: len(c.closed) == 1)
    err = c.closed[0]
    assert isinstance(err, ConnectionClosed) and err.cause == "remote-goaway" and err.code == 42, err


async def test_session_ping_measures_rtt_and_fails_when_closed() -> None:
    from aiolibp2p.transports.memory.pipe import memory_pipe_pair

    async with asyncio.timeout(5):
        a, b = memory_pipe_pair()
        sa = YamuxMuxer().create(PipeReader(a), is_initiator=True)
        sb = YamuxMuxer().create(PipeReader(b), is_initiator=False)
        rtt = await sa.ping()
        assert 0 <= rtt < 1
        assert await sb.ping() >= 0
        b.abort()
        await asyncio.sleep(0.01)
        with pytest.raises(ConnectionClosed):
            await sa.ping()


async def test_a_reader_about_to_wait_sends_what_its_task_wrote(pair: tuple[Side, Side]) -> None:
    """Writes coalesce until the loop turns, except that a stream about to wait for input sends its session's
    queued output first, from its own task (a request leaves before its reader sleeps: one loop turn less per
    round trip); the deferred flush then has nothing left to send."""
    c, s = pair
    st = await c.session.open_stream()
    srv = await s.accept()
    await wait_for(lambda: c.session._engine.pending_output == 0 and not c.session._flush_scheduled)
    senders: list[asyncio.Task[object] | None] = []
    raw_write = c.session._pipe_write

    def pipe_write(data: bytearray) -> None:
        senders.append(asyncio.current_task())
        raw_write(data)

    c.session._pipe_write = pipe_write

    async def request() -> bytes:
        await st.write(b"ping")
        assert senders == []  # still queued
        return await st.read()

    task = asyncio.ensure_future(request())
    assert await srv.readexactly(4) == b"ping"
    assert senders == [task]
    await srv.write(b"pong")
    async with asyncio.timeout(5):
        assert await task == b"pong"
    assert senders == [task]  # nothing else went out for it
    await asyncio.sleep(0.01)
    assert senders == [task]

    # Writes with no read in between still leave together, once, when the loop turns.
    await st.write(b"a")
    await st.write(b"b")
    assert senders == [task]
    await wait_for(lambda: len(senders) == 2)
    assert senders[1] is None  # the deferred flush, outside any task
    assert await srv.readexactly(2) == b"ab"


@pytest.mark.parametrize("lost_first", [True, False], ids=["pipe-end-arrives", "pipe-end-never-arrives"])
async def test_a_reader_flushing_into_a_closing_pipe_leaves_the_end_to_the_pipe(
    pair: tuple[Side, Side], lost_first: bool
) -> None:
    """The before-wait flush into a pipe already closing from below does not end the session with the write's
    error at once: the pipe's own end (with its cause) reported in the same turn wins; without it, the
    session ends with the write's error a turn later (what the deferred flush would have done)."""
    c, s = pair
    st = await c.session.open_stream()
    await s.accept()
    await wait_for(lambda: not c.session._flush_scheduled)

    async def request() -> bytes:
        await st.write(b"x")
        c.pipe._closing = True  # closing from below (as a transport between its close and connection_lost)
        return await st.read()

    reader = asyncio.ensure_future(request())
    await asyncio.sleep(0)  # the reader flushed into the closing pipe and waits
    assert not reader.done() and not c.session.is_closed()
    if lost_first:
        c.session.pipe_connection_lost(OSError("connection reset by peer"))
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed) as info:
            await reader
    assert info.value.cause == ("error" if lost_first else "local-closed")
    assert c.session.is_closed()


async def test_a_pipe_reset_from_below_while_a_flush_is_queued_reports_the_reset(
    pair: tuple[Side, Side],
) -> None:
    """asyncio meets the peer's RST on a write: it marks the transport closing at once and calls
    connection_lost one loop turn later. A flush queued in between used to end the session as "local-closed"
    (tests/faults' abrupt-RST test, 4 runs in 40 under load); the reset's own cause ("error") must win."""
    c, _ = pair
    st = await c.session.open_stream()
    await st.write(b"x" * 100)  # queued: the session flushes it on the next loop turn
    pipe = c.pipe
    pipe._closing = True  # what asyncio's _force_close does at once ...
    asyncio.get_running_loop().call_soon(
        pipe._finish_lost, ConnectionResetError("reset by peer")
    )  # ... and later
    await wait_for(lambda: bool(c.closed))
    (err,) = c.closed
    assert isinstance(err, ConnectionClosed) and err.cause == "error", err
