"""Rendezvous discovery (``/rendezvous/1.0.0``): the codec, the rendezvous point and the client.

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md. :class:`RendezvousServer` makes a host a
rendezvous point (its state machine is :class:`RendezvousRegistry`); :class:`RendezvousClient` registers and
discovers against one point and implements :class:`~aiolibp2p.discovery.Discovery`.
"""

from __future__ import annotations

from .client import DiscoveredRegistration, RendezvousClient
from .codec import MAX_MESSAGE_SIZE, PROTOCOL_ID, RendezvousError, Status
from .registry import (
    DEFAULT_TTL,
    MAX_DISCOVER_LIMIT,
    MAX_NAMESPACE_LENGTH,
    MAX_REGISTRATIONS_PER_PEER,
    MAX_TTL,
    MIN_TTL,
    RendezvousLimits,
    RendezvousRegistry,
)
from .service import RendezvousServer

__all__ = [
    "DEFAULT_TTL",
    "MAX_DISCOVER_LIMIT",
    "MAX_MESSAGE_SIZE",
    "MAX_NAMESPACE_LENGTH",
    "MAX_REGISTRATIONS_PER_PEER",
    "MAX_TTL",
    "MIN_TTL",
    "PROTOCOL_ID",
    "DiscoveredRegistration",
    "RendezvousClient",
    "RendezvousError",
    "RendezvousLimits",
    "RendezvousRegistry",
    "RendezvousServer",
    "Status",
]
