"""A QUIC connection as a libp2p ``MuxedConnection``, and its native streams as ``MuxedStream``s.

QUIC arrives secure and multiplexed (``quic/README.md``): each libp2p stream is one bidirectional QUIC stream
that then negotiates its protocol with multistream-select; FIN is a half-close; RESET_STREAM and
STOP_SENDING carry the libp2p reset code. Closing sends CONNECTION_CLOSE with an application error code.

No ``last_rx``, on purpose: the swarm opens lazy (0-RTT) streams only on connections that report it, and
js-libp2p's QUIC listener (@chainsafe/libp2p-quic 2.1) loses the data that came with a lazy proposal when our
FIN follows its answer before its handler runs (measured: 38 of 50 concurrent echo streams came back empty;
yamux over TCP is not affected); ``tests/interop/test_js_quic.py`` covers it.

No task per connection or stream: the endpoint feeds datagrams in, the engine's events are dispatched at once,
and a single coalesced ``transmit``, deferred ``QuicConfig.transmit_coalesce`` loop iterations, sends what the
engine produced: what the tasks woken by one datagram answer leaves in one datagram. A stream about to wait
for input sends at once instead (its peer may be waiting on what it wrote), and so does a dialer whose TLS
handshake just completed (its Finished). One
``call_at`` timer follows the engine's next deadline (loss detection, idle), another sends keep-alive PINGs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

from aioquic.quic import events as qe
from aioquic.quic.connection import QuicConnectionState

from ...core.interfaces import Direction, MuxedStream
from ...exceptions import ConnectionClosed, StreamReset
from ...muxers.buffered_stream import BufferedStream
from ..native import NativeConnection
from .config import QuicConfig
from .engine import Libp2pQuicEngine

if TYPE_CHECKING:
    from ...crypto.keys import PublicKey
    from ...crypto.peer_id import PeerId
    from ...multiaddr import Multiaddr
    from .endpoint import QuicEndpoint

__all__ = ["QuicConnection", "QuicStream"]

log = logging.getLogger(__name__)

_WRITE_SLICE = 64 * 1024
_ping_ids = itertools.count(1)


class QuicStream(BufferedStream):
    """One bidirectional QUIC stream."""

    __slots__ = ("_conn", "_read_done", "_send_done", "_write_error")

    def __init__(self, conn: QuicConnection, stream_id: int, direction: Direction) -> None:
        super().__init__(stream_id, direction)
        self._conn = conn
        self._write_error: BaseException | None = None  # STOP_SENDING from the remote
        self._send_done = False  # FIN or RESET_STREAM queued: the engine's send side is finished
        self._read_done = False  # FIN or RESET_STREAM received, or STOP_SENDING sent

    # -- BufferedStream hooks -------------------------------------------------------------------------
    def _consumed(self, n: int) -> None:
        self._conn._credit(self._stream_id, n)

    def _before_read_wait(self) -> None:
        self._conn._flush_before_wait()

    # -- writing --------------------------------------------------------------------------------------------
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        conn = self._conn
        view = memoryview(data).cast("B")
        limit = conn.config.stream_send_buffer
        pos = 0
        while True:
            self._check_writable()
            if self._write_error is not None:
                raise self._write_error
            if pos >= len(view) and pos:
                return
            if conn.engine.stream_send_pending(self._stream_id) >= limit:
                conn._blocked_writers.add(self)
                await self._wait_writable()
                continue
            chunk = view[pos : pos + _WRITE_SLICE]
            pos += len(chunk)
            conn.engine.send_stream_data(self._stream_id, bytes(chunk))
            conn.schedule_transmit()
            if pos >= len(view):
                return

    def _writable(self) -> bool:
        c = self._conn
        return (
            self._error is not None
            or self._write_error is not None
            or c.engine.stream_send_pending(self._stream_id) < c.config.stream_send_buffer
        )

    async def close_write(self) -> None:
        if self._write_closed or self._error is not None:
            return
        self._write_closed = True
        if self._write_error is None and not self._send_done:
            self._send_done = True
            self._conn.engine.send_stream_data(self._stream_id, b"", end_stream=True)
            self._conn.schedule_transmit()
        self._conn._maybe_forget(self)

    async def close(self) -> None:
        """FIN our side and stop reading (go-libp2p: CancelRead(0) then Close)."""
        await self.close_write()
        if not self._read_done and self._error is None:
            self._read_done = True
            self._conn._stop_sending(self._stream_id, 0)
        self._close_read()
        self._conn._maybe_forget(self)

    async def reset(self, code: int = 0) -> None:
        if self._error is not None:
            return
        self._write_closed = True
        c = self._conn
        if not self._send_done:
            self._send_done = True
            c._reset_sending(self._stream_id, code)
        if not self._read_done:
            self._read_done = True
            c._stop_sending(self._stream_id, code)
        self.fail(StreamReset(f"stream {self._stream_id} reset locally", code=code, remote=False))
        c._maybe_forget(self)

    # -- engine events ---------------------------------------------------------------------------------------
    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if data:
            self.feed(data)
        if end_stream:
            self._read_done = True
            self.feed_eof()

    def _on_reset(self, code: int) -> None:
        self._read_done = True
        if not self._send_done:  # the remote aborted the stream: abort ours too
            self._send_done = True
            self._conn._reset_sending(self._stream_id, code)
        self._write_closed = True
        self.fail(StreamReset(f"stream {self._stream_id} reset by the remote", code=code, remote=True))

    def _on_stop_sending(self, code: int) -> None:
        # aioquic answers STOP_SENDING with RESET_STREAM carrying the same code (RFC 9000 §3.5)
        self._send_done = True
        self._write_error = StreamReset(
            f"stream {self._stream_id}: the remote stopped reading", code=code, remote=True
        )
        self.wake_writer()

    def is_closed(self) -> bool:
        return super().is_closed() or (self._send_done and self._read_done and not self._buf)


class QuicConnection(NativeConnection[QuicStream]):
    """A libp2p connection over QUIC (``MuxedConnection``), driven by its endpoint."""

    endpoint: QuicEndpoint
    config: QuicConfig
    security_protocol = "/tls/1.0.0"
    muxer = "quic"
    handshake_name = "QUIC handshake"

    def __init__(
        self,
        endpoint: QuicEndpoint,
        engine: Libp2pQuicEngine,
        remote_sockaddr: tuple[Any, ...],
        config: QuicConfig,
        direction: Direction,
        local_addr: Multiaddr,
        remote_addr: Multiaddr,
    ) -> None:
        super().__init__(endpoint, config, direction, remote_sockaddr, local_addr, remote_addr)
        self.engine = engine
        self._blocked_writers: set[QuicStream] = set()
        self._transmit_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._cid_timer: asyncio.TimerHandle | None = None
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._stream_limit_seen = engine.inbound_stream_limit
        self._peer_cids_seen: tuple[int, bytes | None, int] = (0, None, 0)

    # -- identity (valid once the handshake completed) -------------------------------------------------
    @property
    def remote_peer(self) -> PeerId:
        assert self.engine.remote_peer is not None
        return self.engine.remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        assert self.engine.remote_public_key is not None
        return self.engine.remote_public_key

    def __repr__(self) -> str:
        return f"<QuicConnection {self.direction.value} {self.remote_addr} {self.engine.remote_peer}>"

    # -- MuxedConnection -------------------------------------------------------------------------------
    async def open_stream(self) -> MuxedStream:
        """A new bidirectional stream. Beyond the peer's MAX_STREAMS it exists but stays blocked (its writes
        wait) until the peer grants more: the caller's deadline bounds that wait."""
        if self._closed_exc is not None:
            raise self._closed_exc
        sid = self.engine.get_next_available_stream_id()
        self.engine.send_stream_data(sid, b"")  # creates the stream (announced with its first bytes)
        s = QuicStream(self, sid, Direction.OUTBOUND)
        self._streams[sid] = s
        return s

    def _send_close(self, code: int, reason: str) -> None:
        """CONNECTION_CLOSE with the application error ``code``, sent at once."""
        self.engine.close(error_code=code, reason_phrase=reason)
        self._transmit()

    async def ping(self) -> None:
        """A QUIC PING, acknowledged by the remote (the swarm's liveness probe)."""
        if self._closed_exc is not None:
            raise self._closed_exc
        uid = next(_ping_ids)
        fut = self._loop.create_future()
        self._pings[uid] = fut
        self.engine.send_ping(uid)
        self.schedule_transmit()
        try:
            await fut
        finally:
            self._pings.pop(uid, None)

    # -- driven by the endpoint -----------------------------------------------------------------------------
    def start(self) -> None:
        """Arm the timers (and send the first flight for a client)."""
        self._transmit()
        self._arm_keepalive()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        self.engine.receive_datagram(data, addr, now)
        was_ready = self.handshake.done()
        self._process_events()
        if not was_ready and self.handshake.done() and self.direction is Direction.OUTBOUND:
            # TLS just completed on the dialer: its Finished leaves now, before the tasks the handshake wakes
            # (the swarm's setup, identify, the caller's first stream) take their turns; the listener then
            # checks it in parallel with them, and their streams follow in the next coalesced datagram
            self._transmit()
        else:
            self.schedule_transmit()

    def schedule_transmit(self) -> None:
        if self._transmit_handle is None and not self.terminated:
            self._transmit_handle = self._loop.call_soon(self._transmit_after, self.config.transmit_coalesce)

    def _transmit_after(self, iterations: int) -> None:
        """Send ``iterations`` loop iterations from now: the tasks a datagram woke (a handler answering, our
        identify, the next write) get to add their frames to the same datagrams."""
        if iterations > 0:
            self._transmit_handle = self._loop.call_soon(self._transmit_after, iterations - 1)
        else:
            self._transmit()

    def _flush_before_wait(self) -> None:
        """A stream is about to wait for input: what was written leaves now rather than after the coalescing
        turns, since its peer may be waiting on it to answer (writes with no read between them still share
        datagrams)."""
        if self._transmit_handle is not None:
            self._transmit()

    def _transmit(self) -> None:
        pending = self._transmit_handle
        self._transmit_handle = None
        if pending is not None:  # sending now (a timer, a close): the deferred send has nothing left to do
            pending.cancel()
        if self.terminated:
            return
        now = self._loop.time()
        self.endpoint.send_datagrams(self.engine.datagrams_to_send(now))
        self._process_events()  # sending may retire IDs or finish streams
        limit = self.engine.inbound_stream_limit
        if limit != self._stream_limit_seen:
            # streams discarded while building packets raise MAX_STREAMS, which goes out on the next call
            self._stream_limit_seen = limit
            self.schedule_transmit()
        self._rearm_timer()

    def _rearm_timer(self) -> None:
        at = self.engine.get_timer()
        if at == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.engine.handle_timer(self._loop.time())
        self._process_events()
        self._transmit()

    def _arm_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.terminated or self._closed_exc is not None:
            self._keepalive = None
            return
        interval = self.config.keep_alive_interval
        remote_idle = self.engine._remote_max_idle_timeout
        if remote_idle:  # never let a peer with a shorter idle timeout drop us
            interval = min(interval, remote_idle / 2)
        self._keepalive = self._loop.call_later(interval, self._send_keepalive)

    def _issue_connection_ids(self) -> None:
        self._cid_timer = None
        if self._closed_exc is None and not self.terminated:
            self.engine.issue_connection_ids()
            self.schedule_transmit()

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if self._closed_exc is None and self.handshake.done():
            self.engine.send_ping(0)
            self._transmit()
        self._arm_keepalive()

    # -- events ----------------------------------------------------------------------------------------------
    def _process_events(self) -> None:
        engine = self.engine
        while (event := engine.next_event()) is not None:
            if isinstance(event, qe.StreamDataReceived):
                s = self._stream_for_event(event.stream_id)
                if s is not None:
                    s._on_data(event.data, event.end_stream)
                    self._maybe_forget(s)
            elif isinstance(event, qe.StreamReset):
                s = self._streams.get(event.stream_id)
                if s is not None:
                    s._on_reset(event.error_code)
                    self._maybe_forget(s)
            elif isinstance(event, qe.StopSendingReceived):
                s = self._streams.get(event.stream_id)
                if s is not None:
                    s._on_stop_sending(event.error_code)
                    self._maybe_forget(s)
            elif isinstance(event, qe.PingAcknowledged):
                fut = self._pings.get(event.uid)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif isinstance(event, qe.HandshakeCompleted):
                self._arm_keepalive()
                delay = self.config.connection_id_issue_delay
                if delay > 0:
                    self._cid_timer = self._loop.call_later(delay, self._issue_connection_ids)
            elif isinstance(event, qe.ConnectionIdIssued):
                self.endpoint.route(event.connection_id, self)
            elif isinstance(event, qe.ConnectionIdRetired):
                self.endpoint.unroute(event.connection_id, self)
            elif isinstance(event, qe.ConnectionTerminated):
                self._on_engine_terminated(event)
        version = engine.peer_cids_version()
        if version != self._peer_cids_seen:
            self._peer_cids_seen = version
            self.endpoint.learn_reset_tokens(self)
        if not self.handshake.done() and engine.handshake_done and self._closed_exc is None:
            self.handshake.set_result(None)
        if self._closed_exc is None:
            ce = engine.close_event
            if ce is not None and engine.state is QuicConnectionState.DRAINING:
                # the peer closed: surface it now rather than after the 3 × PTO draining period
                self._terminate(self._remote_close_error(ce))
            else:
                self._wake_writers()

    def _remote_close_error(self, ev: qe.ConnectionTerminated) -> ConnectionClosed:
        if ev.frame_type is None:  # APPLICATION_CLOSE: the libp2p code
            return ConnectionClosed(
                f"remote closed the connection (code {ev.error_code})",
                cause="remote-closed",
                code=ev.error_code,
            )
        return ConnectionClosed(
            f"QUIC transport error {ev.error_code:#x}: {ev.reason_phrase}",
            cause="transport-error",
            code=ev.error_code,
        )

    def _on_engine_terminated(self, ev: qe.ConnectionTerminated) -> None:
        if self._closed_exc is None:
            if ev.reason_phrase == "Idle timeout":
                exc = ConnectionClosed("QUIC idle timeout: the remote went silent", cause="idle-timeout")
            else:
                exc = self._remote_close_error(ev)
            self._terminate(exc)
        self._finish()

    def _stream_for_event(self, sid: int) -> QuicStream | None:
        s = self._streams.get(sid)
        if s is not None or self._closed_exc is not None:
            return s
        if (sid & 1 == 0) == (self.direction is Direction.OUTBOUND) or sid & 2:
            return None  # our own stream, already forgotten; or unidirectional (refused by MAX_STREAMS 0)
        s = QuicStream(self, sid, Direction.INBOUND)
        self._streams[sid] = s
        if self._inbound_cb is not None:
            self._inbound_cb(s)
        else:
            self._pending_inbound.append(s)
        return s

    def _wake_writers(self) -> None:
        if not self._blocked_writers:
            return
        for s in list(self._blocked_writers):
            if s._writable():
                self._blocked_writers.discard(s)
                s.wake_writer()

    # -- used by streams -------------------------------------------------------------------------------------
    def _credit(self, sid: int, n: int) -> None:
        e = self.engine
        if sid in self._streams:
            e.consumed[sid] = e.consumed.get(sid, 0) + n
        e.consumed_total += n
        self.schedule_transmit()

    def _reset_sending(self, sid: int, code: int) -> None:
        if self._closed_exc is None and self.engine.has_stream(sid):
            self.engine.reset_stream(sid, code)
            self.schedule_transmit()

    def _stop_sending(self, sid: int, code: int) -> None:
        if self._closed_exc is None and self.engine.has_stream(sid):
            self.engine.stop_stream(sid, code)
            self.schedule_transmit()

    def _maybe_forget(self, s: QuicStream) -> None:
        if s.is_closed() and self._streams.get(s.stream_id) is s:
            del self._streams[s.stream_id]
            self.engine.consumed.pop(s.stream_id, None)
            self._blocked_writers.discard(s)

    # -- ending ----------------------------------------------------------------------------------------------
    def _stop_timers(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _handshake_failure(self, exc: ConnectionClosed) -> BaseException:
        auth = self.engine.auth_error  # a refused certificate says why, rather than that the connection ended
        return auth if auth is not None else exc

    def _on_terminated(self, exc: ConnectionClosed) -> None:
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(exc)

    def _forget(self) -> None:
        for h in (self._timer, self._keepalive, self._transmit_handle, self._cid_timer):
            if h is not None:
                h.cancel()
        self._timer = self._keepalive = self._transmit_handle = self._cid_timer = None
        super()._forget()

    def stateless_reset_received(self) -> None:
        self._terminate(ConnectionClosed("the remote sent a stateless reset", cause="stateless-reset"))
        self._finish()
