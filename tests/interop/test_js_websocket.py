"""aiolibp2p ⇄ js-libp2p 3.x over WebSocket (@libp2p/websockets, plain ``/ws`` on 127.0.0.1), both directions.

Noise and the muxer are negotiated inside the WebSocket connection. Each side checks what it learnt from the
other: ping, identify (protocols, agent version, the ``/ws`` listen addresses, a signed peer record that
verifies), a 4 MiB echo verified byte by byte, 100 concurrent streams, and a close seen by the other side
within 1 s.

On Node 20 the js dialer uses the ``ws`` package as its WebSocket (lib/polyfill.mjs); js-libp2p's Node
connection gater allows loopback and plain ws (the browser one refuses both), and the js peer allows every
address explicitly anyway.
"""

from __future__ import annotations

import asyncio

import pytest
from jspeer import JsPeer

import aiolibp2p
from aiolibp2p.exceptions import DialError
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

pytestmark = pytest.mark.interop

MUXERS = {"yamux": "/yamux/1.0.0", "mplex": "/mplex/6.7.0"}
MIB4 = 4 * 1024 * 1024
WS_LISTEN = "/ip4/127.0.0.1/tcp/0/ws"


def _js(muxer: str = "yamux", **kw: object) -> JsPeer:
    # js mplex aborts a muxer whose peer opens more than 5 streams a second unless told otherwise
    return JsPeer(muxer=muxer, transport="ws", mplex_disconnect_threshold=10_000, **kw)  # type: ignore[arg-type]


def _host(muxer: str = "yamux", listen: list[str] | None = None) -> aiolibp2p.Host:
    return aiolibp2p.new_host(
        listen=[WS_LISTEN] if listen is None else listen, transports=["ws"], muxers=[MUXERS[muxer]]
    )


def _bare(addrs: list[str]) -> set[str]:
    return {a.rsplit("/p2p/", 1)[0] for a in addrs}


async def _many_streams(host: aiolibp2p.Host, peer: aiolibp2p.PeerId, n: int = 100) -> list[int]:
    async def small() -> int:
        st = await host.new_stream(peer, [ECHO])
        return await echo_roundtrip(st, 1024)

    return await asyncio.gather(*(small() for _ in range(n)))


@pytest.mark.parametrize("muxer", list(MUXERS))
async def test_python_dials_js_ws(muxer: str) -> None:
    async with asyncio.timeout(30):
        async with _js(muxer) as js, _host(muxer, listen=[]) as host:
            assert js.addr.endswith(f"/ws/p2p/{js.peer_id}"), js.addrs
            peer = await host.connect(js.addr)
            assert str(peer) == js.peer_id
            (conn,) = host.connections(peer)
            assert (conn.transport, conn.security, conn.muxer) == ("websocket", "/noise", MUXERS[muxer])
            assert str(conn.remote_addr) == js.addr.rsplit("/p2p/", 1)[0]
            assert await host.ping(peer) < 2
            info = await host.identify(peer)
            assert info.agent_version.startswith("js-libp2p"), info.agent_version
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info.protocols)
            assert info.signed_record_valid
            assert {str(a) for a in info.listen_addrs} == _bare(js.addrs)
            assert info.observed_addr is not None and "/ws" in str(info.observed_addr)
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, MIB4) == MIB4
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 0) == 0
            assert await _many_streams(host, peer) == [1024] * 100
            assert len(host.connections(peer)) == 1
            # js saw one inbound ws connection from us
            (jc,) = [c for c in await js.connections() if c["peerId"] == str(host.peer_id)]
            assert jc["direction"] == "inbound" and "/ws" in jc["remoteAddr"]
            assert (jc["encryption"], jc["muxer"]) == ("/noise", MUXERS[muxer])
            # our close is seen by js within 1 s
            mark = js.mark()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await host.disconnect(peer)
            await js.wait_event("connection:close", after=mark, timeout=1.0, peerId=str(host.peer_id))
            assert loop.time() - t0 < 1.0


