"""/dnsaddr resolution (aiolibp2p.dns) against a DNS server on 127.0.0.1: records, recursion and its limits,
/p2p filtering, malformed values, timeouts, /dns* names."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from local_dns import LocalDnsServer, local_dns  # type: ignore[import-not-found]  # (tests/, on pytest's path)

from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.dns import DnsConfig, DnsResolver, parse_nameserver
from aiolibp2p.exceptions import DialError, DnsResolutionError
from aiolibp2p.multiaddr import Multiaddr


def pid() -> str:
    return str(PeerId.from_public_key(generate_key_pair().public_key))


A, B = pid(), pid()


def resolver(server: LocalDnsServer, **kw: object) -> DnsResolver:
    return DnsResolver(DnsConfig(nameservers=(server.address,), **kw))  # type: ignore[arg-type]


async def resolve(r: DnsResolver, addr: str) -> list[str]:
    """The resolved addresses, sorted (an RRset has no order)."""
    async with asyncio.timeout(10):
        return sorted(str(a) for a in await r.resolve(Multiaddr(addr)))


async def test_records_are_filtered_by_peer_id_and_other_values_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with local_dns() as dns:
        dns.dnsaddr(
            "example.test",
            f"/ip4/192.0.2.1/tcp/4001/p2p/{A}",
            f"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/{A}",
            f"/ip6/2001:db8::1/tcp/4001/p2p/{B}",
            "/ip4/999.0.0.1/tcp/1",  # malformed: logged, skipped
            "/ip4/192.0.2.9/tcp/9",  # no /p2p: kept only when no peer is asked for
        )
        dns.add("_dnsaddr.example.test", "TXT", "v=spf1 -all", "dnsaddr")  # not ours: skipped quietly
        r = resolver(dns)
        with caplog.at_level(logging.WARNING, logger="aiolibp2p.dns.resolver"):
            assert await resolve(r, f"/dnsaddr/example.test/p2p/{A}") == sorted(
                [f"/ip4/192.0.2.1/tcp/4001/p2p/{A}", f"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/{A}"]
            )
        assert any("malformed" in m and "999.0.0.1" in m for m in caplog.messages)
        assert len([m for m in caplog.messages if "malformed" in m]) == 1
        assert await resolve(r, f"/dnsaddr/example.test/p2p/{B}") == [f"/ip6/2001:db8::1/tcp/4001/p2p/{B}"]
        assert len(await resolve(r, "/dnsaddr/example.test")) == 4
        # the legacy /ipfs/ name is the same protocol: same filter
        assert len(await resolve(r, f"/dnsaddr/example.test/ipfs/{A}")) == 2
        with pytest.raises(DnsResolutionError, match="no matching records"):
            await resolve(r, f"/dnsaddr/example.test/p2p/{pid()}")
        assert dns.queried("_dnsaddr.example.test") == 1  # then answered from the cache (TTL 60 s)


async def test_nested_dnsaddr_is_followed_and_other_peers_are_not_queried() -> None:
    async with local_dns() as dns:
        dns.dnsaddr("example.test", f"/dnsaddr/a.example.test/p2p/{A}", f"/dnsaddr/b.example.test/p2p/{B}")
        dns.dnsaddr("a.example.test", f"/ip4/192.0.2.1/tcp/1/p2p/{A}", "/dnsaddr/deeper.example.test")
        dns.dnsaddr("deeper.example.test", f"/ip4/192.0.2.2/tcp/2/p2p/{A}", f"/ip4/192.0.2.3/tcp/3/p2p/{B}")
        dns.dnsaddr("b.example.test", f"/ip4/192.0.2.4/tcp/4/p2p/{B}")
        r = resolver(dns)
        assert await resolve(r, f"/dnsaddr/example.test/p2p/{A}") == sorted(
            [f"/ip4/192.0.2.1/tcp/1/p2p/{A}", f"/ip4/192.0.2.2/tcp/2/p2p/{A}"]
        )
        assert dns.queried("_dnsaddr.b.example.test") == 0  # pruned: a record for another peer
        assert dns.queried("_dnsaddr.deeper.example.test") == 1
        assert await resolve(r, "/dnsaddr/example.test") == sorted(
            [
                f"/ip4/192.0.2.1/tcp/1/p2p/{A}",
                f"/ip4/192.0.2.2/tcp/2/p2p/{A}",
                f"/ip4/192.0.2.4/tcp/4/p2p/{B}",
            ]
        )


async def test_depth_limit() -> None:
    async with local_dns() as dns:
        for i in range(6):
            dns.dnsaddr(f"d{i}.test", f"/dnsaddr/d{i + 1}.test")
        dns.dnsaddr("d6.test", f"/ip4/192.0.2.1/tcp/1/p2p/{A}")
        # d0 is the dialed level; d1..d6 are six nested levels
        assert await resolve(resolver(dns, max_depth=6), "/dnsaddr/d0.test") == [
            f"/ip4/192.0.2.1/tcp/1/p2p/{A}"
        ]
        dns.queries.clear()
        with pytest.raises(DnsResolutionError, match="max_depth=5"):
            await resolve(resolver(dns, max_depth=5), "/dnsaddr/d0.test")
        assert [n for n, _ in dns.queries] == [f"_dnsaddr.d{i}.test" for i in range(6)]
        assert DnsConfig().max_depth == 4


async def test_a_loop_of_records_is_bounded_by_max_lookups() -> None:
    async with local_dns() as dns:
        dns.dnsaddr("loop.test", "/dnsaddr/loop.test", "/dnsaddr/loop.test")  # fans out two ways per level
        with pytest.raises(DnsResolutionError, match="max_lookups=10"):
            await resolve(resolver(dns, max_depth=100, max_lookups=10), "/dnsaddr/loop.test")
        assert dns.queried("_dnsaddr.loop.test") == 1  # cached answers count against the bound too
        with pytest.raises(DnsResolutionError, match="max_lookups=10"):
            await resolve(resolver(dns, max_depth=100, max_lookups=10, cache_size=0), "/dnsaddr/loop.test")
        assert dns.queried("_dnsaddr.loop.test") == 11


async def test_answers_are_cached_for_their_ttl_and_the_cache_is_bounded() -> None:
    async with local_dns() as dns:
        dns.ttl = 1
        dns.dnsaddr("a.test", f"/ip4/192.0.2.1/tcp/1/p2p/{A}")
        dns.dnsaddr("b.test", f"/ip4/192.0.2.2/tcp/1/p2p/{B}")
        r = resolver(dns, cache_size=1)
        assert await resolve(r, "/dnsaddr/a.test") == [f"/ip4/192.0.2.1/tcp/1/p2p/{A}"]
        assert await resolve(r, "/dnsaddr/a.test") == [f"/ip4/192.0.2.1/tcp/1/p2p/{A}"]
        assert dns.queried("_dnsaddr.a.test") == 1
        await resolve(r, "/dnsaddr/b.test")  # the cache holds one answer: a.test's goes
        await resolve(r, "/dnsaddr/a.test")
        assert dns.queried("_dnsaddr.a.test") == 2
        await asyncio.sleep(1.2)  # past the TTL: asked again
        await resolve(r, "/dnsaddr/a.test")
        assert dns.queried("_dnsaddr.a.test") == 3
        uncached = resolver(dns, cache_size=0)
        for _ in range(2):
            await resolve(uncached, "/dnsaddr/b.test")
        assert dns.queried("_dnsaddr.b.test") == 3
    with pytest.raises(ValueError):
        DnsConfig(cache_size=-1)


async def test_max_addrs_bounds_the_result() -> None:
    async with local_dns() as dns:
        dns.dnsaddr("many.test", *(f"/ip4/192.0.2.{i}/tcp/4001/p2p/{A}" for i in range(1, 41)))
        got = await resolve(resolver(dns, max_addrs=5), f"/dnsaddr/many.test/p2p/{A}")
        assert len(got) == 5 and set(got) <= {f"/ip4/192.0.2.{i}/tcp/4001/p2p/{A}" for i in range(1, 41)}
        dns.dnsaddr("nested.test", "/dnsaddr/many.test", "/dnsaddr/many.test")
        assert len(await resolve(resolver(dns, max_addrs=7), "/dnsaddr/nested.test")) == 7


async def test_long_records_split_into_character_strings_are_joined() -> None:
    async with local_dns() as dns:
        value = f"dnsaddr=/dns4/{'a' * 60}.{'b' * 60}.{'c' * 60}.{'d' * 60}.test/tcp/4001/p2p/{A}"
        assert len(value) > 255
        dns.add("_dnsaddr.long.test", "TXT", value)
        dns.add("_dnsaddr.split.test", "TXT", [b"dnsaddr=/ip4/192.0.2.1", f"/tcp/7/p2p/{A}".encode()])
        r = resolver(dns, resolve_dns_names=False)
        # with nameservers set, /dns4 names are resolved too: this one has no A record
        with pytest.raises(DnsResolutionError, match="NXDOMAIN"):
            await resolve(r, "/dnsaddr/long.test")
        assert await resolve(r, "/dnsaddr/split.test") == [f"/ip4/192.0.2.1/tcp/7/p2p/{A}"]


async def test_timeouts_are_bounded() -> None:
    async with local_dns() as dns:
        dns.silent.add("_dnsaddr.slow.test")
        dns.dnsaddr("partly.test", "/dnsaddr/slow.test", f"/ip4/192.0.2.1/tcp/1/p2p/{A}")
        r = resolver(dns, timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(DnsResolutionError, match="timed out") as ei:
            await resolve(r, "/dnsaddr/slow.test")
        assert 0.4 < time.monotonic() - t0 < 3.0
        assert isinstance(ei.value, DialError)  # a failed dial, as far as the swarm's callers are concerned
        assert dns.queried("_dnsaddr.slow.test") >= 1
        # the timeout is for the whole resolution: a slow nested record costs the rest too
        with pytest.raises(DnsResolutionError, match="timed out"):
            await resolve(r, "/dnsaddr/partly.test")


async def test_missing_names_and_failing_nested_records() -> None:
    async with local_dns() as dns:
        dns.dnsaddr("half.test", "/dnsaddr/missing.test", f"/ip4/192.0.2.1/tcp/1/p2p/{A}")
        dns.add("_dnsaddr.empty.test", "TXT", "v=none")
        r = resolver(dns)
        with pytest.raises(DnsResolutionError, match="NXDOMAIN") as ei:
            await resolve(r, "/dnsaddr/missing.test")
        assert ei.value.name == "_dnsaddr.missing.test"
        with pytest.raises(DnsResolutionError, match="no matching records"):
            await resolve(r, "/dnsaddr/empty.test")
        # a nested record that fails is skipped; the others are kept
        assert await resolve(r, "/dnsaddr/half.test") == [f"/ip4/192.0.2.1/tcp/1/p2p/{A}"]


async def test_dns_names_through_the_nameserver() -> None:
    async with local_dns() as dns:
        dns.add("node.test", "A", "192.0.2.7", "192.0.2.8")
        dns.add("node.test", "AAAA", "2001:db8::7")
        dns.add("v4only.test", "A", "192.0.2.9")
        dns.dnsaddr("boot.test", f"/dns4/node.test/tcp/4001/p2p/{A}", f"/dns4/node.test/tcp/443/wss/p2p/{A}")
        r = resolver(dns)
        assert await resolve(r, "/dns4/node.test/tcp/1") == ["/ip4/192.0.2.7/tcp/1", "/ip4/192.0.2.8/tcp/1"]
        assert await resolve(r, "/dns6/node.test/udp/2/quic-v1") == ["/ip6/2001:db8::7/udp/2/quic-v1"]
        assert await resolve(r, "/dns/node.test/tcp/3") == [
            "/ip4/192.0.2.7/tcp/3",
            "/ip4/192.0.2.8/tcp/3",
            "/ip6/2001:db8::7/tcp/3",
        ]
        assert await resolve(r, "/dns/v4only.test/tcp/3") == ["/ip4/192.0.2.9/tcp/3"]
        with pytest.raises(DnsResolutionError):
            await resolve(r, "/dns6/v4only.test/tcp/3")
        # a wss address keeps its name (TLS needs it); the plain TCP one is resolved
        assert await resolve(r, f"/dnsaddr/boot.test/p2p/{A}") == sorted(
            [
                f"/ip4/192.0.2.7/tcp/4001/p2p/{A}",
                f"/ip4/192.0.2.8/tcp/4001/p2p/{A}",
                f"/dns4/node.test/tcp/443/wss/p2p/{A}",
            ]
        )


async def test_what_needs_resolution() -> None:
    system = DnsResolver()
    names = DnsResolver(DnsConfig(resolve_dns_names=True))
    for text, by_system, by_names in [
        ("/ip4/127.0.0.1/tcp/1", False, False),
        ("/memory/1", False, False),
        ("/dnsaddr/example.test", True, True),
        ("/dns4/localhost/tcp/1", False, True),
        ("/dns/localhost/tcp/1/ws", False, False),
        ("/dns/localhost/tcp/1/tls/ws", False, False),
    ]:
        ma = Multiaddr(text)
        assert system.needs_resolution(ma) is by_system, text
        assert names.needs_resolution(ma) is by_names, text
    assert await system.resolve(Multiaddr("/ip4/127.0.0.1/tcp/1")) == [Multiaddr("/ip4/127.0.0.1/tcp/1")]
    # without name servers, names go to getaddrinfo, which reads /etc/hosts
    async with asyncio.timeout(10):
        assert await names.resolve(Multiaddr("/dns4/localhost/tcp/5")) == [Multiaddr("/ip4/127.0.0.1/tcp/5")]


def test_nameserver_syntax_and_config_checks() -> None:
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    for bad in ("localhost", "127.0.0.1:0", "[::1", "1.2.3.4:x", "[::1]x"):
        with pytest.raises(ValueError):
            parse_nameserver(bad)
    with pytest.raises(ValueError):
        DnsConfig(nameservers=("dns.example",))
    with pytest.raises(ValueError):
        DnsConfig(max_addrs=0)
    assert DnsConfig(nameservers=("127.0.0.1",)).resolves_names
    assert not DnsConfig().resolves_names
