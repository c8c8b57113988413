"""The founding scenario (go-libp2p 0.36.1's hang) as a regression test.

A listener on 127.0.0.1 and 127.0.0.2, a dialer connected on both; the dialer closes one connection; within
1 s the listener has exactly one connection left, and 100 of 100 new streams succeed in both directions. A
variant where one connection dies silently (a forwarding proxy that stops passing bytes without closing).
"""

from __future__ import annotations

import asyncio
import time

import pytest

import aiolibp2p
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo


async def _streams_both_ways(a: aiolibp2p.Host, b: aiolibp2p.Host, n: int = 100) -> None:
    async def one(src: aiolibp2p.Host, dst: aiolibp2p.Host) -> int:
        s = await src.new_stream(dst.peer_id, [ECHO], timeout=5)
        return await echo_roundtrip(s, 1024)

    results = await asyncio.gather(*(one(b, a) for _ in range(n)), *(one(a, b) for _ in range(n)))
    assert results == [1024] * (2 * n)


async def _wait_for(pred: object, timeout: float) -> float:
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.01)
    return time.monotonic() - t0


LISTEN = {
    "tcp": "/ip4/{ip}/tcp/0",
    "quic": "/ip4/{ip}/udp/0/quic-v1",
    "websocket": "/ip4/{ip}/tcp/0/ws",
    "webrtc-direct": "/ip4/{ip}/udp/0/webrtc-direct",
}


@pytest.mark.parametrize("transport", list(LISTEN))
async def test_dialer_closes_one_of_two_connections(transport: str) -> None:
    addr = LISTEN[transport]
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(
                listen=[addr.format(ip="127.0.0.1"), addr.format(ip="127.0.0.2")], transports=[transport]
            ) as a,
            aiolibp2p.new_host(listen=[addr.format(ip="127.0.0.1")], transports=[transport]) as b,
        ):
            a.set_stream_handler(ECHO, handle_echo)
            b.set_stream_handler(ECHO, handle_echo)
            addr1, addr2 = a.full_addrs()
            await b.connect(addr1)
            await b.connect(addr2, new_connection=True)
            assert len(b.connections(a.peer_id)) == 2
            await _wait_for(lambda: len(a.connections(b.peer_id)) == 2, 2)
            victim = next(c for c in b.connections(a.peer_id) if "127.0.0.2" in str(c.remote_addr))
            await victim.close()
            took = await _wait_for(lambda: len(a.connections(b.peer_id)) == 1, 1.0)
            assert took < 1.0
            assert all(not c.is_closed() for c in a.connections(b.peer_id))
            await _streams_both_ways(a, b)


class StallingProxy:
    """Forwards TCP between a client and ``upstream``; ``stall()`` stops passing bytes without closing."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.stalled = False
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                if not self.stalled:
                    w.write(data)
                    await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(*self.upstream)
        self._writers += [w, uw]
        await asyncio.gather(self._pump(r, uw), self._pump(ur, w))

    def stall(self) -> None:
        self.stalled = True

    async def close(self) -> None:
        for w in self._writers:
            w.transport.abort()
        if self.server is not None:
            self.server.close()


async def test_silently_dead_connection_is_detected_and_avoided() -> None:
    keepalive = dict(keepalive_interval=0.3, keepalive_timeout=0.3)
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0"], **keepalive) as a,
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], **keepalive) as b,
        ):
            a.set_stream_handler(ECHO, handle_echo)
            b.set_stream_handler(ECHO, handle_echo)
            addr1, addr2 = a.full_addrs()
            host, port = Multiaddr(str(addr2)).split_peer_id()[0].host_port()
            proxy = StallingProxy((host, port))
            pport = await proxy.start()
            try:
                await b.connect(addr1)
                await b.connect(f"/ip4/127.0.0.1/tcp/{pport}/p2p/{a.peer_id}", new_connection=True)
                await _wait_for(lambda: len(a.connections(b.peer_id)) == 2, 2)
                closed_at_a: list[ev.ConnectionClosed] = []
                a.on(ev.ConnectionClosed, closed_at_a.append)
                proxy.stall()
                # New streams work at once, whatever connection they pick (failover), both ways.
                await _streams_both_ways(a, b, n=20)
                # Both sides detect the dead connection via keep-alive within 2 × interval (+ timeout slack).
                await _wait_for(
                    lambda: len(a.connections(b.peer_id)) == 1 and len(b.connections(a.peer_id)) == 1, 3.0
                )
                assert [e.remaining for e in closed_at_a] == [1]
                await _streams_both_ways(a, b)
            finally:
                await proxy.close()
