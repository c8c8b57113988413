"""WebRTC-direct faults and bad input over loopback: a STUN flood with made-up ufrags is bounded and the
listener keeps serving; a dialer that expects another certhash is refused; an oversized framed message resets
only its stream; a peer that vanishes without a word is detected by the idle timeout; the certificate (so the
address) survives a restart when persisted."""

from __future__ import annotations

import asyncio
import pathlib
import socket
from typing import Any

import pytest

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.exceptions import DeadlineExceeded, DialError, StreamReset
from aiolibp2p.network import events as ev
from aiolibp2p.network.gater import ConnectionGater
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo
from aiolibp2p.transports.webrtc import WebRtcCertificate, WebRtcDirectConfig, WebRtcDirectTransport, ice
from aiolibp2p.transports.webrtc.framing import encode_data
from aiolibp2p.wire.varint import encode_uvarint

LISTEN = "/ip4/127.0.0.1/udp/0/webrtc-direct"


def _host(config: WebRtcDirectConfig | None = None, listen: bool = True) -> aiolibp2p.Host:
    key = generate_key_pair()
    return aiolibp2p.new_host(
        key=key, listen=[LISTEN] if listen else [], transports=[WebRtcDirectTransport(key, config)]
    )


async def test_stun_flood_with_unknown_ufrags_is_bounded() -> None:
    cfg = WebRtcDirectConfig(max_pending_inbound_handshakes=8, max_pending_per_ip=4, handshake_timeout=2)
    async with asyncio.timeout(20), _host(cfg) as srv, _host(listen=False) as cli:
        srv.set_stream_handler(ECHO, handle_echo)
        (transport,) = srv.swarm.transports
        assert isinstance(transport, WebRtcDirectTransport)
        (ep,) = transport._listening
        host, port = (
            srv.listen_addrs[0].value_for_protocol("ip4"),
            srv.listen_addrs[0].value_for_protocol("udp"),
        )
        assert host is not None and port is not None
        socks = []
        for _ in range(40):  # 40 source ports on one IP, each sending checks with fresh ufrags, then no DTLS
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.2", 0))
            socks.append(sock)
        try:
            for sock in socks:
                for _ in range(5):
                    _, data = ice.binding_request(
                        ice.IceCredentials.for_dial_v1(), controlling=True, tie_breaker=1, use_candidate=True
                    )
                    sock.sendto(data, (host, int(port)))
                    sock.sendto(b"\x00\x01garbage" * 3, (host, int(port)))
            await asyncio.sleep(0.3)
            assert ep.num_connections <= 4  # the per-IP bound
            assert ep.stats_refused > 0
            # the listener still serves a real peer meanwhile
            peer = await cli.connect(srv.full_addrs()[0])
            s = await cli.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 100_000) == 100_000
        finally:
            for sock in socks:
                sock.close()
        # the flood's half-open connections expire with the handshake timeout (2 s)
        async with asyncio.timeout(6):
            while ep.num_connections != 1:
                await asyncio.sleep(0.1)


async def test_dial_with_another_certhash_is_refused() -> None:
    async with asyncio.timeout(20), _host() as srv, _host(listen=False) as cli:
        good = srv.full_addrs()[0]
        bad = str(good).replace(
            str(good).split("/certhash/")[1].split("/")[0], WebRtcCertificate.generate().certhash
        )
        with pytest.raises(DialError) as ei:
            await cli.connect(bad, timeout=5)
        assert "certhash" in repr(ei.value.errors), ei.value.errors
        assert srv.connections() == []
        await cli.connect(good)


async def test_oversized_message_resets_only_its_stream() -> None:
    async with asyncio.timeout(20), _host() as srv, _host(listen=False) as cli:
        srv.set_stream_handler(ECHO, handle_echo)
        got: asyncio.Queue[aiolibp2p.Stream] = asyncio.Queue()

        async def park(s: aiolibp2p.Stream) -> None:
            got.put_nowait(s)
            await asyncio.sleep(5)

        srv.set_stream_handler("/park/1.0.0", park)
        peer = await cli.connect(srv.full_addrs()[0])
        s = await cli.new_stream(peer, ["/park/1.0.0"])
        await s.write(b"x")
        theirs = await got.get()
        ws = s.muxed_stream
        inner = getattr(ws, "_inner", ws)  # under a lazily negotiated stream
        # a framed message claiming 1 MiB: beyond max_receive_message_size (256 KiB + 1 KiB)
        inner._send([encode_uvarint(1 << 20) + b"\x12"])  # type: ignore[union-attr]
        with pytest.raises(StreamReset):
            await theirs.read(timeout=2)
        with pytest.raises(StreamReset):
            await s.read(timeout=2)
        # the connection and other streams are fine
        s2 = await cli.new_stream(peer, [ECHO])
        assert await echo_roundtrip(s2, 50_000) == 50_000
        assert len(cli.connections(peer)) == 1
        # a normal message of 16 KiB - 7 is fine
        assert len(encode_data(bytes(16377))) <= 16384


