"""Resource limits at work on a live host: floods are refused cleanly and the host keeps serving."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.network import events as ev
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


# -- misbehaving peers in their own process: the host under test is measured alone ------------------------------

FLOOD_PEER = Path(__file__).with_name("flood_peer.py")
FLOOD_SECONDS = 3.0
PING_BOUND = 1.0
"""Seconds a good peer's ping may take while another peer floods the host."""


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _flood(mode: str, addr: str) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FLOOD_PEER),
        mode,
        addr,
        str(FLOOD_SECONDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), FLOOD_SECONDS + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    result: dict[str, float] = json.loads(out.decode().splitlines()[-1])
    return result


async def _ping_until(good: aiolibp2p.Host, peer: aiolibp2p.PeerId, done: asyncio.Future[Any]) -> list[float]:
    """Ping every 50 ms until ``done``; every ping must succeed within PING_BOUND."""
    rtts = []
    while not done.done():
        rtts.append(await good.ping(peer, timeout=PING_BOUND))
        await asyncio.sleep(0.05)
    return rtts


async def test_a_peer_dialing_in_a_tight_loop_is_rate_limited_and_others_are_served() -> None:
    """Hundreds of dials per second from one address: past the burst, the per-IP rate refuses them on accept,
    before any handshake work; a connected peer's pings stay within PING_BOUND; the host's memory does not
    grow with the flood, and nothing of it remains."""
    rate, burst = 5.0, 10
    limits = ResourceLimits(
        unlimited_networks=(),  # the flood comes over loopback, which is exempt by default
        inbound_connection_rate_per_ip=rate,
        inbound_connection_burst_per_ip=burst,
    )
    async with asyncio.timeout(60):
        async with (
            aiolibp2p.new_host(transports=["tcp"], resource_limits=limits) as server,
            aiolibp2p.new_host(listen=[], transports=["tcp"]) as good,
        ):
            peer = await good.connect(server.full_addrs()[0])
            await good.ping(peer)
            opened: list[ev.ConnectionOpened] = []
            server.on(ev.ConnectionOpened, opened.append)
            rss0 = _rss()
            flood = asyncio.ensure_future(_flood("dial", str(server.full_addrs()[0])))
            rtts = await _ping_until(good, peer, flood)
            result = flood.result()
            rss1 = _rss()
            assert result["attempts"] / result["seconds"] >= 100, result  # a tight loop indeed
            assert server.swarm.resources.refusals["inbound_connection_rate_per_ip"] > 0
            assert len(opened) <= burst + rate * result["seconds"] + 2, (len(opened), result)
            assert rtts and max(rtts) < PING_BOUND
            assert rss1 - rss0 < 8 * 2**20, (rss0, rss1)
            async with asyncio.timeout(5):
                while len(server.connections()) != 1:
                    await asyncio.sleep(0.02)
            assert server.swarm.resources.stats()["connections"] == 1
            assert await good.ping(peer) < PING_BOUND


async def test_a_peer_opening_streams_without_end_and_never_reading_is_limited() -> None:
    """One connection, echo streams opened without end, written to, never read nor closed: the per-peer
    stream limit refuses the excess, the host's memory stays within what the limit allows, a connected peer's
    pings stay within PING_BOUND, and everything is released when the flooder goes."""
    per_peer = 64
    limits = ResourceLimits(max_inbound_streams_per_peer=per_peer)
    async with asyncio.timeout(60):
        async with (
            aiolibp2p.new_host(transports=["tcp"], resource_limits=limits) as server,
            aiolibp2p.new_host(listen=[], transports=["tcp"]) as good,
        ):
            server.set_stream_handler(ECHO, handle_echo)
            peer = await good.connect(server.full_addrs()[0])
            await good.ping(peer)
            peak = 0

            def track(_e: object) -> None:
                nonlocal peak
                peak = max(peak, server.swarm.resources.stats()["inbound_streams"])

            server.on(ev.StreamOpened, track)
            rss0 = _rss()
            flood = asyncio.ensure_future(_flood("streams", str(server.full_addrs()[0])))
            rtts = await _ping_until(good, peer, flood)
            result = flood.result()
            rss1 = _rss()
            assert result["attempts"] > per_peer, result
            assert server.swarm.resources.refusals["max_inbound_streams_per_peer"] > 0
            assert peak <= per_peer + 2  # + the good peer's ping stream
            # what the limit allows: each held stream buffers at most its window (256 KiB) each way
            assert rss1 - rss0 < per_peer * 512 * 1024 + 16 * 2**20, (rss0, rss1)
            assert rtts and max(rtts) < PING_BOUND
            async with asyncio.timeout(5):
                while len(server.connections()) != 1 or server.swarm.resources.stats()["inbound_streams"] > 1:
                    await asyncio.sleep(0.02)


async def test_a_window_update_beyond_2_32_ends_only_that_connection() -> None:
    """A yamux WINDOW_UPDATE that takes a stream's send window past 2^32-1 is a protocol error: the host ends
    that connection (GoAway), seen by the sender within 1 s, and keeps serving its other peers."""
    from aiolibp2p.muxers.yamux.engine import TYPE_WINDOW_UPDATE, encode_header

    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(transports=["tcp"], muxers=["yamux"]) as server,
            aiolibp2p.new_host(listen=[], transports=["tcp"]) as bad,
            aiolibp2p.new_host(listen=[], transports=["tcp"]) as good,
        ):
            server.set_stream_handler(ECHO, handle_echo)
            closed: list[ev.ConnectionClosed] = []
            server.on(ev.ConnectionClosed, closed.append)
            peer = await bad.connect(server.full_addrs()[0])
            await good.connect(server.full_addrs()[0])
            s = await bad.new_stream(peer, [ECHO])
            await s.write(b"x")
            assert await s.readexactly(1) == b"x"  # open on both sides
            (conn,) = bad.connections(peer)
            sid = max(conn.muxed._streams)  # type: ignore[attr-defined]
            conn.muxed._pipe.write(encode_header(TYPE_WINDOW_UPDATE, 0, sid, 0xFFFFFFFF))  # type: ignore[attr-defined]
            await conn.wait_closed(timeout=1.0)
            async with asyncio.timeout(1.0):
                while not closed:
                    await asyncio.sleep(0.01)
            assert closed[0].peer == bad.peer_id and closed[0].cause == "protocol-error", closed
            assert await good.ping(server.peer_id) < PING_BOUND
            assert [c.remote_peer for c in server.connections()] == [good.peer_id]
