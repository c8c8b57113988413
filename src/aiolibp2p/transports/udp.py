"""What the UDP transports (QUIC, WebRTC-direct) share about their sockets."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["socket_reaches"]


def socket_reaches(family: int, local_sockaddr: tuple[Any, ...], host: str) -> bool:
    """Whether a UDP socket of ``family`` bound to ``local_sockaddr`` can send to the IP ``host``: the same
    family, and a socket bound to a loopback address only to loopback (a wildcard-bound one to anything)."""
    ip = ipaddress.ip_address(host)
    if (family == socket.AF_INET6) != (ip.version == 6):
        return False
    bound = ipaddress.ip_address(str(local_sockaddr[0]).split("%", 1)[0])
    return bound.is_unspecified or bound.is_loopback == ip.is_loopback
