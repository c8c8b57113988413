"""The peer store: address TTLs, bounded books, and garbage collection of peers we no longer know how to reach."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network import peerstore as P
from aiolibp2p.network.peerstore import Peerstore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _peer() -> tuple[PeerId, object]:
    k = generate_key_pair()
    return k.public_key.peer_id, k.public_key


A1 = Multiaddr("/ip4/10.0.0.1/tcp/1")
A2 = Multiaddr("/ip4/10.0.0.2/tcp/2")


def test_addresses_expire_and_keep_the_longer_ttl() -> None:
    clock = Clock()
    ps = Peerstore(clock=clock)
    p, _ = _peer()
    ps.add_addrs(p, [A1], ttl=10)
    ps.add_addrs(p, [A1], ttl=5)  # shorter: ignored
    ps.add_addrs(p, [A2], ttl=20)
    clock.now += 11
    assert ps.addrs(p) == [A2]
    clock.now += 10
    assert ps.addrs(p) == []


def test_gc_forgets_unkept_peers_whose_addresses_all_expired() -> None:
    clock = Clock()
    ps = Peerstore(clock=clock)
    gone, gone_key = _peer()
    kept, kept_key = _peer()
    alive, _ = _peer()
    for p, key in ((gone, gone_key), (kept, kept_key)):
        ps.add_addrs(p, [A1], ttl=10)
        ps.add_public_key(p, key)  # type: ignore[arg-type]
        ps.set_protocols(p, ["/x/1"])
        ps.put(p, "AgentVersion", "test")
    ps.add_addrs(alive, [A2], ttl=100)
    clock.now += 50
    assert ps.gc(keep=lambda p: p == kept) == 1
    assert gone not in ps.peers()
    assert ps.get_protocols(gone) == [] and ps.get(gone, "AgentVersion") is None
    assert set(ps.peers()) == {kept, alive}  # kept (e.g. connected) and still-addressable peers stay
    assert ps.get_protocols(kept) == ["/x/1"]


def test_gc_bounds_the_number_of_peers_evicting_soonest_expiring_first() -> None:
    clock = Clock()
    ps = Peerstore(clock=clock)
    peers = [_peer()[0] for _ in range(30)]
    for i, p in enumerate(peers):
        ps.add_addrs(p, [A1], ttl=100 + i)
    protected = peers[0]  # expires soonest, but is kept
    assert ps.gc(keep=lambda p: p == protected, max_peers=10) == 20
    remaining = set(ps.peers())
    assert len(remaining) == 10
    assert protected in remaining
    assert remaining - {protected} == set(peers[21:])  # the 9 with the latest expiry


async def test_host_sweeps_its_peerstore_of_disconnected_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "GC_INTERVAL", 0.05)
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            await b.identify(peer)
            await asyncio.sleep(0.3)
            assert peer in b.peerstore.peers()  # connected: kept whatever the TTLs
            await b.disconnect(peer)
            await asyncio.sleep(0.2)
            assert peer in b.peerstore.peers()  # its addresses have not expired yet: it stays
            b.peerstore.set_addrs_ttl(peer, 0.1)  # as if RECENTLY_CONNECTED_ADDR_TTL ran out
            while peer in b.peerstore.peers():  # bounded by the timeout above
                await asyncio.sleep(0.05)
            assert b.peerstore.get_protocols(peer) == []


def test_a_stored_record_is_known_by_its_exact_bytes_and_forgotten_with_the_peer() -> None:
    """Identify asks the peer store whether a record is the one it holds (verified already) instead of keeping a
    cache of its own: the record goes when the peer is forgotten."""
    clock = Clock()
    ps = Peerstore(clock=clock)
    p, _ = _peer()
    q, _ = _peer()
    assert ps.consume_peer_record(p, 5, b"envelope-5", [A1], ttl=10)
    assert ps.stored_record(p, b"envelope-5") == (5, (A1,))
    assert ps.stored_record(p, b"envelope-4") is None
    assert ps.stored_record(q, b"envelope-5") is None  # the same bytes from another peer are not vouched for
    assert not ps.consume_peer_record(p, 4, b"envelope-4", [A2])  # older: refused
    clock.now += 11
    assert ps.gc() == 1
    assert ps.stored_record(p, b"envelope-5") is None and ps.peer_record(p) is None
