"""Resource limits at work on a live host: floods are refused cleanly and the host keeps serving."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.network.resources import ResourceLimits
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo


async def test_stream_flood_is_refused_and_host_keeps_serving() -> None:
    limits = ResourceLimits(max_inbound_streams_per_peer=16)
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(resource_limits=limits) as server,
            aiolibp2p.new_host(listen=[]) as flooder,
            aiolibp2p.new_host(listen=[]) as other,
        ):
            hold = asyncio.Event()

            async def holding(stream: aiolibp2p.Stream) -> None:
                await stream.write(await stream.readexactly(1))
                await hold.wait()
                await stream.close()

            server.set_stream_handler("/hold/1.0.0", holding)
            server.set_stream_handler(ECHO, handle_echo)
            peer = await flooder.connect(server.full_addrs()[0])
            await other.connect(server.full_addrs()[0])

            async def attempt() -> bool:
                # Served means one byte there and back: a stream opened lazily (0-RTT) learns of a refusal
                # on first use rather than from new_stream.
                try:
                    s = await flooder.new_stream(peer, ["/hold/1.0.0"], timeout=5)
                    await s.write(b"x")
                    return await s.readexactly(1, timeout=5) == b"x"
                except (Libp2pError, asyncio.IncompleteReadError):
                    return False

            results = await asyncio.gather(*(attempt() for _ in range(200)))
            ok = sum(results)
            assert 1 <= ok <= 16, ok
            assert server.swarm.resources.refusals.get("max_inbound_streams_per_peer", 0) > 0
            # everyone else is served, and the flooder's connection survives
            s = await other.new_stream(server.peer_id, [ECHO])
            assert await echo_roundtrip(s, 100_000) == 100_000
            assert len(flooder.connections(peer)) == 1  # refused streams, not a dropped connection
            hold.set()
            await asyncio.sleep(0.2)
            # released: new streams work again for the flooder
            s = await flooder.new_stream(peer, [ECHO], timeout=5)
            assert await echo_roundtrip(s, 1000) == 1000
            assert await flooder.ping(peer) > 0
            assert len(flooder.connections(peer)) == 1


async def test_connection_limit_refuses_inbound() -> None:
    limits = ResourceLimits(max_inbound_connections=2)
    async with asyncio.timeout(20):
        async with aiolibp2p.new_host(resource_limits=limits) as server:
            clients = [aiolibp2p.new_host(listen=[]) for _ in range(3)]
            for c in clients:
                await c.start()
            try:
                await clients[0].connect(server.full_addrs()[0])
                await clients[1].connect(server.full_addrs()[0])
                with pytest.raises(Libp2pError):
                    await clients[2].connect(server.full_addrs()[0], timeout=3)
                assert server.swarm.resources.refusals.get("max_inbound_connections") == 1
                await clients[0].close()
                await asyncio.sleep(0.2)
                assert await clients[2].connect(server.full_addrs()[0], timeout=3) == server.peer_id
            finally:
                for c in clients:
                    await c.close()