async def test_silently_vanished_peer_is_detected_by_the_idle_timeout() -> None:
    cfg = WebRtcDirectConfig(keepalive_interval=0.2, idle_timeout=1.0)
    async with asyncio.timeout(20), _host(cfg) as srv, _host(cfg, listen=False) as cli:
        gone = asyncio.Event()
        srv.on(ev.PeerDisconnected, lambda e: gone.set())
        peer = await cli.connect(srv.full_addrs()[0])
        await asyncio.sleep(0.6)  # consent checks keep an idle connection alive beyond...
        assert srv.connections() and cli.connections(peer)
        (conn,) = cli.connections(peer)
        await conn.muxed.ping()  # type: ignore[attr-defined]  # the swarm's liveness probe: a consent check
        (sconn,) = srv.connections(cli.peer_id)
        conn.muxed.endpoint._transport.abort()  # type: ignore[attr-defined]  # the dialer vanishes: no ABORT
        with pytest.raises(DeadlineExceeded):
            await sconn.muxed.ping()  # type: ignore[attr-defined]  # unanswered within keepalive_interval
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with asyncio.timeout(3):
            await gone.wait()
        assert loop.time() - t0 < 2.5
        assert srv.connections() == []


async def test_persisted_certificate_keeps_the_address(tmp_path: pathlib.Path) -> None:
    cfg = WebRtcDirectConfig(certificate_file=str(tmp_path / "cert.pem"))
    key = generate_key_pair()
    async with aiolibp2p.new_host(
        key=key, listen=[LISTEN], transports=[WebRtcDirectTransport(key, cfg)]
    ) as h:
        first = str(h.listen_addrs[0]).split("/certhash/")[1]
    async with aiolibp2p.new_host(
        key=key, listen=[LISTEN], transports=[WebRtcDirectTransport(key, cfg)]
    ) as h:
        assert str(h.listen_addrs[0]).split("/certhash/")[1] == first


async def test_v2_dialer_and_v1_dialer_on_one_listener() -> None:
    """One listening port serves WebRTC-direct v1 and v2 ufrags (go-libp2p >= 0.49 dials v2)."""
    async with (
        asyncio.timeout(20),
        _host() as srv,
        _host(WebRtcDirectConfig(dial_version=2), listen=False) as v2,
        _host(listen=False) as v1,
    ):
        srv.set_stream_handler(ECHO, handle_echo)
        for cli in (v2, v1):
            peer = await cli.connect(srv.full_addrs()[0])
            s = await cli.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 10_000) == 10_000
        assert len(srv.connected_peers()) == 2


async def test_two_hosts_dialing_each_other_at_once_both_connect() -> None:
    """Simultaneous dials both ways. Dialing from the listening sockets put both connections on one address
    pair; UDP routes by address, so each side's checks reached its own dial and both dials ran into the
    handshake timeout (10 s), every time. Dials now leave from a dial-only socket."""
    async with asyncio.timeout(20), _host() as a, _host() as b:
        a.set_stream_handler(ECHO, handle_echo)
        b.set_stream_handler(ECHO, handle_echo)
        pa, pb = await asyncio.gather(b.connect(a.full_addrs()[0]), a.connect(b.full_addrs()[0]))
        assert (pa, pb) == (a.peer_id, b.peer_id)
        for host, peer in ((a, pb), (b, pa)):
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 10_000) == 10_000
        # a dial leaves from an ephemeral port, not from the listening one
        (listen_a,) = a.listen_addrs
        for conn in b.connections(a.peer_id):
            if conn.direction.value == "inbound":
                assert conn.remote_addr is not None
                assert conn.remote_addr.value_for_protocol("udp") != listen_a.value_for_protocol("udp")


