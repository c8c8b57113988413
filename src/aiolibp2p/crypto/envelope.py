"""Signed envelopes: a payload signed by a libp2p identity key, within a signing domain.

Implements RFC 0002 (https://github.com/libp2p/specs/blob/master/RFC/0002-signed-envelopes.md):
``Envelope{public_key=1 (PublicKey), payload_type=2, payload=3, signature=5}``, where the signature covers
``uvarint(len(domain)) ‖ domain ‖ uvarint(len(payload_type)) ‖ payload_type ‖ uvarint(len(payload)) ‖
payload``. The domain is agreed out of band (e.g. ``"libp2p-peer-record"``) and never sent, so a signature
made for one purpose cannot be replayed for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from google.protobuf.message import DecodeError as _PbDecodeError

from ..exceptions import DecodeError, InvalidSignature
from ..wire.pb import envelope_pb2
from ..wire.varint import encode_uvarint
from .keys import PrivateKey, PublicKey, unmarshal_public_key

if TYPE_CHECKING:
    from .peer_id import PeerId

__all__ = ["MAX_ENVELOPE_BYTES", "SignedEnvelope", "signing_payload"]

MAX_ENVELOPE_BYTES: Final = 64 * 1024
"""Largest serialized envelope accepted by :meth:`SignedEnvelope.open` (a peer record with many addresses
is a few KiB; relay vouchers are smaller)."""


def signing_payload(domain: bytes, payload_type: bytes, payload: bytes) -> bytes:
    """The bytes the envelope signature covers (RFC 0002, "Signature Production / Verification")."""
    return b"".join(
        (
            encode_uvarint(len(domain)),
            domain,
            encode_uvarint(len(payload_type)),
            payload_type,
            encode_uvarint(len(payload)),
            payload,
        )
    )


def _encode_domain(domain: str) -> bytes:
    if not domain:
        raise ValueError("an envelope signing domain must not be empty")
    return domain.encode()


@dataclass(frozen=True, slots=True, eq=False)
class SignedEnvelope:
    """A verified (or freshly sealed) envelope. Build with :meth:`seal` or :meth:`open`, not directly."""

    public_key: PublicKey
    payload_type: bytes
    payload: bytes
    signature: bytes
    _encoded: bytes = field(repr=False)

    @classmethod
    def seal(
        cls, private_key: PrivateKey, domain: str, payload_type: bytes, payload: bytes
    ) -> SignedEnvelope:
        """Sign ``payload`` under ``domain`` and wrap it with the signer's public key."""
        if not payload_type:
            raise ValueError("an envelope payload type must not be empty")
        payload_type = bytes(payload_type)
        payload = bytes(payload)
        signature = private_key.sign(signing_payload(_encode_domain(domain), payload_type, payload))
        msg = envelope_pb2.Envelope(payload_type=payload_type, payload=payload, signature=signature)
        public_key = private_key.public_key
        msg.public_key.ParseFromString(public_key.to_protobuf())
        return cls(public_key, payload_type, payload, signature, msg.SerializeToString(deterministic=True))

    @classmethod
    def open(cls, data: bytes | bytearray | memoryview, domain: str) -> SignedEnvelope:
        """Parse an envelope and verify its signature under ``domain``.

        Raises DecodeError (malformed), CryptoError (unusable key) or InvalidSignature.
        """
        data = bytes(data)
        if len(data) > MAX_ENVELOPE_BYTES:
            raise DecodeError(f"envelope of {len(data)} bytes exceeds the limit of {MAX_ENVELOPE_BYTES}")
        msg = envelope_pb2.Envelope()
        try:
            msg.ParseFromString(data)
        except (_PbDecodeError, ValueError, RuntimeError) as e:
            raise DecodeError(f"malformed envelope: {e}") from None
        if not msg.HasField("public_key"):
            raise DecodeError("envelope has no public key")
        if not msg.payload_type:
            raise DecodeError("envelope has no payload type")
        public_key = unmarshal_public_key(msg.public_key.SerializePartialToString())
        payload_type, payload, signature = msg.payload_type, msg.payload, msg.signature
        if not public_key.verify(signing_payload(_encode_domain(domain), payload_type, payload), signature):
            raise InvalidSignature(f"envelope signature does not verify in domain {domain!r}")
        return cls(public_key, payload_type, payload, signature, data)

    def to_bytes(self) -> bytes:
        """The serialized envelope (for an opened envelope, exactly the bytes received)."""
        return self._encoded

    @property
    def peer_id(self) -> PeerId:
        """The peer ID of the signing key."""
        return self.public_key.peer_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignedEnvelope):
            return NotImplemented
        return (
            self.public_key == other.public_key
            and self.payload_type == other.payload_type
            and self.payload == other.payload
            and self.signature == other.signature
        )

    def __hash__(self) -> int:
        return hash((self.public_key, self.payload_type, self.payload, self.signature))
