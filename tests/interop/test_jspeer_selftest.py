"""Self-test of the js interop harness: two js-libp2p peers talking to each other.

If this fails, the harness (interop/js/peer.mjs or tests/interop/jspeer.py) is
broken, not aiolibp2p.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from jspeer import JsPeer, JsPeerError

pytestmark = pytest.mark.interop

MUXER_IDS = {"yamux": "/yamux/1.0.0", "mplex": "/mplex/6.7.0"}


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_two_js_peers(muxer: str) -> None:
    # js mplex drops a connection whose remote opens > 5 streams/s by default (see
    # test_js_mplex_default_new_stream_rate_limit); lift that for 100 concurrent streams
    opts = {"muxer": muxer, "mplex_disconnect_threshold": 1000}
    async with JsPeer(name="server", **opts) as server, JsPeer(name="client", **opts) as client:
        assert server.peer_id.startswith("12D3KooW")
        assert server.addr.endswith(f"/p2p/{server.peer_id}")
        assert server.addr.startswith("/ip4/127.0.0.1/tcp/")

        conn = await client.dial(server.addr)
        assert conn["peerId"] == server.peer_id
        assert conn["muxer"] == MUXER_IDS[muxer]
        assert conn["encryption"] == "/noise"
        assert conn["direction"] == "outbound"

        # both sides report the connection as an event
        opened = await server.wait_event("connection:open", peerId=client.peer_id, timeout=5)
        assert opened["direction"] == "inbound"
        assert opened["muxer"] == MUXER_IDS[muxer]
        await client.wait_event("connection:open", peerId=server.peer_id, timeout=5)

        rtt = await client.ping(server.peer_id)
        assert 0 <= rtt < 5000

        info = await client.identify(server.peer_id, timeout=10)
        assert info["peerId"] == server.peer_id
        assert "/echo/1.0.0" in info["protocols"]
        assert "/ipfs/ping/1.0.0" in info["protocols"]
        assert "/ipfs/id/1.0.0" in info["protocols"]
        assert info["agentVersion"] and "libp2p" in info["agentVersion"]
        assert info["protocolVersion"]
        # hex of the protobuf PublicKey: Ed25519 (type 1), 32 key bytes
        assert info["publicKey"].startswith("08011220") and len(info["publicKey"]) == 2 * 36
        server_addr = server.addr.removesuffix(f"/p2p/{server.peer_id}")
        assert server_addr in info["listenAddrs"]
        assert info["signedPeerRecord"] is not None
        assert server_addr in info["signedPeerRecord"]["addrs"]
        assert info["peerStore"]["peerRecordEnvelope"]["verified"] is True
        assert info["observedAddr"] is not None and info["observedAddr"].startswith("/ip4/127.0.0.1/tcp/")
        assert any(a["certified"] for a in info["peerStore"]["addrs"])

        big = await client.echo(server.peer_id, nbytes=4 * 1024 * 1024, streams=1, timeout=20)
        assert big["bytes"] == 4 * 1024 * 1024
        many = await client.echo(server.peer_id, nbytes=1024, streams=100, timeout=20)
        assert many["bytes"] == 100 * 1024
        # the server saw (and reported) every echo stream it served
        served = [e for e in server.find_events("echo:served", peerId=client.peer_id)]
        for _ in range(50):
            if len(served) >= 101:
                break
            await asyncio.sleep(0.05)
            served = server.find_events("echo:served", peerId=client.peer_id)
        assert sorted(e["bytes"] for e in served) == [1024] * 100 + [4 * 1024 * 1024]

        conns = await server.connections()
        assert [c["peerId"] for c in conns] == [client.peer_id]
        assert conns[0]["status"] == "open"

        mark = server.mark()
        await client.hangup(server.peer_id)
        await server.wait_event("connection:close", peerId=client.peer_id, after=mark, timeout=5)
        assert await client.connections() == []


async def test_stream_and_extra_protocols(js_peer: JsPeer, js_peer_factory: Callable[..., Any]) -> None:
    server = js_peer
    client: JsPeer = await js_peer_factory(name="client", listen=False)
    await client.dial(server.addr)
    # multistream-select picks the first protocol the server supports
    proto, got = await client.stream(server.peer_id, ["/nope/1.0.0", "/echo/1.0.0"], b"hello")
    assert (proto, got) == ("/echo/1.0.0", b"hello")
    # optimistic ("lazy") negotiation: protocol and data in one write
    proto, got = await client.stream(server.peer_id, "/echo/1.0.0", b"lazy", negotiate_fully=False)
    assert (proto, got) == ("/echo/1.0.0", b"lazy")
    with pytest.raises(JsPeerError, match="stream failed"):
        await client.stream(server.peer_id, "/extra/2.0.0", b"x", timeout=5)
    await server.handle_echo("/extra/2.0.0")
    proto, got = await client.stream(server.peer_id, "/extra/2.0.0", bytes(range(256)))
    assert (proto, got) == ("/extra/2.0.0", bytes(range(256)))
    await server.wait_event("echo:served", protocol="/extra/2.0.0", bytes=256, timeout=5)
    await server.unhandle("/extra/2.0.0")
    with pytest.raises(JsPeerError, match="stream failed"):
        await client.stream(server.peer_id, "/extra/2.0.0", b"x", timeout=5)


async def test_errors_are_reported() -> None:
    async with JsPeer(listen=False, connection_monitor=False) as js:
        assert js.addrs == []
        with pytest.raises(JsPeerError, match="unknown command"):
            await js.command("no-such-command")
        # nothing listens there: the dial fails (bounded) instead of hanging
        with pytest.raises(JsPeerError, match="dial failed"):
            await js.dial("/ip4/127.0.0.1/tcp/1", timeout=5)
        with pytest.raises(JsPeerError):
            await js.wait_event("connection:open", timeout=0.2)
        await js.stop()
        assert not js.running
        with pytest.raises(JsPeerError, match="not running"):
            await js.command("connections")


async def test_sigterm_stops_cleanly() -> None:
    async with JsPeer(name="a") as a, JsPeer(name="b") as b:
        await b.dial(a.addr)
        await a.terminate()
        assert a.returncode == 0
        assert a.find_events("stopped")
        # b notices the connection going away
        await b.wait_event("connection:close", peerId=a.peer_id, timeout=5)


async def test_js_mplex_default_new_stream_rate_limit() -> None:
    """Documents a js-libp2p behaviour interop tests must respect: with default
    settings js mplex aborts the connection when the remote opens more than 5
    new streams within a second."""
    async with (
        JsPeer(muxer="mplex", name="server") as server,
        JsPeer(muxer="mplex", name="client", mplex_disconnect_threshold=1000) as client,
    ):
        await client.dial(server.addr)
        await client.echo(server.peer_id, nbytes=16, streams=4)  # under the limit: fine
        await asyncio.sleep(1.1)  # let the rate limiter window pass
        mark = server.mark()
        with pytest.raises(JsPeerError, match="echo streams failed"):
            await client.echo(server.peer_id, nbytes=16, streams=20, timeout=10)
        # it is the server (js mplex) that gave up on the streams
        await server.wait_event("echo:error", peerId=client.peer_id, after=mark, timeout=5)
        assert server.find_events("echo:served", after=mark) == []
