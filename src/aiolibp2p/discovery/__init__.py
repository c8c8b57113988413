"""Peer discovery: the interface every discovery mechanism implements, and the shared pieces around it.

The model is go-libp2p's ``core/discovery`` (``Advertiser`` + ``Discoverer``): a node *advertises* that it
provides a service under a namespace (a pubsub topic, a rendezvous point) for a TTL, and *finds peers*
that advertised a namespace. Implementations live beside this interface:

* :mod:`.memory` — an in-process server shared by the hosts of one process (tests, simulations), with the
  semantics of go-libp2p-pubsub's ``mockDiscoveryServer``;
* ``rendezvous`` and ``mdns`` — network implementations (their own subpackages);
* :mod:`.backoff` — :class:`BackoffConnector`, which dials what a discovery finds without hammering peers.

A discovery never dials: it only returns :class:`PeerInfo`. Dialing is the caller's (or the connector's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, NamedTuple, Protocol, runtime_checkable

from ..crypto.peer_id import PeerId
from ..multiaddr import Multiaddr

DEFAULT_TTL: Final = 3 * 3600.0
"""Seconds an advertisement lives when the caller gives no TTL (go's ``discovery.Advertise`` default: 3 h)."""


class PeerInfo(NamedTuple):
    """A discovered peer: its ID and the addresses it advertised (unpacks as ``peer_id, addrs``)."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]


@runtime_checkable
class Discovery(Protocol):
    """Advertise and find peers by namespace (go-libp2p ``core/discovery.Discovery``)."""

    async def advertise(self, namespace: str, *, ttl: float = DEFAULT_TTL) -> float:
        """Advertise the local peer under ``namespace`` for about ``ttl`` seconds.

        Returns the TTL actually granted (a server may shorten it); re-advertise before it runs out.
        Raises a :class:`~aiolibp2p.exceptions.Libp2pError` subclass if the advertisement failed.
        """
        ...

    def find_peers(self, namespace: str, *, limit: int = 0) -> AsyncIterator[PeerInfo]:
        """Peers that advertised ``namespace``, at most ``limit`` of them (0: no limit).

        The iterator ends when the implementation has nothing more to report; it may include the local
        peer (callers skip it). Every implementation bounds its own waits.
        """
        ...


from .backoff import BackoffConnector, ExponentialBackoff  # noqa: E402
from .memory import MemoryDiscovery, MemoryDiscoveryServer  # noqa: E402

__all__ = [
    "DEFAULT_TTL",
    "BackoffConnector",
    "Discovery",
    "ExponentialBackoff",
    "MemoryDiscovery",
    "MemoryDiscoveryServer",
    "PeerInfo",
]
