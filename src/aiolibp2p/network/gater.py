"""Connection gater: deny peers, addresses and subnets at each stage of a connection's life.

Stages (go-libp2p ``ConnectionGater`` is the model), each a method a subclass may override:

- :meth:`~ConnectionGater.allow_dial_peer` — before dialing a peer (go ``InterceptPeerDial``);
- :meth:`~ConnectionGater.allow_dial_addr` — before dialing one of its addresses (``InterceptAddrDial``);
- :meth:`~ConnectionGater.allow_accept` — on accepting a raw inbound connection, before any handshake work
  (``InterceptAccept``; WebRTC-direct asks it at a new remote's first STUN check, QUIC once its handshake is
  done);
- :meth:`~ConnectionGater.allow_secured` — after the security handshake, the peer authenticated, in both
  directions (``InterceptSecured``);
- :meth:`~ConnectionGater.allow_upgraded` — after security and muxer, with the whole connection (transport,
  security, muxer, addresses), before it is registered or announced (``InterceptUpgraded``).

A refused connection is closed (the remote sees it end) and its resources released; a refused dial raises
:class:`~aiolibp2p.exceptions.GaterRefused` (or a ``DialError`` that carries it per address).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..core.interfaces import Direction

if TYPE_CHECKING:
    from ..crypto.peer_id import PeerId
    from ..multiaddr import Multiaddr
    from .connection import Connection


class ConnectionGater:
    """Allow-everything base with deny lists of peers, addresses and IP subnets. Subclass to customise."""

    def __init__(self) -> None:
        self.denied_peers: set[PeerId] = set()
        self.denied_subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

    def deny_peer(self, peer: PeerId) -> None:
        self.denied_peers.add(peer)

    def allow_peer(self, peer: PeerId) -> None:
        self.denied_peers.discard(peer)

    def deny_subnet(self, cidr: str) -> None:
        self.denied_subnets.append(ipaddress.ip_network(cidr, strict=False))

    def _addr_denied(self, addr: object | None) -> bool:
        if addr is None or not self.denied_subnets:
            return False
        ip = getattr(addr, "ip_address", None)
        ipv = ip() if callable(ip) else None
        if ipv is None:
            return False
        return any(ipv in net for net in self.denied_subnets)

    # -- stages -----------------------------------------------------------------------------------------
    def allow_dial_peer(self, peer: PeerId) -> bool:
        return peer not in self.denied_peers

    def allow_dial_addr(self, peer: PeerId | None, addr: Multiaddr) -> bool:
        return not self._addr_denied(addr)

    def allow_accept(self, remote_addr: object | None) -> bool:
        return not self._addr_denied(remote_addr)

    def allow_secured(self, direction: Direction, peer: PeerId, remote_addr: object | None) -> bool:
        return peer not in self.denied_peers

    def allow_upgraded(self, conn: Connection) -> bool:
        """The connection is secured and multiplexed but not yet in use: no event announced it, no stream is
        open. The base class allows it (its peer and address were checked at the earlier stages)."""
        return True