class _WrongPrologue(WebRtcDirectTransport):
    """A dialer whose Noise prologue names other certificates than the DTLS ones (a man in the middle's
    view): the handshake must fail on both sides."""

    def _noise(self, *, is_initiator: bool, expected_peer: object, prologue: bytes) -> Any:
        return super()._noise(
            is_initiator=is_initiator,
            expected_peer=expected_peer,  # type: ignore[arg-type]
            prologue=prologue[:-1] + bytes([prologue[-1] ^ 1]),
        )


async def test_noise_handshake_that_does_not_match_the_fingerprints_fails() -> None:
    key = generate_key_pair()
    bad = aiolibp2p.new_host(key=key, listen=[], transports=[_WrongPrologue(key)])
    async with asyncio.timeout(20), _host() as srv, bad as cli:
        with pytest.raises(DialError):
            await cli.connect(srv.full_addrs()[0], timeout=5)
        await asyncio.sleep(0.2)
        assert srv.connections() == [] and cli.connections() == []
        (transport,) = srv.swarm.transports
        assert isinstance(transport, WebRtcDirectTransport)
        (ep,) = transport._listening
        assert ep.num_connections == 0  # the failed connection is gone on the listener too
        async with _host(listen=False) as good:
            await good.connect(srv.full_addrs()[0])


async def test_cancelled_dial_leaves_nothing_sending() -> None:
    """A dial cancelled mid-handshake (a lost happy-eyeballs race) is aborted: no connection stays behind
    retransmitting STUN checks, and the listener drops the half-open connection once the dialer goes silent."""
    cfg = WebRtcDirectConfig(pending_silence_timeout=0.5)
    async with asyncio.timeout(20), _host(cfg) as srv:
        key = generate_key_pair()
        cli = WebRtcDirectTransport(key)
        # a silent UDP socket: the dialer's checks go unanswered, so its dial is stuck in ICE
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        try:
            port = sink.getsockname()[1]
            addr = aiolibp2p.Multiaddr(
                f"/ip4/127.0.0.1/udp/{port}/webrtc-direct/certhash/{WebRtcCertificate.generate().certhash}"
            )
            task = asyncio.ensure_future(cli.dial(addr))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.2)
            while True:  # drain what was sent before the cancel
                try:
                    sink.recvfrom(2048)
                except BlockingIOError:
                    break
            await asyncio.sleep(1.2)  # > stun_retransmit_max: a leaked connection would have sent again
            with pytest.raises(BlockingIOError):
                sink.recvfrom(2048)
            assert not any(ep.num_connections for ep in cli._endpoints)
            # the listener side: a dialer that sends one check and falls silent
            (transport,) = srv.swarm.transports
            assert isinstance(transport, WebRtcDirectTransport)
            (ep,) = transport._listening
            _, check = ice.binding_request(
                ice.IceCredentials.for_dial_v1(), controlling=True, tie_breaker=1, use_candidate=True
            )
            sink.sendto(check, ("127.0.0.1", int(srv.listen_addrs[0].value_for_protocol("udp") or 0)))
            await asyncio.sleep(0.2)
            assert ep.num_connections == 1
            async with asyncio.timeout(3):
                while ep.num_connections:
                    await asyncio.sleep(0.05)
        finally:
            sink.close()
            await cli.close()


async def test_gater_refuses_a_remote_at_its_first_stun_check() -> None:
    """The listener asks the gater's ``allow_accept`` at a new remote's first STUN check, before any ICE, DTLS
    or Noise work (go-libp2p calls InterceptAccept per STUN check): a refused remote gets no answer, so its
    dial fails on its own timeout; the listener never creates a connection nor announces one. Allowed again,
    the same remote connects."""
    key = generate_key_pair()
    gater = ConnectionGater()
    gater.deny_subnet("127.0.0.0/8")
    srv = aiolibp2p.new_host(key=key, listen=[LISTEN], transports=[WebRtcDirectTransport(key)], gater=gater)
    cfg = WebRtcDirectConfig(handshake_timeout=1.5)
    async with asyncio.timeout(20), srv, _host(cfg, listen=False) as cli:
        (transport,) = srv.swarm.transports
        assert isinstance(transport, WebRtcDirectTransport)
        (ep,) = transport._listening
        opened: list[ev.Event] = []
        srv.on(ev.ConnectionOpened, opened.append)
        with pytest.raises(DialError):
            await cli.connect(srv.full_addrs()[0])
        assert transport.stats_gated >= 1  # the first check and its retransmissions
        assert ep.num_connections == 0 and opened == [] and srv.connections() == []
        gater.denied_subnets.clear()
        peer = await cli.connect(srv.full_addrs()[0])
        assert peer == srv.peer_id and len(opened) == 1
