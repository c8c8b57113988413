"""Identify: push on protocol changes, merging split messages, and refusing records that are not the sender's."""

from __future__ import annotations

import asyncio

import pytest

import aiolibp2p
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.crypto.peer_record import make_signed_peer_record
from aiolibp2p.exceptions import ProtocolViolation
from aiolibp2p.network import events as ev
from aiolibp2p.protocols.identify.service import PROTOCOL_ID, decode_messages
from aiolibp2p.wire.pb import identify_pb2
from aiolibp2p.wire.varint import length_prefixed, try_decode_length_prefixed


async def test_push_updates_protocols_on_the_other_side() -> None:
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            await b.identify(peer)
            updated = asyncio.Event()
            b.on(ev.PeerProtocolsUpdated, lambda e: updated.set())

            async def noop(stream: aiolibp2p.Stream) -> None:
                await stream.close()

            a.set_stream_handler("/new/1.0.0", noop)
            await updated.wait()
            assert "/new/1.0.0" in b.peerstore.get_protocols(peer)
            a.remove_stream_handler("/new/1.0.0")
            for _ in range(100):
                if "/new/1.0.0" not in b.peerstore.get_protocols(peer):
                    break
                await asyncio.sleep(0.01)
            assert "/new/1.0.0" not in b.peerstore.get_protocols(peer)


async def test_observed_address_is_reported_but_never_advertised() -> None:
    """The remote's view of our address comes back in IdentifyInfo; with no AutoNAT to confirm it (and our
    ephemeral TCP port in it) it never enters what we advertise."""
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host() as b:
            before = b.advertised_addrs()
            peer = await b.connect(a.full_addrs()[0])
            info = await b.identify(peer)
            (conn,) = b.connections(peer)
            assert info.observed_addr == conn.local_addr
            assert info.observed_addr not in b.advertised_addrs() and b.advertised_addrs() == before


def test_split_messages_are_merged() -> None:
    first = identify_pb2.Identify(agentVersion="x", protocols=["/a"]).SerializeToString()
    second = identify_pb2.Identify(signedPeerRecord=b"rec").SerializeToString()
    merged = decode_messages(length_prefixed(first) + length_prefixed(second))
    assert (
        merged.agentVersion == "x" and list(merged.protocols) == ["/a"] and merged.signedPeerRecord == b"rec"
    )
    with pytest.raises(ProtocolViolation):
        decode_messages(length_prefixed(first) * 11)


async def test_a_record_of_another_peer_is_refused_even_when_cached() -> None:
    async with aiolibp2p.new_host(listen=[]) as h:
        svc = h.identify_service
        alice_key = generate_key_pair()
        alice = PeerId.from_public_key(alice_key.public_key)
        mallory = PeerId.from_public_key(generate_key_pair().public_key)
        rec = make_signed_peer_record(alice_key, [aiolibp2p.Multiaddr("/ip4/1.2.3.4/tcp/1").to_bytes()])
        info = svc._consume(alice, None, identify_pb2.Identify(signedPeerRecord=rec), push=True)
        assert info.signed_record_valid
        # mallory replays alice's (now cached) record as its own
        info = svc._consume(mallory, None, identify_pb2.Identify(signedPeerRecord=rec), push=True)
        assert not info.signed_record_valid
        assert h.peerstore.peer_record(mallory) is None


