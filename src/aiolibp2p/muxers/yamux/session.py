"""asyncio adapter for the yamux engine: :class:`YamuxSession` (``MuxedConnection``) and
:class:`YamuxStream` (``MuxedStream``).

Spec: libp2p/specs ``yamux/README.md``; keep-alive behaviour follows go-yamux (a Ping when no frame arrived
for ``keepalive_interval``; the session ends if nothing arrives within ``keepalive_timeout`` after it).

The session is its pipe's receiver: received chunks go straight through the engine into the streams' read
buffers from the pipe callback. There is no task per stream or per frame; frames queued in one loop
iteration leave in one ``pipe.write``.
"""

from __future__ import annotations

import asyncio

from ...core.interfaces import Direction, MuxedStream
from ...core.pipe import PipeReader
from ...exceptions import ConnectionClosed, ResourceLimitExceeded, StreamReset
from ..session_base import FLUSH_NOW_BYTES, MuxerSession, SessionStream
from .engine import (
    GOAWAY_NORMAL,
    HEADER_SIZE,
    PROTOCOL_ID,
    DataReceived,
    GoAwayReceived,
    PongReceived,
    ProtocolError,
    StreamAcknowledged,
    StreamEOF,
    StreamOpened,
    StreamResetEvent,
    WindowUpdated,
    YamuxConfig,
    YamuxEngine,
)

__all__ = ["YamuxMuxer", "YamuxSession", "YamuxStream"]

_COPY_PAYLOAD_MAX = 4096  # a one-frame chunk up to this size hands its payload on as a copy, larger as a view


class YamuxStream(SessionStream):
    """One yamux stream. Reads credit the peer as bytes are consumed; writes wait for the peer's window
    and for the pipe to drain. Yamux carries no reset code: ``reset(code)`` ignores ``code``."""

    __slots__ = ("_session",)

    def __init__(self, session: YamuxSession, stream_id: int, direction: Direction) -> None:
        super().__init__(stream_id, direction, session._loop)
        self._session = session

    def _consumed(self, n: int) -> None:
        session = self._session
        if not session._closed and session._engine.acknowledge_received_data(
            self._stream_id, n, session._loop.time()
        ):
            session._schedule_flush()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None or self._write_closed:
            self._check_writable()  # raises
        session = self._session
        if type(data) is bytes and data:
            # Fast path: bytes the peer's window takes whole (a small message, the common case).
            n = session._send_data(self._stream_id, data)
            if n == len(data):
                if session._closed or session._pipe_write_blocked():  # session._drain_needed(), inlined
                    await session._drain()
                return
            data = memoryview(data)[n:]
        mv = memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        off = 0
        total = len(mv)
        while off < total:
            self._check_writable()
            n = session._send_data(self._stream_id, mv[off:] if off else mv)
            if n:
                off += n
            else:
                await self._wait_writable()
        if session._drain_needed():
            await session._drain()

    def _before_read_wait(self) -> None:
        self._session._flush_before_wait()

    def _send_close_write(self) -> None:
        self._session._send_fin(self)

    def _send_reset(self) -> None:
        self._session._send_reset(self)


