"""The socket address family each host protocol of a multiaddr asks for (shared by the TCP, WebSocket and QUIC
transports and the resolver): ``/ip4`` and ``/dns4`` mean IPv4, ``/ip6`` and ``/dns6`` IPv6, ``/dns`` either."""

from __future__ import annotations

import socket
from typing import Final

DNS_PROTOCOLS: Final = ("dns", "dns4", "dns6")
"""Host protocols whose value is a DNS name (``/dnsaddr`` is not one: it names TXT records, not a host)."""

_FAMILIES: Final = {
    "ip4": socket.AF_INET,
    "dns4": socket.AF_INET,
    "ip6": socket.AF_INET6,
    "dns6": socket.AF_INET6,
}


def socket_family(host_protocol: str) -> socket.AddressFamily:
    """``AF_INET`` for ip4/dns4, ``AF_INET6`` for ip6/dns6, ``AF_UNSPEC`` otherwise (``/dns``: either)."""
    return _FAMILIES.get(host_protocol, socket.AF_UNSPEC)
