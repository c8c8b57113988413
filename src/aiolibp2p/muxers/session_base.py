"""What the yamux and mplex adapters share: the session plumbing around a sans-I/O engine and the stream
operations that only hand over to the session.

:class:`MuxerSession` keeps the stream table, the inbound-stream handler (streams opened before one is set
wait in order), the close callback (called once, with what ended the session), the output flushing (frames
queued in one loop iteration leave in one ``pipe.write``; :data:`FLUSH_NOW_BYTES` or more leave at once),
drain and shutdown. The engine-specific parts (receiving, opening, keep-alive) are the subclass's.
:class:`SessionStream` is a :class:`~.buffered_stream.BufferedStream` whose half-close and reset are frames
its session sends.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from ..core.interfaces import StreamCallback
from ..core.pipe import Pipe
from ..exceptions import ConnectionClosed, StreamReset
from .buffered_stream import BufferedStream

__all__ = ["FLUSH_NOW_BYTES", "MuxerEngine", "MuxerSession", "SessionStream"]

FLUSH_NOW_BYTES = 64 * 1024  # queued output beyond this is written at once instead of at the loop's end


def _always_blocked() -> bool:
    return True


class SessionStream(BufferedStream):
    """A muxed stream whose half-close and reset are frames sent by its session. Neither yamux nor mplex
    carries a reset code: ``reset(code)`` keeps ``code`` only on the local :class:`StreamReset`."""

    __slots__ = ()

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def _send_close_write(self) -> None:
        """Queue the half-close (yamux FIN, mplex Close)."""

    @abstractmethod
    def _send_reset(self) -> None:
        """Queue the reset and forget the stream."""

    async def close_write(self) -> None:
        if self._write_closed or self._error is not None:
            return
        self._write_closed = True
        self._send_close_write()

    async def close(self) -> None:
        await self.close_write()
        self._close_read()

    async def reset(self, code: int = 0) -> None:
        if self._error is not None:
            return
        self._send_reset()
        self.fail(StreamReset("stream reset locally", code=code, remote=False))


class MuxerEngine(Protocol):
    """The output side of a sans-I/O muxer engine."""

    @property
    def pending_output(self) -> int: ...

    def data_to_send(self) -> bytearray: ...


K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=SessionStream)
E = TypeVar("E", bound=MuxerEngine)


class MuxerSession(Generic[K, S, E]):
    """Session plumbing shared by the muxers; see the module docstring. Streams are keyed by ``K``.

    A subclass's ``__init__`` calls ``super().__init__`` first and ``reader.hand_over(self)`` last."""

    def __init__(self, pipe: Pipe, engine: E) -> None:
        self._loop = asyncio.get_running_loop()
        self._pipe = pipe
        # A pipe that can encrypt/send at once (SecurePipe.write_now): the session's flush is its coalescing.
        self._pipe_write: Callable[[bytearray], None] = getattr(pipe, "write_now", pipe.write)
        # (A pipe that cannot tell whether drain() would wait counts as blocked: writers always drain.)
        self._pipe_write_blocked: Callable[[], bool] = getattr(pipe, "write_blocked", _always_blocked)
        self._engine = engine
        self._streams: dict[K, S] = {}
        self._pending_inbound: deque[S] = deque()
        self._handler: StreamCallback | None = None
        self._close_callback: Callable[[BaseException | None], None] | None = None
        self._closed = False
        self._close_exc: ConnectionClosed | None = None
        self._close_report: BaseException | None = None  # what the close callback receives
        self._callback_done = False
        self._flush_scheduled = False
        self._flush_handle: asyncio.Handle | None = None

    # -- MuxedConnection --------------------------------------------------------------------------------
    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def engine(self) -> E:
        return self._engine

    def is_closed(self) -> bool:
        return self._closed

    def set_inbound_stream_handler(self, callback: StreamCallback) -> None:
        self._handler = callback
        while self._pending_inbound and self._handler is callback:
            callback(self._pending_inbound.popleft())

    def set_close_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        self._close_callback = callback
        if self._closed:
            self._run_close_callback()

    def abort(self, exc: BaseException | None = None) -> None:
        if self._closed:
            return
        err = ConnectionClosed("connection aborted", cause="aborted")
        if exc is not None:
            err.__cause__ = exc
        self._shutdown(err, exc)
        self._pipe.abort()

    # -- internals --------------------------------------------------------------------------------------
    def _close_locally(self, code: int) -> None:
        """``close(code)`` once the engine has queued what a close sends."""
        self._flush()
        self._shutdown(ConnectionClosed("connection closed locally", cause="local-closed", code=code), None)
        self._pipe.close()

    def _add_inbound(self, key: K, stream: S) -> None:
        self._streams[key] = stream
        if self._handler is not None and not self._pending_inbound:
            self._handler(stream)
        else:
            self._pending_inbound.append(stream)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush_before_wait(self) -> None:
        """A stream of this session is about to wait for input: what its task queued goes out now rather than
        when the loop turns. A request is sent before its reader sleeps (ping, RPCs: one loop iteration and
        its poll less per round trip), while writes made without reading in between still coalesce."""
        if not self._flush_scheduled:
            return
        h = self._flush_handle
        if h is not None:
            h.cancel()
        self._flush_scheduled = False
        self._flush_handle = None
        self._send_queued(defer_failure=True)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._flush_handle = None
        self._send_queued(defer_failure=False)

    def _send_queued(self, *, defer_failure: bool) -> None:
        """Hand the engine's queued output to the pipe. A pipe that refuses it fails the session, a turn later
        when ``defer_failure`` (a reader's flush) or when the pipe is closing from below (e.g. asyncio met the
        peer's RST on a write: the transport is closing now, connection_lost comes a turn later), so the
        pipe's own end reports the real cause first; failing at once would say "local-closed"."""
        if self._closed:
            return
        data = self._engine.data_to_send()
        if data:
            try:
                self._pipe_write(data)
            except ConnectionClosed as exc:
                if defer_failure or self._pipe.is_closing():
                    self._loop.call_soon(self._fail, exc)
                else:
                    self._fail(exc)

    def _drain_needed(self) -> bool:
        """False when :meth:`_drain` would return at once (the pipe not blocked): writers then skip the await
        chain down to the raw pipe. (Queued output never stays at :data:`FLUSH_NOW_BYTES` or more: the
        subclasses' ``_send_data`` flush it at once.)"""
        return self._closed or self._pipe_write_blocked()

    async def _drain(self) -> None:
        if self._engine.pending_output >= FLUSH_NOW_BYTES:
            self._flush()
        try:
            await self._pipe.drain()
        except ConnectionClosed:
            if self._close_exc is not None:
                raise self._close_exc from None
            raise

    def _fail(
        self, exc: ConnectionClosed, report: BaseException | None = None, *, abort: bool = False
    ) -> None:
        """End the session because of the peer or the pipe, and close (or abort) the pipe."""
        if self._closed:
            return
        self._shutdown(exc, report if report is not None else exc)
        if abort:
            self._pipe.abort()
        else:
            self._pipe.close()

    def _shutdown(self, exc: ConnectionClosed, report: BaseException | None) -> None:
        self._closed = True
        self._close_exc = exc
        self._close_report = report
        streams = list(self._streams.values())
        self._streams.clear()
        self._pending_inbound.clear()
        for s in streams:
            s.fail(exc)
        self._release_waiters(exc)
        self._run_close_callback()

    def _release_waiters(self, exc: ConnectionClosed) -> None:
        """Hook of :meth:`_shutdown`, before the close callback: stop timers, fail the session's waiters."""

    def _run_close_callback(self) -> None:
        cb = self._close_callback
        if cb is None or self._callback_done:
            return
        self._callback_done = True
        cb(self._close_report)
