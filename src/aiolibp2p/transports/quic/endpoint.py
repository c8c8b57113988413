"""One UDP socket and the QUIC connections on it (RFC 9000 §5.2: routing datagrams by connection ID).

A listening endpoint accepts Initial packets for new connections; every endpoint also dials, so a node that
listens on ``/udp/P/quic-v1`` dials from port P (peers see one address, NATs see one mapping). Datagrams that
do not parse, arrive for no known connection, or are too small to start one are dropped. A short-header
packet for an unknown connection ID is answered with a stateless reset (rate-limited, always smaller than
the packet that caused it); a datagram that ends with a reset token a peer gave us ends that connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from aioquic._buffer import Buffer, BufferReadError
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from ...core.interfaces import Direction
from ...crypto.peer_id import PeerId
from ...multiaddr import Multiaddr
from ...security.tls.certificate import TlsCertificate
from ..udp import set_socket_buffers
from .config import QuicConfig
from .connection import QuicConnection
from .engine import (
    STATELESS_RESET_TOKEN_SIZE,
    SUPPORTED_VERSIONS,
    Libp2pQuicEngine,
    make_configuration,
    reset_token_for,
)

__all__ = ["QuicEndpoint", "sockaddr_to_multiaddr"]

log = logging.getLogger(__name__)

_MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1
_MIN_RESET_TRIGGER = 1 + 20 + STATELESS_RESET_TOKEN_SIZE  # only answer packets that could be real 1-RTT


_QUIC_V1 = Multiaddr("/quic-v1")


def sockaddr_to_multiaddr(sockaddr: tuple[Any, ...]) -> Multiaddr:
    return Multiaddr.from_sockaddr(sockaddr, "udp", _QUIC_V1)


class QuicEndpoint(asyncio.DatagramProtocol):
    """A UDP socket shared by one listener (optional) and any number of dialed connections."""

    def __init__(
        self,
        certificate: TlsCertificate,
        config: QuicConfig,
        reset_key: bytes,
        on_empty: Callable[[QuicEndpoint], None],
    ) -> None:
        self._cert = certificate
        self.config = config
        self._reset_key = reset_key
        self._on_empty = on_empty
        self._confs = {
            (is_client, loopback): make_configuration(
                certificate, config, is_client=is_client, loopback=loopback
            )
            for is_client in (False, True)
            for loopback in (False, True)
        }
        self._transport: asyncio.DatagramTransport | None = None
        self._routes: dict[bytes, QuicConnection] = {}
        self._tokens: dict[bytes, QuicConnection] = {}
        self._conns: set[QuicConnection] = set()
        self._handshaking = 0
        self.accept: Callable[[QuicConnection], None] | None = None  # set while a listener is open
        self.local_sockaddr: tuple[Any, ...] = ()
        self.local_multiaddr: Multiaddr | None = None
        self.family = socket.AF_INET
        self._reset_budget = config.stateless_reset_rate
        self._reset_window = 0.0
        self.closed = False
        # a socket opened to dial (no listener) stays open dial_socket_linger seconds after its last
        # connection, for the next dial to reuse
        self.dial_only = False
        self._idle_close: asyncio.TimerHandle | None = None
        # loopback? -> a dialer engine with its first flight built ahead (see Libp2pQuicEngine.prepare)
        self._spare: dict[bool, Libp2pQuicEngine] = {}
        self._spare_pending: asyncio.Handle | None = None

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port), family=self.family)
        assert self._transport is not None
        self.local_sockaddr = cast(tuple[Any, ...], self._transport.get_extra_info("sockname"))
        self.local_multiaddr = sockaddr_to_multiaddr(self.local_sockaddr)
        set_socket_buffers(self._transport.get_extra_info("socket"), self.config.socket_buffer)

    @property
    def num_connections(self) -> int:
        return len(self._conns)

    # -- asyncio.DatagramProtocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: QUIC's own timers decide
        log.debug("UDP error on %s: %r", self.local_multiaddr, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if not data:
            return
        cid_len = self.config.connection_id_length
        long_header = bool(data[0] & 0x80)
        if long_header:
            if len(data) < 6:
                return
            dcid_len = data[5]
            dcid = data[6 : 6 + dcid_len]
        else:
            dcid = data[1 : 1 + cid_len]
        conn = self._routes.get(dcid)
        if conn is not None:
            try:
                conn.datagram_received(data, addr, asyncio.get_running_loop().time())
            except Exception:  # never let one connection's bug take the socket down
                log.exception("QUIC connection %r failed on an incoming datagram", conn)
                conn.abort(None)
            return
        if not long_header:
            self._unknown_short_header(data, addr, dcid)
            return
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=cid_len)
        except (ValueError, BufferReadError):
            return
        if header.version is not None and header.version not in SUPPORTED_VERSIONS:
            if len(data) >= _MIN_INITIAL_DATAGRAM and header.version != QuicProtocolVersion.NEGOTIATION:
                self._send(
                    encode_quic_version_negotiation(
                        source_cid=header.destination_cid,
                        destination_cid=header.source_cid,
                        supported_versions=list(SUPPORTED_VERSIONS),
                    ),
                    addr,
                )
            return
        if (
            header.packet_type == QuicPacketType.INITIAL
            and len(data) >= _MIN_INITIAL_DATAGRAM
            and self.accept is not None
            and self._handshaking < self.config.max_pending_inbound_handshakes
        ):
            self._accept_initial(data, addr, header.destination_cid)

    # -- stateless reset ------------------------------------------------------------------------------------
    def _unknown_short_header(self, data: bytes, addr: tuple[Any, ...], dcid: bytes) -> None:
        if len(data) >= 1 + STATELESS_RESET_TOKEN_SIZE + 4:
            conn = self._tokens.get(data[-STATELESS_RESET_TOKEN_SIZE:])
            if conn is not None and conn.remote_sockaddr[:2] == addr[:2]:
                log.debug("stateless reset received for %r", conn)
                conn.stateless_reset_received()
                return
        if len(data) < _MIN_RESET_TRIGGER or not self._reset_allowed():
            return
        # RFC 9000 §10.3: shorter than the trigger (no reset loops), looks like a short-header packet
        size = min(len(data) - 1, 42)
        head = bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(size - 1 - STATELESS_RESET_TOKEN_SIZE)
        self._send(head + reset_token_for(self._reset_key, dcid), addr)

    def _reset_allowed(self) -> bool:
        now = time.monotonic()
        if now - self._reset_window >= 1.0:
            self._reset_window = now
            self._reset_budget = self.config.stateless_reset_rate
        if self._reset_budget <= 0:
            return False
        self._reset_budget -= 1
        return True

    def learn_reset_tokens(self, conn: QuicConnection) -> None:
        for token in conn.engine.peer_reset_tokens():
            if token not in self._tokens:
                self._tokens[token] = conn

    # -- connections ----------------------------------------------------------------------------------------
    def _new_connection(
        self, engine: Libp2pQuicEngine, addr: tuple[Any, ...], direction: Direction
    ) -> QuicConnection:
        assert self.local_multiaddr is not None
        conn = QuicConnection(
            self, engine, addr, self.config, direction, self.local_multiaddr, sockaddr_to_multiaddr(addr)
        )
        self._conns.add(conn)
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        for cid in engine.host_connection_ids():
            self._routes[cid] = conn
        return conn

    def _accept_initial(self, data: bytes, addr: tuple[Any, ...], original_dcid: bytes) -> None:
        engine = Libp2pQuicEngine(
            configuration=self._confs[False, _is_loopback(addr)],
            config=self.config,
            reset_key=self._reset_key,
            original_destination_connection_id=original_dcid,
        )
        conn = self._new_connection(engine, addr, Direction.INBOUND)
        self._routes[original_dcid] = conn
        self._handshaking += 1
        conn.handshake.add_done_callback(lambda f: self._inbound_handshake_done(conn, f))
        timeout = asyncio.get_running_loop().call_later(
            self.config.handshake_timeout, conn.abort, TimeoutError("QUIC handshake timed out")
        )
        conn.handshake.add_done_callback(lambda _: timeout.cancel())
        conn.datagram_received(data, addr, asyncio.get_running_loop().time())
        conn.start()

    def _inbound_handshake_done(self, conn: QuicConnection, fut: asyncio.Future[None]) -> None:
        self._handshaking -= 1
        if fut.cancelled() or fut.exception() is not None:
            log.debug("inbound QUIC handshake from %s failed: %r", conn.remote_addr, fut.exception())
            return
        if self.accept is None or conn.is_closed():
            conn.abort(None)
            return
        self.accept(conn)

    def _dialer_engine(self, loopback: bool) -> Libp2pQuicEngine:
        return Libp2pQuicEngine(
            configuration=self._confs[True, loopback], config=self.config, reset_key=self._reset_key
        )

    def _prepare_spare(self, loopback: bool) -> None:
        self._spare_pending = None
        if not self.closed and loopback not in self._spare:
            engine = self._dialer_engine(loopback)
            engine.prepare(asyncio.get_running_loop().time())
            self._spare[loopback] = engine

    async def dial(self, addr: tuple[Any, ...], peer: PeerId | None) -> QuicConnection:
        loop = asyncio.get_running_loop()
        loopback = _is_loopback(addr)
        engine = self._spare.pop(loopback, None) or self._dialer_engine(loopback)
        engine.expected_peer = peer
        engine.connect(addr, loop.time())
        conn = self._new_connection(engine, addr, Direction.OUTBOUND)
        conn.start()
        if self._spare_pending is None:
            # the next dial's first flight, built while this one waits for its peer's answer
            self._spare_pending = loop.call_soon(self._prepare_spare, loopback)
        try:
            await conn.wait_handshake(self.config.handshake_timeout)
        except BaseException:
            conn.abort(None)
            if engine.auth_error is not None:
                raise engine.auth_error from None
            raise
        return conn

    def route(self, cid: bytes, conn: QuicConnection) -> None:
        if not conn.terminated:
            self._routes[cid] = conn

    def unroute(self, cid: bytes, conn: QuicConnection) -> None:
        if self._routes.get(cid) is conn:
            del self._routes[cid]

    def forget(self, conn: QuicConnection) -> None:
        """The connection is finished: drop its routes and tokens; close the socket if nobody needs it."""
        self._conns.discard(conn)
        for table in (self._routes, self._tokens):
            for k in [k for k, c in table.items() if c is conn]:
                del table[k]
        self.release_if_idle()

    def release_if_idle(self) -> None:
        """No listener and no connection left: close the socket (a dialing socket after a linger)."""
        if self._conns or self.accept is not None or self.closed or self._idle_close is not None:
            return
        linger = self.config.dial_socket_linger
        if self.dial_only and linger > 0:
            self._idle_close = asyncio.get_running_loop().call_later(linger, self._close_if_idle)
        else:
            self.close()

    def _close_if_idle(self) -> None:
        self._idle_close = None
        if not self._conns and self.accept is None:
            self.close()

    def send_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        for data, addr in datagrams:
            t.sendto(data, addr)

    def _send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        t = self._transport
        if t is not None and not t.is_closing():
            t.sendto(data, addr)

    # -- closing --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the socket (connections still on it are aborted first, so their peers get CONNECTION_CLOSE)."""
        if self.closed:
            return
        self.closed = True
        self.accept = None
        self._spare.clear()
        if self._spare_pending is not None:
            self._spare_pending.cancel()
            self._spare_pending = None
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        for conn in list(self._conns):
            conn.abort(None)
        self._conns.clear()
        self._routes.clear()
        self._tokens.clear()
        if self._transport is not None:
            self._transport.close()
        self._on_empty(self)


def _is_loopback(addr: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
