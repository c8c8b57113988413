"""Rendezvous codec and the rendezvous point's state machine (no sockets; the clock is an argument)."""

from __future__ import annotations

import pytest

from aiolibp2p.crypto.envelope import SignedEnvelope
from aiolibp2p.crypto.keys import PrivateKey, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.crypto.peer_record import make_signed_peer_record
from aiolibp2p.discovery.rendezvous import RendezvousLimits, RendezvousRegistry, Status
from aiolibp2p.discovery.rendezvous.codec import (
    Message,
    MessageReader,
    decode_message,
    discover_message,
    discover_response,
    encode_message,
    register_message,
    register_response,
    unregister_message,
)
from aiolibp2p.exceptions import DecodeError, MessageTooLarge, ProtocolViolation
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.wire.varint import length_prefixed

H = 3600


def _peer() -> tuple[PrivateKey, PeerId, bytes]:
    key = generate_key_pair()
    pid = key.public_key.peer_id
    return key, pid, make_signed_peer_record(key, [Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()])


# -- codec -----------------------------------------------------------------------------------------------------------


def test_codec_round_trip_and_split_frames() -> None:
    msgs = [
        register_message("ns", b"rec", 7200),
        register_response(Status.OK, ttl=7200),
        unregister_message("ns"),
        discover_message("ns", 10, b"cookie"),
        discover_response([("ns", b"rec", 60)], b"c2"),
    ]
    wire = b"".join(encode_message(m) for m in msgs)
    reader = MessageReader()
    got: list[Message] = []
    for i in range(0, len(wire), 3):  # three bytes at a time: frames and varints split anywhere
        got.extend(reader.feed(wire[i : i + 3]))
    assert got == msgs and reader.buffered == 0
    assert got[4].discoverResponse.registrations[0].ttl == 60


def test_codec_refuses_bad_messages() -> None:
    with pytest.raises(MessageTooLarge):
        MessageReader(max_size=100).feed(length_prefixed(b"\x00" * 101)[:5])  # refused from the prefix alone
    with pytest.raises(MessageTooLarge):
        encode_message(register_message("ns", b"x" * 200), max_size=100)
    with pytest.raises(ProtocolViolation):
        decode_message(b"\x08\x09")  # type 9: unknown (proto2 keeps it aside; type reads REGISTER, no body)
    with pytest.raises(ProtocolViolation):
        decode_message(b"")  # type absent = REGISTER, without its body
    with pytest.raises(DecodeError):
        decode_message(b"\xff\xff\xff")
    # An empty DISCOVER (every namespace) is fine, and so is a response without status (OK by default).
    assert decode_message(Message(type=Message.DISCOVER).SerializeToString()).discover.ns == ""
    # Status is always emitted, even OK = 0 (proto2: present on the wire).
    assert Message.FromString(
        register_response(Status.OK, ttl=1).SerializeToString()
    ).registerResponse.HasField("status")


# -- registry ----------------------------------------------------------------------------------------------------------


def test_register_defaults_and_ttl_bounds() -> None:
    reg = RendezvousRegistry()
    _, a, rec = _peer()
    assert reg.register(a, "ns", rec, None, 0.0) == (Status.OK, "", 2 * H)
    assert reg.register(a, "ns", rec, 0, 0.0)[2] == 2 * H
    assert reg.register(a, "ns", rec, 72 * H, 0.0) == (Status.OK, "", 72 * H)
    assert reg.register(a, "ns", rec, 72 * H + 1, 0.0)[0] == Status.E_INVALID_TTL
    assert reg.register(a, "ns", rec, 60, 0.0)[0] == Status.E_INVALID_TTL  # below the 2 h minimum
    assert len(reg) == 1


def test_namespace_limits() -> None:
    reg = RendezvousRegistry()
    _, a, rec = _peer()
    assert reg.register(a, "", rec, None, 0)[0] == Status.E_INVALID_NAMESPACE
    assert reg.register(a, "x" * 255, rec, None, 0)[0] == Status.OK
    assert reg.register(a, "x" * 256, rec, None, 0)[0] == Status.E_INVALID_NAMESPACE
    assert reg.register(a, "é" * 128, rec, None, 0)[0] == Status.E_INVALID_NAMESPACE  # 256 UTF-8 bytes
    resp = reg.discover("y" * 256, 0, b"", 0).discoverResponse
    assert Status(resp.status) == Status.E_INVALID_NAMESPACE


