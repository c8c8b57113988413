"""asyncio adapter for the mplex engine: :class:`MplexSession` (``MuxedConnection``) and :class:`MplexStream`
(``MuxedStream``). Spec: libp2p/specs ``mplex/README.md``.

Like the yamux adapter, the session is its pipe's receiver and runs no task per stream or frame. mplex has
no flow control and no GoAway: writes wait only for the pipe to drain, a stream whose reader falls more than
``max_stream_buffer`` behind is reset, and ``close(code)`` simply closes the pipe.
"""

from __future__ import annotations

from ...core.interfaces import Direction, MuxedStream
from ...core.pipe import PipeReader
from ...exceptions import ConnectionClosed, StreamReset
from ..session_base import FLUSH_NOW_BYTES, MuxerSession, SessionStream
from .engine import (
    PROTOCOL_ID,
    DataReceived,
    MplexConfig,
    MplexEngine,
    ProtocolError,
    StreamEOF,
    StreamKey,
    StreamOpened,
    StreamResetEvent,
)

__all__ = ["MplexMuxer", "MplexSession", "MplexStream"]


class MplexStream(SessionStream):
    """One mplex stream. mplex carries no reset code: ``reset(code)`` ignores ``code``."""

    __slots__ = ("_key", "_session")

    def __init__(self, session: MplexSession, key: StreamKey) -> None:
        super().__init__(key.id, Direction.OUTBOUND if key.local else Direction.INBOUND, session._loop)
        self._session = session
        self._key = key

    @property
    def key(self) -> StreamKey:
        return self._key

    def _consumed(self, n: int) -> None:
        self._session._engine.acknowledge_received_data(self._key, n)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        mv = memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        if mv:
            self._session._send_data(self._key, mv)
        if self._session._drain_needed():
            await self._session._drain()

    def _before_read_wait(self) -> None:
        self._session._flush_before_wait()

    def _send_close_write(self) -> None:
        self._session._send_close(self)

    def _send_reset(self) -> None:
        self._session._send_reset(self)


class MplexSession(MuxerSession[StreamKey, MplexStream, MplexEngine]):
    """An mplex session over a secured pipe; see the module docstring."""

    def __init__(self, reader: PipeReader, *, is_initiator: bool, config: MplexConfig | None = None) -> None:
        self.config = config if config is not None else MplexConfig()
        self.is_initiator = is_initiator
        super().__init__(reader.pipe, MplexEngine(self.config))
        self._last_rx = self._loop.time()
        reader.hand_over(self)

    # -- MuxedConnection --------------------------------------------------------------------------------
    async def open_stream(self) -> MuxedStream:
        if self._closed:
            assert self._close_exc is not None
            raise self._close_exc
        key = self._engine.open_stream()
        stream = MplexStream(self, key)
        self._streams[key] = stream
        self._schedule_flush()
        return stream

    async def close(self, code: int = 0) -> None:
        if self._closed:
            return
        self._close_locally(code)

    # -- PipeReceiver -----------------------------------------------------------------------------------
    @property
    def last_rx(self) -> float:
        """Loop time at which bytes last arrived from the peer (the session's start before any did)."""
        return self._last_rx

    def pipe_data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._last_rx = self._loop.time()
        streams = self._streams
        for ev in self._engine.receive_data(data):
            if isinstance(ev, DataReceived):
                s = streams.get(ev.key)
                if s is not None:
                    s.feed(ev.data)
            elif isinstance(ev, StreamOpened):
                self._on_stream_opened(ev.key)
            elif isinstance(ev, StreamEOF):
                s = streams.get(ev.key)
                if s is not None:
                    s.feed_eof()
                    self._maybe_forget(s)
            elif isinstance(ev, StreamResetEvent):
                s = streams.pop(ev.key, None)
                if s is not None:
                    if ev.local:
                        msg = f"reader fell more than {self.config.max_stream_buffer} bytes behind"
                        s.fail(StreamReset(msg, remote=False))
                    else:
                        s.fail(StreamReset("stream reset by the peer", remote=True))
            elif isinstance(ev, ProtocolError):
                err = ConnectionClosed("peer violated the mplex protocol", cause="protocol-error")
                err.__cause__ = ev.error
                self._fail(err, report=ev.error)
                return
        if self._engine.pending_output:
            self._flush()

    def pipe_eof_received(self) -> None:
        self._fail(ConnectionClosed("connection closed by the peer", cause="remote-closed"))

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        if exc is not None:
            err = ConnectionClosed("connection lost", cause="error")
            err.__cause__ = exc
        else:
            err = ConnectionClosed("connection closed by the peer", cause="remote-closed")
        self._shutdown(err, err)

    # -- internals --------------------------------------------------------------------------------------
    def _on_stream_opened(self, key: StreamKey) -> None:
        self._add_inbound(key, MplexStream(self, key))

    def _maybe_forget(self, stream: MplexStream) -> None:
        if not self._engine.has_stream(stream.key):
            self._streams.pop(stream.key, None)

    def _send_data(self, key: StreamKey, data: memoryview) -> None:
        if self._closed:
            assert self._close_exc is not None
            raise self._close_exc
        self._engine.send_data(key, data)
        if self._engine.pending_output >= FLUSH_NOW_BYTES:
            self._flush()
        else:
            self._schedule_flush()

    def _send_close(self, stream: MplexStream) -> None:
        if self._closed:
            return
        self._engine.send_close(stream.key)
        self._maybe_forget(stream)
        self._schedule_flush()

    def _send_reset(self, stream: MplexStream) -> None:
        if self._closed:
            return
        self._engine.send_reset(stream.key)
        self._streams.pop(stream.key, None)
        self._schedule_flush()


class MplexMuxer:
    """The ``/mplex/6.7.0`` muxer factory (``core.interfaces.MuxerFactory``)."""

    protocol_id = PROTOCOL_ID

    def __init__(self, config: MplexConfig | None = None) -> None:
        self.config = config if config is not None else MplexConfig()

    def create(self, reader: PipeReader, *, is_initiator: bool) -> MplexSession:
        return MplexSession(reader, is_initiator=is_initiator, config=self.config)
