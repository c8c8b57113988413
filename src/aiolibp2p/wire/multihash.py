"""Multihash (the subset libp2p uses): identity (0x00) and sha2-256 (0x12).

https://github.com/multiformats/multihash
"""

from __future__ import annotations

import hashlib

from ..exceptions import DecodeError
from .varint import decode_uvarint, encode_uvarint

IDENTITY = 0x00
SHA2_256 = 0x12


def multihash_encode(code: int, digest: bytes) -> bytes:
    return encode_uvarint(code) + encode_uvarint(len(digest)) + digest


def multihash_digest(data: bytes, code: int = SHA2_256) -> bytes:
    """Hash ``data`` and wrap the digest as a multihash."""
    if code == IDENTITY:
        return multihash_encode(IDENTITY, data)
    if code == SHA2_256:
        return multihash_encode(SHA2_256, hashlib.sha256(data).digest())
    raise ValueError(f"unsupported multihash code {code:#x}")


def multihash_decode(mh: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(code, digest)``, checking the length."""
    code, pos = decode_uvarint(mh)
    length, pos = decode_uvarint(mh, pos)
    digest = mh[pos:]
    if len(digest) != length:
        raise DecodeError(f"multihash length {length} does not match its {len(digest)} digest bytes")
    if code == SHA2_256 and length != 32:
        raise DecodeError("sha2-256 multihash must have a 32-byte digest")
    return code, bytes(digest)