class YamuxSession(MuxerSession[int, YamuxStream, YamuxEngine]):
    """A yamux session over a secured pipe; see the module docstring."""

    def __init__(self, reader: PipeReader, *, is_initiator: bool, config: YamuxConfig | None = None) -> None:
        self.config = config if config is not None else YamuxConfig()
        super().__init__(reader.pipe, YamuxEngine(is_initiator, self.config))
        self._open_waiters: list[asyncio.Future[None]] = []
        self._ping_waiters: dict[int, asyncio.Future[float]] = {}
        self._last_rx = self._loop.time()
        self._ping_sent_at = 0.0
        self._keepalive_handle: asyncio.TimerHandle | None = None
        self._rtt_handle: asyncio.TimerHandle | None = None
        self._control_bytes = 0
        self._control_drain: asyncio.Task[None] | None = None
        if self.config.keepalive_interval > 0:
            self._keepalive_handle = self._loop.call_later(
                self.config.keepalive_interval, self._keepalive_tick
            )
        if self.config.rtt_measure_interval > 0:
            self._engine.ping(self._loop.time())
            self._rtt_handle = self._loop.call_later(self.config.rtt_measure_interval, self._measure_rtt)
            self._schedule_flush()
        reader.hand_over(self)

    # -- MuxedConnection --------------------------------------------------------------------------------
    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time (seconds), from our pings."""
        return self._engine.rtt

    async def open_stream(self) -> MuxedStream:
        while True:
            if self._closed:
                assert self._close_exc is not None
                raise self._close_exc
            try:
                sid = self._engine.open_stream(self._loop.time())
            except ResourceLimitExceeded:  # ACK backlog full: wait for an ACK or a reset
                fut = self._loop.create_future()
                self._open_waiters.append(fut)
                try:
                    await fut
                finally:
                    if fut in self._open_waiters:
                        self._open_waiters.remove(fut)
                continue
            stream = YamuxStream(self, sid, Direction.OUTBOUND)
            self._streams[sid] = stream
            self._schedule_flush()
            return stream

    async def close(self, code: int = GOAWAY_NORMAL) -> None:
        if self._closed:
            return
        self._engine.go_away(code)
        self._close_locally(code)

    @property
    def last_rx(self) -> float:
        """Loop time at which bytes last arrived from the peer (the session's start before any did)."""
        return self._last_rx

    # -- PipeReceiver -----------------------------------------------------------------------------------
    def pipe_data_received(self, data: bytes) -> None:
        if self._closed:
            return
        now = self._loop.time()
        self._last_rx = now
        engine = self._engine
        streams = self._streams
        sid = engine.receive_data_frame(data)
        if sid:
            s = streams.get(sid)
            if s is not None:
                s.feed(
                    data[HEADER_SIZE:] if len(data) <= _COPY_PAYLOAD_MAX else memoryview(data)[HEADER_SIZE:]
                )
            return
        for ev in engine.receive_data(data, now):
            if isinstance(ev, DataReceived):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.feed(ev.data)
            elif isinstance(ev, WindowUpdated):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.wake_writer()
            elif isinstance(ev, StreamOpened):
                self._on_stream_opened(ev.stream_id)
            elif isinstance(ev, StreamEOF):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.feed_eof()
                    self._maybe_forget(s)
            elif isinstance(ev, StreamResetEvent):
                s = streams.pop(ev.stream_id, None)
                if s is not None:
                    s.fail(StreamReset("stream reset by the peer", remote=True))
                self._wake_openers()
            elif isinstance(ev, StreamAcknowledged):
                self._wake_openers()
            elif isinstance(ev, PongReceived):
                w = self._ping_waiters.pop(ev.opaque, None)
                if w is not None and not w.done():
                    w.set_result(ev.rtt if ev.rtt is not None else 0.0)
            elif isinstance(ev, GoAwayReceived):
                self._wake_openers()
                if ev.code != GOAWAY_NORMAL:
                    # answers to frames before the GoAway still leave; a pipe that refuses them (the peer closed
                    # right after its GoAway) fails the session a turn later, after the GoAway's code ended it
                    self._send_queued(defer_failure=True)
                    err = ConnectionClosed(
                        "peer sent GoAway with an error", cause="remote-goaway", code=ev.code
                    )
                    self._fail(err)
                    return
            elif isinstance(ev, ProtocolError):
                err = ConnectionClosed("peer violated the yamux protocol", cause="protocol-error", code=1)
                err.__cause__ = ev.error
                self._send_queued(defer_failure=True)
                self._fail(err, report=ev.error)
                return
        if engine.pending_output:
            self._control_bytes += engine.pending_output
            self._flush()
            if self._control_bytes > self.config.max_unflushed_control_bytes and self._control_drain is None:
                self._pipe.pause_reading()
                self._control_drain = self._loop.create_task(self._drain_control())

    def pipe_eof_received(self) -> None:
        if self._closed:
            return
        goaway = self._engine.remote_goaway
        cause = "remote-goaway" if goaway is not None else "remote-closed"
        self._fail(ConnectionClosed("connection closed by the peer", cause=cause, code=goaway or 0))

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        goaway = self._engine.remote_goaway
        if exc is not None:
            err = ConnectionClosed("connection lost", cause="error")
            err.__cause__ = exc
        else:
            cause = "remote-goaway" if goaway is not None else "remote-closed"
            err = ConnectionClosed("connection closed by the peer", cause=cause, code=goaway or 0)
        self._shutdown(err, err)

    # -- internals --------------------------------------------------------------------------------------
    def _on_stream_opened(self, sid: int) -> None:
        self._add_inbound(sid, YamuxStream(self, sid, Direction.INBOUND))

    def _maybe_forget(self, stream: YamuxStream) -> None:
        if not self._engine.has_stream(stream.stream_id):
            self._streams.pop(stream.stream_id, None)

    def _wake_openers(self) -> None:
        waiters, self._open_waiters = self._open_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _drain_control(self) -> None:
        try:
            await self._pipe.drain()
        except ConnectionClosed:
            pass
        finally:
            self._control_drain = None
            self._control_bytes = 0
            if not self._closed:
                self._pipe.resume_reading()

    def _send_data(self, sid: int, data: bytes | memoryview) -> int:
        if self._closed:
            assert self._close_exc is not None
            raise self._close_exc
        n = self._engine.send_data(sid, data)
        if n:
            if self._engine.pending_output >= FLUSH_NOW_BYTES:
                self._flush()
            else:
                self._schedule_flush()
        return n

    def _send_fin(self, stream: YamuxStream) -> None:
        if self._closed:
            return
        self._engine.send_fin(stream.stream_id)
        self._maybe_forget(stream)
        self._schedule_flush()

    def _send_reset(self, stream: YamuxStream) -> None:
        if self._closed:
            return
        self._engine.send_reset(stream.stream_id)
        self._streams.pop(stream.stream_id, None)
        self._wake_openers()
        self._schedule_flush()

    def _keepalive_tick(self) -> None:
        self._keepalive_handle = None
        if self._closed:
            return
        now = self._loop.time()
        idle = now - self._last_rx
        interval = self.config.keepalive_interval
        if idle < interval:
            self._keepalive_handle = self._loop.call_later(interval - idle, self._keepalive_tick)
            return
        self._engine.ping(now)
        self._ping_sent_at = now
        self._flush()
        self._keepalive_handle = self._loop.call_later(self.config.keepalive_timeout, self._keepalive_check)

    def _keepalive_check(self) -> None:
        self._keepalive_handle = None
        if self._closed:
            return
        if self._last_rx < self._ping_sent_at:
            self._fail(
                ConnectionClosed(
                    f"no frame within {self.config.keepalive_timeout:g} s of a keep-alive ping",
                    cause="keepalive-timeout",
                ),
                abort=True,
            )
            return
        self._keepalive_tick()

    async def ping(self) -> float:
        """Send a yamux Ping and wait for its answer; returns the round-trip time in seconds. Used to check
        that a connection is alive. Unbounded by itself: callers bound it (``asyncio.timeout``)."""
        if self._closed:
            raise self._close_exc or ConnectionClosed("session closed")
        fut: asyncio.Future[float] = self._loop.create_future()
        opaque = self._engine.ping(self._loop.time())
        self._ping_waiters[opaque] = fut
        self._flush()
        try:
            return await fut
        finally:
            self._ping_waiters.pop(opaque, None)

    def _measure_rtt(self) -> None:
        if self._closed:
            return
        self._engine.ping(self._loop.time())
        self._flush()
        self._rtt_handle = self._loop.call_later(self.config.rtt_measure_interval, self._measure_rtt)

    def _release_waiters(self, exc: ConnectionClosed) -> None:
        for handle in (self._keepalive_handle, self._rtt_handle):
            if handle is not None:
                handle.cancel()
        self._keepalive_handle = self._rtt_handle = None
        waiters, self._ping_waiters = self._ping_waiters, {}
        for w in waiters.values():
            if not w.done():
                w.set_exception(exc)
        self._wake_openers()


class YamuxMuxer:
    """The ``/yamux/1.0.0`` muxer factory (``core.interfaces.MuxerFactory``)."""

    protocol_id = PROTOCOL_ID

    def __init__(self, config: YamuxConfig | None = None) -> None:
        self.config = config if config is not None else YamuxConfig()

    def create(self, reader: PipeReader, *, is_initiator: bool) -> YamuxSession:
        return YamuxSession(reader, is_initiator=is_initiator, config=self.config)
