"""Resolve ``/dnsaddr`` (and, where asked, ``/dns*``) multiaddrs into dialable addresses.

``/dnsaddr/<domain>[/<rest>]`` (spec: libp2p ``addressing/README.md``, multiformats ``protocols/DNSADDR.md``)
stands for the multiaddrs in the TXT records of ``_dnsaddr.<domain>`` whose value is ``dnsaddr=<multiaddr>``.
A record may name another ``/dnsaddr``; it is followed down to :attr:`DnsConfig.max_depth` levels. As
go-multiaddr-dns does, a resolved address is kept only when it ends with what followed the ``/dnsaddr``
component in the dialed address, so ``/dnsaddr/example.com/p2p/<id>`` yields only the addresses of ``<id>``.
Values without the ``dnsaddr=`` prefix are not ours and are skipped; values with it that do not parse as a
multiaddr are skipped with a warning. Each resolution is bounded in time (:attr:`DnsConfig.timeout`), in DNS
queries (:attr:`DnsConfig.max_lookups`) and in addresses (:attr:`DnsConfig.max_addrs`).

DNS wire format and transport are dnspython's (asyncio resolver). With :attr:`DnsConfig.nameservers` empty the
system's configuration is used: ``/etc/resolv.conf`` for TXT queries and ``getaddrinfo`` (which also reads
``/etc/hosts``) for names; with servers given, every query goes to them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..exceptions import DnsResolutionError, MultiaddrError
from ..multiaddr import Multiaddr
from ..multiaddr.protocols import P_DNS, P_DNS4, P_DNS6, P_DNSADDR
from .families import socket_family

if TYPE_CHECKING:
    import dns.asyncresolver

log = logging.getLogger(__name__)

DNSADDR_PREFIX: Final = "dnsaddr="
"""TXT values of ``_dnsaddr.<domain>`` that carry a multiaddr start with this."""
DNSADDR_SUBDOMAIN: Final = "_dnsaddr."

_DNSADDR_BYTE: Final = bytes([P_DNSADDR])  # the codes are below 128: a one-byte varint
_DNS_NAME_BYTES: Final = frozenset(bytes([c]) for c in (P_DNS, P_DNS4, P_DNS6))
_NEEDS_NAME: Final = frozenset({"ws", "wss", "tls", "sni", "webtransport", "http", "https"})
"""Protocols after the host for which the transport needs the DNS name itself (TLS SNI, HTTP Host), so such a
``/dns*`` address is left to the transport rather than turned into IP addresses."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """``(ip, port)`` of ``"ip"``, ``"ip:port"`` or ``"[ipv6]:port"`` (port 53 when absent). ValueError if
    ``text`` is not an IP address (a name server is given by address, not by name)."""
    host, port = text, 53
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ValueError(f"bad name server address {text!r}")
        host = text[1:end]
        if end + 1 < len(text):
            port = int(text[end + 2 :])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)  # ValueError when it is not an address
    if not 0 < port < 65536:
        raise ValueError(f"bad name server port in {text!r}")
    return host, port


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """How a host resolves the DNS names in the addresses it dials: ``new_host(dns=DnsConfig(...))``."""

    nameservers: tuple[str, ...] = ()
    """DNS servers as ``ip``, ``ip:port`` or ``[ipv6]:port``. Empty: the system's (``/etc/resolv.conf`` for TXT,
    ``getaddrinfo`` for names)."""
    timeout: float = 5.0
    """Seconds the resolution of one dialed address may take, every query and nested ``/dnsaddr`` included."""
    max_depth: int = 4
    """Nested ``/dnsaddr`` levels followed below the dialed one (go-libp2p: 4); deeper ones are skipped."""
    max_addrs: int = 100
    """Addresses one resolution yields at most (go-libp2p: 100); the rest are dropped with a log line."""
    max_lookups: int = 32
    """DNS queries one resolution makes at most (TXT and address queries together)."""
    cache_size: int = 256
    """DNS answers kept, each only for its TTL (dnspython's LRU cache, least recently used dropped first):
    repeated dials of a bootstrap ``/dnsaddr`` do not query again. 0 disables the cache. It serves the answers
    of the name servers dnspython queries (``nameservers`` and every TXT lookup); names left to the system
    (``getaddrinfo``) are cached, or not, by the system."""
    resolve_dns_names: bool = False
    """Resolve ``/dns``, ``/dns4``, ``/dns6`` addresses to IP addresses before dialing (so each IP is ranked and
    raced) instead of leaving the name to the transport. Always on when ``nameservers`` is set, so that the
    names go to those servers. Addresses whose transport needs the name (``ws``, ``wss``, ``tls``, ``sni``) are
    left to the transport, which asks the system."""

    def __post_init__(self) -> None:
        for ns in self.nameservers:
            parse_nameserver(ns)
        if self.timeout <= 0 or self.max_depth < 0 or self.max_addrs < 1 or self.max_lookups < 1:
            raise ValueError("DnsConfig: timeout must be > 0, max_depth >= 0, max_addrs and max_lookups >= 1")
        if self.cache_size < 0:
            raise ValueError("DnsConfig: cache_size must be >= 0")

    @property
    def resolves_names(self) -> bool:
        return self.resolve_dns_names or bool(self.nameservers)


@dataclass(slots=True)
class _Budget:
    """What one resolution may still spend, and why it left things out (for the error message)."""

    lookups: int
    addrs: int
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 8:
            self.notes.append(text)


def _ends_with(addr: Multiaddr, suffix: list[Multiaddr]) -> bool:
    if not suffix:
        return True
    parts = addr.split()
    return len(parts) >= len(suffix) and parts[len(parts) - len(suffix) :] == suffix


class DnsResolver:
    """Resolves the DNS components of multiaddrs (see the module docstring). One per host; safe to share."""

    def __init__(self, config: DnsConfig | None = None) -> None:
        self.config = config or DnsConfig()
        self._resolver: dns.asyncresolver.Resolver | None = None

    # -- what needs resolving ------------------------------------------------------------------------------------
    def needs_resolution(self, addr: Multiaddr) -> bool:
        """True for a ``/dnsaddr`` address, and for a ``/dns*`` one when names are resolved here (not in the
        transport). Cheap: the swarm asks it of every address it dials."""
        first = addr.to_bytes()[:1]
        if first == _DNSADDR_BYTE:
            return True
        return first in _DNS_NAME_BYTES and self.config.resolves_names and self._name_is_resolvable(addr)

    @staticmethod
    def _name_is_resolvable(addr: Multiaddr) -> bool:
        return not any(p in _NEEDS_NAME for p, _ in addr.items()[1:])

    # -- resolution -------------------------------------------------------------------------------------------------
    async def resolve(self, addr: Multiaddr) -> list[Multiaddr]:
        """The addresses ``addr`` stands for (``[addr]`` when it needs no resolution), without duplicates, in
        the order the server sent the records (an RRset has no defined order: the swarm ranks them). DnsResolutionError when it resolves to none (the reasons in the message)."""
        if not self.needs_resolution(addr):
            return [addr]
        cfg = self.config
        budget = _Budget(cfg.max_lookups, cfg.max_addrs)
        try:
            async with asyncio.timeout(cfg.timeout):
                found = await self._resolve(addr, 0, budget)
        except TimeoutError:
            raise DnsResolutionError(f"resolving {addr} timed out after {cfg.timeout:g} s", name=str(addr))
        out = list(dict.fromkeys(found))
        if not out:
            why = "; ".join(budget.notes) or "no matching records"
            raise DnsResolutionError(f"{addr} resolved to no address ({why})", name=str(addr))
        return out

    async def _resolve(self, addr: Multiaddr, depth: int, budget: _Budget) -> list[Multiaddr]:
        parts = addr.split()
        code = parts[0].protocols()[0].code
        if code == P_DNSADDR:
            return await self._resolve_dnsaddr(addr, parts, depth, budget)
        if code in (P_DNS, P_DNS4, P_DNS6) and self.config.resolves_names and self._name_is_resolvable(addr):
            proto, name = addr.items()[0]
            assert name is not None
            ips = await self.lookup_ips(name, socket_family(proto), budget)
            rest = parts[1:]
            out = []
            for ip in ips[: max(budget.addrs, 0)]:
                head = Multiaddr(f"/ip6/{ip}" if ":" in ip else f"/ip4/{ip}")
                out.append(Multiaddr(b"".join([head.to_bytes(), *(p.to_bytes() for p in rest)])))
            budget.addrs -= len(out)
            return out
        return [addr]

    async def _resolve_dnsaddr(
        self, addr: Multiaddr, parts: list[Multiaddr], depth: int, budget: _Budget
    ) -> list[Multiaddr]:
        domain = addr.items()[0][1]
        assert domain is not None
        suffix = parts[1:]
        want_peer = addr.get_peer_id() if suffix and suffix[-1].get_peer_id() is not None else None
        values = await self.lookup_txt(DNSADDR_SUBDOMAIN + domain, budget)
        out: list[Multiaddr] = []
        for value in values:
            if budget.addrs <= 0:
                log.info(
                    "dnsaddr %s: more than %d addresses, the rest dropped", domain, self.config.max_addrs
                )
                budget.note(f"stopped at max_addrs={self.config.max_addrs}")
                break
            if not value.startswith(DNSADDR_PREFIX):
                continue  # another application's TXT record
            try:
                entry = Multiaddr(value[len(DNSADDR_PREFIX) :])
            except MultiaddrError as e:
                log.warning("dnsaddr %s: ignoring malformed record %r: %s", domain, value[:300], e)
                continue
            if len(entry) == 0:
                continue
            nested = entry.to_bytes()[:1] == _DNSADDR_BYTE
            if nested or self.needs_resolution(entry):
                # Prune before querying: a nested record for another peer can yield nothing we keep.
                entry_peer = entry.split_peer_id()[1]
                if want_peer is not None and entry_peer is not None and entry_peer != want_peer:
                    continue
                if nested and depth >= self.config.max_depth:
                    log.info(
                        "dnsaddr %s: not following %s (max_depth=%d)", domain, entry, self.config.max_depth
                    )
                    budget.note(f"nesting deeper than max_depth={self.config.max_depth}")
                    continue
                try:
                    resolved = await self._resolve(entry, depth + 1, budget)  # counted in the budget there
                except DnsResolutionError as e:
                    log.info("dnsaddr %s: record %s did not resolve: %s", domain, entry, e)
                    budget.note(str(e))
                    continue
                out.extend(r for r in resolved if _ends_with(r, suffix))
            elif _ends_with(entry, suffix):
                out.append(entry)
                budget.addrs -= 1
        return out

    # -- queries ------------------------------------------------------------------------------------------------------
    def _dns(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            import dns.asyncresolver
            import dns.exception
            import dns.nameserver

            servers = self.config.nameservers
            try:
                r = dns.asyncresolver.Resolver(configure=not servers)
            except dns.exception.DNSException as e:  # no /etc/resolv.conf, for instance
                raise DnsResolutionError(f"no DNS configuration: {e}") from e
            if servers:
                r.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(s)) for s in servers]
            r.lifetime = self.config.timeout
            if self.config.cache_size:
                import dns.resolver

                r.cache = dns.resolver.LRUCache(self.config.cache_size)
            self._resolver = r
        return self._resolver

    def _spend(self, name: str, budget: _Budget) -> None:
        if budget.lookups <= 0:
            budget.note(f"stopped at max_lookups={self.config.max_lookups}")
            raise DnsResolutionError(
                f"not querying {name}: the resolution made {self.config.max_lookups} queries", name=name
            )
        budget.lookups -= 1

    async def _query(self, name: str, rdtype: str) -> list[object]:
        import dns.exception
        import dns.name
        import dns.resolver

        try:
            answer = await self._dns().resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            raise DnsResolutionError(f"{name} does not exist (NXDOMAIN)", name=name) from None
        except dns.exception.Timeout:
            raise DnsResolutionError(f"{rdtype} query for {name} timed out", name=name) from None
        except dns.exception.DNSException as e:
            raise DnsResolutionError(f"{rdtype} query for {name} failed: {e}", name=name) from e
        return list(answer.rrset) if answer.rrset is not None else []

    async def lookup_txt(self, name: str, budget: _Budget | None = None) -> list[str]:
        """The TXT values at ``name`` (each record's character-strings joined, as Go's resolver does); values
        that are not UTF-8 are skipped. DnsResolutionError when the name does not exist or the query fails."""
        self._spend(name, budget or _Budget(1, 0))
        import dns.rdtypes.ANY.TXT

        out = []
        for rd in await self._query(name, "TXT"):
            if isinstance(rd, dns.rdtypes.ANY.TXT.TXT):
                try:
                    out.append(b"".join(rd.strings).decode())
                except UnicodeDecodeError:
                    log.warning("TXT record at %s is not UTF-8; ignored", name)
        return out

    async def lookup_ips(
        self, name: str, family: socket.AddressFamily = socket.AF_UNSPEC, budget: _Budget | None = None
    ) -> list[str]:
        """The IP addresses of ``name`` in ``family`` (IPv6 then IPv4 for AF_UNSPEC), without duplicates.
        DnsResolutionError when there are none."""
        self._spend(name, budget or _Budget(1, 0))
        if not self.config.nameservers:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
            except OSError as e:
                raise DnsResolutionError(f"cannot resolve {name}: {e}", name=name) from e
            ips = [str(i[4][0]) for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
        else:
            types = {socket.AF_INET: ["A"], socket.AF_INET6: ["AAAA"]}.get(family, ["AAAA", "A"])
            results = await asyncio.gather(*(self._query(name, t) for t in types), return_exceptions=True)
            ips = []
            failure: DnsResolutionError | None = None
            for r in results:
                if isinstance(r, DnsResolutionError):
                    failure = failure or r
                elif isinstance(r, BaseException):
                    raise r
                else:
                    ips.extend(str(getattr(rd, "address", "")) for rd in r)
            ips = [ip for ip in ips if ip]
            if not ips and failure is not None:
                raise failure
        out = list(dict.fromkeys(ips))
        if not out:
            raise DnsResolutionError(f"{name} has no {'/'.join(_family_names(family))} address", name=name)
        return out


def _family_names(family: socket.AddressFamily) -> list[str]:
    return {socket.AF_INET: ["IPv4"], socket.AF_INET6: ["IPv6"]}.get(family, ["IPv4", "IPv6"])
