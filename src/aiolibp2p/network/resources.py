"""The resource manager: named limits on connections, streams and buffered memory, at the system, peer,
protocol and connection scopes. A request past a limit is refused with :class:`ResourceLimitExceeded`
(naming the limit) and the connection or stream concerned is closed/reset; the host keeps serving others.

Model: go-libp2p ``p2p/host/resource-manager`` (system / transient / peer / protocol / connection / stream
scopes), much simplified: every limit is a plain number in :class:`ResourceLimits`, and each stream reserves
``stream_memory`` bytes (its receive window) from the memory budget, which bounds what peers can make us buffer.

Inbound connections are also limited per source IP (an IPv4 address, an IPv6 /56) as go's ``connLimiter`` and
``connRateLimiter`` do: a number open at once, and a token bucket of new connections per second, checked on
accept, before any handshake work; loopback is exempt by default.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.interfaces import Direction
from ..exceptions import ResourceLimitExceeded

if TYPE_CHECKING:
    from ..crypto.peer_id import PeerId


def _default_memory() -> int:
    """go's default: 1/8 of the machine's memory, at least 128 MiB, at most 1 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return max(128 << 20, min(1 << 30, total // 8))


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    max_connections: int = 4096
    max_inbound_connections: int = 2048
    max_outbound_connections: int = 2048
    max_connections_per_peer: int = 8
    max_streams: int = 65536
    max_inbound_streams: int = 32768
    max_streams_per_peer: int = 4096
    max_inbound_streams_per_peer: int = 2048
    max_streams_per_connection: int = 1024
    max_inbound_streams_per_protocol: int = 16384
    protocol_inbound_stream_limits: dict[str, int] = field(default_factory=dict)
    """Per-protocol overrides of ``max_inbound_streams_per_protocol``."""
    max_memory: int = field(default_factory=_default_memory)
    """Bytes of buffered data peers may make us hold (stream receive windows)."""
    stream_memory: int = 256 * 1024
    """Bytes each open stream reserves from ``max_memory`` (the initial yamux window)."""
    max_inbound_connections_per_ip: int = 8
    """Inbound connections open at once from one IPv4 address or IPv6 /56 (go: 8 per subnet)."""
    inbound_connection_rate_per_ip: float = 0.2
    """New inbound connections per second from one IPv4 address or IPv6 /56, after the burst (go: 0.2/s)."""
    inbound_connection_burst_per_ip: int = 16
    """New inbound connections one IP may open at once before ``inbound_connection_rate_per_ip`` applies (go: 16)."""
    unlimited_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Source networks exempt from the per-IP limits (go exempts loopback)."""


MAX_RATE_LIMITED_SOURCES = 16_384
"""Source IPs whose connection-rate buckets are remembered at most; beyond it, refilled buckets are forgotten,
then the oldest."""


@dataclass(slots=True)
class _PeerUsage:
    conns: int = 0
    streams: int = 0
    inbound_streams: int = 0


class ConnectionScope:
    """Resources held by one connection; release with :meth:`done` (idempotent)."""

    __slots__ = ("_done", "_rm", "direction", "peer", "source", "streams")

    def __init__(self, rm: ResourceManager, direction: Direction, source: str | None = None) -> None:
        self._rm = rm
        self.direction = direction
        self.source = source
        """The source-IP key counted against ``max_inbound_connections_per_ip`` (None when not counted)."""
        self.peer: PeerId | None = None
        self.streams = 0
        self._done = False

    def set_peer(self, peer: PeerId) -> None:
        """Attach the connection to ``peer`` (after the security handshake); refuses past the per-peer limit."""
        if self.peer is not None or self._done:
            return
        rm = self._rm
        usage = rm._peers.setdefault(peer, _PeerUsage())
        if usage.conns >= rm.limits.max_connections_per_peer:
            if not usage.conns and not usage.streams:
                rm._peers.pop(peer, None)
            rm._refused("max_connections_per_peer")
        usage.conns += 1
        self.peer = peer

    def done(self) -> None:
        if self._done:
            return
        self._done = True
        rm = self._rm
        rm.connections -= 1
        if self.direction is Direction.INBOUND:
            rm.inbound_connections -= 1
        else:
            rm.outbound_connections -= 1
        if self.source is not None:
            n = rm._per_source[self.source] - 1
            if n:
                rm._per_source[self.source] = n
            else:
                del rm._per_source[self.source]
        if self.peer is not None:
            usage = rm._peers.get(self.peer)
            if usage is not None:
                usage.conns -= 1
                if usage.conns <= 0 and usage.streams <= 0:
                    del rm._peers[self.peer]


class StreamScope:
    """Resources held by one stream; release with :meth:`done` (idempotent)."""

    __slots__ = ("_conn", "_done", "_rm", "direction", "peer", "protocol")

    def __init__(
        self, rm: ResourceManager, conn: ConnectionScope | None, peer: PeerId, direction: Direction
    ) -> None:
        self._rm = rm
        self._conn = conn
        self.peer = peer
        self.direction = direction
        self.protocol: str | None = None
        self._done = False

    def set_protocol(self, protocol: str) -> None:
        """Account the stream to ``protocol``; inbound streams are refused past the protocol's limit."""
        if self.protocol is not None or self._done:
            return
        rm = self._rm
        if self.direction is Direction.INBOUND:
            limit = rm.limits.protocol_inbound_stream_limits.get(
                protocol, rm.limits.max_inbound_streams_per_protocol
            )
            if rm._protocol_inbound.get(protocol, 0) >= limit:
                rm._refused(f"inbound streams for {protocol}")
            rm._protocol_inbound[protocol] = rm._protocol_inbound.get(protocol, 0) + 1
        self.protocol = protocol

    def done(self) -> None:
        if self._done:
            return
        self._done = True
        rm = self._rm
        rm.streams -= 1
        rm.memory -= rm.limits.stream_memory
        inbound = self.direction is Direction.INBOUND
        if inbound:
            rm.inbound_streams -= 1
            if self.protocol is not None:
                n = rm._protocol_inbound.get(self.protocol, 1) - 1
                if n <= 0:
                    rm._protocol_inbound.pop(self.protocol, None)
                else:
                    rm._protocol_inbound[self.protocol] = n
        if self._conn is not None:
            self._conn.streams -= 1
        usage = rm._peers.get(self.peer)
        if usage is not None:
            usage.streams -= 1
            if inbound:
                usage.inbound_streams -= 1
            if usage.conns <= 0 and usage.streams <= 0:
                del rm._peers[self.peer]


class ResourceManager:
    """Counts what is open and refuses what is over a limit. Single-threaded (the event loop)."""

    def __init__(
        self, limits: ResourceLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or ResourceLimits()
        self._clock = clock
        self._unlimited = [ipaddress.ip_network(n, strict=False) for n in self.limits.unlimited_networks]
        self._per_source: dict[str, int] = {}
        """Inbound connections open per source-IP key."""
        self._buckets: dict[str, tuple[float, float]] = {}
        """Connection-rate token buckets per source-IP key: (tokens, time of the last update)."""
        self.connections = 0
        self.inbound_connections = 0
        self.outbound_connections = 0
        self.streams = 0
        self.inbound_streams = 0
        self.memory = 0
        self.refusals: dict[str, int] = {}
        self._peers: dict[PeerId, _PeerUsage] = {}
        self._protocol_inbound: dict[str, int] = {}

    def _refused(self, limit: str) -> None:
        self.refusals[limit] = self.refusals.get(limit, 0) + 1
        raise ResourceLimitExceeded(f"resource limit reached: {limit}", limit=limit)

    def open_connection(self, direction: Direction, remote_addr: object | None = None) -> ConnectionScope:
        """Account a new connection; an inbound one with a ``remote_addr`` (a Multiaddr) is also checked against
        the per-IP limits."""
        lim = self.limits
        if self.connections >= lim.max_connections:
            self._refused("max_connections")
        if direction is Direction.INBOUND and self.inbound_connections >= lim.max_inbound_connections:
            self._refused("max_inbound_connections")
        if direction is Direction.OUTBOUND and self.outbound_connections >= lim.max_outbound_connections:
            self._refused("max_outbound_connections")
        source = self._source_key(remote_addr) if direction is Direction.INBOUND else None
        if source is not None:
            if self._per_source.get(source, 0) >= lim.max_inbound_connections_per_ip:
                self._refused("max_inbound_connections_per_ip")
            self._take_token(source)
            self._per_source[source] = self._per_source.get(source, 0) + 1
        self.connections += 1
        if direction is Direction.INBOUND:
            self.inbound_connections += 1
        else:
            self.outbound_connections += 1
        return ConnectionScope(self, direction, source)

    def _source_key(self, addr: object | None) -> str | None:
        """The per-IP key of a remote address: the IPv4 address or the IPv6 /56; None if exempt or not IP."""
        ip_of = getattr(addr, "ip_address", None)
        ip = ip_of() if callable(ip_of) else None
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self._unlimited):
            return None
        if isinstance(ip, ipaddress.IPv4Address):
            return str(ip)
        return str(ipaddress.IPv6Network((ip, 56), strict=False))

    def _take_token(self, source: str) -> None:
        """Token bucket of new inbound connections for ``source``; refuses when it is empty."""
        lim = self.limits
        now = self._clock()
        burst, rate = float(lim.inbound_connection_burst_per_ip), lim.inbound_connection_rate_per_ip
        entry = self._buckets.get(source)
        if entry is None:
            if len(self._buckets) >= MAX_RATE_LIMITED_SOURCES:
                self.prune_rate_limiter()
                if len(self._buckets) >= MAX_RATE_LIMITED_SOURCES:
                    del self._buckets[next(iter(self._buckets))]
            tokens = burst
        else:
            tokens = min(burst, entry[0] + (now - entry[1]) * rate)
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            self._refused("inbound_connection_rate_per_ip")
        self._buckets[source] = (tokens - 1.0, now)

    def prune_rate_limiter(self) -> int:
        """Forget connection-rate buckets that have refilled (they hold nothing a new bucket would not);
        returns how many."""
        now = self._clock()
        burst, rate = (
            float(self.limits.inbound_connection_burst_per_ip),
            self.limits.inbound_connection_rate_per_ip,
        )
        full = [k for k, (tokens, t) in self._buckets.items() if tokens + (now - t) * rate >= burst]
        for k in full:
            del self._buckets[k]
        return len(full)

    def open_stream(self, conn: ConnectionScope | None, peer: PeerId, direction: Direction) -> StreamScope:
        lim = self.limits
        inbound = direction is Direction.INBOUND
        if self.streams >= lim.max_streams:
            self._refused("max_streams")
        if inbound and self.inbound_streams >= lim.max_inbound_streams:
            self._refused("max_inbound_streams")
        if self.memory + lim.stream_memory > lim.max_memory:
            self._refused("max_memory")
        if conn is not None and conn.streams >= lim.max_streams_per_connection:
            self._refused("max_streams_per_connection")
        usage = self._peers.get(peer)
        if usage is not None:
            if usage.streams >= lim.max_streams_per_peer:
                self._refused("max_streams_per_peer")
            if inbound and usage.inbound_streams >= lim.max_inbound_streams_per_peer:
                self._refused("max_inbound_streams_per_peer")
        else:
            usage = self._peers[peer] = _PeerUsage()
        self.streams += 1
        self.memory += lim.stream_memory
        usage.streams += 1
        if inbound:
            self.inbound_streams += 1
            usage.inbound_streams += 1
        if conn is not None:
            conn.streams += 1
        return StreamScope(self, conn, peer, direction)

    def peer_usage(self, peer: PeerId) -> tuple[int, int]:
        """(connections, streams) held for ``peer``."""
        u = self._peers.get(peer)
        return (u.conns, u.streams) if u else (0, 0)

    def stats(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "inbound_connections": self.inbound_connections,
            "outbound_connections": self.outbound_connections,
            "streams": self.streams,
            "inbound_streams": self.inbound_streams,
            "memory": self.memory,
            "peers": len(self._peers),
            "inbound_sources": len(self._per_source),
            "rate_limited_sources": len(self._buckets),
        }
