"""Multibase and the raw base encodings libp2p uses: base58btc (peer IDs), base32 (CIDs), base36 (DNS
labels), base64url (certhashes), base16.

https://github.com/multiformats/multibase
"""

from __future__ import annotations

import base64
import binascii

from ..exceptions import DecodeError

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    try:
        for c in text:
            n = n * 58 + _B58_INDEX[c]
    except KeyError as e:
        raise DecodeError(f"invalid base58 character {e.args[0]!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def _b36encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "0" * pad + "".join(reversed(out))


def _b36decode(text: str) -> bytes:
    text = text.lower()
    n = 0
    for c in text:
        i = _B36_ALPHABET.find(c)
        if i < 0:
            raise DecodeError(f"invalid base36 character {c!r}")
        n = n * 36 + i
    pad = len(text) - len(text.lstrip("0"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def multibase_encode(data: bytes, base: str = "base32") -> str:
    """Encode with a multibase prefix. ``base`` is one of base58btc, base32, base36, base64url, base16."""
    if base == "base58btc":
        return "z" + b58encode(data)
    if base == "base32":
        return "b" + base64.b32encode(data).decode().lower().rstrip("=")
    if base == "base36":
        return "k" + _b36encode(data)
    if base == "base64url":
        return "u" + base64.urlsafe_b64encode(data).decode().rstrip("=")
    if base == "base16":
        return "f" + data.hex()
    raise ValueError(f"unsupported multibase {base!r}")


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string (prefixes z, b/B, k/K, u, m, f/F)."""
    if not text:
        raise DecodeError("empty multibase string")
    prefix, body = text[0], text[1:]
    try:
        if prefix == "z":
            return b58decode(body)
        if prefix in "bB":
            body = body.upper()
            return base64.b32decode(body + "=" * (-len(body) % 8))
        if prefix in "kK":
            return _b36decode(body)
        if prefix == "u":
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if prefix == "m":
            return base64.b64decode(body + "=" * (-len(body) % 4))
        if prefix in "fF":
            return bytes.fromhex(body)
    except (binascii.Error, ValueError) as e:
        raise DecodeError(f"invalid multibase string: {e}") from None
    raise DecodeError(f"unsupported multibase prefix {prefix!r}")
