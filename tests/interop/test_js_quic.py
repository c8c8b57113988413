"""aiolibp2p ⇄ js-libp2p 3.x over QUIC-v1 (@chainsafe/libp2p-quic, quinn underneath), both directions.

QUIC brings its own security (libp2p TLS inside the QUIC handshake, ALPN ``libp2p``) and native streams, so
neither side negotiates a security protocol or a muxer. Each side checks what it learnt from the other: ping,
identify (protocols, agent version, the ``/quic-v1`` listen addresses, a signed peer record that verifies),
a 4 MiB echo verified byte by byte, 100 concurrent streams, and a close (CONNECTION_CLOSE) seen by the other
side within 1 s.

js QUIC defaults: 10 s idle timeout, a keep-alive PING every 5 s. The idle timeout in effect is the smaller
of both sides' (RFC 9000 §10.1), so our keep-alive (15 s by default) must follow the peer's 10 s: the idle
test turns js's own keep-alive and connection monitor off and checks that the connection outlives 10 s of
silence on our PINGs alone.
"""

from __future__ import annotations

import asyncio

import pytest
from jspeer import JsPeer, transport_of

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import DialError, PeerIdMismatch
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

pytestmark = pytest.mark.interop

MIB4 = 4 * 1024 * 1024
QUIC_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"


def _host(listen: list[str] | None = None) -> aiolibp2p.Host:
    return aiolibp2p.new_host(listen=[QUIC_LISTEN] if listen is None else listen, transports=["quic"])


def _bare(addrs: list[str]) -> set[str]:
    return {a.rsplit("/p2p/", 1)[0] for a in addrs}


async def test_python_dials_js_quic() -> None:
    async with asyncio.timeout(30):
        async with JsPeer(transport="quic") as js, _host() as host:
            assert js.addr.endswith(f"/quic-v1/p2p/{js.peer_id}"), js.addrs
            peer = await host.connect(js.addr)
            assert str(peer) == js.peer_id
            (conn,) = host.connections(peer)
            assert (conn.transport, conn.security, conn.muxer) == ("quic", "/tls/1.0.0", "quic")
            assert str(conn.remote_addr) == js.addr.rsplit("/p2p/", 1)[0]
            assert await host.ping(peer) < 2
            info = await host.identify(peer)
            assert info.agent_version.startswith("js-libp2p"), info.agent_version
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info.protocols)
            assert info.signed_record_valid
            assert {str(a) for a in info.listen_addrs} == _bare(js.addrs)
            # we dialed from our listening socket: js observed our listen port (what hole punching needs)
            assert info.observed_addr is not None
            assert str(info.observed_addr).rsplit("/p2p/", 1)[0] in {str(a) for a in host.listen_addrs}
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, MIB4) == MIB4
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 0) == 0

            async def small() -> int:
                st = await host.new_stream(peer, [ECHO])
                return await echo_roundtrip(st, 1024)

            # more than js's 256 concurrent streams in total, in two waves: its MAX_STREAMS credit returns.
            # identify is done, so these would be lazy (0-RTT) streams if QUIC connections allowed them: js's
            # QUIC listener loses the data of a lazy proposal (see transports/quic/connection.py)
            assert await asyncio.gather(*(small() for _ in range(100))) == [1024] * 100
            assert await asyncio.gather(*(small() for _ in range(200))) == [1024] * 200
            assert len(host.connections(peer)) == 1
            (jc,) = [c for c in await js.connections() if c["peerId"] == str(host.peer_id)]
            assert (jc["direction"], jc["muxer"]) == ("inbound", "quic")
            assert "/quic-v1" in jc["remoteAddr"]
            # our CONNECTION_CLOSE is seen by js within 1 s
            mark = js.mark()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await host.disconnect(peer)
            await js.wait_event("connection:close", after=mark, timeout=1.0, peerId=str(host.peer_id))
            assert loop.time() - t0 < 1.0


