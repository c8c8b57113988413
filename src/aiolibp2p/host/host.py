"""The Host: the facade users hold. It wires transports → upgrader → swarm → protocol services, fills every
missing option from :mod:`aiolibp2p.host.defaults`, and closes everything it started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

from ..core.interfaces import LocalIdentity, MuxerFactory, SecurityTransport
from ..crypto.keys import PrivateKey, generate_key_pair
from ..crypto.peer_id import PeerId
from ..dns import DnsConfig, DnsResolver
from ..exceptions import DialError
from ..multiaddr import Multiaddr
from ..network import events as ev
from ..network import peerstore as peerstore_mod
from ..network.connection import Connection, Stream
from ..network.connmgr import ConnectionManager, ConnManagerConfig
from ..network.gater import ConnectionGater
from ..network.peerstore import Peerstore
from ..network.resources import ResourceLimits, ResourceManager
from ..network.swarm import AnyTransport, Swarm, SwarmConfig
from ..network.upgrader import Upgrader, UpgraderConfig
from ..protocols.identify import IdentifyInfo, IdentifyService
from ..protocols.ping import PingService
from . import defaults

log = logging.getLogger(__name__)

StreamHandler = Callable[[Stream], Awaitable[None]]
AddrLike = str | Multiaddr


def _make_security(names: Sequence[str | SecurityTransport], key: PrivateKey) -> list[SecurityTransport]:
    out: list[SecurityTransport] = []
    for n in names:
        if not isinstance(n, str):
            out.append(n)
        elif n in ("noise", "/noise"):
            from ..security.noise import NoiseSecurity

            out.append(NoiseSecurity(key))
        elif n in ("tls", "/tls/1.0.0"):
            from ..security.tls import TlsSecurity

            out.append(TlsSecurity(key))
        elif n in ("plaintext", "/plaintext/2.0.0"):
            from ..security.plaintext import PlaintextSecurity

            out.append(PlaintextSecurity(key))
        else:
            raise ValueError(f"unknown security protocol {n!r}")
    return out


def _make_muxers(
    names: Sequence[str | MuxerFactory], keepalive_interval: float, keepalive_timeout: float
) -> list[MuxerFactory]:
    out: list[MuxerFactory] = []
    for n in names:
        if not isinstance(n, str):
            out.append(n)
        elif n in ("yamux", "/yamux/1.0.0"):
            from ..muxers.yamux import YamuxConfig, YamuxMuxer

            out.append(
                YamuxMuxer(
                    YamuxConfig(keepalive_interval=keepalive_interval, keepalive_timeout=keepalive_timeout)
                )
            )
        elif n in ("mplex", "/mplex/6.7.0"):
            from ..muxers.mplex import MplexMuxer

            out.append(MplexMuxer())
        else:
            raise ValueError(f"unknown muxer {n!r}")
    return out


def _make_transports(
    names: Sequence[str | AnyTransport], key: PrivateKey, keepalive_interval: float
) -> list[AnyTransport]:
    out: list[AnyTransport] = []
    for n in names:
        if not isinstance(n, str):
            out.append(n)
        elif n in ("quic", "quic-v1"):
            from ..transports.quic import QuicConfig, QuicTransport

            out.append(QuicTransport(key, QuicConfig(keep_alive_interval=keepalive_interval)))
        elif n == "tcp":
            from ..transports.tcp import TcpTransport

            out.append(TcpTransport())
        elif n == "memory":
            from ..transports.memory import MemoryTransport

            out.append(MemoryTransport())
        elif n in ("ws", "websocket"):
            from ..transports.websocket import WebSocketTransport

            out.append(WebSocketTransport())
        elif n in ("webrtc-direct", "webrtc"):
            from ..transports.webrtc import WebRtcDirectConfig, WebRtcDirectTransport

            out.append(WebRtcDirectTransport(key, WebRtcDirectConfig()))
        else:
            raise ValueError(f"unknown transport {n!r}")
    return out


def _as_peer_id(peer: PeerId | str) -> PeerId:
    return PeerId.from_string(peer) if isinstance(peer, str) else peer


class Host:
    """A libp2p node. Create with :func:`aiolibp2p.new_host` and use as an async context manager."""

    def __init__(
        self,
        *,
        key: PrivateKey | None = None,
        listen: Sequence[AddrLike] | None = None,
        transports: Sequence[str | AnyTransport] | None = None,
        security: Sequence[str | SecurityTransport] | None = None,
        muxers: Sequence[str | MuxerFactory] | None = None,
        swarm_config: SwarmConfig | None = None,
        upgrader_config: UpgraderConfig | None = None,
        gater: ConnectionGater | None = None,
        resource_limits: ResourceLimits | None = None,
        conn_manager: ConnManagerConfig | None = None,
        agent_version: str = defaults.AGENT_VERSION,
        keepalive_interval: float = defaults.KEEPALIVE_INTERVAL,
        keepalive_timeout: float = defaults.KEEPALIVE_TIMEOUT,
        identify_timeout: float = defaults.IDENTIFY_TIMEOUT,
        ping_timeout: float = defaults.PING_TIMEOUT,
        announce_addrs: Sequence[AddrLike] | None = None,
        dns: DnsConfig | None = None,
    ) -> None:
        self.private_key = key or generate_key_pair()
        self.peer_id = PeerId.from_public_key(self.private_key.public_key)
        self._listen_is_default = listen is None
        self._listen_requested = [
            Multiaddr(a) if isinstance(a, str) else a
            for a in (defaults.DEFAULT_LISTEN_ADDRS if listen is None else listen)
        ]
        self._announce = [Multiaddr(a) if isinstance(a, str) else a for a in (announce_addrs or ())]
        self.peerstore = Peerstore()
        self.bus = ev.EventBus()
        self.gater = gater or ConnectionGater()
        sec = _make_security(security or defaults.DEFAULT_SECURITY, self.private_key)
        mux = _make_muxers(muxers or defaults.DEFAULT_MUXERS, keepalive_interval, keepalive_timeout)
        self.upgrader = Upgrader(sec, mux, upgrader_config or defaults.UPGRADER, self.gater)
        self.swarm = Swarm(
            LocalIdentity(self.private_key, self.peer_id),
            _make_transports(transports or defaults.DEFAULT_TRANSPORTS, self.private_key, keepalive_interval),
            self.upgrader,
            self.peerstore,
            self.bus,
            swarm_config or defaults.SWARM,
            self.gater,
            ResourceManager(resource_limits or defaults.RESOURCE_LIMITS),
            DnsResolver(dns or defaults.DNS),
        )
        self.conn_manager = ConnectionManager(self.swarm, conn_manager or defaults.CONN_MANAGER)
        self.identify_service = IdentifyService(self, agent_version=agent_version, timeout=identify_timeout)
        self.ping_service = PingService(self, timeout=ping_timeout)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._peerstore_gc_handle: asyncio.TimerHandle | None = None
        self._started = False
        self.is_closed = False

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.conn_manager.start()
        self.identify_service.start()
        self.ping_service.start()
        self._peerstore_gc_handle = asyncio.get_running_loop().call_later(
            peerstore_mod.GC_INTERVAL, self._peerstore_gc
        )
        try:
            addrs = self._listen_requested
            if self._listen_is_default:
                # The defaults name several transports; listen on those this host was given.
                addrs = [a for a in addrs if any(t.can_listen(a) for t in self.swarm.transports)]
            if addrs:
                await self.swarm.listen(addrs)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        if self._peerstore_gc_handle is not None:
            self._peerstore_gc_handle.cancel()
            self._peerstore_gc_handle = None
        self.identify_service.close()
        await self.swarm.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _peerstore_gc(self) -> None:
        """Forget unconnected peers whose addresses all expired (bounded peerstore) and dial backoffs that ran
        out; runs every GC_INTERVAL."""
        self._peerstore_gc_handle = None
        if self.is_closed:
            return
        self.peerstore.gc(lambda p: bool(self.swarm.connections(p)))
        self.swarm.sweep()
        self._peerstore_gc_handle = asyncio.get_running_loop().call_later(
            peerstore_mod.GC_INTERVAL, self._peerstore_gc
        )

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._tasks.add(fut)
        fut.add_done_callback(self._tasks.discard)

    # -- addresses -----------------------------------------------------------------------------------------------
    @property
    def listen_addrs(self) -> list[Multiaddr]:
        """The bound listen addresses (port 0 resolved), without /p2p."""
        return self.swarm.listen_addrs

    def advertised_addrs(self) -> list[Multiaddr]:
        """What we tell others (identify, peer records): announce addresses if set, else the listen
        addresses."""
        return list(self._announce) if self._announce else self.listen_addrs

    def full_addrs(self) -> list[Multiaddr]:
        """The listen addresses with ``/p2p/<our id>``, ready to hand to another peer."""
        return [a.with_peer_id(str(self.peer_id)) for a in self.listen_addrs]

    async def listen(self, *addrs: AddrLike) -> list[Multiaddr]:
        bound = await self.swarm.listen([Multiaddr(a) if isinstance(a, str) else a for a in addrs])
        self.identify_service.schedule_push()
        return bound

    # -- protocols -----------------------------------------------------------------------------------------------
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``: ``handler(stream)`` runs for each inbound stream that negotiates it."""
        self.swarm.set_stream_handler(protocol, handler)
        if self._started:
            self.identify_service.schedule_push()

    def remove_stream_handler(self, protocol: str) -> None:
        self.swarm.remove_stream_handler(protocol)
        if self._started:
            self.identify_service.schedule_push()

    # -- connecting ----------------------------------------------------------------------------------------------
    async def connect(
        self,
        addr: AddrLike | Sequence[AddrLike],
        *,
        peer: PeerId | str | None = None,
        new_connection: bool = False,
        timeout: float | None = None,
    ) -> PeerId:
        """Connect to a peer by multiaddr(s) ending in ``/p2p/<id>`` (or give ``peer``). Returns its PeerId.

        An existing live connection is reused unless ``new_connection`` is set.
        """
        addrs = [addr] if isinstance(addr, (str, Multiaddr)) else list(addr)
        mas = [Multiaddr(a) if isinstance(a, str) else a for a in addrs]
        pid = _as_peer_id(peer) if peer is not None else None
        for ma in mas:
            _, p = ma.split_peer_id()
            if p is not None:
                pp = PeerId.from_string(p)
                if pid is not None and pp != pid:
                    raise DialError(f"addresses name different peers: {pid} and {pp}")
                pid = pp
        if pid is None:
            raise DialError("the address must end in /p2p/<peer id> (or pass peer=)")
        self.peerstore.add_addrs(pid, mas)
        conn = await self.swarm.dial_peer(
            pid,
            mas,
            new_connection=new_connection,
            timeout=defaults.CONNECT_TIMEOUT if timeout is None else timeout,
        )
        return conn.remote_peer

    async def disconnect(self, peer: PeerId) -> None:
        await self.swarm.close_peer(peer)

    async def new_stream(
        self, peer: PeerId | str, protocols: Sequence[str] | str, *, timeout: float | None = None
    ) -> Stream:
        """Open a stream to ``peer`` negotiating the first of ``protocols`` it supports."""
        p = _as_peer_id(peer)
        protos = [protocols] if isinstance(protocols, str) else list(protocols)
        return await self.swarm.new_stream(
            p, protos, timeout=defaults.NEW_STREAM_TIMEOUT if timeout is None else timeout
        )

    async def ping(self, peer: PeerId | str, *, timeout: float | None = None) -> float:
        """Round-trip time to ``peer`` in seconds, over ``/ipfs/ping/1.0.0``."""
        p = _as_peer_id(peer)
        return await self.ping_service.ping(p, timeout=timeout)

    async def identify(self, peer: PeerId | str, *, timeout: float | None = None) -> IdentifyInfo:
        """What ``peer`` told us in identify (waiting, bounded, for the exchange on its best connection)."""
        p = _as_peer_id(peer)
        t = defaults.IDENTIFY_TIMEOUT if timeout is None else timeout
        async with asyncio.timeout(t):
            conn = self.swarm.best_connection(p) or await self.swarm.dial_peer(p, timeout=t)
            info = await self.identify_service.identify(conn)
        if info is None:
            raise DialError(f"identify with {p} failed")
        return info

    def connections(self, peer: PeerId | str | None = None) -> list[Connection]:
        """Live connections (to ``peer``, or all)."""
        p = _as_peer_id(peer) if peer is not None else None
        return self.swarm.connections(p)

    def connected_peers(self) -> list[PeerId]:
        return self.swarm.connected_peers()

    # -- events ----------------------------------------------------------------------------------------------------
    def subscribe(
        self, *types: type[ev.Event], maxsize: int = ev.DEFAULT_SUBSCRIPTION_QUEUE
    ) -> ev.Subscription:
        """Async iterator of lifecycle events (``aiolibp2p.events``)."""
        return self.bus.subscribe(*types, maxsize=maxsize)

    def on(
        self, types: type[ev.Event] | tuple[type[ev.Event], ...], callback: Callable[[Any], None]
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``types``; returns an unsubscribe function."""
        return self.bus.on(types, callback)

    def __repr__(self) -> str:
        return f"<Host {self.peer_id} listening on {[str(a) for a in self.listen_addrs]}>"


def new_host(**options: Any) -> Host:
    """Create a host (not yet started): ``async with new_host(...) as host:`` starts it and closes it.

    Options: ``listen``, ``key``, ``transports``, ``security``, ``muxers``, ``swarm_config``,
    ``upgrader_config``, ``gater``, ``resource_limits``, ``conn_manager``, ``agent_version``, ``keepalive_interval``, ``keepalive_timeout``,
    ``identify_timeout``, ``ping_timeout``, ``announce_addrs``, ``dns`` (a :class:`~aiolibp2p.dns.DnsConfig`:
    name servers and limits of ``/dnsaddr`` resolution). Defaults: :mod:`aiolibp2p.host.defaults`.
    """
    return Host(**options)
