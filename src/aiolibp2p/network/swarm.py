"""The swarm: listeners, dialing, the set of live connections per peer, and inbound stream routing.

Invariants (the founding lesson of this project):
- a peer may have several connections; :meth:`Swarm.best_connection` never returns one known to be closed;
- opening a stream that fails on one connection checks that connection (closing it if dead) and retries on
  another live connection or a fresh dial, within the caller's deadline;
- every connection yields exactly one ConnectionOpened then exactly one ConnectionClosed event, and
  PeerConnected/PeerDisconnected fire only on 0 ↔ ≥1 transitions;
- every wait is bounded by a named setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeGuard, cast

from ..core.interfaces import Direction, Listener, LocalIdentity, MuxedConnection, MuxedStream, Transport
from ..core.pipe import Pipe
from ..crypto.peer_id import PeerId
from ..dns import DnsResolver
from ..exceptions import (
    ConnectionClosed,
    DeadlineExceeded,
    DialError,
    DnsResolutionError,
    GaterRefused,
    Libp2pError,
    NegotiationError,
    NoTransportForAddress,
    ProtocolNotSupported,
    ProtocolViolation,
    ResourceLimitExceeded,
)
from ..multiaddr import Multiaddr
from ..multistream import handle_protocol
from . import events as ev
from .connection import Connection, Stream
from .gater import ConnectionGater
from .peerstore import CONNECTED_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL, Peerstore
from .resources import ConnectionScope, ResourceManager, StreamScope
from .upgrader import Upgrader

if TYPE_CHECKING:
    from ..crypto.keys import PublicKey

log = logging.getLogger(__name__)

StreamHandler = Callable[[Stream], Awaitable[None]]


_TRANSPORT_CACHE_SIZE = 4096  # addresses whose dialing transport is remembered (cleared when full)


class CapableConnection(Protocol):
    """What a capable transport (QUIC, WebRTC) yields: already authenticated and multiplexed, so the
    upgrader is skipped. It stands in for both the ``Upgraded`` result (``session``, ``muxed``, ``muxer``)
    and the pipe (``local_addr``, ``remote_addr``) in :meth:`Swarm._add_connection`."""

    @property
    def session(self) -> CapableConnection: ...
    @property
    def muxed(self) -> MuxedConnection: ...
    @property
    def muxer(self) -> str: ...
    @property
    def security_protocol(self) -> str: ...
    @property
    def remote_peer(self) -> PeerId: ...
    @property
    def remote_public_key(self) -> PublicKey: ...
    @property
    def local_addr(self) -> Multiaddr | None: ...
    @property
    def remote_addr(self) -> Multiaddr | None: ...


class CapableTransport(Protocol):
    """A transport whose connections arrive secured and multiplexed (``capable = True``)."""

    name: str
    capable: bool

    def can_dial(self, addr: Multiaddr) -> bool: ...

    def can_listen(self, addr: Multiaddr) -> bool: ...

    async def dial(self, addr: Multiaddr, peer: PeerId | None = None) -> CapableConnection:
        """Connect and authenticate; a ``peer`` that does not match raises PeerIdMismatch."""

    async def listen(
        self, addr: Multiaddr, handler: Callable[[CapableConnection], Awaitable[None]]
    ) -> Listener: ...


AnyTransport = Transport | CapableTransport


def is_capable(t: AnyTransport) -> TypeGuard[CapableTransport]:
    return getattr(t, "capable", False) is True


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    dial_timeout: float = 15.0
    """Seconds for a whole dial to a peer, across all its addresses (go: 15 s)."""
    dial_addr_stagger: float = 0.25
    """Happy-eyeballs delay between starting dials to successive ranked addresses."""
    max_parallel_dials: int = 8
    """Addresses of one peer dialed at once (go: DefaultPerPeerRateLimit = 8)."""
    new_stream_timeout: float = 15.0
    """Default seconds for new_stream: open + protocol negotiation, retries included."""
    inbound_negotiation_timeout: float = 10.0
    """Seconds a remote has to negotiate a protocol on a stream it opened."""
    max_negotiating_inbound_streams: int = 128
    """Inbound streams per connection still negotiating their protocol; excess are reset."""
    lazy_negotiation_max_idle: float = 0.5
    """Open a stream with lazy (0-RTT) protocol negotiation, as go-libp2p does, when the peerstore says the peer
    supports the protocol, it is the peer's only connection, and it received bytes within this many seconds.
    Otherwise the open is negotiated in full, so that a silently dead connection among several is found by
    the open itself (probed, closed) and the stream fails over to another. 0 disables lazy opens."""
    stream_probe_delay: float = 1.0
    """If opening a stream takes longer than this, the connection is probed with a muxer ping meanwhile."""
    liveness_check_timeout: float = 2.0
    """Seconds to wait for a muxer ping when a stream open failed on a connection that claims to be up."""
    backoff_base: float = 5.0
    backoff_coef: float = 1.0
    backoff_max: float = 300.0
    max_backoff_entries: int = 10_000
    """(peer, address) pairs whose dial failures are remembered at most (see :class:`DialBackoff`)."""
    close_timeout: float = 2.0
    """Seconds ``close()`` waits for connections to close gracefully before aborting them."""


class DialBackoff:
    """go's swarm backoff: an address that failed is not dialed again (unless the caller names it) for
    ``base + coef * tries²`` seconds, capped; per (peer, address).

    Bounded: an entry is forgotten one backoff period after its backoff ended (go's ``cleanup``: until then a
    new failure still counts the earlier tries) by :meth:`prune`, which the host runs periodically; past
    ``SwarmConfig.max_backoff_entries`` the table is pruned on insert and, if still full, the failure is not
    recorded."""

    def __init__(self, cfg: SwarmConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self._clock = clock
        self._entries: dict[PeerId, dict[Multiaddr, tuple[int, float]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _delay(self, tries: int) -> float:
        c = self._cfg
        return min(c.backoff_base + c.backoff_coef * tries * tries, c.backoff_max)

    def backed_off(self, peer: PeerId, addr: Multiaddr) -> bool:
        e = self._entries.get(peer)
        until = e.get(addr) if e is not None else None
        return until is not None and self._clock() < until[1]

    def failed(self, peer: PeerId, addr: Multiaddr) -> None:
        book = self._entries.get(peer)
        old = book.get(addr) if book is not None else None
        if old is None and self._count >= self._cfg.max_backoff_entries:
            self.prune()
            if self._count >= self._cfg.max_backoff_entries:
                return
            book = self._entries.get(peer)
        if book is None:
            book = self._entries[peer] = {}
        tries = (old[0] if old is not None else 0) + 1
        if old is None:
            self._count += 1
        book[addr] = (tries, self._clock() + self._delay(tries))

    def clear(self, peer: PeerId) -> None:
        book = self._entries.pop(peer, None)
        if book is not None:
            self._count -= len(book)

    def prune(self) -> int:
        """Forget entries whose backoff ended more than one backoff period ago; returns how many."""
        now = self._clock()
        removed = 0
        for peer in list(self._entries):
            book = self._entries[peer]
            for addr, (tries, until) in list(book.items()):
                if until + self._delay(tries) <= now:
                    del book[addr]
                    removed += 1
            if not book:
                del self._entries[peer]
        self._count -= removed
        return removed


def rank_addrs(addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
    """Order addresses for dialing: QUIC before TCP before WebSocket before others; IPv6 before IPv4 within a
    transport (happy eyeballs then staggers them); loopback/private before public; lower ports first."""

    def score(a: Multiaddr) -> tuple[int, int, int]:
        names = [p for p, _ in a.items()]
        if "p2p-circuit" in names:
            t = 9
        elif "quic-v1" in names and "webtransport" not in names:
            t = 0
        elif "webtransport" in names:
            t = 2
        elif "ws" in names or "wss" in names:
            t = 4
        elif "tcp" in names:
            t = 3
        else:
            t = 5
        v6 = 0 if names and names[0] in ("ip6", "dns6") else 1
        port = 0
        for p, v in a.items():
            if p in ("tcp", "udp") and v is not None:
                port = int(v)
                break
        return (t, v6, port)

    addrs = list(addrs)
    return addrs if len(addrs) < 2 else sorted(addrs, key=score)


class _RaceState:
    """Shared by the attempts of one happy-eyeballs race: how many connected sockets are upgrading."""

    __slots__ = ("_waiters", "upgrading")

    def __init__(self) -> None:
        self.upgrading = 0
        self._waiters: list[asyncio.Future[None]] = []

    def begin_upgrade(self) -> None:
        self.upgrading += 1

    def end_upgrade(self) -> None:
        self.upgrading -= 1
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def changed(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut


class Swarm:
    def __init__(
        self,
        identity: LocalIdentity,
        transports: Sequence[AnyTransport],
        upgrader: Upgrader,
        peerstore: Peerstore,
        bus: ev.EventBus,
        config: SwarmConfig | None = None,
        gater: ConnectionGater | None = None,
        resources: ResourceManager | None = None,
        resolver: DnsResolver | None = None,
    ) -> None:
        self.identity = identity
        self.local_peer = identity.peer_id
        self.transports = list(transports)
        self.upgrader = upgrader
        self.peerstore = peerstore
        self.bus = bus
        self.config = config or SwarmConfig()
        self.gater = gater or ConnectionGater()
        self._conns: dict[PeerId, list[Connection]] = {}
        self._dial_transport_cache: dict[tuple[Multiaddr, int], AnyTransport | None] = {}
        self._listeners: list[tuple[Multiaddr, object]] = []
        self._dials: dict[PeerId, asyncio.Task[Connection]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._handlers: dict[str, StreamHandler] = {}
        self._backoff = DialBackoff(self.config)
        self._closed = False
        self.resources = resources or ResourceManager()
        self.resolver = resolver or DnsResolver()

    # -- protocol handlers --------------------------------------------------------------------------------------
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        self._handlers[protocol] = handler

    def remove_stream_handler(self, protocol: str) -> None:
        self._handlers.pop(protocol, None)

    @property
    def protocols(self) -> list[str]:
        return sorted(self._handlers)

    # -- tasks ------------------------------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[object], name: str | None = None) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- listening ----------------------------------------------------------------------------------------------------
    def _transport_for(self, addr: Multiaddr, *, listen: bool) -> AnyTransport | None:
        if not listen:
            cache = self._dial_transport_cache
            key = (addr, len(self.transports))
            if key in cache:
                return cache[key]
        found: AnyTransport | None = None
        for t in self.transports:
            if t.can_listen(addr) if listen else t.can_dial(addr):
                found = t
                break
        if not listen:
            if len(cache) >= _TRANSPORT_CACHE_SIZE:
                cache.clear()
            cache[key] = found
        return found

    async def listen(self, addrs: Iterable[Multiaddr | str]) -> list[Multiaddr]:
        bound: list[Multiaddr] = []
        for a in addrs:
            addr = Multiaddr(a) if isinstance(a, str) else a
            t = self._transport_for(addr, listen=True)
            if t is None:
                raise NoTransportForAddress(f"no transport can listen on {addr}")
            if is_capable(t):
                # a transport that can check a new remote before any handshake work (WebRTC-direct)
                if hasattr(t, "accept_filter"):
                    t.accept_filter = self.gater.allow_accept
                listener = await t.listen(addr, self._make_capable_inbound_handler(t.name))
            else:
                listener = await cast(Transport, t).listen(addr, self._make_inbound_handler(t.name))
            for la in listener.listen_addrs:
                self._listeners.append((la, listener))
                bound.append(la)
                self.bus.emit(ev.ListenStarted(la))
        return bound

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return [a for a, _ in self._listeners]

    def _make_inbound_handler(self, transport_name: str) -> Callable[[Pipe], Awaitable[None]]:
        async def handle(pipe: Pipe) -> None:
            if self._closed:
                pipe.abort()
                return
            if not self.gater.allow_accept(pipe.remote_addr):
                pipe.abort()
                return
            try:
                scope = self.resources.open_connection(Direction.INBOUND, pipe.remote_addr)
            except ResourceLimitExceeded as e:
                log.debug("refusing inbound connection from %s: %s", pipe.remote_addr, e)
                pipe.abort()
                return
            try:
                up = await self.upgrader.upgrade(pipe, Direction.INBOUND)
            except (Libp2pError, OSError, EOFError) as e:
                scope.done()
                log.debug("inbound upgrade from %s failed: %r", pipe.remote_addr, e)
                return
            except BaseException:
                scope.done()
                raise
            if self._closed:
                scope.done()
                up.muxed.abort(None)
                return
            try:
                self._add_connection(up, pipe, Direction.INBOUND, transport_name, scope)
            except (ResourceLimitExceeded, GaterRefused) as e:
                log.debug("refusing connection from %s: %s", up.session.remote_peer, e)

        return handle

    def _make_capable_inbound_handler(
        self, transport_name: str
    ) -> Callable[[CapableConnection], Awaitable[None]]:
        """Inbound connections of a capable transport: gater and resource checks, then registration."""

        async def handle(cc: CapableConnection) -> None:
            if (
                self._closed
                or not self.gater.allow_accept(cc.remote_addr)
                or not self.gater.allow_secured(Direction.INBOUND, cc.remote_peer, cc.remote_addr)
            ):
                cc.muxed.abort(None)
                return
            try:
                scope = self.resources.open_connection(Direction.INBOUND, cc.remote_addr)
            except ResourceLimitExceeded as e:
                log.debug("refusing inbound connection from %s: %s", cc.remote_addr, e)
                cc.muxed.abort(None)
                return
            try:
                self._add_connection(cc, cc, Direction.INBOUND, transport_name, scope)
            except (ResourceLimitExceeded, GaterRefused) as e:
                log.debug("refusing connection from %s: %s", cc.remote_peer, e)

        return handle

    # -- connections --------------------------------------------------------------------------------------------------
    def _live(self, peer: PeerId) -> list[Connection]:
        return [c for c in self._conns.get(peer, ()) if not c.is_closed()]

    def connections(self, peer: PeerId | None = None) -> list[Connection]:
        """Live connections (to ``peer``, or all)."""
        if peer is not None:
            return self._live(peer)
        return [c for lst in self._conns.values() for c in lst if not c.is_closed()]

    @property
    def num_connections(self) -> int:
        return sum(len(v) for v in self._conns.values())

    def connected_peers(self) -> list[PeerId]:
        return [p for p in self._conns if self._live(p)]

    def is_connected(self, peer: PeerId) -> bool:
        return bool(self._live(peer))

    def best_connection(self, peer: PeerId, exclude: Iterable[Connection] = ()) -> Connection | None:
        """The connection to use for a new stream: never a closed one; unlimited over limited, then one whose
        identify completed, then the newest."""
        excluded = set(map(id, exclude))
        best: Connection | None = None
        best_key: tuple[int, int, int] | None = None
        for c in self._conns.get(peer, ()):
            if c.is_closed() or id(c) in excluded:
                continue
            key = (0 if c.limited else 1, 1 if c.identified.is_set() else 0, c.id)
            if best_key is None or key > best_key:
                best, best_key = c, key
        return best

    def _add_connection(
        self,
        up: object,
        pipe: Pipe | CapableConnection,
        direction: Direction,
        transport: str,
        scope: ConnectionScope,
    ) -> Connection:
        """Register an upgraded connection. Raises ResourceLimitExceeded when the peer is over its connection
        limit, GaterRefused when the gater refuses the upgraded connection (after closing it and releasing
        ``scope``)."""
        from .upgrader import Upgraded

        if not isinstance(up, Upgraded):  # a capable transport's connection (see CapableConnection)
            up = cast("CapableConnection", up)
        s = up.session
        try:
            scope.set_peer(s.remote_peer)
        except ResourceLimitExceeded:
            scope.done()
            self._spawn(up.muxed.close())
            raise
        conn = Connection(
            up.muxed,
            local_peer=self.local_peer,
            remote_peer=s.remote_peer,
            remote_public_key=s.remote_public_key,
            local_addr=pipe.local_addr,  # type: ignore[arg-type]
            remote_addr=pipe.remote_addr,  # type: ignore[arg-type]
            direction=direction,
            transport=transport,
            security=s.security_protocol,
            muxer=up.muxer,
        )
        conn.scope = scope
        if not self.gater.allow_upgraded(conn):
            scope.done()
            self._spawn(up.muxed.close())
            raise GaterRefused(f"gater refused the upgraded connection with {conn.remote_peer}")
        peer = conn.remote_peer
        lst = self._conns.setdefault(peer, [])
        lst.append(conn)
        with contextlib.suppress(ValueError):
            self.peerstore.add_public_key(peer, s.remote_public_key)
        if conn.remote_addr is not None and direction is Direction.OUTBOUND:
            self.peerstore.add_addrs(peer, [conn.remote_addr], CONNECTED_ADDR_TTL)
        log.debug("connection opened: %r", conn)
        # Streams that arrived with the handshake get their handler tasks before the ones the events start
        # (identify): they run first, so the remote's first request is answered before we send our own.
        up.muxed.set_inbound_stream_handler(lambda ms: self._on_inbound_stream(conn, ms))
        count = len(lst)
        self.bus.emit(ev.ConnectionOpened(conn, peer, count))
        if count == 1:
            self.bus.emit(ev.PeerConnected(peer))
        up.muxed.set_close_callback(lambda exc: self._on_connection_closed(conn, exc))
        return conn

    def _on_connection_closed(self, conn: Connection, exc: BaseException | None) -> None:
        cause = (
            conn.close_cause
            or (getattr(exc, "cause", None) if exc is not None else None)
            or ("protocol-error" if isinstance(exc, ProtocolViolation) else None)
            or ("error" if exc is not None and not isinstance(exc, ConnectionClosed) else "remote-closed")
        )
        if isinstance(exc, ConnectionClosed):
            conn.close_code = exc.code
        conn._mark_closed(cause)
        if conn.scope is not None:
            conn.scope.done()
        peer = conn.remote_peer
        lst = self._conns.get(peer, [])
        if conn in lst:
            lst.remove(conn)
        else:
            return  # already handled
        remaining = len(lst)
        if not lst:
            self._conns.pop(peer, None)
        for s in list(conn.streams):
            s._done()
        log.debug("connection closed (%s): %r; %d remain", cause, conn, remaining)
        self.bus.emit(ev.ConnectionClosed(conn, peer, cause, remaining))
        if remaining == 0:
            self.peerstore.set_addrs_ttl(peer, RECENTLY_CONNECTED_ADDR_TTL)
            self.bus.emit(ev.PeerDisconnected(peer))

    def _stream_done(self, s: Stream) -> None:
        if s.scope is not None:
            s.scope.done()
        s.conn.streams.discard(s)
        self.bus.emit(ev.StreamClosed(s.remote_peer, s.protocol, s.direction.value, s.conn.id, s))

    # -- inbound streams ----------------------------------------------------------------------------------------
    def _on_inbound_stream(self, conn: Connection, ms: MuxedStream) -> None:
        if conn.negotiating >= self.config.max_negotiating_inbound_streams or self._closed:
            self._spawn(ms.reset())
            return
        try:
            scope = self.resources.open_stream(conn.scope, conn.remote_peer, Direction.INBOUND)
        except ResourceLimitExceeded as e:
            log.debug("refusing inbound stream from %s: %s", conn.remote_peer, e)
            self._spawn(ms.reset())
            return
        conn.negotiating += 1
        self._spawn(self._handle_inbound_stream(conn, ms, scope), name=f"inbound-stream-{conn.id}")

    async def _handle_inbound_stream(self, conn: Connection, ms: MuxedStream, scope: StreamScope) -> None:
        timeout = self.config.inbound_negotiation_timeout
        try:
            try:
                proto = await handle_protocol(ms, self._handlers, timeout=timeout)
            finally:
                conn.negotiating -= 1
            handler = self._handlers.get(proto)
            if handler is None:  # removed meanwhile
                raise NegotiationError(f"handler for {proto} was removed")
            scope.set_protocol(proto)
        except (Libp2pError, OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as e:
            log.debug("inbound stream on %r refused: %r", conn, e)
            scope.done()
            await ms.reset()
            return
        except BaseException:
            scope.done()
            raise
        if conn.is_closed():  # it ended during the negotiation: the handler would only meet a dead stream
            scope.done()
            await ms.reset()
            return
        stream = Stream(ms, conn, proto, Direction.INBOUND, self._stream_done)
        stream.scope = scope
        conn.streams.add(stream)
        self.bus.emit(ev.StreamOpened(conn.remote_peer, proto, "inbound", conn.id))
        try:
            await handler(stream)
        except asyncio.CancelledError:
            await stream.reset()
            raise
        except Exception as e:
            log.debug("handler for %s failed: %r", proto, e)
            await stream.reset()
        else:
            if ms.is_closed():
                stream._done()

    # -- dialing ------------------------------------------------------------------------------------------------------
    async def dial_peer(
        self,
        peer: PeerId,
        addrs: Sequence[Multiaddr] | None = None,
        *,
        new_connection: bool = False,
        timeout: float | None = None,
    ) -> Connection:
        """A live connection to ``peer``: an existing one, a dial already under way, or a new dial.

        ``addrs`` given by the caller are dialed even if in backoff; otherwise the peerstore's are used.
        """
        if peer == self.local_peer:
            raise DialError("cannot dial self")
        if self._closed:
            raise DialError("swarm is closed")
        if not self.gater.allow_dial_peer(peer):
            raise GaterRefused(f"gater refused dialing {peer}")
        if not new_connection:
            c = self.best_connection(peer)
            if c is not None:
                return c
            pending = self._dials.get(peer)
            if pending is not None and not pending.done():
                return await self._await_dial(pending, timeout)
        explicit = addrs is not None
        if addrs is None:
            addrs = self.peerstore.addrs(peer)
        task: asyncio.Task[Connection] = asyncio.ensure_future(
            self._dial(peer, list(addrs), explicit=explicit)
        )
        task.add_done_callback(self._make_dial_reporter(peer, time.monotonic()))
        if not new_connection:
            self._dials[peer] = task
            task.add_done_callback(
                lambda t: self._dials.pop(peer, None) if self._dials.get(peer) is t else None
            )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await self._await_dial(task, timeout)

    def _make_dial_reporter(self, peer: PeerId, t0: float) -> Callable[[asyncio.Task[Connection]], None]:
        def report(t: asyncio.Task[Connection]) -> None:
            exc = None if t.cancelled() else t.exception()
            err = "CancelledError" if t.cancelled() else type(exc).__name__ if exc is not None else ""
            self.bus.emit(ev.DialCompleted(peer, not err, time.monotonic() - t0, err))

        return report

    async def _await_dial(self, task: asyncio.Task[Connection], timeout: float | None) -> Connection:
        t = self.config.dial_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(t):
                # shield: one caller timing out must not cancel a dial others share
                return await asyncio.shield(task)
        except TimeoutError:
            raise DeadlineExceeded("dial", t) from None

    async def _resolve_addrs(
        self, addrs: list[Multiaddr], errors: dict[str, BaseException]
    ) -> list[Multiaddr]:
        """``addrs`` with each ``/dnsaddr`` (and ``/dns*``, when the resolver resolves names) replaced by the
        addresses it resolves to (concurrently, each bounded by the resolver's timeout); one that fails is
        recorded in ``errors``."""
        needs = [self.resolver.needs_resolution(a) for a in addrs]
        if not any(needs):
            return addrs
        todo = [a for a, n in zip(addrs, needs, strict=True) if n]
        results = await asyncio.gather(*(self.resolver.resolve(a) for a in todo), return_exceptions=True)
        resolved = dict(zip(todo, results, strict=True))
        out: list[Multiaddr] = []
        for a, n in zip(addrs, needs, strict=True):
            if not n:
                out.append(a)
                continue
            r = resolved[a]
            if isinstance(r, DnsResolutionError):
                errors[str(a)] = r
            elif isinstance(r, BaseException):
                raise r
            else:
                log.debug("resolved %s to %d address(es)", a, len(r))
                out.extend(r)
        return out

    async def _dial(self, peer: PeerId, addrs: list[Multiaddr], *, explicit: bool) -> Connection:
        candidates: list[Multiaddr] = []
        errors: dict[str, BaseException] = {}
        seen: set[Multiaddr] = set()
        addrs = await self._resolve_addrs(addrs, errors)
        for a in addrs:
            base, pid = a.split_peer_id()
            if pid is not None and pid != str(peer):
                errors[str(a)] = DialError(f"address is for peer {pid}")
                continue
            if base in seen:
                continue
            seen.add(base)
            if self._transport_for(base, listen=False) is None:
                errors[str(a)] = NoTransportForAddress(f"no transport for {a}")
                continue
            if not self.gater.allow_dial_addr(peer, base):
                errors[str(a)] = GaterRefused(f"gater refused {a}")
                continue
            if not explicit and self._backoff.backed_off(peer, base):
                errors[str(a)] = DialError(f"{a} is in dial backoff")
                continue
            candidates.append(base)
        if not candidates:
            if errors and all(isinstance(e, DnsResolutionError) for e in errors.values()):
                first = next(iter(errors.values()))
                raise DnsResolutionError(f"no address of {peer} resolved: {first}", errors)
            raise DialError(f"no dialable address for {peer}", errors)
        ranked = rank_addrs(candidates)
        try:
            async with asyncio.timeout(self.config.dial_timeout):
                return await self._race(peer, ranked, errors)
        except TimeoutError:
            raise DialError(
                f"dialing {peer} timed out after {self.config.dial_timeout:g} s", errors
            ) from None

    async def _race(
        self, peer: PeerId, ranked: list[Multiaddr], errors: dict[str, BaseException]
    ) -> Connection:
        """Happy eyeballs: start the ranked addresses staggered; the first upgraded connection wins, the others
        are cancelled (their half-made connections aborted, so the listener sees them go)."""
        if len(ranked) == 1:  # nothing to race: dial inline (no attempt task, no wait set)
            addr = ranked[0]
            try:
                conn = await self._dial_addr(peer, addr)
            except Exception as e:
                errors[str(addr)] = e
                self._backoff.failed(peer, addr)
                raise DialError(f"failed to dial {peer} on 1 address(es)", errors) from None
            self._backoff.clear(peer)
            return conn
        sem = asyncio.Semaphore(self.config.max_parallel_dials)
        stagger = self.config.dial_addr_stagger
        race = _RaceState()

        async def attempt(i: int, addr: Multiaddr) -> Connection:
            if i:
                await asyncio.sleep(stagger * i)
                # As go does: while an earlier address is connected and upgrading, do not start another one;
                # on a loaded machine that would only make duplicate connections.
                while race.upgrading:
                    await race.changed()
            async with sem:
                return await self._dial_addr(peer, addr, race)

        tasks = [asyncio.ensure_future(attempt(i, a)) for i, a in enumerate(ranked)]
        addr_of = {t: a for t, a in zip(tasks, ranked, strict=True)}
        winner: Connection | None = None
        pending = set(tasks)
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.cancelled():
                        continue
                    exc = t.exception()
                    if exc is None:
                        if winner is None:
                            winner = t.result()
                        else:  # a second success at the same moment: close it, we keep one
                            self._spawn(t.result().close())
                    else:
                        errors[str(addr_of[t])] = exc
                        self._backoff.failed(peer, addr_of[t])
        finally:
            for t in pending:
                t.cancel()
            if pending:
                results = await asyncio.gather(*pending, return_exceptions=True)
                for r in results:
                    if isinstance(r, Connection):
                        self._spawn(r.close())
        if winner is None:
            raise DialError(f"failed to dial {peer} on {len(ranked)} address(es)", errors)
        self._backoff.clear(peer)
        return winner

    async def _dial_addr(self, peer: PeerId, addr: Multiaddr, race: _RaceState | None = None) -> Connection:
        t = self._transport_for(addr, listen=False)
        if t is None:
            raise NoTransportForAddress(f"no transport for {addr}")
        scope = self.resources.open_connection(Direction.OUTBOUND)
        if is_capable(t):
            try:
                cc = await t.dial(addr, peer)
            except BaseException:
                scope.done()
                raise
            if self._closed or not self.gater.allow_secured(
                Direction.OUTBOUND, cc.remote_peer, cc.remote_addr
            ):
                scope.done()
                cc.muxed.abort(None)
                if self._closed:
                    raise DialError("swarm closed during dial")
                raise GaterRefused(f"gater refused secured connection with {cc.remote_peer}")
            return self._add_connection(cc, cc, Direction.OUTBOUND, t.name, scope)
        try:
            pipe = await cast(Transport, t).dial(addr)
            if race is not None:
                race.begin_upgrade()
            try:
                up = await self.upgrader.upgrade(pipe, Direction.OUTBOUND, peer)
            finally:
                if race is not None:
                    race.end_upgrade()
        except BaseException:
            scope.done()
            raise
        if self._closed:
            scope.done()
            up.muxed.abort(None)
            raise DialError("swarm closed during dial")
        return self._add_connection(up, pipe, Direction.OUTBOUND, t.name, scope)

    # -- streams -------------------------------------------------------------------------------------------------------
    async def new_stream(
        self,
        peer: PeerId,
        protocols: Sequence[str],
        *,
        timeout: float | None = None,
        allow_dial: bool = True,
        allow_limited: bool = False,
    ) -> Stream:
        """Open a stream to ``peer`` negotiating one of ``protocols``.

        Fails over: if opening fails on a connection, that connection is checked (closed if dead) and the open
        is retried on another live connection, or on a fresh dial, until ``timeout`` runs out.
        """
        t = self.config.new_stream_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t
        tried: list[Connection] = []
        last_error: BaseException | None = None
        dialed = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if last_error is not None:
                    raise DeadlineExceeded("new stream", t) from last_error
                raise DeadlineExceeded("new stream", t)
            conn = self.best_connection(peer, exclude=tried)
            if conn is not None and conn.limited and not allow_limited:
                conn = None
            if conn is None:
                if not allow_dial or dialed:
                    raise DialError(f"no usable connection to {peer}") from last_error
                dialed = True
                conn = await self.dial_peer(peer, timeout=remaining, new_connection=bool(tried))
            try:
                s = await self._open_with_probe(conn, protocols, remaining)
            except (ProtocolNotSupported, NegotiationError) as e:
                if isinstance(e, ProtocolNotSupported) or conn.is_closed() is False:
                    raise
                last_error = e
            except DeadlineExceeded:
                raise
            except (Libp2pError, OSError, EOFError, asyncio.IncompleteReadError) as e:
                last_error = e
                tried.append(conn)
                if not conn.is_closed():
                    await self._check_liveness(conn)
                if not conn.is_closed():
                    # The connection is alive: the remote refused or reset this stream (e.g. a resource
                    # limit). That is the answer; another connection would get the same one.
                    raise
                continue
            else:
                self.bus.emit(ev.StreamOpened(peer, s.protocol, "outbound", conn.id))
                return s

    async def _open_with_probe(self, conn: Connection, protocols: Sequence[str], timeout: float) -> Stream:
        """Open a stream on ``conn``; if that takes longer than ``stream_probe_delay``, probe the connection
        with a muxer ping meanwhile, so a silently dead connection is closed (and the caller fails over) long
        before the caller's deadline."""
        scope = self.resources.open_stream(conn.scope, conn.remote_peer, Direction.OUTBOUND)
        max_idle = self.config.lazy_negotiation_max_idle
        if max_idle > 0 and conn.received_within(max_idle) and len(self.connections(conn.remote_peer)) == 1:
            known = self.peerstore.supports(conn.remote_peer, protocols)
            if known:
                try:
                    stream = await conn.open_stream(
                        known[:1], timeout=timeout, on_done=self._stream_done, lazy=True, scope=scope
                    )
                except BaseException:
                    scope.done()
                    raise
                scope.set_protocol(stream.protocol)
                return stream
        # The open runs in the caller's task (no task of its own to wait on: the answer resumes the caller in
        # the loop iteration it arrives in, not two iterations later, behind whatever else became ready); a
        # timer starts the probe if it is still running after stream_probe_delay. The scope rides on the
        # stream from its creation: the connection may close (and finish its streams) meanwhile.
        probe: asyncio.Future[None] | None = None

        def start_probe() -> None:
            nonlocal probe
            probe = asyncio.ensure_future(self._check_liveness(conn))

        timer = asyncio.get_running_loop().call_later(self.config.stream_probe_delay, start_probe)
        try:
            # on any failure (cancellation included) open_stream resets the half-made stream itself
            stream = await conn.open_stream(
                protocols, timeout=timeout, on_done=self._stream_done, scope=scope
            )
        except BaseException:
            scope.done()
            raise
        finally:
            timer.cancel()
            if probe is not None:
                probe.cancel()
        scope.set_protocol(stream.protocol)
        return stream

    async def _check_liveness(self, conn: Connection) -> None:
        """After a failure on a connection that claims to be up: ping it through the muxer, and close it if
        it does not answer in time."""
        ping = getattr(conn.muxed, "ping", None)
        if ping is None:
            return
        try:
            async with asyncio.timeout(self.config.liveness_check_timeout):
                await ping()
        except (TimeoutError, Libp2pError, OSError):
            log.debug("connection %r failed its liveness check; closing", conn)
            conn.close_cause = "liveness-check-failed"
            conn.abort()

    def sweep(self) -> None:
        """Periodic housekeeping (the host runs it): forget dial backoffs that ran out long ago, and refilled
        connection-rate buckets."""
        self._backoff.prune()
        self.resources.prune_rate_limiter()

    # -- closing -----------------------------------------------------------------------------------------------------
    async def close_peer(self, peer: PeerId) -> None:
        conns = self._live(peer)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listeners = {id(lst): lst for _, lst in self._listeners}
        for addr, _ in self._listeners:
            self.bus.emit(ev.ListenStopped(addr))
        self._listeners.clear()
        await asyncio.gather(
            *(lst.close() for lst in listeners.values()),  # type: ignore[attr-defined]
            return_exceptions=True,
        )
        for d in list(self._dials.values()):
            d.cancel()
        conns = self.connections()
        if conns:
            try:
                async with asyncio.timeout(self.config.close_timeout):
                    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
            except TimeoutError:
                pass
            for c in conns:
                if not c.is_closed():
                    c.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.config.close_timeout)
        # transports holding sockets of their own (QUIC's and WebRTC-direct's UDP sockets, such as the one
        # their dials share) release them
        for t in self.transports:
            close = getattr(t, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing transport %r failed", t)
        # Close callbacks of aborted connections may still be scheduled; let them run.
        await asyncio.sleep(0)