def test_signed_record_checks() -> None:
    reg = RendezvousRegistry()
    key_a, a, rec_a = _peer()
    _, b, rec_b = _peer()
    assert reg.register(a, "ns", b"garbage", None, 0)[0] == Status.E_INVALID_SIGNED_PEER_RECORD
    assert reg.register(a, "ns", b"", None, 0)[0] == Status.E_INVALID_SIGNED_PEER_RECORD
    # b's (valid) record presented by a: only a peer may register itself.
    assert reg.register(a, "ns", rec_b, None, 0)[0] == Status.E_NOT_AUTHORIZED
    # A tampered signature.
    env = SignedEnvelope.open(rec_a, "libp2p-peer-record")
    raw = bytearray(env.to_bytes())
    raw[-1] ^= 1
    assert reg.register(a, "ns", bytes(raw), None, 0)[0] == Status.E_INVALID_SIGNED_PEER_RECORD
    # The right payload under another domain does not verify as a peer record.
    other = SignedEnvelope.seal(key_a, "other-domain", b"\x03\x01", env.payload).to_bytes()
    assert reg.register(a, "ns", other, None, 0)[0] == Status.E_INVALID_SIGNED_PEER_RECORD
    # Too large.
    small = RendezvousRegistry(RendezvousLimits(max_signed_record_size=16))
    assert small.register(a, "ns", rec_a, None, 0)[0] == Status.E_INVALID_SIGNED_PEER_RECORD
    assert len(reg) == 0 and b not in {r.peer for r in reg.registrations("ns")}


def test_per_peer_and_total_limits() -> None:
    reg = RendezvousRegistry(RendezvousLimits(max_registrations_per_peer=3, max_registrations=5))
    _, a, rec_a = _peer()
    _, b, rec_b = _peer()
    for i in range(3):
        assert reg.register(a, f"ns{i}", rec_a, None, 0)[0] == Status.OK
    assert reg.register(a, "ns3", rec_a, None, 0)[0] == Status.E_NOT_AUTHORIZED
    assert reg.register(a, "ns0", rec_a, None, 0)[0] == Status.OK  # a refresh is not a new registration
    assert reg.count_for_peer(a) == 3
    assert reg.register(b, "ns0", rec_b, None, 0)[0] == Status.OK
    assert reg.register(b, "ns1", rec_b, None, 0)[0] == Status.OK
    assert reg.register(b, "ns2", rec_b, None, 0)[0] == Status.E_UNAVAILABLE  # 5 in total
    reg.unregister(a, "ns2")
    assert reg.register(a, "ns3", rec_a, None, 0)[0] == Status.OK


def test_unregister_is_a_noop_when_absent() -> None:
    reg = RendezvousRegistry()
    _, a, rec = _peer()
    assert reg.unregister(a, "ns") is False
    reg.register(a, "ns", rec, None, 0)
    assert reg.handle(a, unregister_message("ns"), 0) is None
    assert len(reg) == 0 and reg.count_for_peer(a) == 0


def _peers_of(msg: Message) -> list[bytes]:
    assert Status(msg.discoverResponse.status) == Status.OK, msg.discoverResponse.statusText
    return [r.signedPeerRecord for r in msg.discoverResponse.registrations]


def test_discover_cookie_paging_and_incremental() -> None:
    reg = RendezvousRegistry()
    peers = [_peer() for _ in range(5)]
    for _, pid, rec in peers:
        reg.register(pid, "app", rec, None, 0)
    recs = [rec for _, _, rec in peers]
    first = reg.discover("app", 2, b"", 1)
    assert _peers_of(first) == recs[:2]
    second = reg.discover("app", 2, first.discoverResponse.cookie, 1)
    assert _peers_of(second) == recs[2:4]
    third = reg.discover("app", 2, second.discoverResponse.cookie, 1)
    assert _peers_of(third) == recs[4:]
    empty = reg.discover("app", 2, third.discoverResponse.cookie, 1)
    assert _peers_of(empty) == []
    # A new registration after the last query is all the next query with the cookie returns.
    _, e, rec_e = _peer()
    reg.register(e, "app", rec_e, None, 2)
    assert _peers_of(reg.discover("app", 0, empty.discoverResponse.cookie, 3)) == [rec_e]
    # A refresh re-announces the peer (it may carry new addresses).
    reg.register(peers[0][1], "app", recs[0], None, 4)
    assert _peers_of(reg.discover("app", 0, empty.discoverResponse.cookie, 5)) == [rec_e, recs[0]]
    # Remaining TTL is reported.
    assert reg.discover("app", 1, b"", 100).discoverResponse.registrations[0].ttl == 2 * H - 100


