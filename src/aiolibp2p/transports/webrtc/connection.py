"""A WebRTC-direct connection as a libp2p ``MuxedConnection``; its data channels as ``MuxedStream``s.

Layers, bottom up, all driven from the endpoint's datagram callback (no task per connection or stream):

- ICE (``ice.py``): the dialer's connectivity checks (retransmitted until answered) and consent checks every
  ``keepalive_interval`` from both sides; any datagram from the remote refreshes the idle timer.
- DTLS (``dtls.py``): the dialer is the DTLS client. Once the handshake is done the dialer checks the
  listener's certificate against the address's ``/certhash``.
- SCTP: aiortc's ``RTCSctpTransport`` (pure Python), given a small DTLS stand-in (:class:`_DtlsShim`). Its
  coroutines are driven inline by a trampoline, so a datagram is processed to the end in its callback.
- Noise XX on the pre-negotiated data channel 0, the listener as initiator, with the prologue
  ``"libp2p-webrtc-noise:" ‖ multihash(client fingerprint) ‖ multihash(server fingerprint)``.
- Streams: one data channel each, framed by :class:`framing.StreamCore`; IDs never reused (dialer even from
  2, listener odd from 1).

Closing sends an SCTP ABORT and a DTLS close_notify, so the remote notices at once; a received ABORT,
close_notify, or ``idle_timeout`` of silence ends the connection and runs its close callback exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcsctptransport import USERDATA_MAX_LENGTH, RTCSctpCapabilities, RTCSctpTransport
from aiortc.utils import uint32_gt

from ...core.interfaces import Direction, MuxedStream
from ...exceptions import (
    ConnectionClosed,
    DeadlineExceeded,
    HandshakeError,
    Libp2pError,
    ProtocolViolation,
    StreamReset,
)
from ...muxers.buffered_stream import BufferedStream
from ...security.noise.handshake import NoiseHandshake
from ...wire.multihash import SHA2_256, multihash_encode
from ..native import NativeConnection
from . import ice
from .certificate import WebRtcCertificate
from .config import SCTP_PORT, WebRtcDirectConfig
from .dtls import DtlsClosed, DtlsData, DtlsEngine, DtlsFailed, DtlsHandshakeComplete
from .framing import (
    DataReceived,
    FinAckReceived,
    FinReceived,
    ResetReceived,
    StopSendingReceived,
    StreamCore,
)

if TYPE_CHECKING:
    from ...crypto.keys import PublicKey
    from ...crypto.peer_id import PeerId
    from ...multiaddr import Multiaddr
    from .endpoint import WebRtcEndpoint

__all__ = ["NOISE_PROLOGUE_PREFIX", "WebRtcConnection", "WebRtcStream", "noise_prologue"]

log = logging.getLogger(__name__)

NOISE_PROLOGUE_PREFIX = b"libp2p-webrtc-noise:"
_WEBRTC_BINARY = 53  # SCTP payload protocol identifier of a binary data-channel message (RFC 8831)
_MAX_STREAM_ID = 65535
_NOISE_MAX_BUFFER = 4 * 65536
_NOISE_CHANNEL_LINGER = 5.0  # seconds the Noise initiator waits for the responder to close data channel 0


def noise_prologue(client_fingerprint: bytes, server_fingerprint: bytes) -> bytes:
    return (
        NOISE_PROLOGUE_PREFIX
        + multihash_encode(SHA2_256, client_fingerprint)
        + multihash_encode(SHA2_256, server_fingerprint)
    )


class _DtlsShim:
    """What aiortc's ``RTCSctpTransport`` uses of its DTLS transport: role, state, a receiver, a sender."""

    __slots__ = ("_conn", "_receiver", "_role", "state")

    def __init__(self, conn: WebRtcConnection, is_server: bool) -> None:
        self._conn = conn
        self._role = "server" if is_server else "client"
        self._receiver: Any = None
        self.state = "connected"

    def _register_data_receiver(self, receiver: Any) -> None:
        self._receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        if self._receiver is receiver:
            self._receiver = None

    async def _send_data(self, data: bytes) -> None:
        self._conn._send_sctp_packet(data)


