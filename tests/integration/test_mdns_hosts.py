"""mDNS over the loopback interface: three hosts in one process find each other and one auto-connects.

Multicast is sent on 127.0.0.1 only (zeroconf bound to that interface), so nothing leaves the machine. If this
machine cannot loop multicast on 127.0.0.1 the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest

pytest.importorskip("zeroconf", reason="zeroconf is not installed (pip install aiolibp2p[mdns])")

import aiolibp2p
from aiolibp2p.discovery import Discovery, PeerInfo
from aiolibp2p.discovery.mdns import MdnsDiscovery

MDNS_GROUP = "224.0.0.251"
TEST_TIMEOUT = 15.0
FIND_TIMEOUT = 8.0


def _loopback_multicast_works() -> str | None:
    """None if a datagram sent to an mDNS-like group on 127.0.0.1 comes back, else why not."""
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("0.0.0.0", 0))
            port = rx.getsockname()[1]
            mreq = socket.inet_aton(MDNS_GROUP) + socket.inet_aton("127.0.0.1")
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            rx.settimeout(1.0)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, struct.pack("b", 1))
            tx.sendto(b"probe", (MDNS_GROUP, port))
            data, _ = rx.recvfrom(16)
            return None if data == b"probe" else "unexpected datagram"
    except OSError as e:
        return f"multicast on 127.0.0.1 does not work here: {e!r}"


async def test_three_hosts_find_each_other_on_loopback() -> None:
    reason = _loopback_multicast_works()
    if reason:
        pytest.skip(reason)
    found_by_a: list[PeerInfo] = []
    async with asyncio.timeout(TEST_TIMEOUT), contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(aiolibp2p.new_host()) for _ in range(3)]
        mdns = [
            MdnsDiscovery(
                h,
                interfaces=["127.0.0.1"],
                on_peer_found=found_by_a.append if i == 0 else None,
                auto_connect=i == 0,
            )
            for i, h in enumerate(hosts)
        ]
        for m in mdns:
            stack.push_async_callback(m.close)
        assert isinstance(mdns[0], Discovery)
        assert all(m.peer_name != str(m.host.peer_id) and len(m.peer_name) >= 32 for m in mdns)
        await asyncio.gather(*(m.start() for m in mdns))  # each probes its name (~1 s), concurrently
        ids = {h.peer_id for h in hosts}
        for m in mdns:
            # Other test runs on this machine may announce peers too: ask for ours, not for equality.
            others = ids - {m.host.peer_id}
            for _ in range(int(FIND_TIMEOUT / 0.05)):
                if others <= {p.peer_id for p in m.peers()}:
                    break
                await asyncio.sleep(0.05)
            seen = {p.peer_id: p for p in m.peers()}
            assert others <= set(seen), f"{m.host.peer_id} saw only {list(seen)}"
            assert m.host.peer_id not in seen
            for h in hosts:
                if h is not m.host:
                    assert seen[h.peer_id].addrs == tuple(h.advertised_addrs())
        assert {p.peer_id for p in found_by_a} >= ids - {hosts[0].peer_id}
        via_iface = {p.peer_id async for p in mdns[1].find_peers("any-namespace")}
        assert ids - {hosts[1].peer_id} <= via_iface
        assert len([p async for p in mdns[1].find_peers("", limit=1)]) == 1
        # host 0 auto-connects to what it finds.
        for _ in range(int(FIND_TIMEOUT / 0.05)):
            if {hosts[1].peer_id, hosts[2].peer_id} <= set(hosts[0].connected_peers()):
                break
            await asyncio.sleep(0.05)
        assert {hosts[1].peer_id, hosts[2].peer_id} <= set(hosts[0].connected_peers())
        # A goodbye removes the peer from the others' tables.
        await mdns[2].close()
        for _ in range(int(FIND_TIMEOUT / 0.05)):
            if hosts[2].peer_id not in {p.peer_id for p in mdns[1].peers()}:
                break
            await asyncio.sleep(0.05)
        assert hosts[2].peer_id not in {p.peer_id for p in mdns[1].peers()}
