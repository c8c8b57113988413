"""aiolibp2p ⇄ js-libp2p 3.x over TCP + Noise + (yamux | mplex), in both directions.

Each side checks what it learnt from the other: ping, identify (protocols, agent version, listen addresses,
a signed peer record that verifies), echo of 4 MiB and of 0 bytes verified byte by byte, and 100 concurrent
streams.
"""

from __future__ import annotations

import asyncio

import pytest
from jspeer import JsPeer

import aiolibp2p
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

pytestmark = pytest.mark.interop

MUXERS = {"yamux": "/yamux/1.0.0", "mplex": "/mplex/6.7.0"}
MIB4 = 4 * 1024 * 1024


def _js(muxer: str) -> JsPeer:
    # js mplex aborts a muxer whose peer opens more than 5 streams a second unless told otherwise
    return JsPeer(muxer=muxer, mplex_disconnect_threshold=10_000)


@pytest.mark.parametrize("muxer", list(MUXERS))
async def test_python_dials_js(muxer: str) -> None:
    async with asyncio.timeout(60):
        async with _js(muxer) as js, aiolibp2p.new_host(listen=[], muxers=[MUXERS[muxer]]) as host:
            peer = await host.connect(js.addr)
            assert str(peer) == js.peer_id
            (conn,) = host.connections(peer)
            assert (conn.security, conn.muxer) == ("/noise", MUXERS[muxer])
            assert await host.ping(peer) < 2
            info = await host.identify(peer)
            assert info.agent_version.startswith("js-libp2p"), info.agent_version
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info.protocols)
            assert info.signed_record_valid
            assert {str(a) for a in info.listen_addrs} == {a.rsplit("/p2p/", 1)[0] for a in js.addrs}
            assert info.observed_addr is not None
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, MIB4) == MIB4
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 0) == 0

            async def small() -> int:
                st = await host.new_stream(peer, [ECHO])
                return await echo_roundtrip(st, 1024)

            assert await asyncio.gather(*(small() for _ in range(100))) == [1024] * 100
            assert len(host.connections(peer)) == 1


@pytest.mark.parametrize("muxer", list(MUXERS))
async def test_js_dials_python(muxer: str) -> None:
    async with asyncio.timeout(60):
        async with _js(muxer) as js, aiolibp2p.new_host(muxers=[MUXERS[muxer]]) as host:
            host.set_stream_handler(ECHO, handle_echo)
            identified = asyncio.Event()
            host.on(ev.PeerIdentified, lambda e: identified.set())
            our = str(host.peer_id)
            info = await js.dial(str(host.full_addrs()[0]))
            assert info["peerId"] == our
            assert info["muxer"] == MUXERS[muxer] and info["encryption"] == "/noise"
            assert await js.ping(our) < 2000
            ident = await js.identify(our)
            assert ident["agentVersion"].startswith("aiolibp2p/")
            assert {"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(
                ident["protocols"]
            )
            assert ident["signedPeerRecord"] is not None, ident
            assert set(ident["listenAddrs"]) >= {str(a) for a in host.listen_addrs} or set(
                a.rsplit("/p2p/", 1)[0] for a in ident["listenAddrs"]
            ) >= {str(a) for a in host.listen_addrs}
            assert ident["publicKey"] == host.private_key.public_key.to_protobuf().hex()
            assert (await js.echo(our, nbytes=MIB4, streams=1))["bytes"] == MIB4
            assert (await js.echo(our, nbytes=0, streams=1))["bytes"] == 0
            assert (await js.echo(our, nbytes=1024, streams=100))["bytes"] == 100 * 1024
            # we identified js on the inbound connection too
            async with asyncio.timeout(5):
                await identified.wait()
            pinfo = await host.identify(js.peer_id)
            assert pinfo.agent_version.startswith("js-libp2p")


async def test_js_sees_our_close_quickly() -> None:
    async with asyncio.timeout(30):
        async with JsPeer(muxer="yamux") as js, aiolibp2p.new_host(listen=[]) as host:
            await host.connect(js.addr)
            mark = js.mark()
            await host.disconnect(aiolibp2p.PeerId.from_string(js.peer_id))
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await js.wait_event("connection:close", after=mark, timeout=1.0)
            assert loop.time() - t0 < 1.0


async def test_we_see_js_close_quickly() -> None:
    async with asyncio.timeout(30):
        async with JsPeer(muxer="yamux") as js, aiolibp2p.new_host(listen=[]) as host:
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            await host.connect(js.addr)
            await js.hangup(str(host.peer_id))
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert host.connections() == []


@pytest.mark.parametrize("security", ["noise", "tls"])
async def test_lazy_security_and_lazy_streams_with_js(security: str) -> None:
    """One security protocol configured: our dialer proposes it and starts its handshake in the same packet
    (multistream V1Lazy); after identify, streams to js are opened lazily, and data sent with the proposal
    and closed at once (FIN) still reaches the js handler (the FIN waits for js's answer)."""
    from aiolibp2p.multistream import LazyNegotiatedStream

    async with asyncio.timeout(60):
        async with (
            JsPeer(security="both") as js,
            aiolibp2p.new_host(listen=[], security=[security]) as host,
        ):
            peer = await host.connect(js.addr)
            (conn,) = host.connections(peer)
            assert conn.security == {"noise": "/noise", "tls": "/tls/1.0.0"}[security]
            await host.identify(peer)
            for size in (0, 1, 100_000):
                s = await host.new_stream(peer, [ECHO])
                assert isinstance(s._inner, LazyNegotiatedStream)
                assert await echo_roundtrip(s, size) == size
            assert await host.ping(peer) < 2


async def test_lazy_security_refused_by_js_is_a_clear_error() -> None:
    from aiolibp2p.exceptions import DialError, ProtocolNotSupported

    async with asyncio.timeout(60):
        async with JsPeer(security="noise") as js, aiolibp2p.new_host(listen=[], security=["tls"]) as host:
            with pytest.raises(DialError) as ei:
                await host.connect(js.addr)
            (err,) = ei.value.errors.values()
            assert isinstance(err, ProtocolNotSupported)
