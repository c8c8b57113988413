"""plaintext/2.0.0 tests: the Exchange message, handshakes over memory pipes, wrong peers, bad input."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.core.interfaces import SecureSession, SecurityTransport
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.crypto.keys import KeyType, generate_key_pair
from aiolibp2p.crypto.peer_id import PeerId
from aiolibp2p.exceptions import (
    ConnectionClosed,
    DecodeError,
    HandshakeError,
    Libp2pError,
    MessageTooLarge,
    PeerIdMismatch,
)
from aiolibp2p.multistream import handle_protocol, select_protocol
from aiolibp2p.security.plaintext import MAX_EXCHANGE_SIZE, PLAINTEXT_PROTOCOL_ID, PlaintextSecurity
from aiolibp2p.security.plaintext.transport import decode_exchange, encode_exchange
from aiolibp2p.transports.memory.pipe import MemoryPipe, memory_pipe_pair
from aiolibp2p.wire.pb import crypto_pb2, plaintext_pb2
from aiolibp2p.wire.varint import length_prefixed

T = 5.0  # bound on every wait


def exchange(peer_id: bytes | None, pubkey: bytes | None) -> bytes:
    ex = plaintext_pb2.Exchange()
    if peer_id is not None:
        ex.id = peer_id
    if pubkey is not None:
        ex.pubkey.ParseFromString(pubkey)
    return ex.SerializeToString()


async def handshake(
    dialer: PlaintextSecurity, listener: PlaintextSecurity, expected: PeerId | None
) -> tuple[SecureSession, SecureSession, MemoryPipe, MemoryPipe]:
    a, b = memory_pipe_pair()
    async with asyncio.timeout(T):
        out, inb = await asyncio.gather(
            dialer.secure_outbound(PipeReader(a), expected, ["/yamux/1.0.0"]),
            listener.secure_inbound(PipeReader(b), ["/yamux/1.0.0"]),
        )
    return out, inb, a, b


# --- the message ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA])
def test_exchange_roundtrip(key_type: KeyType) -> None:
    key = generate_key_pair(key_type).public_key
    peer, decoded = decode_exchange(encode_exchange(key))
    assert decoded == key
    assert peer == PeerId.from_public_key(key)


def test_exchange_wire_layout() -> None:
    key = generate_key_pair().public_key
    data = encode_exchange(key)
    pid = PeerId.from_public_key(key).to_bytes()
    pk = key.to_protobuf()
    # field 1 (bytes) then field 2 (embedded PublicKey message), as in the spec's proto2 definition
    assert data == b"\x0a" + bytes([len(pid)]) + pid + b"\x12" + bytes([len(pk)]) + pk


def test_exchange_id_must_match_key() -> None:
    key = generate_key_pair().public_key
    other = PeerId.from_public_key(generate_key_pair().public_key)
    with pytest.raises(HandshakeError):
        decode_exchange(exchange(other.to_bytes(), key.to_protobuf()))


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x0a\x00",  # empty id, no key
        exchange(None, generate_key_pair().public_key.to_protobuf()),  # no id
        b"\x0a\x02\x00\x00\x12\x02\x12\x00",  # key without Type
        b"\xff\xff",  # not protobuf
        b"\x0a\x05ab",  # truncated
    ],
)
def test_exchange_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_exchange(data)


def test_exchange_unknown_key_type() -> None:
    key = generate_key_pair().public_key
    pid = PeerId.from_public_key(key).to_bytes()
    bad_key = crypto_pb2.PublicKey(Type=crypto_pb2.Ed25519, Data=b"\x01" * 5).SerializeToString()
    with pytest.raises(HandshakeError):
        decode_exchange(exchange(pid, bad_key))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_exchange_only_typed_errors(data: bytes) -> None:
    try:
        decode_exchange(data)
    except Libp2pError:
        pass


# --- handshakes ----------------------------------------------------------------------------------------


def test_is_a_security_transport() -> None:
    sec: SecurityTransport = PlaintextSecurity(generate_key_pair())
    assert sec.protocol_id == PLAINTEXT_PROTOCOL_ID == "/plaintext/2.0.0"


async def test_handshake_and_raw_data() -> None:
    ka, kb = generate_key_pair(), generate_key_pair(KeyType.Secp256k1)
    out, inb, _, _ = await handshake(PlaintextSecurity(ka), PlaintextSecurity(kb), kb.peer_id)
    assert out.local_peer == inb.remote_peer == ka.peer_id
    assert out.remote_peer == inb.local_peer == kb.peer_id
    assert out.remote_public_key == kb.public_key and inb.remote_public_key == ka.public_key
    assert out.security_protocol == inb.security_protocol == PLAINTEXT_PROTOCOL_ID
    assert out.early_muxer is None
    # the pipe now carries raw bytes
    out.reader.write(b"hello")
    inb.reader.write(b"world")
    async with asyncio.timeout(T):
        assert await inb.reader.readexactly(5) == b"hello"
        assert await out.reader.readexactly(5) == b"world"


async def test_inbound_accepts_unknown_dialer() -> None:
    ka, kb = generate_key_pair(), generate_key_pair()
    out, inb, _, _ = await handshake(PlaintextSecurity(ka), PlaintextSecurity(kb), None)
    assert inb.remote_peer == ka.peer_id and out.remote_peer == kb.peer_id


async def test_wrong_peer_is_rejected_and_pipe_aborted() -> None:
    ka, kb = generate_key_pair(), generate_key_pair()
    wrong = generate_key_pair().peer_id
    a, b = memory_pipe_pair()
    async with asyncio.timeout(T):
        out = asyncio.create_task(PlaintextSecurity(ka).secure_outbound(PipeReader(a), wrong, []))
        inb = asyncio.create_task(PlaintextSecurity(kb).secure_inbound(PipeReader(b), []))
        with pytest.raises(PeerIdMismatch) as ei:
            await out
        assert ei.value.expected == wrong and ei.value.actual == kb.peer_id
        assert a.is_closing()
        # the listener finished its side, then sees the connection drop
        session = await inb
        with pytest.raises(ConnectionClosed):
            await session.reader.readexactly(1)


async def test_lying_remote_is_rejected() -> None:
    """The remote claims another peer's ID with its own key."""
    ka = generate_key_pair()
    victim = generate_key_pair().peer_id
    a, b = memory_pipe_pair()
    b.write(length_prefixed(exchange(victim.to_bytes(), generate_key_pair().public_key.to_protobuf())))
    async with asyncio.timeout(T):
        with pytest.raises(HandshakeError):
            await PlaintextSecurity(ka).secure_outbound(PipeReader(a), victim, [])
    assert a.is_closing()


