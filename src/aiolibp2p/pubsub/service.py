"""The asyncio PubSub service: drives a sans-I/O router (:mod:`.gossipsub`, :mod:`.floodsub`) over a Host.

pubsub/README.md §"The RPC": one long-lived outbound stream per peer for writing and the peer's inbound
stream for reading, each RPC a uvarint-framed protobuf; on a new peer we send a hello with our current
subscriptions (the router queues it). Lessons from go (GO-LIBP2P-NOTES §1.4) applied here:

* a peer is (re)tried on every ``PeerIdentified`` / ``PeerProtocolsUpdated`` event, not only the first;
* a failed or broken outbound stream is retried (on whatever connection the host picks next) while the
  peer stays connected, instead of silently dropping the peer;
* every wait is bounded: ``Topic.publish(min_peers=..., timeout=...)`` fails with DeadlineExceeded.

All router calls happen on the event loop, from callbacks and tasks of this object: the router is the one
sequential owner of the pubsub state (STYLE §8). Nothing here reads or changes that state otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Final

from ..core.interfaces import Direction
from ..crypto.peer_id import PeerId
from ..crypto.peer_record import open_signed_peer_record
from ..exceptions import DeadlineExceeded, Libp2pError, ProtocolViolation
from ..multiaddr import Multiaddr
from ..network import events as ev
from ..network.connection import Stream
from ..wire.varint import length_prefixed, try_decode_length_prefixed
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
STREAM_RETRIES: Final = 3
"""Attempts to (re)open the outbound stream to a connected peer before giving up until the next event."""
RETRY_DELAY: Final = 0.1
MAX_CONCURRENT_CONNECTS: Final = 8
"""Peer-exchange dials in flight at once (go's Connectors); further candidates are skipped."""
WRITE_TIMEOUT: Final = 30.0

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
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            if not self._subs:
                self.pubsub._call(lambda now: self.pubsub.router.unsubscribe(self.name, now))

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
    __slots__ = ("task", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class PubSub:
    """Runs ``router`` on ``host``. Create with :func:`gossipsub` or :func:`floodsub`."""

    def __init__(self, host: Host, router: PubSubRouter) -> None:
        self.host = host
        self.router = router
        self.loop = asyncio.get_running_loop()
        self.topics: dict[str, Topic] = {}
        self._links: dict[PeerId, _PeerLink] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: set[PeerId] = set()
        self._topic_waiters: dict[str, asyncio.Event] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._closed = False

    # --- lifecycle ---

    async def start(self) -> None:
        for proto in self.router.protocols:
            self.host.set_stream_handler(proto, self._handle_stream)
        on = self.host.bus.on
        self._unsubscribe.append(on(ev.PeerIdentified, self._on_identified, service=True))
        self._unsubscribe.append(on(ev.PeerProtocolsUpdated, self._on_protocols_updated, service=True))
        self._unsubscribe.append(on(ev.PeerDisconnected, self._on_disconnected, service=True))
        if isinstance(self.router, GossipSub):
            self.router.start(self.loop.time())
        self._arm_timer()
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
        tasks = [t for t in self._tasks if not t.done()]
        tasks += [link.task for link in self._links.values() if link.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    async def join(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic(self, name)
        return topic

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
        for peer in router.peers_with_frames():
            link = self._links.get(peer)
            if link is not None:
                link.wake.set()

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

    def _validate(self, event: ValidateMessage) -> None:
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

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- peers and streams ---

    def _on_identified(self, event: ev.PeerIdentified) -> None:
        if set(event.protocols) & set(self.router.protocols):
            self._ensure_link(event.peer)

    def _on_protocols_updated(self, event: ev.PeerProtocolsUpdated) -> None:
        if set(event.added) & set(self.router.protocols):
            self._ensure_link(event.peer)

    def _on_disconnected(self, event: ev.PeerDisconnected) -> None:
        link = self._links.pop(event.peer, None)
        if link is not None and link.task is not None:
            link.task.cancel()
        self._call(lambda now: self.router.remove_peer(event.peer, now))

    def _ensure_link(self, peer: PeerId) -> None:
        if self._closed or peer == self.host.peer_id:
            return
        link = self._links.get(peer)
        if link is not None and link.task is not None and not link.task.done():
            return
        link = link or _PeerLink()
        self._links[peer] = link
        link.task = asyncio.ensure_future(self._writer(peer, link))

    async def _writer(self, peer: PeerId, link: _PeerLink) -> None:
        """Own the outbound stream to ``peer``: open it (retrying), then write what the router queues."""
        attempts = 0
        while not self._closed:
            try:
                stream = await self.host.new_stream(peer, list(self.router.protocols))
            except (Libp2pError, OSError) as exc:
                attempts += 1
                if attempts >= STREAM_RETRIES or not self.host.connections(peer):
                    log.debug("pubsub: no stream to %s: %s", peer, exc)
                    self._drop_link(peer, link)
                    return
                await asyncio.sleep(RETRY_DELAY * attempts)
                continue
            self._add_peer(peer, stream)
            try:
                while True:
                    frames = self.router.take_frames(peer)
                    if frames:
                        payload = b"".join(length_prefixed(f) for f in frames)
                        await stream.write(payload, timeout=WRITE_TIMEOUT)
                        continue
                    link.wake.clear()
                    await link.wake.wait()
            except (Libp2pError, OSError) as exc:
                log.debug("pubsub: stream to %s failed: %s; reopening", peer, exc)
                with contextlib.suppress(Exception):
                    await stream.reset()
                attempts += 1
                if attempts >= STREAM_RETRIES or not self.host.connections(peer):
                    self._drop_link(peer, link)
                    return
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await stream.reset()
                raise

    def _add_peer(self, peer: PeerId, stream: Stream) -> None:
        outbound = stream.conn.direction is Direction.OUTBOUND
        protocol = stream.protocol
        self._call(lambda now: self.router.add_peer(peer, protocol, now, outbound=outbound))

    def _drop_link(self, peer: PeerId, link: _PeerLink) -> None:
        if self._links.get(peer) is link:
            del self._links[peer]
        self._call(lambda now: self.router.remove_peer(peer, now))

    async def _handle_stream(self, stream: Stream) -> None:
        """The peer's inbound stream: read uvarint-framed RPCs into the router until EOF or a violation."""
        peer = stream.remote_peer
        if peer not in self.router.peers:
            self._add_peer(peer, stream)
        self._ensure_link(peer)
        buf = bytearray()
        limit = self.router.config.max_message_size
        try:
            while True:
                chunk = await stream.read()
                if not chunk:
                    return
                buf += chunk
                pos = 0
                while True:
                    got = try_decode_length_prefixed(buf, limit, pos)
                    if got is None:
                        break
                    frame, pos = got
                    if peer not in self.router.peers:
                        return
                    self.router.handle_frame(peer, frame, self.loop.time())
                    self._after()
                del buf[:pos]
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
                await waiter.wait()

        if timeout is None:
            await wait()
            return
        try:
            async with asyncio.timeout(timeout):
                await wait()
        except TimeoutError:
            raise DeadlineExceeded(f"{count} peers on topic {topic!r}", timeout) from None


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    core_names = {f.name for f in fields(PubSubConfig)}
    core = {k: v for k, v in options.items() if k in core_names}
    rest = {k: v for k, v in options.items() if k not in core_names}
    return core, rest


async def gossipsub(host: Host, **options: Any) -> PubSub:
    """Start GossipSub on ``host``. Options: any field of :class:`GossipSubConfig` or :class:`PubSubConfig`."""
    core, rest = _split_options(options)
    config = GossipSubConfig(**rest)
    config = replace(config, pubsub=replace(config.pubsub, **core))
    router = GossipSub(host.peer_id, config, private_key=host.private_key, initial_seqno=_initial_seqno())
    ps = PubSub(host, router)
    await ps.start()
    return ps


async def floodsub(host: Host, **options: Any) -> PubSub:
    """Start FloodSub on ``host``. Options: any field of :class:`PubSubConfig`."""
    router = FloodSub(
        host.peer_id, PubSubConfig(**options), private_key=host.private_key, initial_seqno=_initial_seqno()
    )
    ps = PubSub(host, router)
    await ps.start()
    return ps


def _initial_seqno() -> int:
    import time

    return time.time_ns()  # go starts at the Unix time in ns, so IDs stay unique across restarts
