"""aiolibp2p ⇄ js-libp2p 3.x over WebRTC-direct (@libp2p/webrtc 6, node-datachannel/libdatachannel underneath),
both directions: ping, identify (with the /webrtc-direct/certhash listen addresses and a signed peer record),
a 4 MiB echo verified byte by byte, 50 concurrent streams, and a close seen by the other side within 1 s —
the founding bug was a WebRTC close that never reached the remote. A wrong /certhash fails the dial; our gater
refusing js at its first STUN check leaves no trace on our side; v2 ICE credentials against js (which knows only
v1) fail within the handshake timeout.

js makes a new certificate at every start, so its address (and certhash) is read from its output each time.
"""

from __future__ import annotations

import asyncio

import pytest
from jspeer import JsPeer, JsPeerError

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import DialError
from aiolibp2p.network import events as ev
from aiolibp2p.network.gater import ConnectionGater
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo
from aiolibp2p.transports.webrtc import WebRtcCertificate, WebRtcDirectConfig, WebRtcDirectTransport

pytestmark = pytest.mark.interop

MIB4 = 4 * 1024 * 1024
LISTEN = "/ip4/127.0.0.1/udp/0/webrtc-direct"


def _host() -> aiolibp2p.Host:
    return aiolibp2p.new_host(listen=[LISTEN], transports=["webrtc-direct"])


def _bare(addrs: list[str]) -> set[str]:
    return {a.rsplit("/p2p/", 1)[0] for a in addrs}


async def test_python_dials_js_webrtc_direct() -> None:
    async with asyncio.timeout(40):
        async with JsPeer(transport="webrtc-direct") as js, _host() as host:
            assert "/webrtc-direct/certhash/" in js.addr, js.addrs
            peer = await host.connect(js.addr)
            assert str(peer) == js.peer_id
            (conn,) = host.connections(peer)
            assert (conn.transport, conn.security, conn.muxer) == ("webrtc-direct", "/noise", "webrtc")
            assert await host.ping(peer) < 2
            info = await host.identify(peer)
            assert info.agent_version.startswith("js-libp2p"), info.agent_version
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info.protocols)
            assert info.signed_record_valid
            assert {str(a) for a in info.listen_addrs} == _bare(js.addrs)
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, MIB4) == MIB4

            async def small() -> int:
                st = await host.new_stream(peer, [ECHO])
                return await echo_roundtrip(st, 1024)

            assert await asyncio.gather(*(small() for _ in range(50))) == [1024] * 50
            assert len(host.connections(peer)) == 1
            # our close (SCTP ABORT + DTLS close_notify) is seen by js within 1 s
            mark = js.mark()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await host.disconnect(peer)
            await js.wait_event("connection:close", after=mark, timeout=1.0, peerId=str(host.peer_id))
            assert loop.time() - t0 < 1.0


async def test_js_dials_python_webrtc_direct() -> None:
    async with asyncio.timeout(40):
        async with JsPeer(transport="webrtc-direct") as js, _host() as host:
            host.set_stream_handler(ECHO, handle_echo)
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            our = str(host.peer_id)
            (addr,) = host.full_addrs()
            assert "/webrtc-direct/certhash/" in str(addr)
            info = await js.dial(str(addr))
            assert info["peerId"] == our and info["direction"] == "outbound"
            assert await js.ping(our) < 2000
            ident = await js.identify(our)
            assert ident["agentVersion"].startswith("aiolibp2p/")
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(ident["protocols"])
            ours = {str(a) for a in host.listen_addrs}
            assert _bare(ident["listenAddrs"]) == ours
            env = ident["peerStore"]["peerRecordEnvelope"]
            assert env is not None and env["verified"], ident["peerStore"]
            assert (await js.echo(our, nbytes=MIB4, streams=1))["bytes"] == MIB4
            assert (await js.echo(our, nbytes=1024, streams=50))["bytes"] == 50 * 1024
            (conn,) = host.connections(PeerId.from_string(js.peer_id))
            assert (conn.transport, conn.direction.value) == ("webrtc-direct", "inbound")
            # js closes: we see it within 1 s
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await js.hangup(our)
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert loop.time() - t0 < 1.0
            assert host.connections() == []


