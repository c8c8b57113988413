"""libp2p identity keys: Ed25519, secp256k1, ECDSA and RSA, and their deterministic protobuf encodings.

Implements the "Keys" section of the peer-ids spec
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#keys):

* ``PublicKey{Type=1, Data=2}`` / ``PrivateKey{Type=1, Data=2}`` encoded deterministically (minimal varints,
  Type then Data, both present, nothing else). The codec is hand-written here (the messages are two fields)
  so that the hot path — every handshake unmarshals a key — avoids the protobuf runtime, and so that the
  output is byte-exact by construction. ``wire/pb/crypto.proto`` documents the same messages.
* Data encodings per type:

  ======== ================================== ============================== ==========================
  type     public Data                        private Data                   signature
  ======== ================================== ============================== ==========================
  Ed25519  32 raw bytes                       priv32 ‖ pub32 (legacy: ‖pub32) RFC 8032
  secp256k1 33-byte compressed point          32-byte scalar                 DER ECDSA over SHA-256 (low-S)
  ECDSA    PKIX SubjectPublicKeyInfo DER      SEC1 ECPrivateKey DER          DER ECDSA over SHA-256
  RSA      PKIX SubjectPublicKeyInfo DER      PKCS#1 RSAPrivateKey DER       PKCS#1 v1.5 over SHA-256
  ======== ================================== ============================== ==========================

Signature verification never raises on a bad signature: it returns False. Parsing bad key bytes raises
:class:`~aiolibp2p.exceptions.DecodeError` (malformed protobuf) or :class:`~aiolibp2p.exceptions.CryptoError`
(a well-formed message carrying an unusable key).
"""

from __future__ import annotations

import abc
import enum
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ..exceptions import CryptoError, DecodeError
from ..wire.varint import decode_uvarint, encode_uvarint

try:  # libsodium's Ed25519 is 2-3x faster than OpenSSL's here (verify ~95 us vs ~270 us on the CI machines)
    from nacl.bindings import crypto_sign as _sodium_sign
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError as _SodiumBadSignature
    from nacl.exceptions import CryptoError as _SodiumError

    HAVE_SODIUM = True
except ImportError:  # pragma: no cover - PyNaCl is a dependency; OpenSSL (cryptography) is the fallback
    HAVE_SODIUM = False

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from .peer_id import PeerId

__all__ = [
    "MAX_PRIVATE_KEY_PROTOBUF_BYTES",
    "MAX_PUBLIC_KEY_PROTOBUF_BYTES",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "ECDSAPrivateKey",
    "ECDSAPublicKey",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "RSAPrivateKey",
    "RSAPublicKey",
    "Secp256k1PrivateKey",
    "Secp256k1PublicKey",
    "generate_key_pair",
    "load_private_key_file",
    "save_private_key_file",
    "unmarshal_private_key",
    "unmarshal_public_key",
]

# --- limits ----------------------------------------------------------------------------------------------

MIN_RSA_BITS: Final = 2048
"""Smallest RSA modulus accepted (go-libp2p's ``MinRsaKeyBits``)."""
MAX_RSA_BITS: Final = 8192
"""Largest RSA modulus accepted (go-libp2p's ``maxRsaKeyBits``); bounds the cost of a remote key."""
MAX_PUBLIC_KEY_PROTOBUF_BYTES: Final = 4096
"""An 8192-bit RSA PKIX key is about 1.1 KiB; anything much larger is not a key."""
MAX_PRIVATE_KEY_PROTOBUF_BYTES: Final = 16384
"""An 8192-bit RSA PKCS#1 key is about 4.7 KiB."""
MAX_PRIVATE_KEY_FILE_BYTES: Final = MAX_PRIVATE_KEY_PROTOBUF_BYTES
PRIVATE_KEY_FILE_MODE: Final = 0o600
DEFAULT_RSA_BITS: Final = 2048
RSA_PUBLIC_EXPONENT: Final = 65537

ED25519_KEY_BYTES: Final = 32
ED25519_PRIVATE_BYTES: Final = 64
ED25519_LEGACY_PRIVATE_BYTES: Final = 96
SECP256K1_COMPRESSED_BYTES: Final = 33
SECP256K1_UNCOMPRESSED_BYTES: Final = 65
SECP256K1_PRIVATE_BYTES: Final = 32
# Order of the secp256k1 group, for low-S normalisation (BIP 62 / libsecp256k1 refuse high-S signatures).
SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_ECDSA_CURVES: Final = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
"""Curves accepted for the ECDSA key type (go-libp2p accepts the NIST curves; P-256 is generated)."""