async def test_a_record_held_by_the_peer_store_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer's record is checked once; the same bytes again (every new connection) are known from the peer
    store, which forgets them with the peer, so identify keeps no cache of its own."""
    from aiolibp2p.crypto.peer_record import open_signed_peer_record as real
    from aiolibp2p.protocols.identify import service as identify_mod

    opened: list[bytes] = []

    def counting(data: bytes) -> object:
        opened.append(bytes(data))
        return real(data)

    monkeypatch.setattr(identify_mod, "open_signed_peer_record", counting)
    async with aiolibp2p.new_host(listen=[]) as h:
        alice_key = generate_key_pair()
        alice = PeerId.from_public_key(alice_key.public_key)
        rec = make_signed_peer_record(alice_key, [aiolibp2p.Multiaddr("/ip4/1.2.3.4/tcp/1").to_bytes()])
        msg = identify_pb2.Identify(signedPeerRecord=rec)
        for _ in range(3):
            assert h.identify_service._consume(alice, None, msg, push=True).signed_record_valid
        assert len(opened) == 1
        h.peerstore.remove_peer(alice)
        assert h.identify_service._consume(alice, None, msg, push=True).signed_record_valid
        assert len(opened) == 2


async def test_cached_response_matches_a_fresh_encoding_and_follows_changes() -> None:
    """The response is serialized once and the observed address appended: it must decode to exactly what a
    fresh encoding gives, in one message or split, and change when our protocols change."""

    async def noop(stream: aiolibp2p.Stream) -> None:
        await stream.close()

    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            peer = await b.connect(a.full_addrs()[0])
            (conn,) = a.connections(b.peer_id)
            ids = a.identify_service
            for extra in (0, 1, 120):  # 120 protocols: over SPLIT_THRESHOLD, sent as two messages
                for i in range(extra):
                    a.set_stream_handler(f"/extra/{extra}/{i}/1.0.0", noop)
                cached = ids.response_bytes(conn)
                fresh = ids._encode_response(ids.build_message(conn))
                assert decode_messages(cached) == decode_messages(fresh)
                assert len(cached) == len(fresh)
                msg = decode_messages(cached)
                assert msg.observedAddr == conn.remote_addr.to_bytes()  # type: ignore[union-attr]
                assert (f"/extra/{extra}/0/1.0.0" in msg.protocols) is (extra > 0)
            big = ids.response_bytes(conn)
            one = try_decode_length_prefixed(big, 1 << 16)
            assert one is not None
            two = try_decode_length_prefixed(big, 1 << 16, one[1])
            assert two is not None and two[1] == len(big)
            head, tail = identify_pb2.Identify.FromString(one[0]), identify_pb2.Identify.FromString(two[0])
            assert not head.HasField("signedPeerRecord") and head.HasField("observedAddr")
            assert tail.HasField("signedPeerRecord") and not tail.protocols
            assert ids.response_bytes(None) == ids._encode_response(ids.build_message(None))
            # over the wire, split: a new connection's identify sees every protocol and a valid record
            await b.connect(a.full_addrs()[0], new_connection=True)
            conn2 = max(b.connections(peer), key=lambda c: c.id)
            info = await b.identify_service.identify(conn2)
            assert info is not None and info.signed_record_valid
            assert "/extra/120/119/1.0.0" in info.protocols


@pytest.mark.parametrize(
    ("listen", "transports"),
    [("/ip4/127.0.0.1/tcp/0", ["tcp"]), ("/ip4/127.0.0.1/udp/0/quic-v1", ["quic"])],
    ids=["tcp", "quic"],
)
@pytest.mark.parametrize("explicit_dial", [True, False], ids=["connect", "implicit-dial"])
async def test_the_dialers_first_stream_is_answered_before_its_identify(
    listen: str, transports: list[str], explicit_dial: bool
) -> None:
    """A dial is made for the caller's stream: its proposal leaves ahead of identify's, so the listener
    negotiates it first (identify waits a few loop turns on the dialer; it is not a round trip behind)."""
    order: list[str] = []
    async with asyncio.timeout(10):
        async with (
            aiolibp2p.new_host(listen=[listen], transports=transports) as a,
            aiolibp2p.new_host(listen=[], transports=transports) as b,
        ):
            answer = a.identify_service._handle_identify

            async def identify(stream: aiolibp2p.Stream) -> None:
                order.append("identify")
                await answer(stream)

            async def app(stream: aiolibp2p.Stream) -> None:
                order.append("app")
                await stream.write(await stream.read(5))
                await stream.close()

            a.set_stream_handler(PROTOCOL_ID, identify)
            a.set_stream_handler("/app/1.0.0", app)
            b.peerstore.add_addrs(a.peer_id, a.listen_addrs, 60.0)
            if explicit_dial:
                await b.connect(a.full_addrs()[0])
            stream = await b.new_stream(a.peer_id, ["/app/1.0.0"])
            await stream.write(b"hello")
            assert await stream.read(5) == b"hello"
            await b.identify(a.peer_id)
            assert order == ["app", "identify"]


async def test_the_listeners_identify_waits_for_the_dialers_first_request() -> None:
    """The listener opens its identify stream ``listener_defer`` seconds after the connection opened: a request
    the dialer sends just after the handshake is answered first, and identify still completes."""
    async with asyncio.timeout(10):
        async with aiolibp2p.new_host() as a, aiolibp2p.new_host(listen=[]) as b:
            a.identify_service.listener_defer = 0.3
            order: list[str] = []
            answer = b.identify_service._handle_identify

            async def identify(stream: aiolibp2p.Stream) -> None:
                order.append("listener's identify")
                await answer(stream)

            async def app(stream: aiolibp2p.Stream) -> None:
                await stream.write(await stream.read(5))
                await stream.close()

            b.set_stream_handler(PROTOCOL_ID, identify)
            a.set_stream_handler("/app/1.0.0", app)
            peer = await b.connect(a.full_addrs()[0])
            await asyncio.sleep(0.05)  # the request comes a little after the handshake
            stream = await b.new_stream(peer, ["/app/1.0.0"])
            await stream.write(b"hello")
            assert await stream.read(5) == b"hello"
            order.append("answer")
            info = await a.identify(b.peer_id)
            assert info is not None and info.agent_version
            assert order == ["answer", "listener's identify"]
