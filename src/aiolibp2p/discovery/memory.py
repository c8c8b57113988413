"""An in-process discovery server and its per-host client.

Semantics of go-libp2p-pubsub's ``mockDiscoveryServer`` (``discovery_test.go``; GO-LIBP2P-NOTES §2):
``advertise`` upserts ``db[namespace][peer]`` and returns the TTL it was given; the TTL is stored but
never enforced (no expiry); ``find_peers`` returns at most ``limit`` registrations in random order and
then ends. Everything happens synchronously on the caller's loop, so there is nothing to wait for.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..crypto.peer_id import PeerId
from . import DEFAULT_TTL, PeerInfo

if TYPE_CHECKING:
    from ..host.host import Host


class MemoryDiscoveryServer:
    """The shared registry: namespace → peer → (info, ttl)."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.db: dict[str, dict[PeerId, tuple[PeerInfo, float]]] = {}
        self._rng = rng or random.Random()

    def advertise(self, namespace: str, info: PeerInfo, ttl: float) -> float:
        self.db.setdefault(namespace, {})[info.peer_id] = (info, ttl)
        return ttl

    def find_peers(self, namespace: str, limit: int = 0) -> list[PeerInfo]:
        entries = [info for info, _ in self.db.get(namespace, {}).values()]
        self._rng.shuffle(entries)  # go's map iteration order is random
        return entries[:limit] if limit > 0 else entries

    def has_peer_record(self, namespace: str, peer: PeerId) -> bool:
        return peer in self.db.get(namespace, {})

    def count(self, namespace: str) -> int:
        return len(self.db.get(namespace, {}))


class MemoryDiscovery:
    """A host's client of a :class:`MemoryDiscoveryServer` (implements :class:`~aiolibp2p.discovery.Discovery`).

    ``advertise`` registers the host's ID and its advertised addresses (go's ``host.InfoFromHost``).
    """

    def __init__(self, host: Host, server: MemoryDiscoveryServer) -> None:
        self.host = host
        self.server = server

    async def advertise(self, namespace: str, *, ttl: float = DEFAULT_TTL) -> float:
        info = PeerInfo(self.host.peer_id, tuple(self.host.advertised_addrs()))
        return self.server.advertise(namespace, info, ttl)

    async def find_peers(self, namespace: str, *, limit: int = 0) -> AsyncIterator[PeerInfo]:
        for info in self.server.find_peers(namespace, limit):
            yield info


__all__ = ["MemoryDiscovery", "MemoryDiscoveryServer"]
