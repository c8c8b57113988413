"""Noise transport framing (sans-I/O): frame layout, chunked and coalesced input, tampering, limits."""

from __future__ import annotations

import array
import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.exceptions import CryptoError, DecodeError, MessageTooLarge
from aiolibp2p.security.noise.framing import (
    MAX_FRAME_LEN,
    MAX_PLAINTEXT,
    NoiseFrameDecoder,
    NoiseFrameEncoder,
    encode_handshake_frame,
)
from aiolibp2p.security.noise.handshake import CipherState

KEY = bytes(range(32))


def codec() -> tuple[NoiseFrameEncoder, NoiseFrameDecoder]:
    return NoiseFrameEncoder(CipherState(KEY)), NoiseFrameDecoder(CipherState(KEY))


def test_limits() -> None:
    assert MAX_FRAME_LEN == 65535
    assert MAX_PLAINTEXT == 65519


def test_frame_layout_matches_cipher_state() -> None:
    enc, _ = codec()
    ref = CipherState(KEY)
    out = enc.encode(b"hello")
    assert out[:2] == (5 + 16).to_bytes(2, "big")
    assert bytes(out[2:]) == ref.encrypt_with_ad(b"", b"hello")  # empty associated data, nonce 0
    assert bytes(enc.encode(b"again")[2:]) == ref.encrypt_with_ad(b"", b"again")  # nonce 1


def test_large_write_split_into_max_frames() -> None:
    enc, dec = codec()
    data = os.urandom(3 * MAX_PLAINTEXT + 7)
    out = enc.encode(data)
    lens = []
    pos = 0
    while pos < len(out):
        n = int.from_bytes(out[pos : pos + 2], "big")
        lens.append(n)
        pos += 2 + n
    assert lens == [MAX_FRAME_LEN] * 3 + [7 + 16]
    assert dec.feed(out) == data


def test_empty_write_and_empty_frame() -> None:
    enc, dec = codec()
    assert enc.encode(b"") == b""
    frame = enc.encode_frame(b"")
    assert len(frame) == 18
    assert dec.feed(frame) == b""
    assert dec.feed(enc.encode(b"x")) == b"x"  # the empty frame used nonce 0


def test_single_frame_over_limit_refused() -> None:
    enc, _ = codec()
    with pytest.raises(MessageTooLarge):
        enc.encode_frame(bytes(MAX_PLAINTEXT + 1))
    assert len(enc.encode_frame(bytes(MAX_PLAINTEXT))) == 2 + MAX_FRAME_LEN
    with pytest.raises(MessageTooLarge):
        encode_handshake_frame(bytes(MAX_FRAME_LEN + 1))
    assert encode_handshake_frame(b"ab") == b"\x00\x02ab"


def test_unkeyed_cipher_refused() -> None:
    with pytest.raises(CryptoError):
        NoiseFrameEncoder(CipherState())
    with pytest.raises(CryptoError):
        NoiseFrameDecoder(CipherState())


def test_tampered_frame_rejected_and_decoder_stays_failed() -> None:
    enc, dec = codec()
    out = bytearray(enc.encode(b"payload"))
    out[5] ^= 0x80
    with pytest.raises(DecodeError):
        dec.feed(out)
    with pytest.raises(DecodeError):
        dec.feed(enc.encode(b"more"))


def test_tampered_tag_in_split_frame_rejected() -> None:
    enc, dec = codec()
    out = bytearray(enc.encode(os.urandom(1000)))
    out[-1] ^= 1
    assert dec.feed(out[:500]) == b""
    with pytest.raises(DecodeError):
        dec.feed(out[500:])


def test_replayed_or_reordered_frames_rejected() -> None:
    enc, dec = codec()
    f1, f2 = bytes(enc.encode(b"one")), bytes(enc.encode(b"two"))
    assert dec.feed(f1) == b"one"
    with pytest.raises(DecodeError):
        dec.feed(f1)  # replay: wrong nonce
    _, dec2 = codec()
    with pytest.raises(DecodeError):
        dec2.feed(f2)


@pytest.mark.parametrize("length", [0, 1, 15])
def test_frame_shorter_than_tag_rejected(length: int) -> None:
    _, dec = codec()
    with pytest.raises(DecodeError):
        dec.feed(length.to_bytes(2, "big") + bytes(length))
    _, dec = codec()
    assert dec.feed(length.to_bytes(2, "big")[:1]) == b""
    with pytest.raises(DecodeError):
        dec.feed(length.to_bytes(2, "big")[1:])


def test_decoder_buffers_at_most_one_frame() -> None:
    enc, dec = codec()
    out = enc.encode(bytes(MAX_PLAINTEXT))
    assert dec.feed(out[:-1]) == b""
    assert dec.buffered == len(out) - 1
    assert dec.feed(out[-1:]) == bytes(MAX_PLAINTEXT)
    assert dec.buffered == 0


def test_memoryview_input_of_other_format() -> None:
    enc, dec = codec()

    arr = array.array("I", range(100))
    out = enc.encode(memoryview(arr))
    assert dec.feed(memoryview(out)) == arr.tobytes()


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=3000), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=30000), max_size=12),
)
def test_arbitrary_chunking(messages: list[bytes], cuts: list[int]) -> None:
    enc, dec = codec()
    wire = b"".join(bytes(enc.encode_frame(m)) for m in messages)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    got = bytearray()
    for a, b in itertools.pairwise(points):
        got += dec.feed(wire[a:b])
    assert bytes(got) == b"".join(messages)
    assert dec.buffered == 0


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=4 * MAX_PLAINTEXT),
    chunk=st.integers(min_value=1, max_value=70000),
)
def test_large_payload_chunked(size: int, chunk: int) -> None:
    enc, dec = codec()
    data = os.urandom(size)
    wire = enc.encode(data)
    got = bytearray()
    for pos in range(0, len(wire), chunk):
        got += dec.feed(wire[pos : pos + chunk])
    assert got == data


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(min_size=2, max_size=400))
def test_garbage_raises_decode_error_or_waits(garbage: bytes) -> None:
    _, dec = codec()
    try:
        assert dec.feed(garbage) == b""  # an incomplete frame is held, nothing returned
        assert dec.buffered <= 2 + MAX_FRAME_LEN
    except DecodeError:
        pass