async def test_wrong_certhash_fails_the_dial() -> None:
    async with asyncio.timeout(30):
        async with JsPeer(transport="webrtc-direct") as js, _host() as host:
            good = js.addr.split("/certhash/")[1].split("/")[0]
            bad = js.addr.replace(good, WebRtcCertificate.generate().certhash)
            with pytest.raises(DialError) as ei:
                await host.connect(bad, timeout=10)
            assert "certhash" in repr(ei.value.errors) or "certhash" in str(ei.value), ei.value
            # the right one still works afterwards
            assert str(await host.connect(js.addr)) == js.peer_id


async def test_gater_refuses_a_js_dialer_at_its_first_stun_check() -> None:
    """Our listener asks the gater at the js dialer's first STUN check, before any ICE, DTLS or Noise work (as
    go-libp2p calls InterceptAccept per STUN check): refused, js gets no answer and its dial fails on its own
    (bounded) timeout, and we never create nor announce a connection; allowed again, the same js node
    connects and pings."""
    gater = ConnectionGater()
    gater.deny_subnet("127.0.0.0/8")
    async with asyncio.timeout(40):
        async with (
            JsPeer(transport="webrtc-direct") as js,
            aiolibp2p.new_host(listen=[LISTEN], transports=["webrtc-direct"], gater=gater) as host,
        ):
            (transport,) = host.swarm.transports
            assert isinstance(transport, WebRtcDirectTransport)
            opened: list[ev.Event] = []
            host.on(ev.ConnectionOpened, opened.append)
            (addr,) = host.full_addrs()
            with pytest.raises(JsPeerError):
                await js.dial(str(addr), timeout=4)
            assert transport.stats_gated >= 1
            assert opened == [] and host.connections() == []
            gater.denied_subnets.clear()
            info = await js.dial(str(addr), timeout=15)
            assert info["peerId"] == str(host.peer_id)
            assert await js.ping(str(host.peer_id)) < 2000
            assert len(opened) == 1


async def test_v2_credentials_against_a_v1_only_js_listener_fail_in_bounded_time() -> None:
    """js-libp2p 3.x (@libp2p/webrtc 6) knows only the ``libp2p+webrtc+v1/`` ICE credentials; a dialer set to v2
    (go-libp2p >= 0.49's) gets no answer from it and fails on its handshake timeout with a clear error, no
    hang; the same host dialing v1 connects (js has no v2 to test against: this is the mismatch a mixed
    network can meet)."""
    key = generate_key_pair()
    v2 = WebRtcDirectTransport(key, WebRtcDirectConfig(dial_version=2, handshake_timeout=3))
    async with asyncio.timeout(40):
        async with JsPeer(transport="webrtc-direct") as js:
            async with aiolibp2p.new_host(key=key, listen=[], transports=[v2]) as host:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                with pytest.raises(DialError) as ei:
                    await host.connect(js.addr, timeout=10)
                assert loop.time() - t0 < 6
                assert "handshake did not complete" in repr(ei.value.errors), ei.value.errors
            async with _host() as v1:
                assert str(await v1.connect(js.addr)) == js.peer_id


async def test_idle_connection_outlives_the_idle_timeout_both_ways() -> None:
    """Nothing said for longer than our idle timeout (15 s): our STUN consent checks and js's answers keep the
    connection alive on both sides (an idle connection is not a dead one)."""
    async with asyncio.timeout(60):
        async with JsPeer(transport="webrtc-direct") as js, _host() as host:
            peer = await host.connect(js.addr)
            (conn,) = host.connections(peer)
            await asyncio.sleep(18)
            assert not conn.is_closed() and host.connections(peer) == [conn]
            (jc,) = [c for c in await js.connections() if c["peerId"] == str(host.peer_id)]
            assert jc["status"] == "open"
            assert await host.ping(peer) < 2
