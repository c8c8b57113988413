"""Nothing a host keeps per peer, per connection or per stream outlives them: what the soak found growing
(ping's kept stream pinning a closed connection, a stream's resources left behind by a connection that closed
as the stream opened) and the other per-peer tables, each checked on its own."""

from __future__ import annotations

import asyncio
import gc

import pytest
from host_state import leftovers  # type: ignore[import-not-found]  # (tests/, on pytest's path)

import aiolibp2p
from aiolibp2p.exceptions import DialError
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.network import connection as connection_mod
from aiolibp2p.network import events as ev
from aiolibp2p.network import peerstore as peerstore_mod
from aiolibp2p.network.swarm import SwarmConfig
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo


async def _wait(pred: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_no_per_peer_state_survives_a_disconnect() -> None:
    """Both sides, after: identify, pings both ways, echo streams, a stream left open on each side, a connection
    manager tag, a second connection, an abandoned event subscription; then one side disconnects."""
    async with asyncio.timeout(20):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            hold = asyncio.Event()

            async def parked(s: aiolibp2p.Stream) -> None:
                await hold.wait()

            for h in (a, b):
                h.set_stream_handler(ECHO, handle_echo)
                h.set_stream_handler("/park/1.0.0", parked)
            peer = await b.connect(a.full_addrs()[0])
            await b.connect(a.full_addrs()[0], new_connection=True)
            await b.identify(peer)
            await _wait(lambda: len(a.connections(b.peer_id)) == 2)
            await a.identify(b.peer_id)
            assert await b.ping(peer) > 0 and await a.ping(b.peer_id) > 0
            for _ in range(3):
                assert await echo_roundtrip(await b.new_stream(peer, [ECHO]), 10_000) == 10_000
            s1 = await b.new_stream(peer, ["/park/1.0.0"])
            await s1.write(b"x")
            s2 = await a.new_stream(b.peer_id, ["/park/1.0.0"])
            await s2.write(b"x")
            b.conn_manager.tag_peer(peer, "test", 10)
            b.subscribe(ev.ConnectionClosed)  # abandoned: never read, never closed
            assert leftovers(a) and leftovers(b)
            await b.disconnect(peer)
            await _wait(lambda: not a.connections() and not b.connections())
            hold.set()
            gc.collect()
            await _wait(lambda: not leftovers(a) and not leftovers(b))
            assert s1.is_closed() and s2.is_closed()


async def test_ping_forgets_its_stream_when_the_connection_closes() -> None:
    """The kept outbound ping stream (and the peer's lock) go with the connection: before, a closed stream kept
    the whole connection (muxer, security, transport objects) reachable for as long as the host ran."""
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            await b.ping(peer)
            (conn,) = b.connections(peer)
            assert b.ping_service._streams[peer].conn is conn
            conn.abort()
            assert peer not in b.ping_service._streams and peer not in b.ping_service._locks
            await b.connect(a.full_addrs()[0])
            assert await b.ping(peer) > 0  # a new stream on the new connection


async def test_stream_resources_are_released_when_the_connection_closes_as_the_stream_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection ends right as the open completes (it closed while the answer was in flight): the
    stream is finished with the connection, and its resource scope released."""
    cfg = SwarmConfig(lazy_negotiation_max_idle=0)  # negotiate in full
    real_open = connection_mod.Connection.open_stream

    async def open_then_lose_the_connection(
        self: connection_mod.Connection, *args: object, **kwargs: object
    ) -> connection_mod.Stream:
        s = await real_open(self, *args, **kwargs)  # type: ignore[arg-type]
        asyncio.get_running_loop().call_soon(self.abort)  # runs as the opener gets the stream
        return s

    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[], swarm_config=cfg) as b:
            a.set_stream_handler(ECHO, handle_echo)
            peer = await b.connect(a.full_addrs()[0])
            await b.identify(peer)
            await a.identify(b.peer_id)  # both identify streams done: the echo stream is the only one
            monkeypatch.setattr(connection_mod.Connection, "open_stream", open_then_lose_the_connection)
            closed: list[ev.StreamClosed] = []
            b.on(ev.StreamClosed, closed.append)
            s = await b.new_stream(peer, [ECHO])
            await asyncio.sleep(0)  # the abort
            assert s.is_closed() and s.conn.is_closed()
            assert b.swarm.resources.stats()["streams"] == 0, b.swarm.resources.stats()
            assert len(closed) == 1
            monkeypatch.undo()
            await _wait(lambda: not leftovers(b))


async def test_identify_of_a_closed_connection_leaves_nothing_behind() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            (conn,) = b.connections(peer)
            await conn.close()
            assert await b.identify_service.identify(conn) is None
            assert not b.identify_service._running and not b.identify_service._results


async def test_the_host_sweeps_expired_dial_backoffs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peerstore_mod, "GC_INTERVAL", 0.05)
    cfg = SwarmConfig(backoff_base=0.05, backoff_coef=0.0, backoff_max=0.05)
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[], swarm_config=cfg) as b:
            b.peerstore.add_addrs(a.peer_id, [Multiaddr("/ip4/127.0.0.1/tcp/1")])
            with pytest.raises(DialError):
                await b.swarm.dial_peer(a.peer_id)
            assert len(b.swarm._backoff) == 1
            await _wait(lambda: len(b.swarm._backoff) == 0)
