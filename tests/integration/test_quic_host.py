"""QUIC-v1 through the real host: connect, ping, identify, 4 MiB echo, 100 concurrent streams, close seen by
the remote within 1 s, QUIC preferred over TCP when both are offered, and a wrong /p2p refused."""

from __future__ import annotations

import asyncio
import time

import pytest

import aiolibp2p
from aiolibp2p.exceptions import DialError, PeerIdMismatch
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

QUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
TCP = "/ip4/127.0.0.1/tcp/0"


def quic_addr(h: aiolibp2p.Host) -> str:
    return next(str(a) for a in h.full_addrs() if "quic-v1" in str(a))


async def test_quic_host_connect_ping_identify_echo_streams_close() -> None:
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(listen=[QUIC, TCP], transports=["quic", "tcp"]) as a,
            aiolibp2p.new_host(listen=[QUIC], transports=["quic", "tcp"]) as b,
        ):
            a.set_stream_handler(ECHO, handle_echo)
            peer = await b.connect(quic_addr(a))
            assert peer == a.peer_id
            (conn,) = b.connections(peer)
            assert conn.transport == "quic"
            assert conn.muxer == "quic"
            assert conn.security == "/tls/1.0.0"
            assert "quic-v1" in str(conn.remote_addr)
            assert await b.ping(peer) > 0
            assert await a.ping(b.peer_id) > 0  # reuses the inbound connection
            assert len(a.connections(b.peer_id)) == 1
            info = await b.identify(peer)
            assert info.signed_record_valid
            assert any("quic-v1" in str(x) for x in info.listen_addrs)

            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 4 * 1024 * 1024) == 4 * 1024 * 1024

            async def one(i: int) -> None:
                st = await b.new_stream(peer, [ECHO])
                payload = i.to_bytes(4, "big") * 256
                await st.write(payload)
                await st.close_write()
                assert await st.read_all(1 << 20, timeout=10) == payload
                await st.close()

            await asyncio.gather(*(one(i) for i in range(100)))

            with a.bus.subscribe(ev.PeerDisconnected) as sub:
                t0 = time.monotonic()
                await b.disconnect(a.peer_id)
                gone = await sub.get(timeout=1.0)
                assert time.monotonic() - t0 < 1.0
            assert gone.peer == b.peer_id
            assert not a.connections(b.peer_id)


async def test_quic_preferred_over_tcp_and_wrong_peer_refused() -> None:
    async with asyncio.timeout(30):
        async with (
            aiolibp2p.new_host(listen=[TCP, QUIC], transports=["tcp", "quic"]) as a,
            aiolibp2p.new_host(listen=[QUIC], transports=["quic", "tcp"]) as b,
            aiolibp2p.new_host(listen=[QUIC], transports=["quic"]) as c,
        ):
            peer = await b.connect(a.full_addrs())
            (conn,) = b.connections(peer)
            assert conn.transport == "quic"
            # the dialer used its listening socket: the remote sees b's listen port
            b_port = next(a2 for a2 in b.listen_addrs if "quic-v1" in str(a2)).value_for_protocol("udp")
            (inbound,) = a.connections(b.peer_id)
            assert inbound.remote_addr is not None
            assert inbound.remote_addr.value_for_protocol("udp") == b_port
            # c's address with a's peer ID: the certificate names c, so the dial is refused
            wrong = quic_addr(c).rsplit("/p2p/", 1)[0] + f"/p2p/{a.peer_id}"
            with pytest.raises(DialError) as info:
                await b.connect(wrong, new_connection=True, timeout=5)
            assert any(isinstance(e, PeerIdMismatch) for e in info.value.errors.values())


async def test_quic_dial_dns_name() -> None:
    """``/dns4/localhost/...`` is resolved, then dialed; a name that does not resolve fails the dial with a
    DialError, and listening needs an IP."""
    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(listen=[QUIC], transports=["quic"]) as a,
            aiolibp2p.new_host(listen=[], transports=["quic"]) as b,
        ):
            port = quic_addr(a).split("/udp/", 1)[1].split("/", 1)[0]
            peer = await b.connect(f"/dns4/localhost/udp/{port}/quic-v1/p2p/{a.peer_id}")
            assert peer == a.peer_id and await b.ping(peer) > 0
            (conn,) = b.connections(peer)
            assert str(conn.remote_addr) == f"/ip4/127.0.0.1/udp/{port}/quic-v1"
            await b.disconnect(peer)
            with pytest.raises(DialError):
                await b.connect(f"/dns4/no-such-host.invalid/udp/{port}/quic-v1/p2p/{a.peer_id}")
            (quic,) = b.swarm.transports
            assert not quic.can_listen(aiolibp2p.Multiaddr(f"/dns4/localhost/udp/{port}/quic-v1"))
