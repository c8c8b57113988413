"""Ping: echo on one stream, idle inbound streams reset, at most two inbound streams per peer."""

from __future__ import annotations

import asyncio
import os

import pytest

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.protocols.ping import PROTOCOL_ID
from aiolibp2p.protocols.ping import service as ping_service


async def test_idle_inbound_ping_stream_is_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ping_service, "INBOUND_IDLE_TIMEOUT", 0.3)
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            s = await b.new_stream(peer, [PROTOCOL_ID])
            for _ in range(3):  # activity keeps it alive past the idle timeout
                payload = os.urandom(32)
                await s.write(payload)
                assert await s.readexactly(32) == payload
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.6)
            with pytest.raises((Libp2pError, asyncio.IncompleteReadError)):
                await s.write(os.urandom(32))
                await s.readexactly(32)


async def test_at_most_two_inbound_ping_streams_per_peer() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            streams = []
            results = []
            for _ in range(3):
                payload = os.urandom(32)
                try:
                    s = await b.new_stream(peer, [PROTOCOL_ID])
                    streams.append(s)
                    await s.write(payload)
                    results.append(await s.readexactly(32) == payload)
                except (Libp2pError, asyncio.IncompleteReadError):
                    results.append(False)
            assert results == [True, True, False]
            await streams[0].close()
            for _ in range(50):
                if a.ping_service._inbound.get(b.peer_id, 0) < 2:
                    break
                await asyncio.sleep(0.02)
            assert await b.ping(peer) > 0  # a slot is free again
