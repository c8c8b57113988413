"""Dialing: happy-eyeballs races keep one connection and close the losers on both sides; backoff; ranking."""

from __future__ import annotations

import asyncio
import time

import pytest

import aiolibp2p
from aiolibp2p.exceptions import DialError
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network.swarm import SwarmConfig, rank_addrs


async def test_race_losers_are_closed_on_both_sides() -> None:
    cfg = SwarmConfig(dial_addr_stagger=0.0)  # start every address at once: several will succeed
    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(
                listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0", "/ip4/127.0.0.3/tcp/0"]
            ) as a,
            aiolibp2p.new_host(listen=[], swarm_config=cfg) as b,
        ):
            peer = await b.connect(a.full_addrs())
            assert peer == a.peer_id
            assert len(b.connections(peer)) == 1
            deadline = time.monotonic() + 2
            while len(a.connections(b.peer_id)) != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(a.connections(b.peer_id)) == 1
            assert await b.ping(peer) > 0


async def test_failed_addresses_back_off_but_explicit_dials_go_through() -> None:
    async with asyncio.timeout(20):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            dead = Multiaddr("/ip4/127.0.0.1/tcp/1")
            b.peerstore.add_addrs(a.peer_id, [dead])
            with pytest.raises(DialError):
                await b.swarm.dial_peer(a.peer_id)
            with pytest.raises(DialError) as ei:
                await b.swarm.dial_peer(a.peer_id)  # now only the dead address, in backoff
            assert any("backoff" in str(e) for e in ei.value.errors.values())
            # an explicit address is dialed regardless, and success clears the backoff
            assert await b.connect(a.full_addrs()[0]) == a.peer_id


def test_rank_addrs() -> None:
    addrs = [
        Multiaddr(a)
        for a in [
            "/ip4/1.2.3.4/tcp/4001/ws",
            "/ip4/1.2.3.4/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip4/1.2.3.4/udp/4001/quic-v1",
            "/ip4/1.2.3.4/tcp/1",
        ]
    ]
    ranked = [str(a) for a in rank_addrs(addrs)]
    assert ranked == [
        "/ip4/1.2.3.4/udp/4001/quic-v1",
        "/ip6/::1/tcp/4001",
        "/ip4/1.2.3.4/tcp/1",
        "/ip4/1.2.3.4/tcp/4001",
        "/ip4/1.2.3.4/tcp/4001/ws",
    ]
