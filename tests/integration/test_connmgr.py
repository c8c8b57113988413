"""The connection manager trims down to the low watermark, sparing protected, valuable and young peers."""

from __future__ import annotations

import asyncio
import contextlib

import aiolibp2p
from aiolibp2p.network.connmgr import ConnectionManager, ConnManagerConfig


async def test_trim_spares_protected_and_valuable_peers() -> None:
    async with asyncio.timeout(30), contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(aiolibp2p.new_host(listen=["/memory/0"]))
        cm = ConnectionManager(
            hub.swarm, ConnManagerConfig(low_water=3, high_water=5, grace_period=0.0, silence_period=0.0)
        )
        cm.start()
        peers = []
        for _ in range(5):
            h = await stack.enter_async_context(aiolibp2p.new_host(listen=[]))
            await h.connect(hub.full_addrs()[0])
            peers.append(h)
        for _ in range(100):
            if len(hub.connections()) == 5:
                break
            await asyncio.sleep(0.01)
        cm.protect(peers[0].peer_id, "keep")
        cm.tag_peer(peers[1].peer_id, "useful", 100)
        cm.tag_peer(peers[2].peer_id, "useful", 50)
        # a sixth connection crosses the high watermark and triggers a trim
        h = await stack.enter_async_context(aiolibp2p.new_host(listen=[]))
        await h.connect(hub.full_addrs()[0])
        for _ in range(200):
            if len(hub.connections()) <= 3:
                break
            await asyncio.sleep(0.01)
        remaining = {c.remote_peer for c in hub.connections()}
        assert len(remaining) == 3, remaining
        assert {peers[0].peer_id, peers[1].peer_id, peers[2].peer_id} == remaining
        assert cm.trimmed == 3


async def test_grace_period_protects_new_connections() -> None:
    async with asyncio.timeout(30), contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(aiolibp2p.new_host(listen=["/memory/0"]))
        cm = ConnectionManager(
            hub.swarm, ConnManagerConfig(low_water=1, high_water=2, grace_period=60.0, silence_period=0.0)
        )
        for _ in range(3):
            h = await stack.enter_async_context(aiolibp2p.new_host(listen=[]))
            await h.connect(hub.full_addrs()[0])
        assert await cm.trim() == 0
        assert len(hub.connections()) == 3
