"""The connection manager: keeps the number of connections between watermarks by closing the least valuable.

Model: go-libp2p ``p2p/net/connmgr`` (``NewConnManager(low=160, high=192)``). Peers are valued by the sum of their
tags; protected peers and connections younger than the grace period are never trimmed. When the count of
connections goes above ``high_water``, connections of the lowest-valued peers are closed until ``low_water``
remain (at most once per ``silence_period``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events as ev

if TYPE_CHECKING:
    from ..crypto.peer_id import PeerId
    from .connection import Connection
    from .swarm import Swarm

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnManagerConfig:
    low_water: int = 160
    high_water: int = 192
    grace_period: float = 20.0
    """Seconds a new connection is exempt from trimming."""
    silence_period: float = 10.0
    """Minimum seconds between two automatic trims."""


class ConnectionManager:
    def __init__(self, swarm: Swarm, config: ConnManagerConfig | None = None) -> None:
        self.swarm = swarm
        self.config = config or ConnManagerConfig()
        if not 0 <= self.config.low_water <= self.config.high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        self._tags: dict[PeerId, dict[str, int]] = {}
        self._protected: dict[PeerId, set[str]] = {}
        self._last_trim = 0.0
        self._trim_task: asyncio.Task[int] | None = None
        self.trimmed = 0

    def start(self) -> None:
        self.swarm.bus.on(ev.ConnectionOpened, self._on_opened, service=True)
        self.swarm.bus.on(ev.PeerDisconnected, self._on_disconnected, service=True)

    # -- tags and protection --------------------------------------------------------------------------------------
    def tag_peer(self, peer: PeerId, tag: str, value: int) -> None:
        self._tags.setdefault(peer, {})[tag] = value

    def untag_peer(self, peer: PeerId, tag: str) -> None:
        t = self._tags.get(peer)
        if t is not None:
            t.pop(tag, None)
            if not t:
                del self._tags[peer]

    def peer_value(self, peer: PeerId) -> int:
        return sum(self._tags.get(peer, {}).values())

    def protect(self, peer: PeerId, tag: str) -> None:
        self._protected.setdefault(peer, set()).add(tag)

    def unprotect(self, peer: PeerId, tag: str) -> bool:
        """Remove one protection tag; returns whether the peer is still protected."""
        tags = self._protected.get(peer)
        if tags is None:
            return False
        tags.discard(tag)
        if not tags:
            del self._protected[peer]
            return False
        return True

    def is_protected(self, peer: PeerId) -> bool:
        return peer in self._protected

    # -- trimming ------------------------------------------------------------------------------------------------
    def _on_opened(self, event: ev.ConnectionOpened) -> None:
        if self.swarm.num_connections <= self.config.high_water:
            return
        if time.monotonic() - self._last_trim < self.config.silence_period:
            return
        if self._trim_task is None or self._trim_task.done():
            self._trim_task = asyncio.ensure_future(self.trim())

    def _on_disconnected(self, event: ev.PeerDisconnected) -> None:
        # Tags outlive connections in go only for a decay window; we keep them only while connected or protected.
        if event.peer not in self._protected:
            self._tags.pop(event.peer, None)

    async def trim(self) -> int:
        """Close connections down to ``low_water`` (oldest-first within the least valuable peers). Returns how
        many connections were closed."""
        self._last_trim = time.monotonic()
        conns = self.swarm.connections()
        excess = len(conns) - self.config.low_water
        if excess <= 0:
            return 0
        now = time.monotonic()
        by_peer: dict[PeerId, list[Connection]] = {}
        for c in conns:
            by_peer.setdefault(c.remote_peer, []).append(c)
        candidates = [
            p
            for p, cs in by_peer.items()
            if p not in self._protected and all(now - c.opened_at >= self.config.grace_period for c in cs)
        ]
        candidates.sort(key=lambda p: (self.peer_value(p), -len(by_peer[p])))
        victims: list[Connection] = []
        for p in candidates:
            if excess <= 0:
                break
            victims.extend(by_peer[p])
            excess -= len(by_peer[p])
        self.trimmed += len(victims)
        if victims:
            log.debug("connection manager trimming %d connections", len(victims))
            await asyncio.gather(*(c.close() for c in victims), return_exceptions=True)
        return len(victims)