class _Sctp(RTCSctpTransport):
    """aiortc's SCTP association, made to respect the peer's receive window.

    aiortc sends whatever its congestion window allows and ignores the ``a_rwnd`` its peer advertises, so a
    slow reader on the other side would have to buffer without bound. Here the bytes in flight are also capped
    by the peer's last advertised window (RFC 9260 §6.1 rule A; with nothing in flight one chunk may go, the
    zero-window probe)."""

    _peer_rwnd: int = 1 << 30
    _driver: Callable[[Coroutine[Any, Any, Any]], None] | None = None
    _sack_delay: float = 0.02
    _packets_unacked: int = 0
    _sack_timer: asyncio.TimerHandle | None = None

    # -- delayed SACK (aiortc acknowledges every packet: twice the datagrams, each encrypted and sent) ----------
    async def _send_sack(self) -> None:
        # RFC 9260 §6.2: acknowledge at least every second packet, at once on gaps or duplicates, and a lone
        # packet within a short delay
        self._packets_unacked += 1
        if (
            self._packets_unacked >= 2
            or self._sack_duplicates
            or self._sack_misordered
            or self._advertised_rwnd <= 0
            or self._driver is None
        ):
            await self._sack_now()
        elif self._sack_timer is None:
            self._sack_timer = asyncio.get_running_loop().call_later(self._sack_delay, self._on_sack_timer)

    async def _sack_now(self) -> None:
        self._packets_unacked = 0
        if self._sack_timer is not None:
            self._sack_timer.cancel()
            self._sack_timer = None
        if self._last_received_tsn is not None:
            await super()._send_sack()

    def _on_sack_timer(self) -> None:
        self._sack_timer = None
        if (
            self._sack_needed
            and self._driver is not None
            and self._association_state == self.State.ESTABLISHED
        ):
            self._driver(self._sack_now())

    def _data_channel_send(self, channel: RTCDataChannel, data: bytes | str) -> None:
        """Queue one message and flush it inline (aiortc schedules a task per message)."""
        driver = self._driver
        if driver is None or not isinstance(data, bytes) or not data:
            super()._data_channel_send(channel, data)
            return
        channel._addBufferedAmount(len(data))
        self._data_channel_queue.append((channel, _WEBRTC_BINARY, data))
        driver(self._data_channel_flush())

    async def _receive_data_chunk(self, chunk: Any) -> None:
        # RFC 9260 §6.2: with our window closed, new DATA is dropped (and SACKed, so the sender learns it);
        # otherwise a sender that ignores the window would make us buffer without bound
        last = self._last_received_tsn
        if (
            self._advertised_rwnd <= 0
            and last is not None
            and uint32_gt(chunk.tsn, last)
            and chunk.tsn not in self._sack_misordered
        ):
            self._sack_needed = True
            return
        await super()._receive_data_chunk(chunk)

    # Chunks are marked for retransmission only by gap reports in a SACK and by the T3 timer; until then
    # _transmit need not walk every chunk in flight (aiortc does, on every call: O(flight) per SACK, the
    # largest single cost of a fast sender)
    _retransmit_possible: bool = False

    async def _receive_sack_chunk(self, chunk: Any) -> None:
        self._peer_rwnd = chunk.advertised_rwnd
        if chunk.gaps:
            self._retransmit_possible = True
        await super()._receive_sack_chunk(chunk)

    def _t3_expired(self) -> None:
        self._retransmit_possible = True
        super()._t3_expired()

    async def _transmit(self) -> None:
        if self._retransmit_possible or self._forward_tsn_chunk is not None:
            saved = self._cwnd
            self._cwnd = min(saved, max(self._peer_rwnd, 1))
            try:
                await super()._transmit()
            finally:
                self._cwnd = saved
            self._retransmit_possible = any(c._retransmit for c in self._sent_queue)
            return
        # nothing to retransmit: send queued chunks while the bytes in flight stay within the burst limit,
        # the congestion window and the peer's receive window
        burst = (2 if self._fast_recovery_exit is not None else 4) * USERDATA_MAX_LENGTH
        limit = min(self._flight_size + burst, self._cwnd, max(self._peer_rwnd, 1))
        queue = self._outbound_queue
        while queue and self._flight_size < limit:
            chunk = queue.popleft()
            self._sent_queue.append(chunk)
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            chunk._sent_time = time.time()
            await self._send_chunk(chunk)
            if not self._t3_handle:
                self._t3_start()