async def test_oversize_exchange() -> None:
    a, b = memory_pipe_pair()
    b.write(length_prefixed(b"\x00" * (MAX_EXCHANGE_SIZE + 1)))
    async with asyncio.timeout(T):
        with pytest.raises(MessageTooLarge):
            await PlaintextSecurity(generate_key_pair()).secure_inbound(PipeReader(a), [])


async def test_eof_during_handshake() -> None:
    a, b = memory_pipe_pair()
    b.write(b"\x40\x0a")  # a prefix announcing 64 bytes, then only 1
    b.close()
    async with asyncio.timeout(T):
        with pytest.raises(ConnectionClosed):
            await PlaintextSecurity(generate_key_pair()).secure_inbound(PipeReader(a), [])


async def test_negotiated_then_secured_with_pipelined_data() -> None:
    """multistream selects plaintext, the exchange follows, and bytes sent right behind it are kept."""
    ka, kb = generate_key_pair(), generate_key_pair()
    a, b = memory_pipe_pair()
    ra, rb = PipeReader(a), PipeReader(b)

    async def dial() -> SecureSession:
        assert await select_protocol(ra, [PLAINTEXT_PROTOCOL_ID]) == PLAINTEXT_PROTOCOL_ID
        s = await PlaintextSecurity(ka).secure_outbound(ra, kb.peer_id, [])
        s.reader.write(b"after-handshake")
        return s

    async def listen() -> SecureSession:
        assert await handle_protocol(rb, {PLAINTEXT_PROTOCOL_ID}) == PLAINTEXT_PROTOCOL_ID
        return await PlaintextSecurity(kb).secure_inbound(rb, [])

    async with asyncio.timeout(T):
        out, inb = await asyncio.gather(dial(), listen())
        assert await inb.reader.readexactly(15) == b"after-handshake"
    assert out.remote_peer == kb.peer_id
