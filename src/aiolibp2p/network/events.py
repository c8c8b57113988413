"""Typed, paired lifecycle events and the bus that delivers them.

Guarantees (rust-libp2p ``FromSwarm`` and go's notifiee are the models):
- every connection yields exactly one :class:`ConnectionOpened` and then exactly one :class:`ConnectionClosed`;
- :class:`PeerConnected` / :class:`PeerDisconnected` only on 0 → ≥1 and ≥1 → 0 transitions;
- protocol services (subscribed with ``service=True``) see each event before user subscribers.

Callbacks run synchronously on the loop, in order; async-iterator subscribers get a bounded queue. The bus
holds subscriptions weakly (one nobody can read any more is dropped with its queue) and drops one that
overflowed (it only raises :class:`SubscriptionOverflow` from then on).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..crypto.peer_id import PeerId
    from ..multiaddr import Multiaddr
    from .connection import Connection, Stream

log = logging.getLogger(__name__)

DEFAULT_SUBSCRIPTION_QUEUE = 4096
"""Events an async-iterator subscriber may fall behind by before it is told it overflowed."""


@dataclass(frozen=True, slots=True)
class Event:
    pass


@dataclass(frozen=True, slots=True)
class ConnectionOpened(Event):
    conn: Connection
    peer: PeerId
    count: int  # connections to the peer including this one


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    conn: Connection
    peer: PeerId
    cause: str
    remaining: int  # connections to the peer that remain open


@dataclass(frozen=True, slots=True)
class PeerConnected(Event):
    peer: PeerId


@dataclass(frozen=True, slots=True)
class PeerDisconnected(Event):
    peer: PeerId


@dataclass(frozen=True, slots=True)
class StreamOpened(Event):
    peer: PeerId
    protocol: str
    direction: str
    conn_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed(Event):
    peer: PeerId
    protocol: str
    direction: str
    conn_id: int
    stream: Stream | None = field(default=None, compare=False, repr=False)
    """The stream itself (its ``bytes_read`` / ``bytes_written`` are final)."""


@dataclass(frozen=True, slots=True)
class ListenStarted(Event):
    addr: Multiaddr


@dataclass(frozen=True, slots=True)
class ListenStopped(Event):
    addr: Multiaddr


@dataclass(frozen=True, slots=True)
class PeerIdentified(Event):
    """Identify completed on ``conn``; the peerstore holds what the peer told us."""

    peer: PeerId
    conn: Connection
    protocols: tuple[str, ...]
    agent_version: str


@dataclass(frozen=True, slots=True)
class PeerProtocolsUpdated(Event):
    peer: PeerId
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DialCompleted(Event):
    """A dial to ``peer`` (across all its addresses) finished: ``error`` is the exception's class name, or
    ``""`` on success."""

    peer: PeerId
    ok: bool
    seconds: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class IdentifyFailed(Event):
    """Identify on ``conn`` failed (every attempt) while the connection stayed open."""

    peer: PeerId
    conn: Connection


class SubscriptionOverflow(Exception):
    """An async-iterator subscriber fell more than its queue size behind; events were lost for it."""


EventCallback = Callable[[Any], None]


class Subscription:
    """An async iterator over events of the given types."""

    def __init__(self, bus: EventBus, types: tuple[type[Event], ...], maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def _push(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._bus._remove(self)  # it gets nothing more; do not keep offering it every event
            log.warning("event subscriber overflowed (%d queued); it will raise", self._queue.maxsize)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.overflowed and self._queue.empty():
            raise SubscriptionOverflow("subscriber fell behind")
        ev = await self._queue.get()
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def get(self, timeout: float | None = None) -> Any:
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    def close(self) -> None:
        self._bus._remove(self)
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._service_callbacks: list[tuple[tuple[type[Event], ...], EventCallback]] = []
        self._user_callbacks: list[tuple[tuple[type[Event], ...], EventCallback]] = []
        self._subscriptions: list[weakref.ref[Subscription]] = []

    def on(
        self, types: type[Event] | tuple[type[Event], ...], callback: EventCallback, *, service: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``types``. Returns a function that unsubscribes."""
        t = types if isinstance(types, tuple) else (types,)
        lst = self._service_callbacks if service else self._user_callbacks
        entry = (t, callback)
        lst.append(entry)

        def off() -> None:
            if entry in lst:
                lst.remove(entry)

        return off

    def subscribe(self, *types: type[Event], maxsize: int = DEFAULT_SUBSCRIPTION_QUEUE) -> Subscription:
        """An async iterator of events (all events when no types are given)."""
        sub = Subscription(self, types or (Event,), maxsize)
        self._subscriptions.append(weakref.ref(sub, self._forget))
        return sub

    @property
    def num_subscriptions(self) -> int:
        return len(self._subscriptions)

    def _forget(self, ref: weakref.ref[Subscription]) -> None:
        if ref in self._subscriptions:
            self._subscriptions.remove(ref)

    def _remove(self, sub: Subscription) -> None:
        for ref in self._subscriptions:
            if ref() is sub:
                self._subscriptions.remove(ref)
                return

    def emit(self, event: Event) -> None:
        for types, cb in list(self._service_callbacks):
            if isinstance(event, types):
                self._call(cb, event)
        for types, cb in list(self._user_callbacks):
            if isinstance(event, types):
                self._call(cb, event)
        for ref in list(self._subscriptions):
            sub = ref()
            if sub is not None and isinstance(event, sub.types):
                sub._push(event)

    @staticmethod
    def _call(cb: EventCallback, event: Event) -> None:
        try:
            cb(event)
        except Exception:
            log.exception("event callback %r failed on %r", cb, event)
