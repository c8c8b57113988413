"""Lazy (0-RTT) protocol negotiation for new streams, as go-libp2p opens them: used when the peerstore says
the peer supports the protocol and the connection is demonstrably alive; checked by the first read, or in
the background for write-only streams; the FIN waits for the listener's answer."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import aiolibp2p
from aiolibp2p.exceptions import StreamReset
from aiolibp2p.multistream import LazyNegotiatedStream
from aiolibp2p.network.swarm import SwarmConfig
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import handle_echo
from aiolibp2p.protocols.ping import PROTOCOL_ID as PING

T = 10.0


def _host(**kw: object) -> aiolibp2p.Host:
    return aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"], **kw)


async def test_known_protocol_on_live_connection_is_opened_lazily() -> None:
    async with _host() as a, _host() as b, asyncio.timeout(T):
        b.set_stream_handler(ECHO, handle_echo)
        peer = await a.connect(b.full_addrs()[0])
        first = await a.new_stream(peer, [ECHO])  # nothing known yet: negotiated in full
        assert not isinstance(first._inner, LazyNegotiatedStream)
        await first.close()
        await a.identify(peer)
        s = await a.new_stream(peer, ["/unknown/1", ECHO])  # the known one is proposed, lazily
        assert isinstance(s._inner, LazyNegotiatedStream)
        assert s.protocol == ECHO
        await s.write(b"hello")
        assert await s.readexactly(5) == b"hello"
        await s.close_write()
        assert await s.read_all(10) == b""
        assert a.peerstore.supports(peer, [PING]) == [PING]
        await a.ping(peer)


async def test_idle_connection_is_negotiated_in_full() -> None:
    cfg = dataclasses.replace(SwarmConfig(), lazy_negotiation_max_idle=0.05)
    async with _host(swarm_config=cfg) as a, _host() as b, asyncio.timeout(T):
        b.set_stream_handler(ECHO, handle_echo)
        peer = await a.connect(b.full_addrs()[0])
        await a.identify(peer)
        await asyncio.sleep(0.3)  # nothing received for longer than lazy_negotiation_max_idle
        s = await a.new_stream(peer, [ECHO])
        assert not isinstance(s._inner, LazyNegotiatedStream)
        await s.close()


async def test_lazy_stream_refused_is_reset_even_if_never_read() -> None:
    """The peer dropped the protocol after identify: a write-only lazy stream learns it (reset) without a
    read, and the FIN path reports the refusal."""
    async with _host() as a, _host() as b, asyncio.timeout(T):
        b.set_stream_handler(ECHO, handle_echo)
        peer = await a.connect(b.full_addrs()[0])
        await a.identify(peer)
        b.remove_stream_handler(ECHO)
        s = await a.new_stream(peer, [ECHO])
        assert isinstance(s._inner, LazyNegotiatedStream)
        await s.write(b"into the void?")
        with pytest.raises(StreamReset):
            while True:  # bounded by the timeout above
                await s.write(b"more")
                await asyncio.sleep(0.01)


async def test_lazy_close_write_waits_for_the_answer_so_data_and_fin_arrive_after_it() -> None:
    """close_write right after the first write: the FIN leaves only once the listener's echo came back (js
    listeners drop data that arrived with the proposal if the FIN beats their handler)."""
    async with _host() as a, _host() as b, asyncio.timeout(T):
        b.set_stream_handler(ECHO, handle_echo)
        peer = await a.connect(b.full_addrs()[0])
        await a.identify(peer)
        s = await a.new_stream(peer, [ECHO])
        inner = s._inner
        assert isinstance(inner, LazyNegotiatedStream)
        await s.write(b"x" * 1000)
        await s.close_write()
        assert inner.negotiated  # confirmed before the FIN went out
        assert await s.read_all(2000) == b"x" * 1000