@pytest.mark.parametrize("muxer", list(MUXERS))
async def test_js_dials_python_ws(muxer: str) -> None:
    async with asyncio.timeout(30):
        async with _js(muxer) as js, _host(muxer) as host:
            host.set_stream_handler(ECHO, handle_echo)
            identified = asyncio.Event()
            host.on(ev.PeerIdentified, lambda e: identified.set())
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            our = str(host.peer_id)
            (addr,) = host.full_addrs()
            assert str(addr).endswith(f"/ws/p2p/{our}")
            info = await js.dial(str(addr))
            assert info["peerId"] == our and info["direction"] == "outbound"
            assert info["remoteAddr"] == str(addr)
            assert info["muxer"] == MUXERS[muxer] and info["encryption"] == "/noise"
            assert await js.ping(our) < 2000
            ident = await js.identify(our)
            assert ident["agentVersion"].startswith("aiolibp2p/")
            assert {"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(
                ident["protocols"]
            )
            ws_addrs = {str(a) for a in host.listen_addrs}
            assert all(a.endswith("/ws") for a in ws_addrs), ws_addrs
            assert _bare(ident["listenAddrs"]) == ws_addrs
            assert ident["signedPeerRecord"] is not None, ident
            assert _bare(ident["signedPeerRecord"]["addrs"]) == ws_addrs
            env = ident["peerStore"]["peerRecordEnvelope"]
            assert env is not None and env["verified"], ident["peerStore"]
            assert ident["publicKey"] == host.private_key.public_key.to_protobuf().hex()
            assert (await js.echo(our, nbytes=MIB4, streams=1))["bytes"] == MIB4
            assert (await js.echo(our, nbytes=0, streams=1))["bytes"] == 0
            assert (await js.echo(our, nbytes=1024, streams=100))["bytes"] == 100 * 1024
            async with asyncio.timeout(5):
                await identified.wait()
            pinfo = await host.identify(js.peer_id)
            assert pinfo.agent_version.startswith("js-libp2p")
            assert {str(a) for a in pinfo.listen_addrs} == _bare(js.addrs)
            (conn,) = host.connections(aiolibp2p.PeerId.from_string(js.peer_id))
            assert (conn.transport, conn.direction.value) == ("websocket", "inbound")
            # js (the ws client here) closes: we see it within 1 s
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await js.hangup(our)
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert loop.time() - t0 < 1.0
            assert host.connections() == []


async def test_redial_after_close_ws() -> None:
    """Back-to-back js dials to our ws listener: the first frame right behind the HTTP 101 must not be lost
    (it was, on Node 20 with the ``ws`` package dispatching it before libp2p listened for messages)."""
    async with asyncio.timeout(20):
        async with _js() as js, _host() as host:
            our = str(host.peer_id)
            for _ in range(6):
                info = await js.dial(str(host.full_addrs()[0]))
                assert info["encryption"] == "/noise"
                mark = js.mark()
                await js.hangup(our)
                await js.wait_event("connection:close", after=mark, timeout=2.0, peerId=our)


async def test_js_both_transports_python_ws_only() -> None:
    """js listens on tcp and ws; a ws-only host dials the ws address and js reports it as ws."""
    async with asyncio.timeout(20):
        async with JsPeer(transport="both") as js, _host(listen=[]) as host:
            assert len(js.addrs) == 2
            with pytest.raises(DialError):
                await host.connect(js.addr_of("tcp"))  # no tcp transport here
            peer = await host.connect(js.addr_of("ws"))
            (conn,) = host.connections(peer)
            assert str(conn.remote_addr) == js.addr_of("ws").rsplit("/p2p/", 1)[0]
            info = await host.identify(peer)
            assert {str(a) for a in info.listen_addrs} == _bare(js.addrs)
            assert info.signed_record_valid
