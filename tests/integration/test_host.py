"""Host-level tests over real TCP sockets on loopback and over the memory transport, for every
(security × muxer) stack we ship."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.exceptions import DialError, PeerIdMismatch, ProtocolNotSupported
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

STACKS = [
    ("noise", "/yamux/1.0.0"),
    ("noise", "/mplex/6.7.0"),
    ("plaintext", "/yamux/1.0.0"),
    ("plaintext", "/mplex/6.7.0"),
]
TRANSPORTS = {"tcp": "/ip4/127.0.0.1/tcp/0", "memory": "/memory/0"}


def make_host(listen: str, security: str, muxer: str) -> aiolibp2p.Host:
    return aiolibp2p.new_host(listen=[listen], security=[security], muxers=[muxer])


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize(("security", "muxer"), STACKS)
async def test_connect_ping_identify_echo(transport: str, security: str, muxer: str) -> None:
    listen = TRANSPORTS[transport]
    async with asyncio.timeout(20):
        async with make_host(listen, security, muxer) as a, make_host(listen, security, muxer) as b:
            a.set_stream_handler(ECHO, handle_echo)
            peer = await b.connect(a.full_addrs()[0])
            assert peer == a.peer_id
            (conn,) = b.connections(peer)
            assert conn.security == ("/noise" if security == "noise" else "/plaintext/2.0.0")
            assert conn.muxer == muxer
            rtt = await b.ping(peer)
            assert 0 < rtt < 5
            info = await b.identify(peer)
            assert info.agent_version.startswith("aiolibp2p/")
            assert ECHO in info.protocols and "/ipfs/ping/1.0.0" in info.protocols
            assert info.signed_record_valid
            assert [str(x) for x in info.listen_addrs] == [str(x) for x in a.listen_addrs]
            # echo: 4 MiB verified, and 0 bytes
            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 4 * 1024 * 1024) == 4 * 1024 * 1024
            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 0) == 0
            # the listener sees the reverse direction too
            assert await a.ping(b.peer_id) > 0


async def test_hundred_concurrent_streams() -> None:
    async with asyncio.timeout(20):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            a.set_stream_handler(ECHO, handle_echo)
            peer = await b.connect(a.full_addrs()[0])

            async def one() -> int:
                s = await b.new_stream(peer, [ECHO])
                return await echo_roundtrip(s, 64 * 1024)

            results = await asyncio.gather(*(one() for _ in range(100)))
            assert results == [64 * 1024] * 100
            assert len(b.connections(peer)) == 1


async def test_protocol_not_supported() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            peer = await b.connect(a.full_addrs()[0])
            with pytest.raises(ProtocolNotSupported):
                await b.new_stream(peer, ["/nope/1.0.0", "/nope/2.0.0"])
            # the connection is still fine
            assert await b.ping(peer) > 0


async def test_wrong_peer_id_is_refused() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b, aiolibp2p.new_host() as c:
            wrong = a.listen_addrs[0].with_peer_id(str(c.peer_id))
            with pytest.raises(DialError) as ei:
                await b.connect(wrong)
            assert any(isinstance(e, PeerIdMismatch) for e in ei.value.errors.values()), ei.value.errors
            assert b.connections() == []
            # the listener keeps serving others
            assert await c.connect(a.full_addrs()[0]) == a.peer_id


async def test_concurrent_connects_share_one_dial() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            addr = a.full_addrs()[0]
            peers = await asyncio.gather(*(b.connect(addr) for _ in range(10)))
            assert set(peers) == {a.peer_id}
            assert len(b.connections(a.peer_id)) == 1
            await b.connect(addr, new_connection=True)
            assert len(b.connections(a.peer_id)) == 2


async def test_events_are_paired_and_exact() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            seen: list[ev.Event] = []
            a.on(
                (ev.ConnectionOpened, ev.ConnectionClosed, ev.PeerConnected, ev.PeerDisconnected), seen.append
            )
            addr = a.full_addrs()[0]
            await b.connect(addr)
            await b.connect(addr, new_connection=True)
            c1, c2 = b.connections(a.peer_id)
            await c1.close()
            await asyncio.sleep(0.2)
            await c2.close()
            for _ in range(50):
                if sum(isinstance(e, ev.PeerDisconnected) for e in seen):
                    break
                await asyncio.sleep(0.02)
            kinds = [type(e).__name__ for e in seen]
            assert kinds == [
                "ConnectionOpened",
                "PeerConnected",
                "ConnectionOpened",
                "ConnectionClosed",
                "ConnectionClosed",
                "PeerDisconnected",
            ], kinds
            closed = [e for e in seen if isinstance(e, ev.ConnectionClosed)]
            assert [e.remaining for e in closed] == [1, 0]


async def test_close_is_seen_by_remote_quickly() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            gone = asyncio.Event()
            a.on(ev.PeerDisconnected, lambda e: gone.set())
            await b.connect(a.full_addrs()[0])
            await b.close()
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert a.connections() == []
