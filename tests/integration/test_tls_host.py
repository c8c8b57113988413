"""/tls/1.0.0 through the real host: TCP loopback and memory transport, yamux and mplex (chosen inside the
TLS handshake by ALPN), ping, identify, 4 MiB echo, and a TLS-only host refusing a Noise-only one."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.exceptions import DialError
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo
from aiolibp2p.security.tls import TlsSecurity

TRANSPORTS = {"tcp": "/ip4/127.0.0.1/tcp/0", "memory": "/memory/0"}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("muxer", ["/yamux/1.0.0", "/mplex/6.7.0"])
async def test_tls_host_connect_ping_identify_echo(transport: str, muxer: str) -> None:
    listen = TRANSPORTS[transport]
    ka, kb = generate_key_pair(), generate_key_pair()
    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(listen=[listen], key=ka, security=[TlsSecurity(ka)], muxers=[muxer]) as a,
            aiolibp2p.new_host(listen=[listen], key=kb, security=["tls"], muxers=[muxer]) as b,
        ):
            a.set_stream_handler(ECHO, handle_echo)
            peer = await b.connect(a.full_addrs()[0])
            assert peer == a.peer_id
            (conn,) = b.connections(peer)
            assert conn.security == "/tls/1.0.0"
            assert conn.muxer == muxer
            assert await b.ping(peer) > 0
            info = await b.identify(peer)
            assert info.signed_record_valid
            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 4 * 1024 * 1024) == 4 * 1024 * 1024
            assert await a.ping(b.peer_id) > 0


async def test_tls_preferred_over_noise_and_refused_by_noise_only() -> None:
    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(security=["tls", "noise"]) as a,
            aiolibp2p.new_host(security=["tls", "noise"]) as b,
            aiolibp2p.new_host(security=["noise"]) as c,
        ):
            peer = await b.connect(a.full_addrs()[0])
            (conn,) = b.connections(peer)
            assert conn.security == "/tls/1.0.0"
            # a noise-only dialer falls back to /noise with a host that offers both
            assert await c.connect(a.full_addrs()[0]) == a.peer_id
            (conn,) = c.connections(a.peer_id)
            assert conn.security == "/noise"
        async with aiolibp2p.new_host(security=["tls"]) as t, aiolibp2p.new_host(security=["noise"]) as n:
            with pytest.raises(DialError):
                await n.connect(t.full_addrs()[0])
