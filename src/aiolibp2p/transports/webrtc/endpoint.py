"""One UDP socket of the WebRTC-direct transport: a listener's shared port (ICE-lite) and the dials made from it.

Datagrams from a known remote address go to its connection. A STUN Binding request from an unknown address
whose USERNAME carries a libp2p WebRTC-direct ufrag, and whose MESSAGE-INTEGRITY verifies with that ufrag,
creates an inbound connection while a listener is open (the ufrag tells connections apart; the address then
routes DTLS and SCTP). New connections are bounded per socket and per remote IP while they handshake, so a
STUN flood with made-up ufrags costs a bounded amount and the socket keeps serving other peers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ...core.interfaces import Direction
from ...exceptions import DecodeError
from ...multiaddr import Multiaddr
from ..udp import set_socket_buffers
from . import ice
from .config import WebRtcDirectConfig

if TYPE_CHECKING:
    from .connection import WebRtcConnection

__all__ = ["WebRtcEndpoint", "webrtc_multiaddr"]

log = logging.getLogger(__name__)


_WEBRTC_DIRECT = Multiaddr("/webrtc-direct")


def webrtc_multiaddr(sockaddr: tuple[Any, ...], certhash: str | None = None) -> Multiaddr:
    """``/ip4|ip6/<host>/udp/<port>/webrtc-direct[/certhash/<h>]`` of a socket address."""
    suffix = _WEBRTC_DIRECT if certhash is None else Multiaddr(f"/webrtc-direct/certhash/{certhash}")
    return Multiaddr.from_sockaddr(sockaddr, "udp", suffix)


class WebRtcEndpoint(asyncio.DatagramProtocol):
    """A UDP socket shared by one listener (optional) and dialed connections."""

    def __init__(
        self,
        config: WebRtcDirectConfig,
        new_inbound: Callable[[WebRtcEndpoint, tuple[Any, ...], ice.IceCredentials], WebRtcConnection | None],
        on_empty: Callable[[WebRtcEndpoint], None],
    ) -> None:
        self.config = config
        self._new_inbound = new_inbound
        self._on_empty = on_empty
        self._transport: asyncio.DatagramTransport | None = None
        self._conns: dict[tuple[Any, ...], WebRtcConnection] = {}
        self.accepting = False  # a listener is open on this socket
        self.local_sockaddr: tuple[Any, ...] = ()
        self.family = socket.AF_INET
        self.closed = False
        self.stats_refused = 0  # new-connection checks refused by the bounds (tests read it)

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port), family=self.family)
        assert self._transport is not None
        self.local_sockaddr = cast(tuple[Any, ...], self._transport.get_extra_info("sockname"))
        set_socket_buffers(self._transport.get_extra_info("socket"), self.config.socket_buffer)

    @property
    def num_connections(self) -> int:
        return len(self._conns)

    def has_connection_to(self, sockaddr: tuple[Any, ...]) -> bool:
        return _key(sockaddr) in self._conns

    def add(self, sockaddr: tuple[Any, ...], conn: WebRtcConnection) -> None:
        self._conns[_key(sockaddr)] = conn

    def forget(self, conn: WebRtcConnection) -> None:
        k = _key(conn.remote_sockaddr)
        if self._conns.get(k) is conn:
            del self._conns[k]
        if not self._conns and not self.accepting:
            self.close()

    def sendto(self, data: bytes, addr: tuple[Any, ...]) -> None:
        t = self._transport
        if t is not None and not self.closed:
            t.sendto(data, addr)

    # -- asyncio.DatagramProtocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: consent checks and timers decide
        log.debug("UDP error on %s: %r", self.local_sockaddr, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        conn = self._conns.get(_key(addr))
        if conn is not None:
            try:
                conn.datagram_received(data)
            except Exception:  # never let one connection's bug take the socket down
                log.exception("WebRTC connection %r failed on an incoming datagram", conn)
                conn.abort(None)
            return
        if not self.accepting or not ice.is_stun(data):
            return
        req = ice.parse_binding_request(data)
        if req is None:
            return
        try:
            creds = ice.IceCredentials.from_server_ufrag(req.username)
        except DecodeError as e:
            log.debug("STUN check from %s refused: %s", addr, e)
            return
        if not self._may_accept(addr):
            self.stats_refused += 1
            return
        conn = self._new_inbound(self, addr, creds)
        if conn is None:
            return
        self._conns[_key(addr)] = conn
        conn.datagram_received(data)  # answers the check

    def _may_accept(self, addr: tuple[Any, ...]) -> bool:
        pending = [
            c for c in self._conns.values() if c.direction is Direction.INBOUND and not c.handshake.done()
        ]
        if len(pending) >= self.config.max_pending_inbound_handshakes:
            return False
        ip = addr[0]
        return sum(1 for c in pending if c.remote_sockaddr[0] == ip) < self.config.max_pending_per_ip

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn in list(self._conns.values()):
            conn.abort(None)
        self._conns.clear()
        if self._transport is not None:
            self._transport.close()
        self._on_empty(self)


def _key(sockaddr: tuple[Any, ...]) -> tuple[Any, ...]:
    return (sockaddr[0], sockaddr[1])
