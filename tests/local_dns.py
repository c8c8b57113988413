"""A tiny DNS server on 127.0.0.1 (UDP) for tests: answers TXT, A and AAAA queries from a table.

Built on dnspython's message API (the same wire code the resolver uses is not what is tested here: the server
parses queries and writes answers independently of ``dns.asyncresolver``). Names not in the table get NXDOMAIN,
names in ``silent`` get no answer at all (for timeout tests). Every query is recorded in ``queries``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.exception
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset


class LocalDnsServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str | list[bytes]]] = {}
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.ttl = 60
        """TTL (s) of every answer."""
        self.transport: asyncio.DatagramTransport | None = None  # uvloop's is not a subclass: typed loosely

    # -- the table ----------------------------------------------------------------------------------------------
    def add(self, name: str, rdtype: str, *values: str | list[bytes]) -> None:
        """``values`` are TXT texts (one character-string each, split at 255 bytes), lists of raw
        character-strings (TXT), or IP addresses (A, AAAA)."""
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    def dnsaddr(self, domain: str, *addrs: str) -> None:
        """TXT records ``dnsaddr=<addr>`` at ``_dnsaddr.<domain>``."""
        self.add(f"_dnsaddr.{domain}", "TXT", *(f"dnsaddr={a}" for a in addrs))

    @property
    def address(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    def queried(self, name: str) -> int:
        return sum(1 for n, _ in self.queries if n == name.lower())

    # -- the server ---------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        if len(query.question) != 1:
            return
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.queries.append((name, rdtype))
        if name in self.silent:
            return
        response = dns.message.make_response(query)
        values = self.records.get((name, rdtype))
        if values:
            rrset = dns.rrset.RRset(q.name, dns.rdataclass.IN, q.rdtype)
            for v in values:
                rrset.add(self._rdata(q.rdtype, v), self.ttl)
            response.answer.append(rrset)
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    @staticmethod
    def _rdata(rdtype: int, value: str | list[bytes]) -> dns.rdata.Rdata:
        IN = dns.rdataclass.IN
        if rdtype == dns.rdatatype.TXT:
            if isinstance(value, list):
                strings = value
            else:
                raw = value.encode()
                strings = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
            return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, strings)
        assert isinstance(value, str)
        if rdtype == dns.rdatatype.A:
            return dns.rdtypes.IN.A.A(IN, dns.rdatatype.A, value)
        return dns.rdtypes.IN.AAAA.AAAA(IN, dns.rdatatype.AAAA, value)


@asynccontextmanager
async def local_dns() -> AsyncIterator[LocalDnsServer]:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(LocalDnsServer, local_addr=("127.0.0.1", 0))
    server.transport = transport  # uvloop calls connection_made a loop turn later
    try:
        yield server
    finally:
        transport.close()
