"""Dial what a discovery finds, without hammering peers: go-libp2p ``p2p/discovery/backoff``.

:class:`BackoffConnector` (go's ``BackoffConnector``) keeps an LRU of the peers it has seen; each entry
carries its own :class:`ExponentialBackoff`. A peer found again before its next allowed try is skipped.
Dials run as tasks, at most ``max_concurrent_dials`` at once, each bounded by ``connect_timeout``; a peer
we are already connected to is not dialed (and costs no backoff).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..crypto.peer_id import PeerId
from ..exceptions import Libp2pError
from . import PeerInfo

if TYPE_CHECKING:
    from ..host.host import Host

log = logging.getLogger(__name__)

CACHE_SIZE: Final = 100
"""Peers remembered by the connector (go-libp2p-pubsub's discovery uses an LRU of 100)."""
CONNECT_TIMEOUT: Final = 120.0
"""Seconds one dial may take (go: 2 min)."""
MAX_CONCURRENT_DIALS: Final = 16
MAX_PENDING_DIALS: Final = 256
"""Dials queued behind the concurrency limit; peers found beyond this are skipped (and counted)."""


@dataclass(slots=True)
class ExponentialBackoff:
    """Delays ``min_delay * factor**attempt`` capped at ``max_delay``, with full jitter in
    ``[min_delay, delay]`` (go's ``NewExponentialBackoff(min, max, FullJitter, ...)``)."""

    min_delay: float = 10.0
    max_delay: float = 3600.0
    factor: float = 5.0
    rng: random.Random | None = None
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.max_delay, self.min_delay * self.factor**self.attempt)
        self.attempt += 1
        rng = self.rng or random
        return rng.uniform(self.min_delay, base) if base > self.min_delay else base

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class _Entry:
    backoff: ExponentialBackoff
    next_try: float


@dataclass(slots=True)
class ConnectorStats:
    dials: int = 0
    dial_failures: int = 0
    skipped_backoff: int = 0
    skipped_connected: int = 0
    skipped_full: int = 0


class BackoffConnector:
    """Connects ``host`` to discovered peers with per-peer exponential backoff and bounded concurrency."""

    def __init__(
        self,
        host: Host,
        *,
        cache_size: int = CACHE_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        min_backoff: float = 10.0,
        max_backoff: float = 3600.0,
        max_concurrent_dials: int = MAX_CONCURRENT_DIALS,
        max_pending_dials: int = MAX_PENDING_DIALS,
        rng: random.Random | None = None,
    ) -> None:
        if cache_size < 1 or max_concurrent_dials < 1:
            raise ValueError("cache_size and max_concurrent_dials must be >= 1")
        self.host = host
        self.cache_size = cache_size
        self.connect_timeout = connect_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.max_pending_dials = max_pending_dials
        self.stats = ConnectorStats()
        self._rng = rng or random.Random()
        self._cache: OrderedDict[PeerId, _Entry] = OrderedDict()
        self._dialing: dict[PeerId, asyncio.Task[Any]] = {}
        self._slots = asyncio.Semaphore(max_concurrent_dials)
        self._closed = False

    def _admit(self, peer: PeerId, now: float) -> bool:
        """Whether ``peer`` may be dialed now; if so, its next allowed try is pushed back."""
        entry = self._cache.get(peer)
        if entry is None:
            entry = _Entry(ExponentialBackoff(self.min_backoff, self.max_backoff, rng=self._rng), now)
            self._cache[peer] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(peer)
        if entry.next_try > now:
            self.stats.skipped_backoff += 1
            return False
        entry.next_try = now + entry.backoff.next_delay()
        return True

    async def connect(self, peers: AsyncIterable[PeerInfo] | Iterable[PeerInfo]) -> int:
        """Start dials to the peers of ``peers`` that are due; returns how many were started (the dials run
        on as tasks; :meth:`wait` waits for them)."""
        started = 0
        if isinstance(peers, AsyncIterable):
            async for info in peers:
                started += self._consider(info)
        else:
            for info in peers:
                started += self._consider(info)
        return started

    def _consider(self, info: PeerInfo) -> int:
        peer = info.peer_id
        if self._closed or peer == self.host.peer_id or peer in self._dialing:
            return 0
        if self.host.connections(peer):
            self.stats.skipped_connected += 1
            return 0
        if len(self._dialing) >= self.max_pending_dials:
            self.stats.skipped_full += 1
            return 0
        if not self._admit(peer, asyncio.get_running_loop().time()):
            return 0
        task = asyncio.ensure_future(self._dial(info))
        self._dialing[peer] = task
        task.add_done_callback(lambda _t: self._dialing.pop(peer, None))
        return 1

    async def _dial(self, info: PeerInfo) -> None:
        async with self._slots:
            if self.host.connections(info.peer_id):
                return
            self.stats.dials += 1
            try:
                await self.host.connect(list(info.addrs), peer=info.peer_id, timeout=self.connect_timeout)
            except (Libp2pError, OSError, TimeoutError) as exc:
                self.stats.dial_failures += 1
                log.debug("discovery: dial to %s failed: %s", info.peer_id, exc)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait (bounded by ``timeout``) until the dials started so far have finished."""
        pending = list(self._dialing.values())
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._dialing.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


__all__ = ["BackoffConnector", "ConnectorStats", "ExponentialBackoff"]
