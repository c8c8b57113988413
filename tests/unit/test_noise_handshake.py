"""Noise XX handshake (sans-I/O): primitives, byte compatibility with the ``noiseprotocol`` package, the
libp2p payload (signature, expected peer), extensions and inlined muxer negotiation, malformed input."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from aiolibp2p.crypto.keys import KeyType, PrivateKey, generate_key_pair
from aiolibp2p.exceptions import (
    CryptoError,
    DecodeError,
    HandshakeError,
    InvalidSignature,
    Libp2pError,
    MessageTooLarge,
    PeerIdMismatch,
)
from aiolibp2p.security.noise.handshake import (
    MAX_NONCE,
    PROTOCOL_NAME,
    SIGNATURE_PREFIX,
    CipherState,
    NoiseExtensions,
    NoiseHandshake,
    XXHandshakeState,
    select_early_muxer,
    x25519_public_bytes,
)
from aiolibp2p.wire.pb import noise_pb2

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


def run(initiator: NoiseHandshake, responder: NoiseHandshake) -> None:
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())


def pair(
    *,
    init_muxers: tuple[str, ...] = (),
    resp_muxers: tuple[str, ...] = (),
    expected: bool = True,
    prologue: bytes = b"",
) -> tuple[NoiseHandshake, NoiseHandshake, PrivateKey, PrivateKey]:
    a, b = generate_key_pair(), generate_key_pair()
    i = NoiseHandshake(
        a,
        is_initiator=True,
        expected_peer=b.public_key.peer_id if expected else None,
        extensions=NoiseExtensions(init_muxers),
        prologue=prologue,
    )
    r = NoiseHandshake(b, is_initiator=False, extensions=NoiseExtensions(resp_muxers), prologue=prologue)
    return i, r, a, b


# --- primitives -------------------------------------------------------------------------------------------


def test_cipher_state_nonce_layout_and_exhaustion() -> None:
    c = CipherState(bytes(32))
    assert c.next_nonce() == bytes(12)
    assert c.next_nonce() == bytes(4) + (1).to_bytes(8, "little")
    c.n = MAX_NONCE - 1
    ct = c.encrypt_with_ad(b"", b"last")  # nonce 2^64-2 is the last usable one
    assert len(ct) == 4 + 16
    with pytest.raises(CryptoError):
        c.encrypt_with_ad(b"", b"one too many")
    d = CipherState(bytes(32))
    d.n = MAX_NONCE - 1
    assert d.decrypt_with_ad(b"", ct) == b"last"
    with pytest.raises(CryptoError):
        d.decrypt_with_ad(b"", ct)


def test_cipher_state_failed_decrypt_keeps_nonce() -> None:
    c, d = CipherState(bytes(range(32))), CipherState(bytes(range(32)))
    ct = c.encrypt_with_ad(b"ad", b"x")
    with pytest.raises(DecodeError):
        d.decrypt_with_ad(b"other ad", ct)
    assert d.n == 0
    assert d.decrypt_with_ad(b"ad", ct) == b"x"


def test_unkeyed_cipher_passes_through() -> None:
    c = CipherState()
    assert c.encrypt_with_ad(b"h", b"payload") == b"payload"
    assert c.decrypt_with_ad(b"h", b"payload") == b"payload"


# --- byte compatibility with the `noiseprotocol` package -------------------------------------------------


def _theirs(
    *, initiator: bool, static: X25519PrivateKey, ephemeral: X25519PrivateKey | None, prologue: bytes
) -> NoiseConnection:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    def raw(k: X25519PrivateKey) -> bytes:
        return k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, raw(static))
    if ephemeral is not None:
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, raw(ephemeral))
    conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


@pytest.mark.filterwarnings("ignore:One of ephemeral keypairs:UserWarning")
@pytest.mark.parametrize("prologue", [b"", b"webrtc-fingerprints"])
def test_raw_xx_messages_byte_identical_to_noiseprotocol(prologue: bytes) -> None:
    keys = [X25519PrivateKey.generate() for _ in range(4)]
    s_i, e_i, s_r, e_r = keys
    # Our initiator against their responder, with fixed ephemerals on both sides of a reference run.
    ours_i = XXHandshakeState(initiator=True, static_key=s_i, prologue=prologue, ephemeral=e_i)
    ref_i = _theirs(initiator=True, static=s_i, ephemeral=e_i, prologue=prologue)
    ref_r = _theirs(initiator=False, static=s_r, ephemeral=e_r, prologue=prologue)
    ours_r = XXHandshakeState(initiator=False, static_key=s_r, prologue=prologue, ephemeral=e_r)

    m1 = ours_i.write_message(b"")
    assert m1 == ref_i.write_message(b"")
    assert ref_r.read_message(m1) == b""
    assert ours_r.read_message(m1) == b""
    m2 = ours_r.write_message(b"responder payload")
    assert m2 == ref_r.write_message(b"responder payload")
    assert ref_i.read_message(m2) == b"responder payload"
    assert ours_i.read_message(m2) == b"responder payload"
    m3 = ours_i.write_message(b"initiator payload")
    assert m3 == ref_i.write_message(b"initiator payload")
    assert ref_r.read_message(m3) == b"initiator payload"
    assert ours_r.read_message(m3) == b"initiator payload"
    assert ours_i.handshake_hash == ref_i.get_handshake_hash() == ours_r.handshake_hash
    assert ours_i.remote_static == x25519_public_bytes(s_r)
    assert ours_r.remote_static == x25519_public_bytes(s_i)
    send, recv = ours_i.split()
    for k in range(3):
        msg = f"message {k}".encode()
        assert ref_r.decrypt(send.encrypt_with_ad(b"", msg)) == msg
        assert recv.decrypt_with_ad(b"", ref_r.encrypt(msg)) == msg


def _payload(identity: PrivateKey, static: X25519PrivateKey, muxers: tuple[str, ...] = ()) -> bytes:
    msg = noise_pb2.NoiseHandshakePayload(
        identity_key=identity.public_key.to_protobuf(),
        identity_sig=identity.sign(SIGNATURE_PREFIX + x25519_public_bytes(static)),
    )
    if muxers:
        msg.extensions.stream_muxers.extend(muxers)
    return msg.SerializeToString()


def test_libp2p_initiator_against_noiseprotocol_responder() -> None:
    ident_i, ident_r = generate_key_pair(), generate_key_pair()
    s_r = X25519PrivateKey.generate()
    ours = NoiseHandshake(
        ident_i,
        is_initiator=True,
        expected_peer=ident_r.public_key.peer_id,
        extensions=NoiseExtensions((YAMUX,)),
    )
    theirs = _theirs(initiator=False, static=s_r, ephemeral=None, prologue=b"")
    assert theirs.read_message(ours.write_message()) == b""
    ours.read_message(theirs.write_message(_payload(ident_r, s_r, (MPLEX, YAMUX))))
    payload = noise_pb2.NoiseHandshakePayload.FromString(theirs.read_message(ours.write_message()))
    assert payload.identity_key == ident_i.public_key.to_protobuf()
    assert list(payload.extensions.stream_muxers) == [YAMUX]
    res = ours.result
    assert res.remote_peer == ident_r.public_key.peer_id
    assert res.early_muxer == YAMUX
    assert res.remote_extensions.stream_muxers == (MPLEX, YAMUX)
    assert res.handshake_hash == theirs.get_handshake_hash()
    assert theirs.decrypt(res.send_cipher.encrypt_with_ad(b"", b"ping")) == b"ping"
    assert res.recv_cipher.decrypt_with_ad(b"", theirs.encrypt(b"pong")) == b"pong"


def test_libp2p_responder_against_noiseprotocol_initiator() -> None:
    ident_i, ident_r = generate_key_pair(KeyType.Secp256k1), generate_key_pair()
    s_i = X25519PrivateKey.generate()
    ours = NoiseHandshake(ident_r, is_initiator=False)
    theirs = _theirs(initiator=True, static=s_i, ephemeral=None, prologue=b"")
    ours.read_message(theirs.write_message(b""))
    payload = noise_pb2.NoiseHandshakePayload.FromString(theirs.read_message(ours.write_message()))
    assert not payload.HasField("extensions")  # nothing to announce: no extensions field at all
    ours.read_message(theirs.write_message(_payload(ident_i, s_i)))
    res = ours.result
    assert res.remote_peer == ident_i.public_key.peer_id
    assert res.early_muxer is None
    assert theirs.decrypt(res.send_cipher.encrypt_with_ad(b"", b"hi")) == b"hi"


# --- the libp2p handshake back to back -------------------------------------------------------------------


@pytest.mark.parametrize("key_type", [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA])
def test_handshake_back_to_back(key_type: KeyType) -> None:
    a, b = generate_key_pair(key_type), generate_key_pair()
    i = NoiseHandshake(a, is_initiator=True, expected_peer=b.public_key.peer_id)
    r = NoiseHandshake(b, is_initiator=False)
    assert i.our_turn and not r.our_turn
    m1 = i.write_message()
    assert len(m1) == 32  # message 1 is just the ephemeral key
    run_rest(i, r, m1)
    assert i.complete and r.complete
    assert i.result.remote_peer == b.public_key.peer_id
    assert r.result.remote_peer == a.public_key.peer_id
    assert r.result.remote_public_key == a.public_key
    assert i.result.handshake_hash == r.result.handshake_hash
    ct = i.result.send_cipher.encrypt_with_ad(b"", b"data")
    assert r.result.recv_cipher.decrypt_with_ad(b"", ct) == b"data"
    ct = r.result.send_cipher.encrypt_with_ad(b"", b"back")
    assert i.result.recv_cipher.decrypt_with_ad(b"", ct) == b"back"


def run_rest(i: NoiseHandshake, r: NoiseHandshake, m1: bytes) -> None:
    r.read_message(m1)
    i.read_message(r.write_message())
    r.read_message(i.write_message())


def test_out_of_turn_calls_and_early_result_are_errors() -> None:
    i, r, _, _ = pair()
    with pytest.raises(HandshakeError):
        i.read_message(b"\x00" * 32)
    with pytest.raises(HandshakeError):
        r.write_message()
    with pytest.raises(HandshakeError):
        _ = i.result


def test_prologue_mismatch_fails() -> None:
    a, b = generate_key_pair(), generate_key_pair()
    i = NoiseHandshake(a, is_initiator=True, prologue=b"one")
    r = NoiseHandshake(b, is_initiator=False, prologue=b"two")
    r.read_message(i.write_message())
    with pytest.raises(DecodeError):
        i.read_message(r.write_message())


def test_bad_signature_rejected() -> None:
    a, b = generate_key_pair(), generate_key_pair()
    i = NoiseHandshake(a, is_initiator=True)
    r = NoiseHandshake(b, is_initiator=False, identity_sig=bytes(64))
    r.read_message(i.write_message())
    with pytest.raises(InvalidSignature):
        i.read_message(r.write_message())


def test_signature_over_another_static_key_rejected() -> None:
    a, b = generate_key_pair(), generate_key_pair()
    other_static = X25519PrivateKey.generate()
    stolen = b.sign(SIGNATURE_PREFIX + x25519_public_bytes(other_static))
    i = NoiseHandshake(a, is_initiator=True, identity_sig=stolen)
    r = NoiseHandshake(b, is_initiator=False)
    r.read_message(i.write_message())
    i.read_message(r.write_message())
    with pytest.raises(InvalidSignature):
        r.read_message(i.write_message())


def test_wrong_peer_rejected() -> None:
    a, b, c = generate_key_pair(), generate_key_pair(), generate_key_pair()
    i = NoiseHandshake(a, is_initiator=True, expected_peer=c.public_key.peer_id)
    r = NoiseHandshake(b, is_initiator=False)
    r.read_message(i.write_message())
    with pytest.raises(PeerIdMismatch) as info:
        i.read_message(r.write_message())
    assert info.value.expected == c.public_key.peer_id
    assert info.value.actual == b.public_key.peer_id


def test_tampered_handshake_message_rejected() -> None:
    i, r, _, _ = pair()
    r.read_message(i.write_message())
    m2 = bytearray(r.write_message())
    m2[40] ^= 1  # inside the encrypted static key
    with pytest.raises(DecodeError):
        i.read_message(m2)


@pytest.mark.parametrize("step", [0, 1, 2])
@pytest.mark.parametrize("keep", [0, 1, 31, -1])
def test_truncated_handshake_messages_rejected(step: int, keep: int) -> None:
    i, r, _, _ = pair()
    writer, reader = i, r
    for _ in range(step):
        reader.read_message(writer.write_message())
        writer, reader = reader, writer
    msg = writer.write_message()
    with pytest.raises(DecodeError):
        reader.read_message(msg[:keep])


def test_oversize_handshake_message_rejected() -> None:
    _, r, _, _ = pair()
    with pytest.raises(MessageTooLarge):
        r.read_message(bytes(65536))
    a = generate_key_pair()
    huge = NoiseHandshake(a, is_initiator=False, extensions=NoiseExtensions(("/m" + "x" * 70000,)))
    i = NoiseHandshake(generate_key_pair(), is_initiator=True)
    huge.read_message(i.write_message())
    with pytest.raises(MessageTooLarge):
        huge.write_message()


def test_low_order_ephemeral_rejected() -> None:
    _, r, _, _ = pair()
    with pytest.raises(HandshakeError):
        r.read_message(bytes(32))  # the all-zero point: DH happens on write
        r.write_message()


def test_payload_without_identity_rejected() -> None:
    ident_i = generate_key_pair()
    s_r = X25519PrivateKey.generate()
    ours = NoiseHandshake(ident_i, is_initiator=True)
    theirs = _theirs(initiator=False, static=s_r, ephemeral=None, prologue=b"")
    theirs.read_message(ours.write_message())
    with pytest.raises(HandshakeError):
        ours.read_message(theirs.write_message(b""))


def test_garbage_payload_rejected() -> None:
    ident_i = generate_key_pair()
    s_r = X25519PrivateKey.generate()
    ours = NoiseHandshake(ident_i, is_initiator=True)
    theirs = _theirs(initiator=False, static=s_r, ephemeral=None, prologue=b"")
    theirs.read_message(ours.write_message())
    with pytest.raises(DecodeError):
        ours.read_message(theirs.write_message(b"\xff\xff\xff"))


def test_bad_identity_key_rejected() -> None:
    ident_i = generate_key_pair()
    s_r = X25519PrivateKey.generate()
    ours = NoiseHandshake(ident_i, is_initiator=True)
    theirs = _theirs(initiator=False, static=s_r, ephemeral=None, prologue=b"")
    theirs.read_message(ours.write_message())
    bad = noise_pb2.NoiseHandshakePayload(
        identity_key=b"\x08\x01\x12\x03abc", identity_sig=b"x"
    ).SerializeToString()
    with pytest.raises((DecodeError, CryptoError)):
        ours.read_message(theirs.write_message(bad))


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=300))
def test_fuzzed_authenticated_payloads_raise_typed_errors(payload: bytes) -> None:
    # Payloads that decrypt fine but hold anything: only typed errors, never a crash.
    ident_i = generate_key_pair()
    s_r = X25519PrivateKey.generate()
    ours = NoiseHandshake(ident_i, is_initiator=True)
    theirs = _theirs(initiator=False, static=s_r, ephemeral=None, prologue=b"")
    theirs.read_message(ours.write_message())
    with pytest.raises(Libp2pError):
        ours.read_message(theirs.write_message(payload))


@settings(max_examples=100, deadline=None)
@given(message=st.binary(max_size=200))
def test_fuzzed_handshake_messages_raise_typed_errors(message: bytes) -> None:
    i, r, _, _ = pair()
    r.read_message(i.write_message())
    with pytest.raises(Libp2pError):
        i.read_message(message)


# --- extensions and inlined muxer negotiation -------------------------------------------------------------


def test_extensions_never_in_message_one_and_sent_in_two_and_three() -> None:
    i, r, _, _ = pair(init_muxers=(YAMUX,), resp_muxers=(YAMUX,))
    m1 = i.write_message()
    assert len(m1) == 32
    r.read_message(m1)
    i.read_message(r.write_message())
    r.read_message(i.write_message())
    assert i.result.remote_extensions.stream_muxers == (YAMUX,)
    assert r.result.remote_extensions.stream_muxers == (YAMUX,)


@pytest.mark.parametrize(
    ("init_muxers", "resp_muxers", "expected"),
    [
        ((YAMUX, MPLEX), (MPLEX, YAMUX), YAMUX),  # the initiator's preference wins
        ((MPLEX, YAMUX), (YAMUX,), YAMUX),
        ((YAMUX,), (), None),  # only one side sent a list: fall back to multistream-select
        ((), (YAMUX,), None),
        ((), (), None),
    ],
)
def test_early_muxer_selection(
    init_muxers: tuple[str, ...], resp_muxers: tuple[str, ...], expected: str | None
) -> None:
    i, r, _, _ = pair(init_muxers=init_muxers, resp_muxers=resp_muxers)
    run(i, r)
    assert i.result.early_muxer == expected
    assert r.result.early_muxer == expected


def test_no_common_muxer_fails_both_sides() -> None:
    i, r, _, _ = pair(init_muxers=(YAMUX,), resp_muxers=(MPLEX,))
    r.read_message(i.write_message())
    with pytest.raises(HandshakeError):
        i.read_message(r.write_message())  # the initiator fails before sending message 3
    # A responder facing an initiator that sends message 3 anyway fails too.
    ident_i = generate_key_pair()
    s_i = X25519PrivateKey.generate()
    theirs = _theirs(initiator=True, static=s_i, ephemeral=None, prologue=b"")
    ours = NoiseHandshake(generate_key_pair(), is_initiator=False, extensions=NoiseExtensions((MPLEX,)))
    ours.read_message(theirs.write_message(b""))
    theirs.read_message(ours.write_message())
    with pytest.raises(HandshakeError):
        ours.read_message(theirs.write_message(_payload(ident_i, s_i, (YAMUX,))))


def test_select_early_muxer() -> None:
    assert select_early_muxer([MPLEX, YAMUX], [YAMUX, MPLEX]) == MPLEX
    assert select_early_muxer([], [YAMUX]) is None
    with pytest.raises(HandshakeError):
        select_early_muxer(["/a"], ["/b"])


def test_webtransport_certhashes_carried() -> None:
    a, b = generate_key_pair(), generate_key_pair()
    i = NoiseHandshake(a, is_initiator=True)
    r = NoiseHandshake(
        b, is_initiator=False, extensions=NoiseExtensions(webtransport_certhashes=(b"\x12\x20h",))
    )
    run(i, r)
    assert i.result.remote_extensions.webtransport_certhashes == (b"\x12\x20h",)
    assert i.result.early_muxer is None


# --- the cache of verified static-key signatures ----------------------------------------------------------


def test_reconnect_with_same_static_key_skips_verification_but_bad_signatures_still_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiolibp2p.security.noise import handshake as H

    a, b = generate_key_pair(), generate_key_pair()
    sa, sb = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    calls = 0
    verify_type = type(b.public_key)
    orig = verify_type.verify

    def spy(self: object, data: bytes, sig: bytes) -> bool:
        nonlocal calls
        calls += 1
        return orig(self, data, sig)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_type, "verify", spy)

    def handshake(sig_b: bytes | None = None) -> None:
        i = NoiseHandshake(a, is_initiator=True, static_key=sa, expected_peer=b.public_key.peer_id)
        r = NoiseHandshake(b, is_initiator=False, static_key=sb, identity_sig=sig_b)
        run(i, r)
        assert i.result.remote_peer == b.public_key.peer_id

    H._verified_payloads.clear()
    handshake()
    assert calls == 2  # one verification per side
    handshake()
    assert calls == 2  # same keys, same signatures: both sides answered from the cache
    # A different (bad) signature over the same static key is checked, and refused.
    i = NoiseHandshake(a, is_initiator=True, static_key=sa)
    r = NoiseHandshake(b, is_initiator=False, static_key=sb, identity_sig=bytes(64))
    r.read_message(i.write_message())
    with pytest.raises(InvalidSignature):
        i.read_message(r.write_message())
    assert calls == 3


def test_verified_payload_cache_is_bounded() -> None:
    from aiolibp2p.security.noise import handshake as H

    H._verified_payloads.clear()
    key = generate_key_pair()
    for _ in range(H.VERIFIED_PAYLOAD_CACHE_SIZE + 50):
        static = x25519_public_bytes(X25519PrivateKey.generate())
        sig = key.sign(SIGNATURE_PREFIX + static)
        assert H._verify_static_key_signature(key.public_key.to_protobuf(), key.public_key, static, sig)
    assert len(H._verified_payloads) == H.VERIFIED_PAYLOAD_CACHE_SIZE


def test_x25519_keypair_agrees_with_cryptography_and_refuses_low_order_points() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from aiolibp2p.security.noise.handshake import X25519Keypair, _dh

    for _ in range(20):
        theirs = X25519PrivateKey.generate()
        ours = X25519Keypair.generate()
        as_key = X25519PrivateKey.from_private_bytes(ours.secret)
        assert ours.public == x25519_public_bytes(as_key)
        assert _dh(ours, x25519_public_bytes(theirs)) == theirs.exchange(
            X25519PublicKey.from_public_bytes(ours.public)
        )
        converted = X25519Keypair.from_private_key(theirs)
        assert converted.public == x25519_public_bytes(theirs)
        assert _dh(converted, ours.public) == as_key.exchange(theirs.public_key())
    # the points of small order, canonical or not (RFC 7748 §6.1: an all-zero output must be refused); the
    # cryptography/OpenSSL path refused every one of them too
    small_order = [
        "00" * 32,
        "01" + "00" * 31,
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ec" + "ff" * 30 + "7f",
        "ed" + "ff" * 30 + "7f",
        "ee" + "ff" * 30 + "7f",
    ]
    for point in small_order:
        with pytest.raises(HandshakeError):
            _dh(X25519Keypair.generate(), bytes.fromhex(point))