async def test_js_dials_python_quic() -> None:
    async with asyncio.timeout(30):
        async with JsPeer(transport="quic") as js, _host() as host:
            host.set_stream_handler(ECHO, handle_echo)
            identified = asyncio.Event()
            host.on(ev.PeerIdentified, lambda e: identified.set())
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            our = str(host.peer_id)
            (addr,) = host.full_addrs()
            assert str(addr).endswith(f"/quic-v1/p2p/{our}")
            info = await js.dial(str(addr))
            assert info["peerId"] == our and info["direction"] == "outbound"
            assert info["remoteAddr"] == str(addr)
            assert info["muxer"] == "quic"
            assert await js.ping(our) < 2000
            ident = await js.identify(our)
            assert ident["agentVersion"].startswith("aiolibp2p/")
            assert {"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(
                ident["protocols"]
            )
            ours = {str(a) for a in host.listen_addrs}
            assert all(a.endswith("/quic-v1") for a in ours), ours
            assert _bare(ident["listenAddrs"]) == ours
            assert ident["signedPeerRecord"] is not None, ident
            assert _bare(ident["signedPeerRecord"]["addrs"]) == ours
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
            assert pinfo.signed_record_valid
            (conn,) = host.connections(PeerId.from_string(js.peer_id))
            assert (conn.transport, conn.direction.value) == ("quic", "inbound")
            # js closes: we see its CONNECTION_CLOSE within 1 s
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await js.hangup(our)
            async with asyncio.timeout(1.0):
                await gone.wait()
            assert loop.time() - t0 < 1.0
            assert host.connections() == []


async def test_quic_outlives_js_idle_timeout_on_our_keepalive() -> None:
    """js closes a QUIC connection after 10 s of silence. With js's own keep-alive and ping monitor off,
    only our PINGs (every half of the peer's idle timeout, not our 15 s default) keep it open."""
    async with asyncio.timeout(40):
        js_args = ["--quic-keepalive-ms", "60000"]
        async with (
            JsPeer(transport="quic", connection_monitor=False, extra_args=js_args) as js,
            _host() as host,
        ):
            host.set_stream_handler(ECHO, handle_echo)
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            peer = await host.connect(js.addr)
            mark = js.mark()
            await asyncio.sleep(12.5)
            assert not gone.is_set()
            assert js.find_events("connection:close", after=mark) == []
            assert len(host.connections(peer)) == 1
            assert await host.ping(peer) < 2
            assert (await js.echo(str(host.peer_id), nbytes=1024))["bytes"] == 1024


async def test_quic_wrong_peer_id_refused() -> None:
    """The certificate's peer ID must be the one in the address: a mismatch fails the dial, typed."""
    async with asyncio.timeout(20):
        async with JsPeer(transport="quic") as js, _host(listen=[]) as host:
            bare = js.addr.rsplit("/p2p/", 1)[0]
            other = generate_key_pair().public_key.peer_id
            with pytest.raises(DialError) as refused:
                await host.connect(f"{bare}/p2p/{other}")
            errors = refused.value.errors.values()
            assert any(isinstance(e, PeerIdMismatch) for e in errors), refused.value.errors
            assert host.connections() == []
            peer = await host.connect(js.addr)  # the right ID still works
            assert await host.ping(peer) < 2


async def test_js_all_transports_prefers_quic() -> None:
    """js listens on TCP, ws and QUIC; a default host (QUIC first in the dial ranking) ends up on QUIC, and
    js dialing our QUIC address ends up on QUIC too."""
    async with asyncio.timeout(20):
        async with JsPeer(transport="all") as js, aiolibp2p.new_host() as host:
            assert {transport_of(a) for a in js.addrs} == {"tcp", "ws", "quic"}
            peer = await host.connect(js.addrs)
            (conn,) = host.connections(peer)
            assert conn.transport == "quic"
            assert await host.ping(peer) < 2