def test_discover_bad_cookies() -> None:
    reg = RendezvousRegistry()
    other = RendezvousRegistry()
    _, a, rec = _peer()
    reg.register(a, "app", rec, None, 0)
    reg.register(a, "other", rec, None, 0)
    foreign = other.discover("app", 0, b"", 0).discoverResponse.cookie
    for cookie in (b"short", foreign, reg.discover("other", 0, b"", 0).discoverResponse.cookie):
        resp = reg.discover("app", 0, cookie, 0).discoverResponse
        assert Status(resp.status) == Status.E_INVALID_COOKIE and not resp.registrations


def test_discover_all_namespaces_and_limit_cap() -> None:
    reg = RendezvousRegistry(RendezvousLimits(max_discover_limit=3))
    peers = [_peer() for _ in range(4)]
    for i, (_, pid, rec) in enumerate(peers):
        reg.register(pid, f"ns{i % 2}", rec, None, 0)
    msg = reg.discover("", 0, b"", 0)
    assert [r.ns for r in msg.discoverResponse.registrations] == ["ns0", "ns1", "ns0"]  # registration order
    assert _peers_of(msg) == [rec for _, _, rec in peers[:3]]
    assert len(_peers_of(reg.discover("", 1000, b"", 0))) == 3  # the limit is capped
    rest = reg.discover("", 0, msg.discoverResponse.cookie, 0)
    assert _peers_of(rest) == [peers[3][2]]


def test_discover_response_fits_the_message_cap() -> None:
    peers = [_peer() for _ in range(10)]
    size = len(peers[0][2])
    reg = RendezvousRegistry(RendezvousLimits(max_response_size=64 + 3 * (size + 40)))
    for _, pid, rec in peers:
        reg.register(pid, "app", rec, None, 0)
    seen: list[bytes] = []
    cookie = b""
    for _ in range(10):
        msg = reg.discover("app", 0, cookie, 0)
        assert len(encode_message(msg)) <= reg.limits.max_response_size
        page = _peers_of(msg)
        if not page:
            break
        assert len(page) <= 3
        seen += page
        cookie = msg.discoverResponse.cookie
    assert seen == [rec for _, _, rec in peers]


def test_expiry_with_an_injected_clock() -> None:
    reg = RendezvousRegistry(RendezvousLimits(min_ttl=10))
    _, a, rec_a = _peer()
    _, b, rec_b = _peer()
    reg.register(a, "app", rec_a, 10, 0)
    reg.register(b, "app", rec_b, 20, 0)
    assert _peers_of(reg.discover("app", 0, b"", 9.9)) == [rec_a, rec_b]
    assert _peers_of(reg.discover("app", 0, b"", 10.0)) == [rec_b]
    # A refresh supersedes the earlier TTL: the old expiry entry must not remove the new registration.
    reg.register(b, "app", rec_b, 30, 15)
    assert reg.expire(20.5) == 0
    assert _peers_of(reg.discover("app", 0, b"", 44.9)) == [rec_b]
    assert reg.expire(45) == 1
    assert len(reg) == 0 and reg.count_for_peer(a) == 0 and reg.count_for_peer(b) == 0


def test_handle_dispatches_and_refuses_responses() -> None:
    reg = RendezvousRegistry()
    _, a, rec = _peer()
    resp = reg.handle(a, register_message("app", rec), 0)
    assert resp is not None and resp.type == Message.REGISTER_RESPONSE
    assert Status(resp.registerResponse.status) == Status.OK and resp.registerResponse.ttl == 2 * H
    bad = reg.handle(a, register_message("app", rec, 1), 0)
    assert bad is not None and Status(bad.registerResponse.status) == Status.E_INVALID_TTL
    assert not bad.registerResponse.HasField("ttl") and bad.registerResponse.statusText
    disc = reg.handle(a, discover_message("app"), 0)
    assert disc is not None and _peers_of(disc) == [rec]
    with pytest.raises(ProtocolViolation):
        reg.handle(a, register_response(Status.OK), 0)