_TAG_TYPE: Final = 0x08  # field 1, varint
_TAG_DATA: Final = 0x12  # field 2, length-delimited


class KeyType(enum.IntEnum):
    """The ``KeyType`` enum of the peer-ids spec."""

    RSA = 0
    Ed25519 = 1
    Secp256k1 = 2
    ECDSA = 3


# --- the deterministic two-field protobuf ----------------------------------------------------------------


def _encode_key_message(key_type: KeyType, data: bytes) -> bytes:
    return bytes((_TAG_TYPE, int(key_type))) + bytes((_TAG_DATA,)) + encode_uvarint(len(data)) + data


def _decode_key_message(data: bytes, max_size: int, what: str) -> tuple[KeyType, bytes]:
    """Parse a ``PublicKey``/``PrivateKey`` message.

    Accepts any valid protobuf encoding of it (fields in any order, unknown fields skipped) so that keys from
    less careful encoders still load; the key objects always re-encode canonically.
    """
    if len(data) > max_size:
        raise DecodeError(f"{what} protobuf of {len(data)} bytes exceeds the limit of {max_size}")
    key_type: int | None = None
    key_data: bytes | None = None
    pos = 0
    end = len(data)
    while pos < end:
        tag, pos = decode_uvarint(data, pos)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = decode_uvarint(data, pos)
            if field == 1:
                key_type = value
        elif wire_type == 2:
            length, pos = decode_uvarint(data, pos)
            if pos + length > end:
                raise DecodeError(f"{what} protobuf: field {field} runs past the end")
            if field == 2:
                key_data = bytes(data[pos : pos + length])
            pos += length
        elif wire_type == 5:
            pos += 4
        elif wire_type == 1:
            pos += 8
        else:
            raise DecodeError(f"{what} protobuf: unsupported wire type {wire_type}")
        if field == 0:
            raise DecodeError(f"{what} protobuf: field number 0")
        if pos > end:
            raise DecodeError(f"{what} protobuf: truncated field {field}")
    if key_type is None or key_data is None:
        raise DecodeError(f"{what} protobuf lacks its Type or Data field")
    try:
        return KeyType(key_type), key_data
    except ValueError:
        raise CryptoError(f"unknown key type {key_type}") from None


# --- abstract keys ---------------------------------------------------------------------------------------


