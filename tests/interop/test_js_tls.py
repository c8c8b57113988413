"""aiolibp2p ⇄ js-libp2p 3.x with libp2p TLS (/tls/1.0.0, @libp2p/tls) over TCP, both directions.

The same checks as with Noise (ping, identify with a verified signed peer record, 4 MiB echo, 100 streams,
close seen within 1 s), with yamux and mplex. js-tls does early muxer negotiation: it offers its muxers then
``libp2p`` in ALPN and, as a server, picks the first of the client's entries it supports; here the muxer
chosen by ALPN is recorded on our side and no multistream-select muxer round follows (it would break the
connection if only one side skipped it).

Key types: Ed25519, secp256k1 and RSA peer keys interoperate. ECDSA does not: js-libp2p 3.x cannot make an
ECDSA peer id at all (@libp2p/peer-id: "Unsupported key type") and @libp2p/crypto 5.1.23 cannot decode a
spec-conformant ECDSA public key (PKIX SubjectPublicKeyInfo, as go-libp2p and we send): its
``unmarshalECDSAPublicKey`` expects its own SEQUENCE{1, [0] curve OID, [1] BIT STRING} layout and throws
"Cannot read properties of undefined (reading '1')" while verifying our certificate extension
(``test_tls_peer_key_types`` pins it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest
from jspeer import JsPeer, JsPeerError

import aiolibp2p
from aiolibp2p.core.interfaces import SecureSession
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.crypto.keys import KeyType, PrivateKey, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import DialError
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo
from aiolibp2p.security.tls import TlsSecurity

pytestmark = pytest.mark.interop

TLS = "/tls/1.0.0"
YAMUX, MPLEX = "/yamux/1.0.0", "/mplex/6.7.0"
MUXERS = {"yamux": YAMUX, "mplex": MPLEX}
MIB4 = 4 * 1024 * 1024


class RecordingTls(TlsSecurity):
    """TlsSecurity that remembers the muxer ALPN chose for every session (None: multistream-select)."""

    def __init__(self, key: PrivateKey) -> None:
        super().__init__(key)
        self.early: list[str | None] = []

    async def secure_outbound(
        self, reader: PipeReader, remote_peer: PeerId | None, muxers: Sequence[str]
    ) -> SecureSession:
        session = await super().secure_outbound(reader, remote_peer, muxers)
        self.early.append(session.early_muxer)
        return session

    async def secure_inbound(self, reader: PipeReader, muxers: Sequence[str]) -> SecureSession:
        session = await super().secure_inbound(reader, muxers)
        self.early.append(session.early_muxer)
        return session


def _js(muxer: str = "yamux", **kw: object) -> JsPeer:
    # js mplex aborts a muxer whose peer opens more than 5 streams a second unless told otherwise
    kw.setdefault("security", "tls")
    return JsPeer(muxer=muxer, mplex_disconnect_threshold=10_000, **kw)  # type: ignore[arg-type]


def _host(muxers: Sequence[str], *, key: PrivateKey | None = None) -> tuple[aiolibp2p.Host, RecordingTls]:
    key = key or generate_key_pair()
    sec = RecordingTls(key)
    return aiolibp2p.new_host(key=key, security=[sec], muxers=list(muxers)), sec


def _bare(addrs: list[str]) -> set[str]:
    return {a.rsplit("/p2p/", 1)[0] for a in addrs}


async def _python_dials_js(host: aiolibp2p.Host, sec: RecordingTls, js: JsPeer, muxer: str) -> None:
    peer = await host.connect(js.addr)
    assert str(peer) == js.peer_id
    (conn,) = host.connections(peer)
    assert (conn.security, conn.muxer) == (TLS, muxer)
    assert sec.early == [muxer]  # chosen by js (the TLS server) through ALPN
    assert await host.ping(peer) < 2
    info = await host.identify(peer)
    assert info.agent_version.startswith("js-libp2p"), info.agent_version
    assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info.protocols)
    assert info.signed_record_valid
    assert {str(a) for a in info.listen_addrs} == _bare(js.addrs)
    s = await host.new_stream(peer, [ECHO])
    assert await echo_roundtrip(s, MIB4) == MIB4
    s = await host.new_stream(peer, [ECHO])
    assert await echo_roundtrip(s, 0) == 0

    async def small() -> int:
        st = await host.new_stream(peer, [ECHO])
        return await echo_roundtrip(st, 1024)

    assert await asyncio.gather(*(small() for _ in range(100))) == [1024] * 100
    (jc,) = [c for c in await js.connections() if c["peerId"] == str(host.peer_id)]
    assert (jc["encryption"], jc["muxer"], jc["direction"]) == (TLS, muxer, "inbound")
    # our close (close_notify, then FIN) is seen by js within 1 s
    mark = js.mark()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await host.disconnect(peer)
    await js.wait_event("connection:close", after=mark, timeout=1.0, peerId=str(host.peer_id))
    assert loop.time() - t0 < 1.0


async def _js_dials_python(host: aiolibp2p.Host, sec: RecordingTls, js: JsPeer, muxer: str) -> None:
    identified = asyncio.Event()
    host.on(ev.PeerIdentified, lambda e: identified.set())
    gone = asyncio.Event()
    host.on(ev.PeerDisconnected, lambda e: gone.set())
    our = str(host.peer_id)
    info = await js.dial(str(host.full_addrs()[0]))
    assert info["peerId"] == our and info["direction"] == "outbound"
    assert (info["encryption"], info["muxer"]) == (TLS, muxer)
    assert sec.early[-1] == muxer  # we (the TLS server) chose it from js's ALPN offer
    assert await js.ping(our) < 2000
    ident = await js.identify(our)
    assert ident["agentVersion"].startswith("aiolibp2p/")
    assert {"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(ident["protocols"])
    ours = {str(a) for a in host.listen_addrs}
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
    (conn,) = host.connections(aiolibp2p.PeerId.from_string(js.peer_id))
    assert (conn.security, conn.muxer, conn.direction.value) == (TLS, muxer, "inbound")
    # js closes: we see it within 1 s
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await js.hangup(our)
    async with asyncio.timeout(1.0):
        await gone.wait()
    assert loop.time() - t0 < 1.0
    assert host.connections() == []


@pytest.mark.parametrize("muxer", list(MUXERS))
async def test_tls_both_ways(muxer: str) -> None:
    """Python dials js, then js dials Python; TLS + ``muxer`` chosen by ALPN each time."""
    host, sec = _host([MUXERS[muxer]])
    async with asyncio.timeout(30):
        async with _js(muxer) as js, host:
            host.set_stream_handler(ECHO, handle_echo)
            await _python_dials_js(host, sec, js, MUXERS[muxer])
            await _js_dials_python(host, sec, js, MUXERS[muxer])
            assert sec.early == [MUXERS[muxer]] * 2


async def test_tls_alpn_and_security_preferences() -> None:
    """Preferences on both sides, opposite orders. Security (multistream-select): the dialer's first that
    the listener supports. Muxer (ALPN): the TLS server takes the client's first entry it supports."""
    key = generate_key_pair()
    sec = RecordingTls(key)
    host = aiolibp2p.new_host(key=key, security=[sec, "noise"], muxers=[MPLEX, YAMUX])
    async with asyncio.timeout(20):
        async with _js("both", security="tls-noise") as js, host:  # js: yamux, mplex; noise, tls
            peer = await host.connect(js.addr)
            (conn,) = host.connections(peer)
            assert (conn.security, conn.muxer) == (TLS, MPLEX) and sec.early == [MPLEX]  # js chose our first
            assert await host.ping(peer) < 2
            mark = js.mark()
            await host.disconnect(peer)
            await js.wait_event("connection:close", after=mark, timeout=2.0)
            info = await js.dial(str(host.full_addrs()[0]))
            assert (info["encryption"], info["muxer"]) == (TLS, YAMUX)
            assert sec.early == [MPLEX, YAMUX]  # we chose js's first
            assert await js.ping(str(host.peer_id)) < 2000
            mark = js.mark()
            await js.hangup(str(host.peer_id))
            await js.wait_event("connection:close", after=mark, timeout=2.0)
            # a host preferring noise gets noise from the same js peer
            async with aiolibp2p.new_host(listen=[], security=["noise", "tls"], muxers=[YAMUX]) as other:
                peer = await other.connect(js.addr)
                assert other.connections(peer)[0].security == "/noise"
                assert await other.ping(peer) < 2


