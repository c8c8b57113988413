"""DNS in multiaddrs: ``/dnsaddr`` resolution (TXT records) and ``/dns``, ``/dns4``, ``/dns6`` names.

Specs: https://github.com/libp2p/specs/blob/master/addressing/README.md (``dnsaddr`` section) and
https://github.com/multiformats/multiaddr/blob/master/protocols/DNSADDR.md. The swarm resolves every address it
is asked to dial through a :class:`DnsResolver` before ranking them, so the addresses a ``/dnsaddr`` stands for
are raced like any others (see :mod:`aiolibp2p.network.swarm`).
"""

from __future__ import annotations

from .families import DNS_PROTOCOLS, socket_family
from .resolver import DNSADDR_PREFIX, DnsConfig, DnsResolver, parse_nameserver

__all__ = [
    "DNSADDR_PREFIX",
    "DNS_PROTOCOLS",
    "DnsConfig",
    "DnsResolver",
    "parse_nameserver",
    "socket_family",
]