class PublicKey(abc.ABC):
    """A public key of one of the four libp2p key types. Equal and hashed by ``(key_type, raw())``."""

    __slots__ = ("_hash", "_peer_id", "_protobuf", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._protobuf = _encode_key_message(self.key_type, raw)
        self._hash = hash(self._protobuf)
        self._peer_id: PeerId | None = None

    @property
    @abc.abstractmethod
    def key_type(self) -> KeyType: ...

    def raw(self) -> bytes:
        """The ``Data`` field of the ``PublicKey`` protobuf."""
        return self._raw

    def to_protobuf(self) -> bytes:
        """The deterministic ``PublicKey`` protobuf (cached)."""
        return self._protobuf

    @property
    def peer_id(self) -> PeerId:
        """The peer ID of this key (computed once)."""
        if self._peer_id is None:
            from .peer_id import PeerId

            self._peer_id = PeerId.from_public_key_protobuf(self._protobuf)
        return self._peer_id

    @abc.abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """True if ``signature`` is a valid signature of ``data``; never raises on a bad signature."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._protobuf == other._protobuf

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw.hex()})"


class PrivateKey(abc.ABC):
    """A private key; knows its public key."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def key_type(self) -> KeyType: ...

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @property
    def peer_id(self) -> PeerId:
        return self.public_key.peer_id

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes: ...

    @abc.abstractmethod
    def raw(self) -> bytes:
        """The ``Data`` field of the ``PrivateKey`` protobuf."""

    def to_protobuf(self) -> bytes:
        """The deterministic ``PrivateKey`` protobuf."""
        return _encode_key_message(self.key_type, self.raw())

    def __repr__(self) -> str:
        # Never print secret material.
        return f"{type(self).__name__}(peer_id={self.public_key.peer_id})"


# --- Ed25519 ---------------------------------------------------------------------------------------------


class Ed25519PublicKey(PublicKey):
    __slots__ = ("_key",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != ED25519_KEY_BYTES:
            raise CryptoError(f"Ed25519 public key must be {ED25519_KEY_BYTES} bytes, got {len(raw)}")
        try:
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as e:
            raise CryptoError(f"invalid Ed25519 public key: {e}") from None
        super().__init__(bytes(raw))

    @property
    def key_type(self) -> KeyType:
        return KeyType.Ed25519

    def verify(self, data: bytes, signature: bytes) -> bool:
        if HAVE_SODIUM and _use_sodium:
            if len(signature) != 64:
                return False
            try:
                _sodium_open(bytes(signature) + bytes(data), self._raw)
            except (_SodiumBadSignature, _SodiumError, ValueError, TypeError):
                return False
            return True
        try:
            self._key.verify(bytes(signature), bytes(data))
        except (_CryptoInvalidSignature, ValueError, TypeError):
            return False
        return True


_use_sodium = True
"""Module switch for the tests: False forces the OpenSSL (cryptography) Ed25519 path."""


class Ed25519PrivateKey(PrivateKey):
    __slots__ = ("_key", "_public", "_seed", "_sodium_sk")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self._seed = key.private_bytes_raw()
        self._public = Ed25519PublicKey(key.public_key().public_bytes_raw())
        self._sodium_sk = self._seed + self._public.raw()  # libsodium's 64-byte secret key: seed || public

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519PrivateKey:
        """From the 32-byte RFC 8032 private key (seed)."""
        if len(seed) != ED25519_KEY_BYTES:
            raise CryptoError(f"Ed25519 seed must be {ED25519_KEY_BYTES} bytes")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_raw(cls, raw: bytes) -> Ed25519PrivateKey:
        """From ``priv32 ‖ pub32`` or the legacy ``priv32 ‖ pub32 ‖ pub32``; the public half must match."""
        if len(raw) == ED25519_LEGACY_PRIVATE_BYTES:
            if raw[32:64] != raw[64:96]:
                raise CryptoError("legacy Ed25519 private key: the two public key copies differ")
            raw = raw[:ED25519_PRIVATE_BYTES]
        if len(raw) != ED25519_PRIVATE_BYTES:
            raise CryptoError(f"Ed25519 private key must be 64 (or legacy 96) bytes, got {len(raw)}")
        key = cls.from_seed(raw[:32])
        if key._public.raw() != raw[32:]:
            raise CryptoError("Ed25519 private key: the embedded public key does not match the seed")
        return key

    @property
    def key_type(self) -> KeyType:
        return KeyType.Ed25519

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def raw(self) -> bytes:
        return self._seed + self._public.raw()

    def sign(self, data: bytes) -> bytes:
        if HAVE_SODIUM and _use_sodium:  # deterministic (RFC 8032): the same signature as OpenSSL's
            return _sodium_sign(bytes(data), self._sodium_sk)[:64]
        return self._key.sign(bytes(data))


# --- DER and ECDSA helpers (secp256k1, ECDSA, RSA) -------------------------------------------------------


def _spki_der(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    """PKIX SubjectPublicKeyInfo DER: the public Data of ECDSA and RSA keys."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _traditional_der(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """SEC1 ``ECPrivateKey`` / PKCS#1 ``RSAPrivateKey`` DER: the private Data of ECDSA and RSA keys."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _load_der_public(raw: bytes, what: str) -> PublicKeyTypes:
    try:
        return serialization.load_der_public_key(bytes(raw))
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CryptoError(f"invalid {what} public key: {e}") from None


def _load_der_private(raw: bytes, what: str) -> PrivateKeyTypes:
    try:
        return serialization.load_der_private_key(bytes(raw), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise CryptoError(f"invalid {what} private key: {e}") from None


class _ECPublicKey(PublicKey):
    """A public key verifying DER ECDSA signatures over SHA-256 (secp256k1 and the NIST curves)."""

    __slots__ = ("_key",)

    _key: ec.EllipticCurvePublicKey

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(bytes(signature), bytes(data), ec.ECDSA(hashes.SHA256()))
        except (_CryptoInvalidSignature, ValueError, TypeError):
            return False
        return True


# --- secp256k1 -------------------------------------------------------------------------------------------


def _to_low_s(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    if s > SECP256K1_ORDER // 2:
        return encode_dss_signature(r, SECP256K1_ORDER - s)
    return signature


class Secp256k1PublicKey(_ECPublicKey):
    __slots__ = ()

    def __init__(self, raw: bytes) -> None:
        if len(raw) not in (SECP256K1_COMPRESSED_BYTES, SECP256K1_UNCOMPRESSED_BYTES):
            raise CryptoError(f"secp256k1 public key must be 33 or 65 bytes, got {len(raw)}")
        try:
            self._key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), bytes(raw))
        except ValueError as e:
            raise CryptoError(f"invalid secp256k1 public key: {e}") from None
        super().__init__(
            self._key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        )

    @classmethod
    def _from_key(cls, key: ec.EllipticCurvePublicKey) -> Secp256k1PublicKey:
        return cls(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))

    @property
    def key_type(self) -> KeyType:
        return KeyType.Secp256k1


class Secp256k1PrivateKey(PrivateKey):
    __slots__ = ("_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256K1):
            raise CryptoError("not a secp256k1 key")
        self._key = key
        self._public = Secp256k1PublicKey._from_key(key.public_key())

    @classmethod
    def generate(cls) -> Secp256k1PrivateKey:
        return cls(ec.generate_private_key(ec.SECP256K1()))

    @classmethod
    def from_raw(cls, raw: bytes) -> Secp256k1PrivateKey:
        if len(raw) != SECP256K1_PRIVATE_BYTES:
            raise CryptoError(
                f"secp256k1 private key must be {SECP256K1_PRIVATE_BYTES} bytes, got {len(raw)}"
            )
        scalar = int.from_bytes(raw, "big")
        if not 0 < scalar < SECP256K1_ORDER:
            raise CryptoError("secp256k1 private key out of range")
        return cls(ec.derive_private_key(scalar, ec.SECP256K1()))

    @property
    def key_type(self) -> KeyType:
        return KeyType.Secp256k1

    @property
    def public_key(self) -> Secp256k1PublicKey:
        return self._public

    def raw(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(SECP256K1_PRIVATE_BYTES, "big")

    def sign(self, data: bytes) -> bytes:
        return _to_low_s(self._key.sign(bytes(data), ec.ECDSA(hashes.SHA256())))


# --- ECDSA (NIST curves) ---------------------------------------------------------------------------------


class ECDSAPublicKey(_ECPublicKey):
    __slots__ = ()

    def __init__(self, raw: bytes) -> None:
        key = _load_der_public(raw, "ECDSA")
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _ECDSA_CURVES):
            raise CryptoError("ECDSA public key is not on a supported NIST curve")
        self._key = key
        super().__init__(_spki_der(key))

    @property
    def key_type(self) -> KeyType:
        return KeyType.ECDSA


class ECDSAPrivateKey(PrivateKey):
    __slots__ = ("_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, _ECDSA_CURVES):
            raise CryptoError("ECDSA private key is not on a supported NIST curve")
        self._key = key
        self._public = ECDSAPublicKey(_spki_der(key.public_key()))

    @classmethod
    def generate(cls) -> ECDSAPrivateKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_raw(cls, raw: bytes) -> ECDSAPrivateKey:
        """From SEC1 ``ECPrivateKey`` DER (what go writes); PKCS#8 DER is accepted too."""
        key = _load_der_private(raw, "ECDSA")
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CryptoError("ECDSA private key data holds another key type")
        return cls(key)

    @property
    def key_type(self) -> KeyType:
        return KeyType.ECDSA

    @property
    def public_key(self) -> ECDSAPublicKey:
        return self._public

    def raw(self) -> bytes:
        return _traditional_der(self._key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(bytes(data), ec.ECDSA(hashes.SHA256()))


# --- RSA -------------------------------------------------------------------------------------------------


def _check_rsa_bits(bits: int) -> None:
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise CryptoError(f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, got {bits}")


class RSAPublicKey(PublicKey):
    __slots__ = ("_key",)

    def __init__(self, raw: bytes) -> None:
        key = _load_der_public(raw, "RSA")
        if not isinstance(key, rsa.RSAPublicKey):
            raise CryptoError("RSA public key data holds another key type")
        _check_rsa_bits(key.key_size)
        self._key = key
        super().__init__(_spki_der(key))

    @property
    def key_type(self) -> KeyType:
        return KeyType.RSA

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(bytes(signature), bytes(data), padding.PKCS1v15(), hashes.SHA256())
        except (_CryptoInvalidSignature, ValueError, TypeError):
            return False
        return True


class RSAPrivateKey(PrivateKey):
    __slots__ = ("_key", "_public")

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        _check_rsa_bits(key.key_size)
        self._key = key
        self._public = RSAPublicKey(_spki_der(key.public_key()))

    @classmethod
    def generate(cls, bits: int = DEFAULT_RSA_BITS) -> RSAPrivateKey:
        _check_rsa_bits(bits)
        return cls(rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits))

    @classmethod
    def from_raw(cls, raw: bytes) -> RSAPrivateKey:
        """From PKCS#1 ``RSAPrivateKey`` DER (PKCS#8 DER is accepted too)."""
        key = _load_der_private(raw, "RSA")
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CryptoError("RSA private key data holds another key type")
        return cls(key)

    @property
    def key_type(self) -> KeyType:
        return KeyType.RSA

    @property
    def public_key(self) -> RSAPublicKey:
        return self._public

    def raw(self) -> bytes:
        return _traditional_der(self._key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(bytes(data), padding.PKCS1v15(), hashes.SHA256())


# --- construction ----------------------------------------------------------------------------------------

_PUBLIC_CLASSES: Final[dict[KeyType, type[PublicKey]]] = {
    KeyType.Ed25519: Ed25519PublicKey,
    KeyType.Secp256k1: Secp256k1PublicKey,
    KeyType.ECDSA: ECDSAPublicKey,
    KeyType.RSA: RSAPublicKey,
}


def generate_key_pair(key_type: KeyType = KeyType.Ed25519, *, rsa_bits: int = DEFAULT_RSA_BITS) -> PrivateKey:
    """Generate a new private key (its ``public_key`` is the other half)."""
    if key_type == KeyType.Ed25519:
        return Ed25519PrivateKey.generate()
    if key_type == KeyType.Secp256k1:
        return Secp256k1PrivateKey.generate()
    if key_type == KeyType.ECDSA:
        return ECDSAPrivateKey.generate()
    if key_type == KeyType.RSA:
        return RSAPrivateKey.generate(rsa_bits)
    raise CryptoError(f"unknown key type {key_type!r}")


def public_key_from_raw(key_type: KeyType, raw: bytes) -> PublicKey:
    """Build a public key from its type and ``Data`` bytes."""
    cls = _PUBLIC_CLASSES.get(key_type)
    if cls is None:
        raise CryptoError(f"unknown key type {key_type!r}")
    return cls(raw)


def private_key_from_raw(key_type: KeyType, raw: bytes) -> PrivateKey:
    """Build a private key from its type and ``Data`` bytes."""
    if key_type == KeyType.Ed25519:
        return Ed25519PrivateKey.from_raw(raw)
    if key_type == KeyType.Secp256k1:
        return Secp256k1PrivateKey.from_raw(raw)
    if key_type == KeyType.ECDSA:
        return ECDSAPrivateKey.from_raw(raw)
    if key_type == KeyType.RSA:
        return RSAPrivateKey.from_raw(raw)
    raise CryptoError(f"unknown key type {key_type!r}")


def unmarshal_public_key(data: bytes | bytearray | memoryview) -> PublicKey:
    """Parse a ``PublicKey`` protobuf. Raises DecodeError (bad protobuf) or CryptoError (bad key)."""
    key_type, raw = _decode_key_message(bytes(data), MAX_PUBLIC_KEY_PROTOBUF_BYTES, "PublicKey")
    return public_key_from_raw(key_type, raw)


def unmarshal_private_key(data: bytes | bytearray | memoryview) -> PrivateKey:
    """Parse a ``PrivateKey`` protobuf. Raises DecodeError (bad protobuf) or CryptoError (bad key)."""
    key_type, raw = _decode_key_message(bytes(data), MAX_PRIVATE_KEY_PROTOBUF_BYTES, "PrivateKey")
    return private_key_from_raw(key_type, raw)


# --- key files -------------------------------------------------------------------------------------------


def load_private_key_file(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a private key file (the ``PrivateKey`` protobuf, as go-libp2p and kubo store it)."""
    p = Path(path)
    with p.open("rb") as f:
        data = f.read(MAX_PRIVATE_KEY_FILE_BYTES + 1)
    if len(data) > MAX_PRIVATE_KEY_FILE_BYTES:
        raise CryptoError(f"{p} is larger than {MAX_PRIVATE_KEY_FILE_BYTES} bytes: not a key file")
    return unmarshal_private_key(data)


def save_private_key_file(key: PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as its ``PrivateKey`` protobuf, atomically, readable by the owner only (mode 0600)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        os.fchmod(fd, PRIVATE_KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(key.to_protobuf())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
