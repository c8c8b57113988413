"""The ``/plaintext/2.0.0`` "security" protocol: an unencrypted, unauthenticated channel, for tests only.

Spec: https://github.com/libp2p/specs/blob/master/plaintext/README.md

Once the protocol is negotiated, each side at once sends a uvarint-length-prefixed ``Exchange{id, pubkey}``
(``wire/pb/plaintext.proto``) and reads the remote's. Each side checks that ``id`` is the peer ID of
``pubkey``; the dialer also checks it is the peer it dialed. After that the pipe carries raw bytes.
Nothing is signed, so a man in the middle can claim any key: never use this outside tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import EncodeError as ProtobufEncodeError

from ...core.interfaces import SecureSession
from ...core.pipe import PipeReader
from ...crypto.keys import PrivateKey, PublicKey, unmarshal_public_key
from ...crypto.peer_id import PeerId
from ...exceptions import CryptoError, DecodeError, HandshakeError, Libp2pError, PeerIdMismatch
from ...wire.pb import plaintext_pb2
from ...wire.varint import length_prefixed

__all__ = ["MAX_EXCHANGE_SIZE", "PLAINTEXT_PROTOCOL_ID", "PlaintextSecurity"]

PLAINTEXT_PROTOCOL_ID = "/plaintext/2.0.0"

MAX_EXCHANGE_SIZE = 4096
"""Largest accepted ``Exchange`` message in bytes (room for an RSA-4096 key and a sha2-256 peer ID)."""


def encode_exchange(public_key: PublicKey) -> bytes:
    """The ``Exchange`` message (without its length prefix) announcing ``public_key``."""
    ex = plaintext_pb2.Exchange()
    ex.id = PeerId.from_public_key(public_key).to_bytes()
    ex.pubkey.ParseFromString(public_key.to_protobuf())
    return ex.SerializeToString()


def decode_exchange(data: bytes) -> tuple[PeerId, PublicKey]:
    """Parse and check an ``Exchange``: returns ``(peer_id, public_key)``.

    Raises DecodeError (malformed message, missing field, bad peer ID) or HandshakeError (an unusable key,
    or an ``id`` that is not the key's peer ID).
    """
    if len(data) > MAX_EXCHANGE_SIZE:
        raise DecodeError(f"plaintext Exchange of {len(data)} bytes exceeds {MAX_EXCHANGE_SIZE}")
    ex = plaintext_pb2.Exchange()
    try:
        ex.ParseFromString(data)
    except ProtobufDecodeError as e:
        raise DecodeError(f"malformed plaintext Exchange: {e}", protocol=PLAINTEXT_PROTOCOL_ID) from None
    if not ex.HasField("id") or not ex.HasField("pubkey"):
        raise DecodeError("plaintext Exchange lacks its id or pubkey", protocol=PLAINTEXT_PROTOCOL_ID)
    if not ex.pubkey.IsInitialized():
        raise DecodeError("plaintext Exchange pubkey lacks Type or Data", protocol=PLAINTEXT_PROTOCOL_ID)
    try:
        public_key = unmarshal_public_key(ex.pubkey.SerializeToString())
    except ProtobufEncodeError as e:
        raise DecodeError(
            f"malformed plaintext Exchange pubkey: {e}", protocol=PLAINTEXT_PROTOCOL_ID
        ) from None
    except CryptoError as e:
        raise HandshakeError(f"plaintext Exchange carries an unusable public key: {e}") from e
    claimed = PeerId.from_bytes(ex.id)
    actual = PeerId.from_public_key(public_key)
    if claimed != actual:
        raise HandshakeError(f"plaintext Exchange id {claimed} is not the peer ID of its key ({actual})")
    return actual, public_key


class PlaintextSecurity:
    """``/plaintext/2.0.0`` as a :class:`~aiolibp2p.core.interfaces.SecurityTransport`.

    Time bounds are the caller's (the upgrader's security timeout). On a failed check the pipe is aborted,
    as the spec requires, and the error is raised.
    """

    protocol_id = PLAINTEXT_PROTOCOL_ID

    def __init__(self, local_private_key: PrivateKey) -> None:
        self.local_public_key = local_private_key.public_key
        self.local_peer = PeerId.from_public_key(self.local_public_key)
        self._exchange = length_prefixed(encode_exchange(self.local_public_key))

    async def secure_outbound(
        self, reader: PipeReader, remote_peer: PeerId | None, muxers: Sequence[str]
    ) -> SecureSession:
        """Exchange identities as the dialer; ``remote_peer`` (when given) must be the one answering."""
        return await self._handshake(reader, remote_peer)

    async def secure_inbound(self, reader: PipeReader, muxers: Sequence[str]) -> SecureSession:
        """Exchange identities as the listener (any valid peer is accepted)."""
        return await self._handshake(reader, None)

    async def _handshake(self, reader: PipeReader, expected: PeerId | None) -> SecureSession:
        try:
            reader.write(self._exchange)
            remote_peer, remote_key = decode_exchange(await reader.read_length_prefixed(MAX_EXCHANGE_SIZE))
            if expected is not None and remote_peer != expected:
                raise PeerIdMismatch(expected, remote_peer)
        except Libp2pError:
            reader.pipe.abort()
            raise
        return SecureSession(
            pipe=reader.pipe,
            reader=reader,
            local_peer=self.local_peer,
            remote_peer=remote_peer,
            remote_public_key=remote_key,
            security_protocol=PLAINTEXT_PROTOCOL_ID,
        )
