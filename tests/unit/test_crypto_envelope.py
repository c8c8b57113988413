"""Tests of aiolibp2p.crypto.envelope (RFC 0002) and aiolibp2p.crypto.peer_record (RFC 0003): sealing and
opening, tamper detection, the signed byte layout, peer record round trips and sequence numbers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.crypto.envelope import MAX_ENVELOPE_BYTES, SignedEnvelope, signing_payload
from aiolibp2p.crypto.keys import KeyType, PrivateKey, generate_key_pair, unmarshal_private_key
from aiolibp2p.crypto.peer_record import (
    MAX_PEER_RECORD_ADDRS,
    PEER_RECORD_ENVELOPE_DOMAIN,
    PEER_RECORD_PAYLOAD_TYPE,
    PeerRecord,
    make_signed_peer_record,
    open_signed_peer_record,
)
from aiolibp2p.exceptions import CryptoError, DecodeError, InvalidSignature
from aiolibp2p.wire.pb import envelope_pb2, peer_record_pb2

ED25519_PRIVATE = bytes.fromhex(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3"
    "b34b871c3cacf6010f0e42d474fce27e"
)
# /ip4/127.0.0.1/tcp/4001 and /ip6/::1/udp/4001/quic-v1 in binary form.
ADDR_TCP = bytes.fromhex("047f000001060fa1")
ADDR_QUIC = bytes.fromhex("29" + "00" * 15 + "01" + "9102" + "0fa1" + "cd03")


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return unmarshal_private_key(ED25519_PRIVATE)


def test_signing_payload_layout() -> None:
    assert signing_payload(b"dom", b"\x03\x01", b"xy") == b"\x03dom\x02\x03\x01\x02xy"
    long = bytes(200)
    assert signing_payload(b"d", b"t", long)[:5] == b"\x01d\x01t\xc8"


def test_seal_open_round_trip(key: PrivateKey) -> None:
    env = SignedEnvelope.seal(key, "test-domain", b"\x12\x34", b"payload")
    data = env.to_bytes()
    opened = SignedEnvelope.open(data, "test-domain")
    assert opened == env and hash(opened) == hash(env)
    assert opened.public_key == key.public_key
    assert opened.peer_id == key.peer_id
    assert opened.payload_type == b"\x12\x34" and opened.payload == b"payload"
    assert opened.to_bytes() == data
    # The wire form is the RFC's protobuf, with the domain nowhere in it.
    msg = envelope_pb2.Envelope.FromString(data)
    assert msg.public_key.SerializeToString() == key.public_key.to_protobuf()
    assert b"test-domain" not in data
    assert key.public_key.verify(signing_payload(b"test-domain", b"\x12\x34", b"payload"), msg.signature)


@pytest.mark.parametrize("key_type", [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA])
def test_every_key_type_seals(key_type: KeyType) -> None:
    k = generate_key_pair(key_type)
    env = SignedEnvelope.open(SignedEnvelope.seal(k, "d", b"t", b"p").to_bytes(), "d")
    assert env.peer_id == k.peer_id


def test_wrong_domain_is_refused(key: PrivateKey) -> None:
    data = SignedEnvelope.seal(key, "domain-a", b"t", b"p").to_bytes()
    with pytest.raises(InvalidSignature):
        SignedEnvelope.open(data, "domain-b")


def _tampered(data: bytes, **changes: bytes) -> bytes:
    msg = envelope_pb2.Envelope.FromString(data)
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg.SerializeToString()


@pytest.mark.parametrize("field", ["payload", "payload_type", "signature"])
def test_tampering_is_detected(key: PrivateKey, field: str) -> None:
    data = SignedEnvelope.seal(key, "d", b"type", b"payload").to_bytes()
    with pytest.raises(InvalidSignature):
        SignedEnvelope.open(_tampered(data, **{field: b"other"}), "d")


def test_swapped_public_key_is_detected(key: PrivateKey) -> None:
    data = SignedEnvelope.seal(key, "d", b"t", b"p").to_bytes()
    msg = envelope_pb2.Envelope.FromString(data)
    msg.public_key.ParseFromString(generate_key_pair().public_key.to_protobuf())
    with pytest.raises(InvalidSignature):
        SignedEnvelope.open(msg.SerializeToString(), "d")


def test_every_bit_flip_is_refused(key: PrivateKey) -> None:
    data = SignedEnvelope.seal(key, "d", b"t", b"payload").to_bytes()
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises((DecodeError, CryptoError)):
                SignedEnvelope.open(bytes(bad), "d")


def test_malformed_envelopes(key: PrivateKey) -> None:
    for bad in (b"\xff", b"\x0a\x05\x08", b"", b"\x12\x01t"):
        with pytest.raises((DecodeError, CryptoError)):
            SignedEnvelope.open(bad, "d")
    with pytest.raises(DecodeError):
        SignedEnvelope.open(bytes(MAX_ENVELOPE_BYTES + 1), "d")


def test_empty_domain_or_type_refused_when_sealing(key: PrivateKey) -> None:
    with pytest.raises(ValueError):
        SignedEnvelope.seal(key, "", b"t", b"p")
    with pytest.raises(ValueError):
        SignedEnvelope.seal(key, "d", b"", b"p")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_open(data: bytes) -> None:
    try:
        SignedEnvelope.open(data, "d")
    except (DecodeError, CryptoError):
        pass


# --- peer records ----------------------------------------------------------------------------------------


def test_peer_record_constants() -> None:
    assert PEER_RECORD_ENVELOPE_DOMAIN == "libp2p-peer-record"
    assert PEER_RECORD_PAYLOAD_TYPE == b"\x03\x01"


def test_peer_record_protobuf_round_trip(key: PrivateKey) -> None:
    rec = PeerRecord(key.peer_id, 42, [ADDR_TCP, ADDR_QUIC])
    data = rec.to_protobuf()
    msg = peer_record_pb2.PeerRecord.FromString(data)
    assert msg.peer_id == key.peer_id.to_bytes() and msg.seq == 42
    assert [a.multiaddr for a in msg.addresses] == [ADDR_TCP, ADDR_QUIC]
    assert PeerRecord.from_protobuf(data) == rec
    # Field order 1, 2, 3 on the wire.
    assert data[0] == 0x0A and data[2 + len(key.peer_id.to_bytes())] == 0x10


def test_signed_peer_record_round_trip(key: PrivateKey) -> None:
    data = make_signed_peer_record(key, [ADDR_TCP], seq=7)
    rec, env = open_signed_peer_record(data)
    assert rec == PeerRecord(key.peer_id, 7, (ADDR_TCP,))
    assert env.payload_type == PEER_RECORD_PAYLOAD_TYPE and env.peer_id == key.peer_id
    assert env.to_bytes() == data


def test_default_seq_strictly_increases(key: PrivateKey) -> None:
    seqs = [open_signed_peer_record(make_signed_peer_record(key, []))[0].seq for _ in range(50)]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    assert seqs[0] > 1_600_000_000 * 10**9  # unix nanoseconds


def test_record_signed_by_another_peer_is_refused(key: PrivateKey) -> None:
    other = generate_key_pair()
    rec = PeerRecord(other.peer_id, 1, [ADDR_TCP])
    data = SignedEnvelope.seal(key, PEER_RECORD_ENVELOPE_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, rec.to_protobuf())
    with pytest.raises(InvalidSignature):
        open_signed_peer_record(data.to_bytes())


def test_wrong_payload_type_or_domain_is_refused(key: PrivateKey) -> None:
    payload = PeerRecord(key.peer_id, 1, []).to_protobuf()
    wrong_type = SignedEnvelope.seal(key, PEER_RECORD_ENVELOPE_DOMAIN, b"\x03\x02", payload)
    with pytest.raises(DecodeError):
        open_signed_peer_record(wrong_type.to_bytes())
    wrong_domain = SignedEnvelope.seal(key, "libp2p-routing-state", PEER_RECORD_PAYLOAD_TYPE, payload)
    with pytest.raises(InvalidSignature):
        open_signed_peer_record(wrong_domain.to_bytes())


def test_malformed_peer_records() -> None:
    for bad in (b"", b"\x0a\x02\x00", b"\xff\xff", b"\x0a\x02\x00\x00\x1a\x00"):
        with pytest.raises(DecodeError):
            PeerRecord.from_protobuf(bad)
    pid = generate_key_pair().peer_id
    too_many = peer_record_pb2.PeerRecord(peer_id=pid.to_bytes())
    for _ in range(MAX_PEER_RECORD_ADDRS + 1):
        too_many.addresses.add(multiaddr=ADDR_TCP)
    with pytest.raises(DecodeError):
        PeerRecord.from_protobuf(too_many.SerializeToString())
    with pytest.raises(ValueError):
        PeerRecord(pid, -1, [])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, (1 << 64) - 1), st.lists(st.binary(min_size=1, max_size=40), max_size=8))
def test_fuzz_peer_record_round_trip(seq: int, addrs: list[bytes]) -> None:
    pid = unmarshal_private_key(ED25519_PRIVATE).peer_id
    rec = PeerRecord(pid, seq, addrs)
    assert PeerRecord.from_protobuf(rec.to_protobuf()) == rec


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_peer_record_parse(data: bytes) -> None:
    try:
        PeerRecord.from_protobuf(data)
    except DecodeError:
        pass


# Signed peer records produced by js-libp2p (@libp2p/peer-record 9, interop/js) for the spec's Ed25519 and
# secp256k1 test keys, with the two addresses above.
JS_ED25519_RECORD = bytes.fromhex(
    "0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e120203011a560a26002408011220"
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e10dfd1f0d2a0341a0a0a08047f000001060fa11a"
    "190a17290000000000000000000000000000000191020fa1cd032a4071f48572d43106b5e26e32b81d8b3a778d6a03c8532acfdf"
    "c25df5b4b67ccb13256a27101c92fe90cef1d51c4c06c905d9a7032a7ec9367a485fd3e9bf64170b"
)
JS_SECP256K1_RECORD = bytes.fromhex(
    "0a2508021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99120203011a570a270025080212"
    "21037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca9910b3d2f0d2a0341a0a0a08047f0000010"
    "60fa11a190a17290000000000000000000000000000000191020fa1cd032a46304402202d8a34e98f25ce065bad0c73d9665f"
    "f356525df843d08a4ab4295a1d3f71d89c022070300225a04c4dec43cd4449fb944a33de0d37d63e86c05b65327c6c3e781717"
)


def test_js_signed_peer_records_open() -> None:
    rec, env = open_signed_peer_record(JS_ED25519_RECORD)
    assert str(rec.peer_id) == "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq" == str(env.peer_id)
    assert rec.seq == 1795470141663 and rec.addrs == (ADDR_TCP, ADDR_QUIC)
    rec, env = open_signed_peer_record(JS_SECP256K1_RECORD)
    assert str(rec.peer_id) == "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
    assert rec.addrs == (ADDR_TCP, ADDR_QUIC)


def test_ed25519_record_is_byte_identical_to_js(key: PrivateKey) -> None:
    # Ed25519 signatures are deterministic, so the same record must serialize to the same envelope.
    assert make_signed_peer_record(key, [ADDR_TCP, ADDR_QUIC], seq=1795470141663) == JS_ED25519_RECORD
