"""The QUIC-v1 transport (libp2p ``quic/README.md``): ``/ip4|ip6/<addr>/udp/<port>/quic-v1`` (and
``/dns|dns4|dns6/<name>/udp/<port>/quic-v1`` for dialing: resolved, then the first address is dialed).

A *capable* transport: what it dials and accepts is already authenticated (libp2p TLS inside QUIC, ALPN
``libp2p``) and multiplexed (native QUIC streams), so the swarm skips the upgrader. One UDP socket per
listen address serves both the listener and dials of the same address family; without a listener on a family,
its dials share one socket, kept ``QuicConfig.dial_socket_linger`` seconds after its last connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ...crypto.keys import PrivateKey
from ...crypto.peer_id import PeerId
from ...dns.families import DNS_PROTOCOLS, socket_family
from ...exceptions import DialError, MultiaddrError
from ...multiaddr import Multiaddr
from ...security.tls.certificate import TlsCertificate
from ..udp import socket_reaches
from .config import QuicConfig
from .connection import QuicConnection
from .endpoint import QuicEndpoint
from .engine import stateless_reset_key

__all__ = ["QuicListener", "QuicTransport", "parse_quic_multiaddr"]

log = logging.getLogger(__name__)

CapableHandler = Callable[[QuicConnection], Awaitable[None]]


def _quic_host_port(addr: Multiaddr) -> tuple[str, str, int]:
    """``(host protocol, host, port)`` of ``/ip4|ip6|dns|dns4|dns6/<host>/udp/<port>/quic-v1[/p2p/<id>]``."""
    items = addr.items()
    if items and items[-1][0] == "p2p":
        items = items[:-1]
    if (
        len(items) != 3
        or items[0][0] not in ("ip4", "ip6", *DNS_PROTOCOLS)
        or items[1][0] != "udp"
        or items[2][0] != "quic-v1"
    ):
        raise MultiaddrError(f"not a QUIC-v1 address: {addr}")
    host, port = items[0][1], items[1][1]
    assert host is not None and port is not None
    return items[0][0], host, int(port)


def parse_quic_multiaddr(addr: Multiaddr) -> tuple[str, int]:
    """``(ip, port)`` of ``/ip4|ip6/<ip>/udp/<port>/quic-v1[/p2p/<id>]``; raises MultiaddrError."""
    proto, host, port = _quic_host_port(addr)
    if proto not in ("ip4", "ip6"):
        raise MultiaddrError(f"not a QUIC-v1 address with an IP: {addr}")
    return host, port


async def _resolve(proto: str, host: str, port: int, timeout: float) -> str:
    """The first address ``host`` resolves to in the family ``/dns4`` or ``/dns6`` asks for (any for /dns)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, family=socket_family(proto), type=socket.SOCK_DGRAM)
    except TimeoutError:
        raise DialError(f"resolving {host} timed out after {timeout:g} s") from None
    except OSError as e:
        raise DialError(f"cannot resolve {host}: {e}") from e
    if not infos:
        raise DialError(f"{host} resolves to no address")
    return str(infos[0][4][0])


class QuicListener:
    def __init__(self, transport: QuicTransport, endpoint: QuicEndpoint) -> None:
        self._transport = transport
        self.endpoint = endpoint

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        a = self.endpoint.local_multiaddr
        return [a] if a is not None else []

    async def close(self) -> None:
        """Stop accepting; connections already accepted stay up (the socket closes with the last one)."""
        ep = self.endpoint
        ep.accept = None
        self._transport._listening.discard(ep)
        if ep.num_connections == 0:
            ep.close()


class QuicTransport:
    """Dials and listens on QUIC-v1; connections come out secured and multiplexed."""

    name = "quic"
    capable = True

    def __init__(self, private_key: PrivateKey, config: QuicConfig | None = None) -> None:
        self.config = config or QuicConfig()
        self._key = private_key
        self.local_peer = PeerId.from_public_key(private_key.public_key)
        self._cert = TlsCertificate.generate(private_key)
        self._reset_key = stateless_reset_key(private_key)
        self._listening: set[QuicEndpoint] = set()
        self._endpoints: set[QuicEndpoint] = set()
        # "ip4"/"ip6" -> the socket dials share when not listening
        self._dialing: dict[str, QuicEndpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            _quic_host_port(addr)
        except MultiaddrError:
            return False
        return True

    def can_listen(self, addr: Multiaddr) -> bool:
        try:
            parse_quic_multiaddr(addr)
        except MultiaddrError:
            return False
        return True

    async def _new_endpoint(self, host: str, port: int) -> QuicEndpoint:
        ep = QuicEndpoint(self._cert, self.config, self._reset_key, self._endpoint_closed)
        await ep.bind(host, port)
        self._endpoints.add(ep)
        return ep

    def _endpoint_closed(self, ep: QuicEndpoint) -> None:
        self._endpoints.discard(ep)
        for family, dialing in list(self._dialing.items()):
            if dialing is ep:
                del self._dialing[family]

    async def listen(self, addr: Multiaddr, handler: CapableHandler) -> QuicListener:
        host, port = parse_quic_multiaddr(addr)
        ep = await self._new_endpoint(host, port)

        def accept(conn: QuicConnection) -> None:
            task = asyncio.ensure_future(handler(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        ep.accept = accept
        self._listening.add(ep)
        return QuicListener(self, ep)

    def _endpoint_for_dial(self, host: str) -> QuicEndpoint | None:
        """A listening socket that can reach ``host``: same family; a loopback-bound one only for loopback."""
        for ep in self._listening:
            if not ep.closed and socket_reaches(ep.family, ep.local_sockaddr, host):
                return ep
        return None

    async def dial(self, addr: Multiaddr, peer: PeerId | None = None) -> QuicConnection:
        """Connect and authenticate. ``peer`` (when known) must be the certificate's peer: PeerIdMismatch.
        A ``/dns*`` name is resolved first (within the handshake timeout) and the first address dialed."""
        proto, host, port = _quic_host_port(addr)
        if proto in DNS_PROTOCOLS:
            host = await _resolve(proto, host, port, self.config.handshake_timeout)
        if peer is None:
            pid = addr.get_peer_id()
            peer = PeerId.from_string(pid) if pid is not None else None
        ep = self._endpoint_for_dial(host)
        if ep is None:
            # not listening on this family: one socket shared by the dials (as go-libp2p's quicreuse), kept
            # config.dial_socket_linger seconds after its last connection ends
            family = "ip6" if ":" in host else "ip4"
            ep = self._dialing.get(family)
            if ep is None or ep.closed:
                try:
                    ep = await self._new_endpoint("::" if family == "ip6" else "0.0.0.0", 0)
                except OSError as e:
                    raise DialError(f"cannot open a UDP socket to dial {addr}: {e}") from e
                ep.dial_only = True
                self._dialing[family] = ep
        sockaddr: tuple[Any, ...] = (host, port, 0, 0) if ":" in host else (host, port)
        try:
            return await ep.dial(sockaddr, peer)
        finally:
            ep.release_if_idle()

    async def close(self) -> None:
        for ep in list(self._endpoints):
            ep.close()
        for t in list(self._tasks):
            t.cancel()
