"""Unsigned varints (multiformats unsigned-varint): minimal encoding, at most 9 bytes (63 bits).

https://github.com/multiformats/unsigned-varint
"""

from __future__ import annotations

from ..exceptions import MessageTooLarge, VarintError

MAX_VARINT_BYTES = 9
MAX_VARINT_VALUE = (1 << 63) - 1

# Small values are by far the most common; precompute them.
_SMALL = [bytes([i]) for i in range(128)]


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer < 2**63."""
    if value < 128:
        if value < 0:
            raise VarintError("varints are unsigned")
        return _SMALL[value]
    if value > MAX_VARINT_VALUE:
        raise VarintError(f"{value} does not fit in a 9-byte varint")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; returns ``(value, offset_after)``.

    Raises VarintError on a non-minimal or over-long varint, and IndexError-free ``VarintError`` with
    ``incomplete=True`` semantics via :class:`IncompleteVarint` when the data ends inside the varint.
    """
    value = 0
    shift = 0
    end = len(data)
    for i in range(MAX_VARINT_BYTES):
        pos = offset + i
        if pos >= end:
            raise IncompleteVarint("data ends inside a varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i > 0:
                raise VarintError("varint is not minimally encoded")
            return value, pos + 1
        shift += 7
    raise VarintError("varint longer than 9 bytes")


class IncompleteVarint(VarintError):
    """The buffer ends before the varint does (more bytes are needed; not an error of the peer yet)."""


def length_prefixed(payload: bytes | bytearray | memoryview) -> bytes:
    """``uvarint(len(payload)) ‖ payload``."""
    return encode_uvarint(len(payload)) + bytes(payload)


def try_decode_length_prefixed(
    data: bytes | bytearray | memoryview, max_size: int, offset: int = 0
) -> tuple[bytes, int] | None:
    """Decode one length-prefixed message at ``offset`` if it is complete.

    Returns ``(message, offset_after)``, or None when more bytes are needed. Raises MessageTooLarge as soon
    as the prefix announces more than ``max_size`` bytes, so a peer cannot make us buffer without bound.
    """
    end = len(data)
    if offset >= end:
        return None
    b = data[offset]
    if b < 0x80:  # fast paths (no exception at the end of a buffer): 1- and 2-byte prefixes, frames < 16 KiB
        n = b
        pos = offset + 1
    elif offset + 1 < end and 0 < data[offset + 1] < 0x80:
        n = (b & 0x7F) | (data[offset + 1] << 7)
        pos = offset + 2
    else:
        try:
            n, pos = decode_uvarint(data, offset)
        except IncompleteVarint:
            return None
    if n > max_size:
        raise MessageTooLarge(f"message of {n} bytes exceeds the limit of {max_size}")
    stop = pos + n
    if stop > end:
        return None
    frame = data[pos:stop]
    return (frame if type(frame) is bytes else bytes(frame)), stop