async def test_tls_over_websocket() -> None:
    """TLS (not Noise) negotiated inside a WebSocket connection, both ways."""
    key = generate_key_pair()
    sec = RecordingTls(key)
    host = aiolibp2p.new_host(
        key=key, listen=["/ip4/127.0.0.1/tcp/0/ws"], transports=["ws"], security=[sec], muxers=[YAMUX]
    )
    async with asyncio.timeout(20):
        async with _js(transport="ws") as js, host:
            host.set_stream_handler(ECHO, handle_echo)
            peer = await host.connect(js.addr)
            (conn,) = host.connections(peer)
            assert (conn.transport, conn.security, conn.muxer) == ("websocket", TLS, YAMUX)
            s = await host.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, MIB4) == MIB4
            mark = js.mark()
            await host.disconnect(peer)
            await js.wait_event("connection:close", after=mark, timeout=2.0)
            info = await js.dial(str(host.full_addrs()[0]))
            assert (info["encryption"], info["muxer"]) == (TLS, YAMUX)
            assert (await js.echo(str(host.peer_id), nbytes=MIB4))["bytes"] == MIB4
            assert sec.early == [YAMUX, YAMUX]


async def test_tls_peer_key_types() -> None:
    """Both peers use secp256k1, or both RSA, identity keys: the certificate extension signs and verifies
    both ways (the two js peers start concurrently). An ECDSA identity key in our certificate is refused by js
    in both directions, a js-libp2p limitation (see the module docstring)."""
    kinds = [KeyType.Secp256k1, KeyType.RSA]
    theirs = [generate_key_pair(k) for k in kinds]
    async with asyncio.timeout(20), contextlib.AsyncExitStack() as stack:
        peers = [_js(private_key_hex=k.to_protobuf().hex(), name=f"js-{k.key_type.name}") for k in theirs]
        await asyncio.gather(*(stack.enter_async_context(js) for js in peers))
        for kind, key, js in zip(kinds, theirs, peers, strict=True):
            ours = generate_key_pair(kind)
            host, _ = _host([YAMUX], key=ours)
            async with host:
                assert js.peer_id == str(key.public_key.peer_id)
                peer = await host.connect(js.addr)
                assert str(peer) == js.peer_id and await host.ping(peer) < 2
                mark = js.mark()
                await host.disconnect(peer)
                await js.wait_event("connection:close", after=mark, timeout=2.0)
                info = await js.dial(str(host.full_addrs()[0]))
                assert info["peerId"] == str(host.peer_id) and info["encryption"] == TLS
                ident = await js.identify(str(host.peer_id))
                assert ident["publicKey"] == ours.public_key.to_protobuf().hex()
                mark = js.mark()
                await js.hangup(str(host.peer_id))
                await js.wait_event("connection:close", after=mark, timeout=2.0)

        js = peers[0]
        mark = js.mark()
        host, _ = _host([YAMUX], key=generate_key_pair(KeyType.ECDSA))
        async with host:
            gone = asyncio.Event()
            host.on(ev.PeerDisconnected, lambda e: gone.set())
            try:
                await host.connect(js.addr)
            except DialError:
                pass
            else:  # TLS 1.3: our client handshake may end before js has checked (and refused) our certificate
                async with asyncio.timeout(2.0):
                    await gone.wait()
            with pytest.raises(JsPeerError) as refused:
                await js.dial(str(host.full_addrs()[0]))
            assert "reading '1'" in str(refused.value) or "ECDSA" in str(refused.value)
            assert host.connections() == []
            assert js.find_events("connection:open", after=mark) == []
