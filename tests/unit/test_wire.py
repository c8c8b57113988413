"""varint, multibase and multihash codecs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiolibp2p.exceptions import DecodeError, MessageTooLarge, VarintError
from aiolibp2p.wire.multibase import b58decode, b58encode, multibase_decode, multibase_encode
from aiolibp2p.wire.multihash import IDENTITY, SHA2_256, multihash_decode, multihash_digest
from aiolibp2p.wire.varint import (
    IncompleteVarint,
    decode_uvarint,
    encode_uvarint,
    length_prefixed,
    try_decode_length_prefixed,
)

# multiformats/unsigned-varint test vectors
VECTORS = [
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16384, "808001"),
    (2**63 - 1, "ffffffffffffffff7f"),
]


@pytest.mark.parametrize(("value", "hexed"), VECTORS)
def test_varint_vectors(value: int, hexed: str) -> None:
    assert encode_uvarint(value).hex() == hexed
    assert decode_uvarint(bytes.fromhex(hexed)) == (value, len(hexed) // 2)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_roundtrip(v: int) -> None:
    e = encode_uvarint(v)
    assert decode_uvarint(e + b"junk") == (v, len(e))


def test_varint_rejects_bad_input() -> None:
    with pytest.raises(VarintError):
        decode_uvarint(bytes.fromhex("8000"))  # not minimal
    with pytest.raises(VarintError):
        decode_uvarint(b"\xff" * 10)  # too long
    with pytest.raises(IncompleteVarint):
        decode_uvarint(b"\x80")
    with pytest.raises(VarintError):
        encode_uvarint(2**63)
    with pytest.raises(VarintError):
        encode_uvarint(-1)


@given(st.binary(max_size=20))
def test_varint_fuzz(data: bytes) -> None:
    try:
        v, n = decode_uvarint(data)
    except VarintError:
        return
    assert encode_uvarint(v) == data[:n]


def test_length_prefixed_limits() -> None:
    msg = length_prefixed(b"x" * 300)
    assert try_decode_length_prefixed(msg, 300) == (b"x" * 300, len(msg))
    assert try_decode_length_prefixed(msg[:-1], 300) is None
    with pytest.raises(MessageTooLarge):
        try_decode_length_prefixed(msg[:2], 299)  # refused from the prefix alone


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 16383, 16384, 70000])
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_length_prefixed_every_split(size: int, kind: type[bytes] | type[bytearray]) -> None:
    """1-, 2- and 3-byte prefixes (the first two have a fast path), at an offset, cut at every prefix byte
    and inside the payload; the frame comes back as bytes."""
    payload = bytes(i & 0xFF for i in range(size))
    msg = b"\x05hello" + length_prefixed(payload)
    start = 6
    for cut in {*range(start, min(start + 4, len(msg))), len(msg) - 1}:
        assert try_decode_length_prefixed(kind(msg[:cut]), 1 << 20, start) is None
    got = try_decode_length_prefixed(kind(msg), 1 << 20, start)
    assert got == (payload, len(msg))
    assert type(got[0]) is bytes
    assert try_decode_length_prefixed(kind(msg), 1 << 20, len(msg)) is None


@pytest.mark.parametrize("prefix", [b"\x80\x00", b"\xff\x80\x00"])
def test_length_prefixed_non_minimal(prefix: bytes) -> None:
    with pytest.raises(VarintError):
        try_decode_length_prefixed(prefix + b"x" * 200, 1 << 20)


@given(st.binary(max_size=64), st.sampled_from(["base58btc", "base32", "base36", "base64url", "base16"]))
def test_multibase_roundtrip(data: bytes, base: str) -> None:
    assert multibase_decode(multibase_encode(data, base)) == data


def test_base58_vectors() -> None:
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58decode("1112") == b"\0\0\0\x01"
    with pytest.raises(DecodeError):
        b58decode("0OIl")


@given(st.text(max_size=30))
def test_multibase_fuzz(text: str) -> None:
    try:
        multibase_decode(text)
    except DecodeError:
        pass


def test_multihash() -> None:
    mh = multihash_digest(b"abc")
    code, digest = multihash_decode(mh)
    assert code == SHA2_256 and len(digest) == 32
    assert multihash_decode(multihash_digest(b"k", IDENTITY)) == (IDENTITY, b"k")
    with pytest.raises(DecodeError):
        multihash_decode(mh[:-1])
