"""Tests of aiolibp2p.crypto.peer_id: derivation rules, text forms (base58btc and CIDv1 libp2p-key), the
spec's examples, ordering/hashing, and fuzzing of the parsers."""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.crypto.keys import KeyType, generate_key_pair, unmarshal_public_key
from aiolibp2p.crypto.peer_id import MAX_INLINE_KEY_LENGTH, PeerId
from aiolibp2p.exceptions import CryptoError, DecodeError
from aiolibp2p.wire.multibase import b58encode

ED25519_PUBLIC = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
ED25519_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"

# Examples from peer-ids/peer-ids.md, "String representation".
SPEC_CID = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
SPEC_QM = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
SPEC_ED = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def test_ed25519_peer_id_is_identity_multihash() -> None:
    key = unmarshal_public_key(ED25519_PUBLIC)
    pid = PeerId.from_public_key(key)
    assert pid.to_bytes() == b"\x00\x24" + ED25519_PUBLIC
    assert str(pid) == ED25519_ID
    assert repr(pid) == f"PeerId({ED25519_ID})"
    assert pid.extract_public_key() == key
    assert pid.matches_public_key(key)
    assert pid.short() == ED25519_ID[-6:]


def test_hashed_peer_ids_for_long_keys() -> None:
    key = generate_key_pair(KeyType.ECDSA).public_key
    pid = PeerId.from_public_key(key)
    assert len(key.to_protobuf()) > MAX_INLINE_KEY_LENGTH
    assert pid.to_bytes() == b"\x12\x20" + hashlib.sha256(key.to_protobuf()).digest()
    assert str(pid).startswith("Qm")
    assert pid.extract_public_key() is None
    assert pid.matches_public_key(key)
    assert not pid.matches_public_key(generate_key_pair(KeyType.ECDSA).public_key)


def test_prefixes_per_key_type() -> None:
    assert str(generate_key_pair(KeyType.Ed25519).peer_id).startswith("12D3KooW")
    assert str(generate_key_pair(KeyType.Secp256k1).peer_id).startswith("16Uiu2HA")


def test_spec_text_examples() -> None:
    assert str(PeerId.from_string(SPEC_QM)) == SPEC_QM
    cid_pid = PeerId.from_string(SPEC_CID)
    assert cid_pid.to_cid() == SPEC_CID
    assert str(cid_pid).startswith("Qm")
    ed = PeerId.from_string(SPEC_ED)
    assert str(ed) == SPEC_ED
    key = ed.extract_public_key()
    assert key is not None and key.key_type == KeyType.Ed25519
    assert ed.matches_public_key(key)


@pytest.mark.parametrize("base", ["base32", "base36", "base58btc", "base64url", "base16"])
def test_cid_round_trip(base: str) -> None:
    pid = generate_key_pair().peer_id
    text = pid.to_cid(base)
    assert PeerId.from_string(text) == pid


def test_default_cid_is_base32_libp2p_key() -> None:
    pid = PeerId.from_string(ED25519_ID)
    assert pid.to_cid().startswith("bafzaa")
    assert pid.to_cid("base36").startswith("k51")
    assert PeerId.from_string(pid.to_cid().upper()) == pid  # multibase "B" is upper-case base32


def test_cid_with_wrong_codec_or_version_is_refused() -> None:
    from aiolibp2p.wire.multibase import multibase_encode

    mh = PeerId.from_string(ED25519_ID).to_bytes()
    with pytest.raises(DecodeError):
        PeerId.from_string(multibase_encode(b"\x01\x55" + mh))  # raw codec
    with pytest.raises(DecodeError):
        PeerId.from_string(multibase_encode(b"\x02\x72" + mh))  # CIDv2


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x00",
        b"\x11\x14" + bytes(20),  # sha1
        b"\x12\x10" + bytes(16),  # sha2-256 of the wrong length
        b"\x12\x20" + bytes(31),  # truncated
        b"\x00" + bytes([MAX_INLINE_KEY_LENGTH + 1]) + bytes(MAX_INLINE_KEY_LENGTH + 1),  # over-long identity
        b"\x80\x00\x00",  # non-minimal varint
    ],
)
def test_invalid_binary_peer_ids(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        PeerId.from_bytes(bad)


@pytest.mark.parametrize("bad", ["", "Qm0OIl", "x" * 500, "bafz!!", "zzz", "\u00e9abc", "f0172"])
def test_invalid_text_peer_ids(bad: str) -> None:
    with pytest.raises(DecodeError):
        PeerId.from_string(bad)


def test_identity_id_with_garbage_key() -> None:
    pid = PeerId.from_bytes(b"\x00\x03abc")
    with pytest.raises((DecodeError, CryptoError)):
        pid.extract_public_key()


def test_immutable_hashable_ordered() -> None:
    a, b = sorted(PeerId.from_public_key(generate_key_pair().public_key) for _ in range(2))
    assert a < b and a <= b and b > a and b >= a and a != b
    assert sorted([b, a], key=lambda p: p.to_bytes()) == [a, b]
    same = PeerId.from_bytes(a.to_bytes())
    assert same == a and hash(same) == hash(a) and len({a, same, b}) == 2
    with pytest.raises(AttributeError):
        a._bytes = b"x"
    with pytest.raises(AttributeError):
        a.foo = 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) is a
    assert a != a.to_bytes()


def test_peer_id_is_cached_on_the_key() -> None:
    key = generate_key_pair()
    assert key.public_key.peer_id is key.public_key.peer_id
    assert PeerId.from_public_key(key.public_key) is key.peer_id


# --- fuzzing ---------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_from_bytes(data: bytes) -> None:
    try:
        pid = PeerId.from_bytes(data)
    except DecodeError:
        return
    assert PeerId.from_bytes(pid.to_bytes()) == pid
    assert PeerId.from_string(str(pid)) == pid
    assert PeerId.from_string(pid.to_cid()) == pid


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", max_size=60),
        st.builds(lambda s: "bafz" + s, st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", max_size=60)),
        st.builds(lambda s: "k51" + s, st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", max_size=60)),
    )
)
def test_fuzz_from_string(text: str) -> None:
    try:
        pid = PeerId.from_string(text)
    except DecodeError:
        return
    assert PeerId.from_bytes(pid.to_bytes()) == pid
    # the text a base58 ID was parsed from is kept as its string form: it must be the canonical encoding
    assert str(pid) == b58encode(pid.to_bytes())


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=MAX_INLINE_KEY_LENGTH))
def test_fuzz_identity_extract(digest: bytes) -> None:
    pid = PeerId.from_bytes(bytes([0, len(digest)]) + digest)
    try:
        pid.extract_public_key()
    except (DecodeError, CryptoError):
        pass
