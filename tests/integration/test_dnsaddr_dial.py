"""Dialing /dnsaddr addresses: a host and the CLI reach a real host on 127.0.0.1 through TXT records served by a
local DNS server; the resolved addresses go through the swarm's ranking and happy-eyeballs dialing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from local_dns import LocalDnsServer, local_dns  # type: ignore[import-not-found]  # (tests/, on pytest's path)

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.dns import DnsConfig
from aiolibp2p.exceptions import DialError, DnsResolutionError
from aiolibp2p.network import events as ev


@asynccontextmanager
async def hosts(
    dns: LocalDnsServer, **server_options: Any
) -> AsyncIterator[tuple[aiolibp2p.Host, aiolibp2p.Host]]:
    """A listening host, and a client host that resolves through ``dns``."""
    async with (
        aiolibp2p.new_host(**server_options) as server,
        aiolibp2p.new_host(listen=[], dns=DnsConfig(nameservers=(dns.address,))) as client,
    ):
        yield server, client


async def test_connect_to_dnsaddr_reaches_the_host_and_skips_other_peers() -> None:
    async with asyncio.timeout(30), local_dns() as dns, hosts(dns) as (server, client):
        other = PeerId.from_public_key(generate_key_pair().public_key)
        tcp = next(a for a in server.full_addrs() if a.has_protocol("tcp"))
        quic = next(a for a in server.full_addrs() if a.has_protocol("quic-v1"))
        dns.dnsaddr(
            "example.test",
            f"/dnsaddr/nodes.example.test/p2p/{server.peer_id}",  # nested
            f"/ip4/127.0.0.1/tcp/1/p2p/{other}",  # another peer: filtered out, never dialed
            "dnsaddr=not-a-multiaddr",
        )
        dns.dnsaddr("nodes.example.test", str(tcp), str(quic), f"/dns4/node.example.test/tcp/9/p2p/{other}")
        dns.add("node.example.test", "A", "127.0.0.1")
        dials: list[ev.DialCompleted] = []
        client.on(ev.DialCompleted, dials.append)

        peer = await client.connect(f"/dnsaddr/example.test/p2p/{server.peer_id}")

        assert peer == server.peer_id
        assert dns.queried("_dnsaddr.example.test") == 1
        assert dns.queried("_dnsaddr.nodes.example.test") == 1
        assert dns.queried("node.example.test") == 0  # pruned: that record names another peer
        conns = client.connections(peer)
        assert len(conns) == 1 and conns[0].transport == "quic"  # ranked first of the two resolved
        assert str(conns[0].remote_addr).startswith("/ip4/127.0.0.1/udp/")
        assert await client.ping(peer) > 0
        assert len(dials) == 1 and dials[0].ok


async def test_dnsaddr_over_tcp_and_dns4_names_through_the_nameserver() -> None:
    async with (
        asyncio.timeout(30),
        local_dns() as dns,
        hosts(dns, listen=["/ip4/127.0.0.1/tcp/0"]) as (server, client),
    ):
        port = server.listen_addrs[0].value_for_protocol("tcp")
        dns.dnsaddr("example.test", f"/dns4/server.example.test/tcp/{port}/p2p/{server.peer_id}")
        dns.add("server.example.test", "A", "127.0.0.1")
        peer = await client.connect(f"/dnsaddr/example.test/p2p/{server.peer_id}")
        assert dns.queried("server.example.test") == 1
        (conn,) = client.connections(peer)
        assert str(conn.remote_addr) == f"/ip4/127.0.0.1/tcp/{port}"
        # a /dns4 address alone goes through the name server too (a new name: the A record above is cached)
        dns.add("server2.example.test", "A", "127.0.0.1")
        await client.disconnect(peer)
        await client.connect(
            f"/dns4/server2.example.test/tcp/{port}/p2p/{server.peer_id}", new_connection=True
        )
        assert dns.queried("server2.example.test") == 1


async def test_dnsaddr_errors_are_typed() -> None:
    async with (
        asyncio.timeout(30),
        local_dns() as dns,
        aiolibp2p.new_host(listen=[], dns=DnsConfig(nameservers=(dns.address,), timeout=0.5)) as client,
    ):
        target = PeerId.from_public_key(generate_key_pair().public_key)
        with pytest.raises(DnsResolutionError, match="NXDOMAIN") as ei:
            await client.connect(f"/dnsaddr/missing.test/p2p/{target}")
        assert isinstance(ei.value, DialError) and list(ei.value.errors) == [
            f"/dnsaddr/missing.test/p2p/{target}"
        ]
        dns.silent.add("_dnsaddr.slow.test")
        with pytest.raises(DnsResolutionError, match="timed out"):
            await client.connect(f"/dnsaddr/slow.test/p2p/{target}")
        # a dnsaddr that resolves only to addresses nothing answers on: a dial error, not a DNS one
        dns.dnsaddr("dead.test", f"/ip4/127.0.0.1/tcp/1/p2p/{target}")
        with pytest.raises(DialError) as ei2:
            await client.connect(f"/dnsaddr/dead.test/p2p/{target}")
        assert not isinstance(ei2.value, DnsResolutionError)
        assert list(ei2.value.errors) == ["/ip4/127.0.0.1/tcp/1"]


async def test_cli_ping_dnsaddr() -> None:
    async with (
        asyncio.timeout(60),
        local_dns() as dns,
        aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"]) as server,
    ):
        dns.dnsaddr("example.test", *map(str, server.full_addrs()))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiolibp2p",
            "ping",
            f"/dnsaddr/example.test/p2p/{server.peer_id}",
            "--dns-server",
            dns.address,
            "--count",
            "2",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 45)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        lines = [json.loads(x) for x in out.decode().splitlines()]
        assert [x["event"] for x in lines] == ["ping", "ping", "ping_summary"]
        assert all(x["peerId"] == str(server.peer_id) for x in lines[:2])
        assert dns.queried("_dnsaddr.example.test") == 1