class WebRtcStream(BufferedStream):
    """One libp2p stream: one SCTP data channel with the WebRTC framing."""

    __slots__ = ("_channel", "_conn", "_core", "_linger", "_rwnd_held")

    def __init__(
        self, conn: WebRtcConnection, channel: RTCDataChannel, stream_id: int, direction: Direction
    ) -> None:
        super().__init__(stream_id, direction)
        self._conn = conn
        self._channel = channel
        self._core = StreamCore(conn.config.max_receive_message_size)
        self._linger: asyncio.TimerHandle | None = None
        self._rwnd_held = 0  # bytes buffered here and taken off the SCTP receive window
        channel.bufferedAmountLowThreshold = conn.config.stream_send_buffer // 2
        channel.on("message", self._on_message)
        channel.on("close", self._on_channel_close)
        channel.on("bufferedamountlow", self.wake_writer)

    # -- BufferedStream hook --------------------------------------------------------------------------
    def _consumed(self, n: int) -> None:
        if self._rwnd_held:
            n = min(n, self._rwnd_held)
            self._rwnd_held -= n
            self._conn._release_rwnd(n)

    # -- sending --------------------------------------------------------------------------------------------
    def _send(self, messages: list[bytes]) -> None:
        ch = self._channel
        if ch.readyState not in ("open", "connecting"):
            return
        # straight to the SCTP layer: a new channel may carry data before the remote's DCEP ACK (its OPEN is
        # queued first, and the channel is ordered), which RTCDataChannel.send would refuse
        send = ch.transport._data_channel_send
        for m in messages:
            send(ch, m)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        core = self._core
        if core.stop_received:
            raise StreamReset(f"stream {self._stream_id}: the remote stopped reading", remote=True)
        limit = self._conn.config.stream_send_buffer
        for msg in core.send_data(data):
            while self._channel.bufferedAmount > limit:
                await self._wait_writable()
                self._check_writable()
                if core.stop_received:
                    raise StreamReset(f"stream {self._stream_id}: the remote stopped reading", remote=True)
            self._send([msg])

    def _writable(self) -> bool:
        return self._error is not None or self._channel.bufferedAmount <= self._conn.config.stream_send_buffer

    async def close_write(self) -> None:
        if self._write_closed or self._error is not None:
            return
        self._write_closed = True
        self._send(self._core.send_fin())
        self._maybe_finish()

    async def close(self) -> None:
        """FIN our side and stop reading (STOP_SENDING); the channel closes once the FIN is acknowledged."""
        await self.close_write()
        if self._error is None:
            self._send(self._core.send_stop_sending())
        self._close_read()
        self._maybe_finish()

    async def reset(self, code: int = 0) -> None:
        if self._error is not None:
            return
        self._write_closed = True
        self._send(self._core.send_reset(code))
        self.fail(StreamReset(f"stream {self._stream_id} reset locally", code=code, remote=False))
        self._close_channel()

    def fail(self, exc: BaseException) -> None:
        super().fail(exc)
        if self._rwnd_held:
            self._conn._release_rwnd(self._rwnd_held)
            self._rwnd_held = 0

    # -- the data channel -----------------------------------------------------------------------------------
    def _on_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        try:
            events, replies = self._core.receive(data)
        except ProtocolViolation as e:
            log.debug("stream %d: %s; resetting it", self._stream_id, e)
            self._send(self._core.send_reset(0))
            self.fail(StreamReset(f"stream {self._stream_id}: {e}", remote=True))
            self._close_channel()
            return
        self._send(replies)
        for ev in events:
            if isinstance(ev, DataReceived):
                if self._discard or self._error is not None:
                    continue
                n = len(ev.data)
                self._rwnd_held += n
                self._conn._hold_rwnd(n)
                self.feed(ev.data)
            elif isinstance(ev, FinReceived):
                self.feed_eof()
            elif isinstance(ev, FinAckReceived):
                pass
            elif isinstance(ev, StopSendingReceived):
                self._write_closed = True
                self.wake_writer()
            elif isinstance(ev, ResetReceived):
                self._write_closed = True
                self.fail(
                    StreamReset(f"stream {self._stream_id} reset by the remote", code=ev.code, remote=True)
                )
        self._maybe_finish()

    def _on_channel_close(self) -> None:
        conn = self._conn
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if conn._association_closed():
            conn._on_association_closed()  # fails every stream (this one too) with ConnectionClosed
            return
        if conn._streams.get(self._stream_id) is self:
            del conn._streams[self._stream_id]
        if self._error is None and not (self._core.fin_received and self._core.write_closed):
            # a channel closed without our FIN exchange complete is a reset (go: EOF without FIN)
            self._write_closed = True
            self.fail(StreamReset(f"stream {self._stream_id}: the remote closed its channel", remote=True))

    def _maybe_finish(self) -> None:
        core = self._core
        if core.done:
            self._close_channel()
        elif core.fin_sent and self._linger is None and self._error is None:
            # bounded wait for FIN_ACK (and the remote's FIN) before closing the channel anyway
            self._linger = self._conn._loop.call_later(self._conn.config.fin_ack_timeout, self._close_channel)

    def _close_channel(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._channel.readyState in ("open", "connecting"):
            self._channel.close()

    def is_closed(self) -> bool:
        return super().is_closed() or self._channel.readyState == "closed"


class WebRtcConnection(NativeConnection[WebRtcStream]):
    """A libp2p connection over WebRTC-direct (``MuxedConnection`` and the swarm's capable connection)."""

    endpoint: WebRtcEndpoint
    config: WebRtcDirectConfig
    security_protocol = "/noise"
    muxer = "webrtc"
    handshake_name = "WebRTC-direct handshake"

    def __init__(
        self,
        endpoint: WebRtcEndpoint,
        *,
        certificate: WebRtcCertificate,
        noise_factory: Callable[..., NoiseHandshake],
        config: WebRtcDirectConfig,
        direction: Direction,
        remote_sockaddr: tuple[Any, ...],
        credentials: ice.IceCredentials,
        local_addr: Multiaddr,
        remote_addr: Multiaddr,
        expected_fingerprint: bytes | None = None,
        expected_peer: PeerId | None = None,
    ) -> None:
        super().__init__(endpoint, config, direction, remote_sockaddr, local_addr, remote_addr)
        self.is_server = direction is Direction.INBOUND
        self.credentials = credentials
        self._certificate = certificate
        self._noise_factory = noise_factory
        self._expected_fingerprint = expected_fingerprint
        self._expected_peer = expected_peer
        self.dtls = DtlsEngine(certificate, is_server=self.is_server, mtu=config.dtls_mtu)
        self._shim = _DtlsShim(self, self.is_server)
        self.sctp: _Sctp | None = None
        self._channel0: RTCDataChannel | None = None
        self._noise: NoiseHandshake | None = None
        self._noise_buf = bytearray()
        self._noise_core = StreamCore()
        self._remote_peer: PeerId | None = None
        self._remote_public_key: PublicKey | None = None
        self._next_stream_id = 1 if self.is_server else 2
        self._ice_connected = self.is_server  # a listener's connection exists because a check arrived
        self._stun_tx: bytes | None = None
        self._stun_delay = config.stun_retransmit_initial
        self._stun_timer: asyncio.TimerHandle | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._tie_breaker = int.from_bytes(os.urandom(8), "big")
        self._backlog: deque[Coroutine[Any, Any, Any]] = deque()
        self._driving = False
        self._rwnd_held = 0
        self.last_rx = time.monotonic()
        self._rx_waiters: list[asyncio.Future[None]] = []  # ping() callers waiting for any datagram

    # -- identity (valid once the handshake completed) -------------------------------------------------
    @property
    def remote_peer(self) -> PeerId:
        assert self._remote_peer is not None
        return self._remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        assert self._remote_public_key is not None
        return self._remote_public_key

    def __repr__(self) -> str:
        return f"<WebRtcConnection {self.direction.value} {self.remote_addr} {self._remote_peer}>"

    # -- MuxedConnection -------------------------------------------------------------------------------
    async def open_stream(self) -> MuxedStream:
        if self._closed_exc is not None:
            raise self._closed_exc
        sctp = self.sctp
        if sctp is None or self._association_closed():
            exc = ConnectionClosed("the SCTP association is closed", cause="remote-closed")
            self._terminate(exc)
            raise exc
        sid = self._next_stream_id
        if sid > _MAX_STREAM_ID:
            raise Libp2pError("exhausted the WebRTC stream ID space (IDs are never reused)")
        self._next_stream_id += 2
        channel = RTCDataChannel(sctp, RTCDataChannelParameters(label="", id=sid))
        s = WebRtcStream(self, channel, sid, Direction.OUTBOUND)
        self._streams[sid] = s
        return s

    async def ping(self) -> None:
        """A STUN consent check answered by the remote (the swarm's liveness probe)."""
        if self._closed_exc is not None:
            raise self._closed_exc
        fut: asyncio.Future[None] = self._loop.create_future()
        self._rx_waiters.append(fut)  # resolved by the next datagram from the remote, or failed by the close
        self._send_consent()
        try:
            async with asyncio.timeout(self.config.keepalive_interval):
                await fut
        except TimeoutError:
            raise DeadlineExceeded("WebRTC consent check", self.config.keepalive_interval) from None
        finally:
            if fut in self._rx_waiters:
                self._rx_waiters.remove(fut)

    def _send_close(self, code: int = 0, reason: str = "") -> None:
        """What the remote needs to notice: SCTP ABORT, then DTLS close_notify (no code: WebRTC carries none)."""
        sctp = self.sctp
        if sctp is not None and not self._association_closed():
            self._drive(sctp._abort())
        if not self.dtls.closed:
            self.dtls.close()
            self._flush_dtls()

    # -- starting --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """A dialer begins its connectivity checks; a listener's connection waits for DTLS."""
        self._arm_keepalive()
        if not self.is_server:
            self._send_check()
        else:
            self._loop.call_later(self.config.pending_silence_timeout / 2, self._check_pending)

    def _check_pending(self) -> None:
        """A listener's connection still handshaking whose dialer went silent (gave up, lost a dial race, or
        never meant it) is dropped at once instead of holding a pending slot for the whole handshake timeout:
        ICE has no goodbye, and a dialer in the middle of a handshake always has something to send."""
        if self._closed_exc is not None or self.handshake.done():
            return
        silent = time.monotonic() - self.last_rx
        if silent > self.config.pending_silence_timeout:
            self._fail_handshake_and_close(HandshakeError(f"the dialer went silent for {silent:.1f} s"))
            return
        self._loop.call_later(self.config.pending_silence_timeout / 2, self._check_pending)

    # -- ICE ---------------------------------------------------------------------------------------------------
    def _send_check(self) -> None:
        self._stun_timer = None
        if self._ice_connected or self._closed_exc is not None:
            return
        txid, data = ice.binding_request(
            self.credentials, controlling=True, tie_breaker=self._tie_breaker, use_candidate=True
        )
        self._stun_tx = txid
        self.endpoint.sendto(data, self.remote_sockaddr)
        self._stun_timer = self._loop.call_later(self._stun_delay, self._send_check)
        self._stun_delay = min(self._stun_delay * 2, self.config.stun_retransmit_max)

    def _send_consent(self) -> None:
        _, data = ice.binding_request(
            self.credentials,
            controlling=not self.is_server,
            tie_breaker=self._tie_breaker,
            use_candidate=False,
        )
        self.endpoint.sendto(data, self.remote_sockaddr)

    def _arm_keepalive(self) -> None:
        if self._closed_exc is None:
            self._keepalive = self._loop.call_later(self.config.keepalive_interval, self._on_keepalive)

    def _on_keepalive(self) -> None:
        self._keepalive = None
        if self._closed_exc is not None:
            return
        idle = time.monotonic() - self.last_rx
        if idle > self.config.idle_timeout:
            self._terminate(
                ConnectionClosed(f"no datagram from the remote for {idle:.1f} s", cause="idle-timeout")
            )
            self._finish()
            return
        if self._ice_connected:
            self._send_consent()
        self._arm_keepalive()

    def _on_stun(self, data: bytes) -> None:
        creds = self.credentials
        # a check from the remote (the dialer's, or the listener's consent check): answer it
        local_pwd = creds.server_pwd if self.is_server else creds.client_pwd
        req = ice.parse_binding_request(data, key_for=local_pwd)
        if req is not None:
            host, port = self.remote_sockaddr[0], self.remote_sockaddr[1]
            self.endpoint.sendto(
                ice.binding_success(req.transaction_id, (host, port), local_pwd), self.remote_sockaddr
            )
            return
        remote_pwd = creds.client_pwd if self.is_server else creds.server_pwd
        txid = ice.parse_binding_response(data, remote_pwd)
        if txid is not None and not self._ice_connected and txid == self._stun_tx:
            self._ice_connected = True
            if self._stun_timer is not None:
                self._stun_timer.cancel()
                self._stun_timer = None
            self.dtls.start()
            self._flush_dtls()

    # -- datagrams ---------------------------------------------------------------------------------------------
    def datagram_received(self, data: bytes) -> None:
        if self.terminated:
            return
        self.last_rx = time.monotonic()
        if self._rx_waiters:
            waiters, self._rx_waiters = self._rx_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)
        if ice.is_stun(data):
            self._on_stun(data)
        elif ice.is_dtls(data):
            if self._closed_exc is not None:
                return
            for ev in self.dtls.receive(data):
                if isinstance(ev, DtlsData):
                    self._on_sctp_packet(ev.data)
                elif isinstance(ev, DtlsHandshakeComplete):
                    self._on_dtls_ready(ev.remote_fingerprint)
                elif isinstance(ev, DtlsClosed):
                    self._terminate(
                        ConnectionClosed("the remote closed DTLS (close_notify)", cause="remote-closed")
                    )
                    self._finish()
                    return
                elif isinstance(ev, DtlsFailed):
                    self._fail_handshake_and_close(HandshakeError(ev.reason))
                    return
            self._flush_dtls()

    def _flush_dtls(self) -> None:
        out = self.dtls.datagrams_to_send()
        for d in out:
            self.endpoint.sendto(d, self.remote_sockaddr)
        self._rearm_dtls_timer()

    def _rearm_dtls_timer(self) -> None:
        t = self.dtls.timeout()
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        if t is not None and self._closed_exc is None:
            self._dtls_timer = self._loop.call_later(max(t, 0.001), self._on_dtls_timer)

    def _on_dtls_timer(self) -> None:
        self._dtls_timer = None
        self.dtls.handle_timeout()
        self._flush_dtls()

    def _send_sctp_packet(self, data: bytes) -> None:
        self.dtls.send(data)
        for d in self.dtls.datagrams_to_send():
            self.endpoint.sendto(d, self.remote_sockaddr)

    # -- SCTP ---------------------------------------------------------------------------------------------------
    def _on_dtls_ready(self, remote_fingerprint: bytes) -> None:
        if self._expected_fingerprint is not None and remote_fingerprint != self._expected_fingerprint:
            self._fail_handshake_and_close(
                HandshakeError("the listener's DTLS certificate does not match the address's /certhash")
            )
            return
        if self.is_server:
            prologue = noise_prologue(remote_fingerprint, self._certificate.fingerprint)
        else:
            prologue = noise_prologue(self._certificate.fingerprint, remote_fingerprint)
        self._noise = self._noise_factory(
            is_initiator=self.is_server, expected_peer=self._expected_peer, prologue=prologue
        )
        sctp = _Sctp(self._shim, port=SCTP_PORT)  # type: ignore[arg-type]
        sctp._advertised_rwnd = self.config.sctp_receive_window
        sctp._driver = self._drive
        sctp._sack_delay = self.config.sack_delay
        self.sctp = sctp
        sctp.on("datachannel", self._on_datachannel)
        ch0 = RTCDataChannel(sctp, RTCDataChannelParameters(label="", negotiated=True, id=0))
        ch0.on("message", self._on_noise_message)
        ch0.on("open", self._on_channel0_open)
        self._channel0 = ch0
        self._drive(sctp.start(RTCSctpCapabilities(maxMessageSize=262144), SCTP_PORT))

    def _on_sctp_packet(self, data: bytes) -> None:
        receiver = self._shim._receiver
        if receiver is None:
            return
        self._drive(receiver._handle_data(data))

    def _association_closed(self) -> bool:
        sctp = self.sctp
        return sctp is not None and sctp._association_state == RTCSctpTransport.State.CLOSED

    def _on_association_closed(self) -> None:
        if self._closed_exc is None:
            self._terminate(
                ConnectionClosed("the remote aborted the SCTP association", cause="remote-closed")
            )
            self._send_close()
            self._finish()

    def _hold_rwnd(self, n: int) -> None:
        self._rwnd_held += n
        if self.sctp is not None:
            self.sctp._advertised_rwnd -= n

    def _release_rwnd(self, n: int) -> None:
        self._rwnd_held -= n
        sctp = self.sctp
        if sctp is not None and self._closed_exc is None:
            was_closed = sctp._advertised_rwnd <= 0
            sctp._advertised_rwnd += n
            if was_closed and sctp._advertised_rwnd > 0 and not self._association_closed():
                self._drive(sctp._sack_now())  # reopen the window at once (a window update)

    # the trampoline: aiortc's SCTP coroutines run inline, in order; one that really waits resumes later
    def _drive(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._driving:
            self._backlog.append(coro)
            return
        self._step(coro)

    def _step(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._driving = True
        while True:
            try:
                fut = coro.send(None)
            except StopIteration:
                pass
            except Exception as e:
                log.debug("WebRTC connection %r: SCTP error %r", self, e)
                self._driving = False
                self._backlog.clear()
                if self._closed_exc is None:
                    self._fail_handshake_and_close(ProtocolViolation(f"SCTP error: {e!r}"))
                return
            else:
                if fut is None:
                    self._loop.call_soon(self._step, coro)
                else:
                    fut._asyncio_future_blocking = False
                    fut.add_done_callback(lambda _f, c=coro: self._step(c))
                return
            if not self._backlog:
                break
            coro = self._backlog.popleft()
        self._driving = False
        if self.sctp is not None and self._closed_exc is None and self._association_closed():
            self._on_association_closed()

    # -- Noise on channel 0 -------------------------------------------------------------------------------------
    def _send_noise(self, message: bytes) -> None:
        assert self._channel0 is not None
        frame = len(message).to_bytes(2, "big") + message
        ch = self._channel0
        for m in self._noise_core.send_data(frame):
            ch.transport._data_channel_send(ch, m)

    def _on_channel0_open(self) -> None:
        hs = self._noise
        if hs is not None and hs.is_initiator and hs.our_turn:
            self._send_noise(hs.write_message())

    def _on_noise_message(self, data: bytes | str) -> None:
        hs = self._noise
        if hs is None or self.handshake.done():
            return
        try:
            events, _ = self._noise_core.receive(data.encode() if isinstance(data, str) else data)
            for ev in events:
                if isinstance(ev, DataReceived):
                    self._noise_buf += ev.data
                elif isinstance(ev, (FinReceived, ResetReceived)):
                    raise HandshakeError("the remote ended the Noise channel before the handshake completed")
            if len(self._noise_buf) > _NOISE_MAX_BUFFER:
                raise ProtocolViolation("oversized Noise handshake data")
            buf = self._noise_buf
            while len(buf) >= 2 and not hs.complete:
                n = int.from_bytes(buf[:2], "big")
                if len(buf) < 2 + n:
                    break
                frame = bytes(buf[2 : 2 + n])
                del buf[: 2 + n]
                hs.read_message(frame)
                if hs.our_turn and not hs.complete:
                    self._send_noise(hs.write_message())
        except Libp2pError as e:
            self._fail_handshake_and_close(e)
            return
        if hs.complete:
            result = hs.result
            self._remote_peer = result.remote_peer
            self._remote_public_key = result.remote_public_key
            if self._stun_timer is not None:
                self._stun_timer.cancel()
                self._stun_timer = None
            ch0 = self._channel0
            if ch0 is not None:
                ch0.remove_all_listeners("message")
                if hs.is_initiator:
                    # the responder reads our last message, then closes the channel; closing it right after
                    # that message made js-libp2p's responder lose it now and then ("Unexpected EOF")
                    self._loop.call_later(_NOISE_CHANNEL_LINGER, self._close_channel0)
                else:
                    ch0.close()
            self.handshake.set_result(None)

    def _close_channel0(self) -> None:
        ch0 = self._channel0
        if ch0 is not None and self._closed_exc is None and ch0.readyState == "open":
            ch0.close()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        sid = channel.id
        if sid is None:
            return
        s = WebRtcStream(self, channel, sid, Direction.INBOUND)
        if self._closed_exc is not None:
            return
        inbound = sum(1 for x in self._streams.values() if x.direction is Direction.INBOUND)
        if (
            len(self._pending_inbound) >= self.config.max_accept_queue
            or inbound >= self.config.max_inbound_streams
        ):
            log.debug("%r: too many inbound streams; resetting stream %d", self, sid)
            s._send(s._core.send_reset(0))
            s._close_channel()
            return
        self._streams[sid] = s
        if self._inbound_cb is not None and self.handshake.done():
            self._inbound_cb(s)
            return
        self._pending_inbound.append(s)

    # -- ending -------------------------------------------------------------------------------------------------
    def _fail_handshake_and_close(self, exc: BaseException) -> None:
        self.fail_handshake(exc)
        if self._closed_exc is None:
            self._send_close()
            cause = "handshake-failed" if not self._remote_peer else "protocol-violation"
            self._terminate(ConnectionClosed(f"WebRTC-direct connection failed: {exc}", cause=cause))
        self._finish()

    def _stop_timers(self) -> None:
        for h in (self._keepalive, self._stun_timer, self._dtls_timer):
            if h is not None:
                h.cancel()
        self._keepalive = self._stun_timer = self._dtls_timer = None

    def _fail_stream(self, s: WebRtcStream, exc: ConnectionClosed) -> None:
        s.fail(exc)
        if s._linger is not None:
            s._linger.cancel()
            s._linger = None

    def _on_terminated(self, exc: ConnectionClosed) -> None:
        waiters, self._rx_waiters = self._rx_waiters, []
        for w in waiters:
            if not w.done():
                w.set_exception(exc)
        sctp = self.sctp
        if sctp is not None:
            # stop SCTP timers without sending anything more (the ABORT, if any, is out already)
            sctp._association_state = RTCSctpTransport.State.CLOSED
            sctp._driver = None
            if sctp._sack_timer is not None:
                sctp._sack_timer.cancel()
                sctp._sack_timer = None
            for cancel in (sctp._t1_cancel, sctp._t2_cancel, sctp._t3_cancel, sctp._reconfig_timer_cancel):
                cancel()
            sctp.remove_all_listeners()
