"""Peer IDs: the multihash of a public key's protobuf, and its two text forms.

Implements the "Peer Ids" section of the peer-ids spec
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#peer-ids) and RFC 0001 (text peer IDs as
CIDs):

* binary form: ``identity`` multihash of the ``PublicKey`` protobuf when it is at most 42 bytes (Ed25519,
  secp256k1), else its ``sha2-256`` multihash (RSA, ECDSA);
* text forms: bare base58btc multihash (``12D3KooW…``, ``16Uiu2HA…``, ``Qm…``; the display form), or a CIDv1
  with the ``libp2p-key`` multicodec (0x72) in any multibase (``bafz…`` base32 by default, ``k51…`` base36).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..exceptions import DecodeError
from ..wire.multibase import b58decode, b58encode, multibase_decode, multibase_encode
from ..wire.multihash import IDENTITY, SHA2_256, multihash_decode, multihash_digest
from ..wire.varint import decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from .keys import PublicKey

__all__ = ["LIBP2P_KEY_CODEC", "MAX_INLINE_KEY_LENGTH", "PeerId"]

MAX_INLINE_KEY_LENGTH: Final = 42
"""Public key protobufs up to this size are inlined with the identity multihash (spec); also the largest
identity digest accepted when parsing (as rust-libp2p does)."""
LIBP2P_KEY_CODEC: Final = 0x72
CID_VERSION_1: Final = 1
MAX_PEER_ID_BYTES: Final = 2 + MAX_INLINE_KEY_LENGTH
"""Largest valid binary peer ID (an identity multihash of a 42-byte key)."""
MAX_PEER_ID_TEXT_LENGTH: Final = 128
"""Longer strings are refused before decoding (base58 decoding is quadratic in the length)."""
SHORT_ID_CHARS: Final = 6


class PeerId:
    """An immutable, hashable peer ID, ordered by its bytes."""

    __slots__ = ("_bytes", "_hash", "_str")

    _bytes: bytes
    _hash: int
    _str: str | None

    def __init__(self, multihash: bytes | bytearray | memoryview) -> None:
        """Build from multihash bytes, validating them (same as :meth:`from_bytes`)."""
        data = bytes(multihash)
        _validate_multihash(data)
        self._set(data)

    def _set(self, data: bytes) -> None:
        object.__setattr__(self, "_bytes", data)
        object.__setattr__(self, "_hash", hash(data))
        object.__setattr__(self, "_str", None)

    @classmethod
    def _trusted(cls, data: bytes) -> PeerId:
        pid = cls.__new__(cls)
        pid._set(data)
        return pid

    # --- construction ---

    @classmethod
    def from_public_key(cls, public_key: PublicKey) -> PeerId:
        """The ID of ``public_key`` (cached on the key object)."""
        return public_key.peer_id

    @classmethod
    def from_public_key_protobuf(cls, encoded: bytes) -> PeerId:
        """The ID of a key given as its (deterministic) ``PublicKey`` protobuf; no key parsing."""
        code = IDENTITY if len(encoded) <= MAX_INLINE_KEY_LENGTH else SHA2_256
        return cls._trusted(multihash_digest(encoded, code))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> PeerId:
        """From multihash bytes (identity ≤ 42 bytes, or sha2-256); raises DecodeError."""
        return cls(data)

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """From base58btc multihash text or a ``libp2p-key`` CIDv1 in multibase; raises DecodeError."""
        if not isinstance(text, str):
            raise DecodeError("a peer ID string must be str")
        if not text or len(text) > MAX_PEER_ID_TEXT_LENGTH:
            raise DecodeError(f"peer ID text must be 1 to {MAX_PEER_ID_TEXT_LENGTH} characters")
        if text[0] == "1" or text.startswith("Qm"):
            pid = cls(b58decode(text))
            # base58btc is a bijection (leading "1"s are the leading zero bytes): the text is the canonical form
            object.__setattr__(pid, "_str", text)
            return pid
        try:
            cid = multibase_decode(text)
        except ValueError as e:
            raise DecodeError(f"not a peer ID: {e}") from None
        return cls.from_cid_bytes(cid)

    @classmethod
    def from_cid_bytes(cls, cid: bytes) -> PeerId:
        """From binary CIDv1 ``0x01 ‖ varint(0x72) ‖ multihash``."""
        version, pos = decode_uvarint(cid)
        if version != CID_VERSION_1:
            raise DecodeError(f"peer ID CIDs must be CIDv1, got version {version}")
        codec, pos = decode_uvarint(cid, pos)
        if codec != LIBP2P_KEY_CODEC:
            raise DecodeError(f"peer ID CID has multicodec {codec:#x}, expected libp2p-key (0x72)")
        return cls(cid[pos:])

    # --- forms ---

    def to_bytes(self) -> bytes:
        return self._bytes

    def to_base58(self) -> str:
        s = self._str
        if s is None:
            s = b58encode(self._bytes)
            object.__setattr__(self, "_str", s)
        return s

    def to_cid_bytes(self) -> bytes:
        return encode_uvarint(CID_VERSION_1) + encode_uvarint(LIBP2P_KEY_CODEC) + self._bytes

    def to_cid(self, base: str = "base32") -> str:
        """CIDv1 ``libp2p-key`` text in the given multibase (base32, base36, base58btc, base64url, base16)."""
        return multibase_encode(self.to_cid_bytes(), base)

    def short(self) -> str:
        """The last few characters of the base58 form, for logs."""
        return self.to_base58()[-SHORT_ID_CHARS:]

    # --- keys ---

    def extract_public_key(self) -> PublicKey | None:
        """The public key inlined in an identity-multihash ID, or None for a hashed ID.

        Raises CryptoError/DecodeError if the inlined bytes are not a valid key.
        """
        code, digest = multihash_decode(self._bytes)
        if code != IDENTITY:
            return None
        from .keys import unmarshal_public_key

        return unmarshal_public_key(digest)

    def matches_public_key(self, public_key: PublicKey) -> bool:
        return public_key.peer_id._bytes == self._bytes

    # --- dunder ---

    def __str__(self) -> str:
        return self.to_base58()

    def __repr__(self) -> str:
        return f"PeerId({self.to_base58()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes == other._bytes

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes < other._bytes

    def __le__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes <= other._bytes

    def __gt__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes > other._bytes

    def __ge__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes >= other._bytes

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PeerId is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PeerId is immutable")

    def __reduce__(self) -> tuple[type[PeerId], tuple[bytes]]:
        return (PeerId, (self._bytes,))

    def __copy__(self) -> PeerId:
        return self

    def __deepcopy__(self, memo: object) -> PeerId:
        return self


def _validate_multihash(data: bytes) -> None:
    if len(data) > MAX_PEER_ID_BYTES:
        raise DecodeError(f"peer ID of {len(data)} bytes is too long")
    code, digest = multihash_decode(data)
    if code == IDENTITY:
        if len(digest) > MAX_INLINE_KEY_LENGTH:
            raise DecodeError("identity peer ID longer than 42 bytes")
    elif code != SHA2_256:
        raise DecodeError(f"peer ID multihash must be identity or sha2-256, not {code:#x}")
