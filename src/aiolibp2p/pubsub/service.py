"""The asyncio PubSub service: drives a sans-I/O router (:mod:`.gossipsub`, :mod:`.floodsub`) over a Host.

pubsub/README.md §"The RPC": one long-lived outbound stream per peer for writing and the peer's inbound
stream for reading, each RPC a uvarint-framed protobuf; on a new peer we send a hello with our current
subscriptions (the router queues it). Lessons from go (GO-LIBP2P-NOTES §1.4) applied here:

* a peer is (re)tried on every ``PeerIdentified`` / ``PeerProtocolsUpdated`` event, not only the first;
* a failed or broken outbound stream is reopened (the swarm fails over to another live connection) while
  the peer has any live connection: with a capped backoff, and at once on each new connection or identify
  of that peer. A peer leaves the pubsub state only on ``PeerDisconnected`` (no live connection left);
* every new outbound stream starts with our subscriptions (the hello; GossipSub adds GRAFTs for the mesh),
  and the frames a broken stream may have swallowed are written again (receivers drop duplicates);
* outbound frame queues are bounded (``max_outbound_rpcs_per_peer``); drops are counted and logged;
* every wait is bounded: ``Topic.publish(min_peers=..., timeout=...)`` fails with DeadlineExceeded.

Discovery (go-libp2p-pubsub ``discovery.go``), when a :class:`~aiolibp2p.discovery.Discovery` is given:
subscribing advertises ``"floodsub:" + topic`` (go uses that prefix for every router; ``discovery_prefix``
changes it) and re-advertises before the TTL runs out; every ``discovery_poll`` seconds each joined topic
with too few peers (FloodSub: 5, GossipSub: ``d_lo``) is looked up and the peers found are dialed through a
:class:`~aiolibp2p.discovery.BackoffConnector`; ``publish(min_peers=N)`` looks up every 100 ms until N.

All router calls happen on the event loop, from callbacks and tasks of this object: the router is the one
sequential owner of the pubsub state (STYLE §8). Nothing here reads or changes that state otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Final

from ..core.interfaces import Direction
from ..crypto.peer_id import PeerId
from ..crypto.peer_record import open_signed_peer_record
from ..discovery import Discovery
from ..discovery.backoff import BackoffConnector
from ..exceptions import DeadlineExceeded, Libp2pError, ProtocolNotSupported, ProtocolViolation
from ..multiaddr import Multiaddr
from ..network import events as ev
from ..network.connection import Stream
from ..wire.pb import pubsub_pb2 as pb
from ..wire.varint import encode_uvarint, try_decode_length_prefixed
from .core import (
    ConnectToPeer,
    DeliverMessage,
    PeerJoinedTopic,
    PubSubConfig,
    PubSubEvent,
    PubSubRouter,
    ValidateMessage,
)
from .floodsub import FloodSub
from .gossipsub import GossipSub, GossipSubConfig
from .message import PubSubMessage, ValidationResult

if TYPE_CHECKING:
    from ..host.host import Host

log = logging.getLogger(__name__)

SUBSCRIPTION_QUEUE_SIZE: Final = 32
"""Messages buffered per subscription (go's default); when full, new messages are dropped and counted."""
RETRY_DELAY: Final = 0.1
"""First pause before reopening a failed outbound stream to a still-connected peer (doubles per failure)."""
REPLAY_WINDOW: Final = 5.0
"""Seconds of recently written messages re-sent on a replacement stream (covers keep-alive detection)."""
REPLAY_MAX_FRAMES: Final = 64
RETRY_MAX_DELAY: Final = 5.0
"""Longest pause between reopen attempts; a new connection or identify of the peer retries at once."""
OPEN_TIMEOUT: Final = 10.0
"""Seconds one attempt to open the outbound pubsub stream may take (failover included)."""
DROP_LOG_INTERVAL: Final = 5.0
"""Seconds between two warnings about frames dropped on full outbound queues."""
DISCOVERY_PREFIX: Final = "floodsub:"
DISCOVERY_LIMIT: Final = 20
DISCOVERY_TTL: Final = 60.0
DISCOVERY_POLL: Final = 1.0
DISCOVERY_ROUND_TIMEOUT: Final = 10.0
BOOTSTRAP_INTERVAL: Final = 0.1
FLOODSUB_TOPIC_SEARCH_SIZE: Final = 5
MAX_CONCURRENT_CONNECTS: Final = 8
"""Peer-exchange dials in flight at once (go's Connectors); further candidates are skipped."""
WRITE_TIMEOUT: Final = 30.0
"""Seconds one write to a peer's pubsub stream may block (its window full, its connection stuck); then the
stream is reset and the writer reopens one. Checked by a watchdog every ``WRITE_WATCHDOG_INTERVAL`` seconds
rather than a timer per write (the writes of a busy topic are many and almost never block)."""
WRITE_WATCHDOG_INTERVAL: Final = 1.0

Validator = Callable[[PubSubMessage], ValidationResult | bool | Awaitable[ValidationResult | bool]]


def _verdict(value: ValidationResult | bool) -> ValidationResult:
    if isinstance(value, ValidationResult):
        return value
    return ValidationResult.ACCEPT if value else ValidationResult.REJECT


class Subscription:
    """Messages of one topic, in arrival order: ``async for msg in sub`` or ``await sub.next()``."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self._queue: asyncio.Queue[PubSubMessage] = asyncio.Queue(SUBSCRIPTION_QUEUE_SIZE)
        self.dropped = 0
        self._closed = False

    def _push(self, msg: PubSubMessage) -> None:
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            self.topic.pubsub.subscription_drops += 1

    async def next(self, *, timeout: float | None = None) -> PubSubMessage:
        if timeout is None:
            return await self._queue.get()
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            raise DeadlineExceeded(f"next message on {self.topic.name!r}", timeout) from None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PubSubMessage:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        return await self.next()

    def cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self.topic._remove(self)


class Topic:
    """A joined topic: subscribe to it, publish to it, validate its messages."""

    def __init__(self, pubsub: PubSub, name: str) -> None:
        self.pubsub = pubsub
        self.name = name
        self._subs: list[Subscription] = []
        self.validator: Validator | None = None

    async def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subs.append(sub)
        if len(self._subs) == 1:
            self.pubsub._call(lambda now: self.pubsub.router.subscribe(self.name, now))
            self.pubsub._start_advertising(self.name)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            if not self._subs:
                self.pubsub._call(lambda now: self.pubsub.router.unsubscribe(self.name, now))
                self.pubsub._stop_advertising(self.name)

    def peers(self) -> list[PeerId]:
        return sorted(self.pubsub.router.topic_peers(self.name))

    async def publish(self, data: bytes, *, min_peers: int = 0, timeout: float | None = None) -> bytes:
        """Publish ``data``; first wait (bounded by ``timeout``) until ``min_peers`` topic peers are known.

        Returns the message ID. Raises MessageTooLarge, DeadlineExceeded, or ValueError if our own
        validator rejects the message.
        """
        if min_peers > 0:
            await self.pubsub._wait_for_peers(self.name, min_peers, timeout)
        router = self.pubsub.router
        msg_id, message = router.build_message(self.name, data)
        if self.validator is not None:
            verdict = self.validator(message)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if _verdict(verdict) is not ValidationResult.ACCEPT:
                raise ValueError(f"local validator refused the message ({_verdict(verdict).value})")
        self.pubsub._call(lambda now: router.publish_message(msg_id, message, now))
        return msg_id


class _PeerLink:
    __slots__ = ("retry", "stream", "task", "wake", "write_timed_out", "writing_since")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        """Set when the router queued frames for the peer, or the stream's connection closed."""
        self.retry = asyncio.Event()
        """Set on a new connection / identify of the peer: retry a failed open at once."""
        self.task: asyncio.Task[None] | None = None
        self.stream: Stream | None = None
        self.writing_since: float | None = None
        """Loop time the write in progress began (None: not writing); see ``WRITE_TIMEOUT``."""
        self.write_timed_out = False
        """Set by the watchdog when it cancels the writer's blocked write (the writer then reopens)."""


class PubSub:
    """Runs ``router`` on ``host``. Create with :func:`gossipsub` or :func:`floodsub`."""

    def __init__(
        self,
        host: Host,
        router: PubSubRouter,
        *,
        discovery: Discovery | None = None,
        connector: BackoffConnector | None = None,
        discovery_prefix: str = DISCOVERY_PREFIX,
        discovery_limit: int = DISCOVERY_LIMIT,
        discovery_ttl: float = DISCOVERY_TTL,
        discovery_poll: float = DISCOVERY_POLL,
    ) -> None:
        self.host = host
        self.router = router
        self.discovery = discovery
        self.connector = connector if connector is not None or discovery is None else BackoffConnector(host)
        self.discovery_prefix = discovery_prefix
        self.discovery_limit = discovery_limit
        self.discovery_ttl = discovery_ttl
        self.discovery_poll = discovery_poll
        self._advertisers: dict[str, asyncio.Task[None]] = {}
        self._discovering: dict[str, asyncio.Task[None]] = {}
        self._drops_logged = 0
        self._drops_logged_at = float("-inf")
        self.loop = asyncio.get_running_loop()
        self.topics: dict[str, Topic] = {}
        self._links: dict[PeerId, _PeerLink] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: set[PeerId] = set()
        self._topic_waiters: dict[str, asyncio.Event] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._closed = False
        self._inline_pending: dict[bytes, Awaitable[ValidationResult | bool]] = {}
        self.subscription_drops = 0
        """Messages dropped because a subscription's queue was full (all subscriptions, ever)."""
        router.inline_validator = self._validate_inline

    # --- lifecycle ---

    async def start(self) -> None:
        for proto in self.router.protocols:
            self.host.set_stream_handler(proto, self._handle_stream)
        on = self.host.bus.on
        self._unsubscribe.append(on(ev.PeerIdentified, self._on_identified, service=True))
        self._unsubscribe.append(on(ev.PeerProtocolsUpdated, self._on_protocols_updated, service=True))
        self._unsubscribe.append(on(ev.PeerDisconnected, self._on_disconnected, service=True))
        self._unsubscribe.append(on(ev.ConnectionOpened, self._on_connection_opened, service=True))
        self._unsubscribe.append(on(ev.ConnectionClosed, self._on_connection_closed, service=True))
        if isinstance(self.router, GossipSub):
            self.router.start(self.loop.time())
        self._arm_timer()
        self._watchdog = self.loop.call_later(WRITE_WATCHDOG_INTERVAL, self._check_writes)
        if self.discovery is not None:
            self._spawn(self._discovery_poll())
        for peer in self.host.connected_peers():
            if set(self.host.peerstore.get_protocols(peer)) & set(self.router.protocols):
                self._ensure_link(peer)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for off in self._unsubscribe:
            off()
        for proto in self.router.protocols:
            self.host.remove_stream_handler(proto)
        if self._timer is not None:
            self._timer.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        tasks += [link.task for link in self._links.values() if link.task is not None]
        tasks += [*self._advertisers.values(), *self._discovering.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.connector is not None:
            await self.connector.close()

    async def join(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic(self, name)
        return topic

    def add_validator(self, topic: str, fn: Validator) -> None:
        """Validate every message of ``topic``, received or published, with ``fn`` (it returns a
        ValidationResult, True/False, or an awaitable of either). Replaces the topic's earlier validator."""
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = Topic(self, topic)
        t.validator = fn

    def mesh_peers(self, topic: str) -> list[PeerId]:
        """The peers this node forwards ``topic``'s messages to: the GossipSub mesh, or (FloodSub) every
        peer subscribed to the topic."""
        mesh = getattr(self.router, "mesh", None)
        if isinstance(mesh, dict):
            return sorted(mesh.get(topic, ()), key=str)
        return sorted(self.router.topic_peers(topic), key=str)

    # --- driving the router ---

    def _call(self, fn: Callable[[float], object]) -> None:
        """Run one router call with the current time, then act on what it produced."""
        if self._closed:
            return
        fn(self.loop.time())
        self._after()

    def _after(self) -> None:
        router = self.router
        while events := router.take_events():  # synchronous verdicts produce more events
            self._dispatch(events)
        for peer in router.take_flushed_peers():
            link = self._links.get(peer)
            if link is not None:
                link.wake.set()
        dropped = router.stats.rpcs_dropped
        if dropped != self._drops_logged:
            now = self.loop.time()
            if now - self._drops_logged_at >= DROP_LOG_INTERVAL:
                log.warning(
                    "pubsub: %d outbound RPCs dropped on full peer queues (%d messages); %d in total",
                    dropped - self._drops_logged,
                    router.stats.messages_dropped_queue_full,
                    dropped,
                )
                self._drops_logged = dropped
                self._drops_logged_at = now

    def _dispatch(self, events: list[PubSubEvent]) -> None:
        for event in events:
            if isinstance(event, ValidateMessage):
                self._validate(event)
            elif isinstance(event, DeliverMessage):
                topic = self.topics.get(event.message.topic)
                if topic is not None:
                    for sub in topic._subs:
                        sub._push(event.message)
            elif isinstance(event, PeerJoinedTopic):
                waiter = self._topic_waiters.get(event.topic)
                if waiter is not None:
                    waiter.set()
            elif isinstance(event, ConnectToPeer):
                self._px_connect(event)

    def _validate_inline(self, message: PubSubMessage) -> ValidationResult | None:
        """The router's inline validator: the verdict of the topic's validator when it answers at once (or
        ACCEPT without one); None for a validator that returns an awaitable (the router then asks with a
        ValidateMessage event, whose verdict comes back through ``report_validation``)."""
        topic = self.topics.get(message.topic)
        validator = topic.validator if topic is not None else None
        if validator is None:
            return ValidationResult.ACCEPT
        if inspect.iscoroutinefunction(validator):
            return None
        try:
            verdict = validator(message)
        except Exception:
            log.exception("validator of %r failed", message.topic)
            return ValidationResult.IGNORE
        if inspect.isawaitable(verdict):
            # a plain function that returned an awaitable: the ValidateMessage event that follows awaits it
            self._inline_pending[self.router.config.message_id_fn(message.pb)] = verdict
            return None
        return _verdict(verdict)

    def _validate(self, event: ValidateMessage) -> None:
        pending = self._inline_pending.pop(event.msg_id, None)
        if pending is not None:
            self._spawn(self._validate_async(event.msg_id, pending))
            return
        topic = self.topics.get(event.message.topic)
        validator = topic.validator if topic is not None else None
        if validator is None:
            self.router.report_validation(event.msg_id, ValidationResult.ACCEPT, self.loop.time())
            return
        try:
            verdict = validator(event.message)
        except Exception:
            log.exception("validator of %r failed", event.message.topic)
            verdict = ValidationResult.IGNORE
        if not inspect.isawaitable(verdict):
            self.router.report_validation(event.msg_id, _verdict(verdict), self.loop.time())
            return
        self._spawn(self._validate_async(event.msg_id, verdict))

    async def _validate_async(self, msg_id: bytes, pending: Awaitable[ValidationResult | bool]) -> None:
        try:
            result = _verdict(await pending)
        except Exception:
            log.exception("async validator failed")
            result = ValidationResult.IGNORE
        self._call(lambda now: self.router.report_validation(msg_id, result, now))

    def _arm_timer(self) -> None:
        if self._closed or not isinstance(self.router, GossipSub):
            return
        deadline = self.router.next_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        assert isinstance(self.router, GossipSub)
        router = self.router
        self._call(router.handle_timer)
        self._arm_timer()

    def _check_writes(self) -> None:
        """Interrupt the writes that have blocked for longer than ``WRITE_TIMEOUT``: the writer's task is
        cancelled (as ``asyncio.timeout`` would), takes it back (``uncancel``) and reopens a stream, as after
        any failure; the frames it was writing are kept."""
        if self._closed:
            return
        now = self.loop.time()
        for peer, link in self._links.items():
            since, task = link.writing_since, link.task
            if since is not None and task is not None and not task.done() and now - since > WRITE_TIMEOUT:
                log.debug("pubsub: write to %s blocked for %.0f s; reopening its stream", peer, now - since)
                link.writing_since = None
                link.write_timed_out = True
                task.cancel()
        self._watchdog = self.loop.call_later(WRITE_WATCHDOG_INTERVAL, self._check_writes)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- peers and streams ---

    def _on_identified(self, event: ev.PeerIdentified) -> None:
        if set(event.protocols) & set(self.router.protocols):
            self._ensure_link(event.peer)
            self._share_record(event.peer)  # a newer record (new addresses) replaces the older one

    def _on_protocols_updated(self, event: ev.PeerProtocolsUpdated) -> None:
        if set(event.added) & set(self.router.protocols):
            self._ensure_link(event.peer)

    def _on_disconnected(self, event: ev.PeerDisconnected) -> None:
        link = self._links.pop(event.peer, None)
        if link is not None and link.task is not None:
            link.task.cancel()
        self._call(lambda now: self.router.remove_peer(event.peer, now))

    def _on_connection_opened(self, event: ev.ConnectionOpened) -> None:
        link = self._links.get(event.peer)
        if link is not None:
            link.retry.set()

    def _on_connection_closed(self, event: ev.ConnectionClosed) -> None:
        link = self._links.get(event.peer)
        if link is not None and link.stream is not None and link.stream.conn is event.conn:
            link.wake.set()  # the writer notices its stream is gone and reopens on a surviving connection

    def _ensure_link(self, peer: PeerId) -> None:
        if self._closed or peer == self.host.peer_id:
            return
        link = self._links.get(peer)
        if link is not None and link.task is not None and not link.task.done():
            link.retry.set()
            return
        link = link or _PeerLink()
        self._links[peer] = link
        link.task = asyncio.ensure_future(self._writer(peer, link))

    async def _writer(self, peer: PeerId, link: _PeerLink) -> None:
        """Own the outbound stream to ``peer``: open it, write what the router queues; when it breaks, open
        another (on any live connection) and restate the hello there. Runs until the peer disconnects."""
        failures = 0
        opened = 0
        pending: list[bytes] = []  # taken from the router, not yet written
        recent: deque[tuple[float, bytes]] = deque(maxlen=REPLAY_MAX_FRAMES)  # written lately
        while not self._closed:
            if not self.host.connections(peer):
                self._drop_link(peer, link)  # PeerDisconnected removes (or removed) it from the router
                return
            link.retry.clear()
            try:
                stream = await self.host.new_stream(peer, list(self.router.protocols), timeout=OPEN_TIMEOUT)
            except ProtocolNotSupported as exc:
                log.debug("pubsub: %s speaks no pubsub protocol of ours: %s", peer, exc)
                self._drop_link(peer, link)
                return
            except (Libp2pError, OSError) as exc:
                failures += 1
                delay = min(RETRY_MAX_DELAY, RETRY_DELAY * 2 ** (failures - 1))
                log.debug(
                    "pubsub: no stream to %s (%s); retrying in %.1f s or on a new connection",
                    peer,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await link.retry.wait()
                continue
            failures = 0
            link.stream = stream
            self._add_peer(peer, stream)  # queues the hello if the peer is new to the router
            if opened:
                # A replacement stream: restate the hello, and write again the messages of the last few
                # seconds, which a silently dead connection may have swallowed (duplicates are dropped).
                hello = self.router.resync_frame(peer)
                replay = _messages_only(f for t, f in recent if t >= self.loop.time() - REPLAY_WINDOW)
                pending = ([hello] if hello is not None else []) + replay + pending
                recent.clear()
            opened += 1
            take_frames = self.router.take_frames
            loop_time = self.loop.time
            try:
                while True:
                    if not pending:
                        pending = take_frames(peer)
                    if pending:
                        now = link.writing_since = loop_time()
                        await stream.write(_prefixed(pending))
                        link.writing_since = None
                        for f in pending:
                            recent.append((now, f))  # (the time the write began)
                        pending = []
                        continue
                    if stream.is_closed() or stream.conn.is_closed():
                        log.debug("pubsub: stream to %s closed; reopening", peer)
                        break
                    link.wake.clear()
                    await link.wake.wait()
            except (Libp2pError, OSError) as exc:
                log.debug("pubsub: stream to %s failed: %s; reopening", peer, exc)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not link.write_timed_out or task is None or task.uncancel() > 0:
                    link.stream = None
                    with contextlib.suppress(Exception):
                        await stream.reset()
                    raise
                # the watchdog's cancel: the write blocked for WRITE_TIMEOUT; reopen
            link.write_timed_out = False
            link.writing_since = None
            link.stream = None
            with contextlib.suppress(Exception):
                await stream.reset()

    def _add_peer(self, peer: PeerId, stream: Stream) -> None:
        outbound = stream.conn.direction is Direction.OUTBOUND
        protocol = stream.protocol
        self._call(lambda now: self.router.add_peer(peer, protocol, now, outbound=outbound))
        self._share_record(peer)

    def _share_record(self, peer: PeerId) -> None:
        """Hand the router the peer's signed record from identify: GossipSub sends it in PRUNE peer exchange."""
        set_record = getattr(self.router, "set_peer_record", None)
        record = self.host.peerstore.peer_record(peer)
        if set_record is not None and record is not None:
            set_record(peer, record)

    def _drop_link(self, peer: PeerId, link: _PeerLink) -> None:
        """Forget the writer of ``peer``; the router keeps the peer while any connection to it lives."""
        if self._links.get(peer) is link:
            del self._links[peer]
        if not self.host.connections(peer):
            self._call(lambda now: self.router.remove_peer(peer, now))

    async def _handle_stream(self, stream: Stream) -> None:
        """The peer's inbound stream: read uvarint-framed RPCs into the router until EOF or a violation."""
        peer = stream.remote_peer
        if peer not in self.router.peers:
            self._add_peer(peer, stream)
        self._ensure_link(peer)
        buf = bytearray()  # the start of a frame that the next chunk completes
        limit = self.router.config.max_message_size
        router = self.router
        peers = router.peers
        try:
            while True:
                chunk = await stream.read()
                if not chunk:
                    return
                if buf:
                    buf += chunk
                    data: bytes | bytearray = buf
                else:
                    data = chunk  # the usual case: frames are sliced from the chunk, no buffer copy
                pos = 0
                now = self.loop.time()
                while True:
                    got = try_decode_length_prefixed(data, limit, pos)
                    if got is None:
                        break
                    frame, pos = got
                    if peer not in peers:
                        self._after()
                        return
                    router.handle_frame(peer, frame, now)
                # one pass over what the frames of this chunk produced (events, writers to wake)
                self._after()
                if data is buf:
                    del buf[:pos]
                elif pos < len(data):
                    buf += memoryview(data)[pos:]
        except ProtocolViolation as exc:
            log.debug("pubsub: resetting inbound stream of %s: %s", peer, exc)
            self._after()
            with contextlib.suppress(Exception):
                await stream.reset()
        except Libp2pError:
            pass

    def _px_connect(self, event: ConnectToPeer) -> None:
        if event.peer in self._connecting or len(self._connecting) >= MAX_CONCURRENT_CONNECTS:
            return
        addrs: list[Multiaddr] = []
        if event.signed_peer_record is not None:
            with contextlib.suppress(Libp2pError):
                record, _ = open_signed_peer_record(event.signed_peer_record)
                for raw in record.addrs:
                    with contextlib.suppress(Libp2pError):
                        addrs.append(Multiaddr.from_bytes(raw))
        if not addrs:
            return
        self._connecting.add(event.peer)

        async def connect() -> None:
            try:
                await self.host.connect(addrs, peer=event.peer)
            except (Libp2pError, OSError) as exc:
                log.debug("pubsub: PX connect to %s failed: %s", event.peer, exc)
            finally:
                self._connecting.discard(event.peer)

        self._spawn(connect())

    async def _wait_for_peers(self, topic: str, count: int, timeout: float | None) -> None:
        async def wait() -> None:
            while len(self.router.topic_peers(topic)) < count:
                waiter = self._topic_waiters.setdefault(topic, asyncio.Event())
                waiter.clear()
                if self.discovery is None:
                    await waiter.wait()
                    continue
                # go's discover.Bootstrap: look up and dial, then check again 100 ms later
                self._discover(topic)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BOOTSTRAP_INTERVAL):
                        await waiter.wait()

        if timeout is None:
            await wait()
            return
        try:
            async with asyncio.timeout(timeout):
                await wait()
        except TimeoutError:
            raise DeadlineExceeded(f"{count} peers on topic {topic!r}", timeout) from None

    # --- discovery ---

    def _start_advertising(self, topic: str) -> None:
        if self.discovery is None or self._closed or topic in self._advertisers:
            return
        self._advertisers[topic] = asyncio.ensure_future(self._advertise(topic))

    def _stop_advertising(self, topic: str) -> None:
        task = self._advertisers.pop(topic, None)
        if task is not None:
            task.cancel()

    async def _advertise(self, topic: str) -> None:
        """Advertise ``topic`` while subscribed, again at 7/8 of each granted TTL (go's advertise loop)."""
        assert self.discovery is not None
        namespace = self.discovery_prefix + topic
        while not self._closed:
            try:
                async with asyncio.timeout(DISCOVERY_ROUND_TIMEOUT):
                    ttl = await self.discovery.advertise(namespace, ttl=self.discovery_ttl)
            except (Libp2pError, OSError, TimeoutError) as exc:
                log.debug("pubsub: advertising %r failed: %s", namespace, exc)
                await asyncio.sleep(DISCOVERY_ROUND_TIMEOUT)
                continue
            await asyncio.sleep(max(ttl * 7 / 8, 1.0))

    def _enough_peers(self, topic: str) -> bool:
        """go's ``EnoughPeers(topic, 0)``: FloodSub 5 topic peers, GossipSub ``d_lo``."""
        want = self.router.gs.d_lo if isinstance(self.router, GossipSub) else FLOODSUB_TOPIC_SEARCH_SIZE
        return len(self.router.topic_peers(topic)) >= want

    async def _discovery_poll(self) -> None:
        while not self._closed:
            for topic in list(self.topics):
                if not self._enough_peers(topic):
                    self._discover(topic)
            await asyncio.sleep(self.discovery_poll)

    def _discover(self, topic: str) -> None:
        """One lookup of ``topic`` whose results go to the connector (one at a time per topic)."""
        if self.discovery is None or self._closed:
            return
        running = self._discovering.get(topic)
        if running is not None and not running.done():
            return
        self._discovering[topic] = asyncio.ensure_future(self._discover_round(topic))

    async def _discover_round(self, topic: str) -> None:
        assert self.discovery is not None and self.connector is not None
        try:
            async with asyncio.timeout(DISCOVERY_ROUND_TIMEOUT):
                found = self.discovery.find_peers(self.discovery_prefix + topic, limit=self.discovery_limit)
                await self.connector.connect(found)
        except (Libp2pError, OSError, TimeoutError) as exc:
            log.debug("pubsub: discovery of %r failed: %s", topic, exc)


_SERVICE_OPTIONS: Final = (
    "discovery",
    "connector",
    "discovery_prefix",
    "discovery_limit",
    "discovery_ttl",
    "discovery_poll",
)


def _service_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options.pop(k) for k in _SERVICE_OPTIONS if k in options}


def _prefixed(frames: list[bytes]) -> bytes:
    """The frames, each after its uvarint length, in one buffer (one copy of each frame)."""
    if len(frames) == 1:
        frame = frames[0]
        return encode_uvarint(len(frame)) + frame
    parts: list[bytes] = []
    for frame in frames:
        parts.append(encode_uvarint(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def _messages_only(frames: Iterable[bytes]) -> list[bytes]:
    """The published messages of ``frames``, re-encoded without subscriptions or control (replaying an old
    GRAFT or PRUNE could undo a newer one; a message is idempotent)."""
    out: list[bytes] = []
    for frame in frames:
        rpc = pb.RPC.FromString(frame)
        if rpc.publish:
            out.append(pb.RPC(publish=rpc.publish).SerializeToString())
    return out


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    core_names = {f.name for f in fields(PubSubConfig)}
    core = {k: v for k, v in options.items() if k in core_names}
    rest = {k: v for k, v in options.items() if k not in core_names}
    return core, rest


async def gossipsub(host: Host, **options: Any) -> PubSub:
    """Start GossipSub on ``host``. Options: any field of :class:`GossipSubConfig` or :class:`PubSubConfig`,
    and the discovery options of :class:`PubSub` (``discovery=``, ``connector=``, ``discovery_prefix=``,
    ``discovery_limit=``, ``discovery_ttl=``, ``discovery_poll=``)."""
    service = _service_options(options)
    core, rest = _split_options(options)
    config = GossipSubConfig(**rest)
    config = replace(config, pubsub=replace(config.pubsub, **core))
    router = GossipSub(host.peer_id, config, private_key=host.private_key, initial_seqno=_initial_seqno())
    ps = PubSub(host, router, **service)
    await ps.start()
    return ps


async def floodsub(host: Host, **options: Any) -> PubSub:
    """Start FloodSub on ``host``. Options: any field of :class:`PubSubConfig`, and the discovery options of
    :class:`PubSub`."""
    service = _service_options(options)
    router = FloodSub(
        host.peer_id, PubSubConfig(**options), private_key=host.private_key, initial_seqno=_initial_seqno()
    )
    ps = PubSub(host, router, **service)
    await ps.start()
    return ps


def _initial_seqno() -> int:
    import time

    return time.time_ns()  # go starts at the Unix time in ns, so IDs stay unique across restarts
