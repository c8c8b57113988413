"""Sans-I/O Noise XX handshake for libp2p: ``Noise_XX_25519_ChaChaPoly_SHA256``.

Implements

* the Noise Protocol Framework, revision 34 (https://noiseprotocol.org/noise.html): §5.1 ``CipherState``,
  §5.2 ``SymmetricState``, §5.3 ``HandshakeState`` and §7.5 pattern XX, with X25519 (§12.1),
  ChaChaPoly (§12.3: 96-bit nonce = 32 zero bits ‖ little-endian 64-bit counter) and SHA-256/HKDF (§4.3);
* the libp2p Noise handshake (https://github.com/libp2p/specs/blob/master/noise/README.md): the
  ``NoiseHandshakePayload`` carrying the identity key and its signature over the static key, and the
  extensions (§"Noise Extensions"), never in message 1, the responder's in message 2, the initiator's in 3;
* inlined muxer negotiation (https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md):
  the first entry of the initiator's ``stream_muxers`` that the responder also lists.

:class:`NoiseHandshake` takes and returns unframed Noise messages; the caller frames them (``framing.py``)
and moves them. Nothing here touches a socket, task or clock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from google.protobuf.message import DecodeError as _PbDecodeError
from nacl import bindings as _sodium
from nacl import exceptions as _sodium_errors

from ...crypto.keys import PublicKey, unmarshal_public_key
from ...exceptions import (
    CryptoError,
    DecodeError,
    HandshakeError,
    InvalidSignature,
    MessageTooLarge,
    PeerIdMismatch,
)
from ...wire.pb import noise_pb2

if TYPE_CHECKING:
    from ...crypto.keys import PrivateKey, PublicKey
    from ...crypto.peer_id import PeerId

__all__ = [
    "DHLEN",
    "HASHLEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "PROTOCOL_NAME",
    "SIGNATURE_PREFIX",
    "TAG_LEN",
    "CipherState",
    "NoiseExtensions",
    "NoiseHandshake",
    "NoiseHandshakeResult",
    "SymmetricState",
    "X25519Keypair",
    "XXHandshakeState",
    "select_early_muxer",
    "sign_static_key",
    "x25519_public_bytes",
]

PROTOCOL_NAME: Final = b"Noise_XX_25519_ChaChaPoly_SHA256"
DHLEN: Final = 32  # X25519 public key / shared secret length
HASHLEN: Final = 32  # SHA-256
KEYLEN: Final = 32  # ChaChaPoly key
TAG_LEN: Final = 16  # Poly1305 tag
MAX_MESSAGE_LEN: Final = 65535  # Noise §3: every Noise message is at most 65535 bytes
MAX_NONCE: Final = 2**64 - 1  # Noise §5.1: reserved; reaching it is an error (nonce exhaustion)
SIGNATURE_PREFIX: Final = b"noise-libp2p-static-key:"
MAX_STREAM_MUXERS: Final = 64  # muxer IDs accepted in a peer's extensions (bounded by the frame anyway)
MAX_CERTHASHES: Final = 64  # webtransport certhashes accepted in a peer's extensions
VERIFIED_PAYLOAD_CACHE_SIZE: Final = 1024
"""Remote (identity key, static key, signature) triples already verified, kept so a peer that reconnects with
the same static key (as aiolibp2p and rust-libp2p peers do: one static key per process) costs no second
signature check. Exact-bytes matches only; least recently used entries go first."""

_verified_payloads: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()


def _verify_static_key_signature(
    identity_key: bytes, public_key: PublicKey, static: bytes, sig: bytes
) -> bool:
    entry = (identity_key, static, sig)
    if entry in _verified_payloads:
        _verified_payloads.move_to_end(entry)
        return True
    if not public_key.verify(SIGNATURE_PREFIX + static, sig):
        return False
    _verified_payloads[entry] = None
    if len(_verified_payloads) > VERIFIED_PAYLOAD_CACHE_SIZE:
        _verified_payloads.popitem(last=False)
    return True


_NONCE: Final = struct.Struct("<4xQ")


def x25519_public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key``'s public key (RFC 7748 §5 encoding)."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class X25519Keypair:
    """An X25519 key as its raw secret scalar and public key. The handshake's Diffie-Hellman runs on these
    through libsodium (PyNaCl): measured here, 31 us per DH against 43 us through ``cryptography``'s key
    objects, and a fresh key in 31 us against 75 us (``generate`` + ``public_bytes``). Both clamp the scalar
    as RFC 7748 says, so the results are the same bytes."""

    secret: bytes
    public: bytes

    @classmethod
    def generate(cls) -> X25519Keypair:
        secret = os.urandom(DHLEN)
        return cls(secret, _sodium.crypto_scalarmult_base(secret))

    @classmethod
    def from_private_key(cls, key: X25519PrivateKey) -> X25519Keypair:
        secret = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(secret, x25519_public_bytes(key))


def _keypair(key: X25519PrivateKey | X25519Keypair) -> X25519Keypair:
    return key if isinstance(key, X25519Keypair) else X25519Keypair.from_private_key(key)


def sign_static_key(identity_key: PrivateKey, static_public: bytes) -> bytes:
    """``identity_sig``: the identity key's signature of ``"noise-libp2p-static-key:" ‖ static_public``."""
    return identity_key.sign(SIGNATURE_PREFIX + static_public)


def _hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise §4.3 HKDF with two outputs, on HMAC-SHA256."""
    temp_key = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp_key, b"\x01", "sha256")
    out2 = hmac.digest(temp_key, out1 + b"\x02", "sha256")
    return out1, out2


# --- CipherState (Noise §5.1) ------------------------------------------------------------------------------


class CipherState:
    """A key and a 64-bit nonce counter. Without a key, encryption and decryption pass data through.

    After ``2^64 - 2`` messages the counter reaches the reserved value ``2^64 - 1`` and every further use
    raises :class:`CryptoError` (libp2p: terminate the connection on nonce exhaustion).
    """

    __slots__ = ("aead", "key", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    def has_key(self) -> bool:
        return self.key is not None

    def next_nonce(self) -> bytes:
        """Return the 12-byte nonce for the next message and advance the counter."""
        n = self.n
        if n >= MAX_NONCE:
            raise CryptoError("Noise nonce exhausted: the connection must be closed")
        self.n = n + 1
        return _NONCE.pack(n)

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes | memoryview) -> bytes:
        aead = self.aead
        if aead is None:
            return bytes(plaintext)
        return aead.encrypt(self.next_nonce(), plaintext, ad)

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes | memoryview) -> bytes:
        aead = self.aead
        if aead is None:
            return bytes(ciphertext)
        n = self.n
        try:
            return aead.decrypt(self.next_nonce(), ciphertext, ad)
        except InvalidTag:
            self.n = n  # Noise §5.1: the nonce is not advanced by a failed decryption
            raise DecodeError("Noise message failed authentication", protocol="/noise") from None


# --- SymmetricState (Noise §5.2) ---------------------------------------------------------------------------


class SymmetricState:
    """Chaining key, handshake hash and the handshake's CipherState."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= HASHLEN:
            h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            h = hashlib.sha256(protocol_name).digest()
        self.h = h
        self.ck = h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf2(self.ck, ikm)
        self.cipher = CipherState(temp_k[:KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(k1[:KEYLEN]), CipherState(k2[:KEYLEN])


# --- HandshakeState for XX (Noise §5.3, §7.5) -------------------------------------------------------------

_XX_PATTERN: Final[tuple[tuple[str, ...], ...]] = (
    ("e",),  # -> e
    ("e", "ee", "s", "es"),  # <- e, ee, s, es
    ("s", "se"),  # -> s, se
)


def _dh(private: X25519Keypair, public: bytes) -> bytes:
    try:
        return _sodium.crypto_scalarmult(private.secret, public)
    except _sodium_errors.RuntimeError:  # libsodium refuses a low-order point (an all-zero shared secret)
        raise HandshakeError("Noise DH with an invalid (low-order) X25519 public key") from None


class XXHandshakeState:
    """The raw Noise XX handshake: three messages, each with an optional payload.

    ``ephemeral`` may be fixed for test vectors; otherwise a fresh X25519 key is generated. Keys are
    ``cryptography`` private keys or :class:`X25519Keypair` (what the transports pass: no conversion).
    """

    __slots__ = ("_e", "_index", "_initiator", "_re", "_rs", "_s", "_ss")

    def __init__(
        self,
        *,
        initiator: bool,
        static_key: X25519PrivateKey | X25519Keypair,
        prologue: bytes = b"",
        ephemeral: X25519PrivateKey | X25519Keypair | None = None,
    ) -> None:
        self._initiator = initiator
        self._s = _keypair(static_key)
        self._e = None if ephemeral is None else _keypair(ephemeral)
        self._re: bytes | None = None
        self._rs: bytes | None = None
        self._index = 0
        self._ss = SymmetricState(PROTOCOL_NAME)
        self._ss.mix_hash(prologue)

    @property
    def is_initiator(self) -> bool:
        return self._initiator

    @property
    def finished(self) -> bool:
        return self._index >= len(_XX_PATTERN)

    @property
    def our_turn(self) -> bool:
        return not self.finished and (self._index % 2 == 0) == self._initiator

    @property
    def message_index(self) -> int:
        """0, 1 or 2: the message to be written or read next (3 when finished)."""
        return self._index

    @property
    def remote_static(self) -> bytes | None:
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def _dh_token(self, token: str) -> bytes:
        # ``es`` is DH(initiator e, responder s), ``se`` is DH(initiator s, responder e).
        init = self._initiator
        assert self._re is not None
        if token == "ee":
            assert self._e is not None
            return _dh(self._e, self._re)
        if token == "es":
            if init:
                assert self._e is not None and self._rs is not None
                return _dh(self._e, self._rs)
            return _dh(self._s, self._re)
        # "se"
        if init:
            return _dh(self._s, self._re)
        assert self._e is not None and self._rs is not None
        return _dh(self._e, self._rs)

    def write_message(self, payload: bytes = b"") -> bytes:
        if not self.our_turn:
            raise HandshakeError("Noise handshake: not our turn to write")
        ss = self._ss
        out: list[bytes] = []
        for token in _XX_PATTERN[self._index]:
            if token == "e":
                if self._e is None:
                    self._e = X25519Keypair.generate()
                e_pub = self._e.public
                out.append(e_pub)
                ss.mix_hash(e_pub)
            elif token == "s":
                out.append(ss.encrypt_and_hash(self._s.public))
            else:
                ss.mix_key(self._dh_token(token))
        out.append(ss.encrypt_and_hash(payload))
        message = b"".join(out)
        if len(message) > MAX_MESSAGE_LEN:
            raise MessageTooLarge(
                f"Noise handshake message of {len(message)} bytes exceeds {MAX_MESSAGE_LEN}"
            )
        self._index += 1
        return message

    def read_message(self, message: bytes | bytearray | memoryview) -> bytes:
        """Consume the peer's next message; return its (decrypted) payload."""
        if self.finished or self.our_turn:
            raise HandshakeError("Noise handshake: unexpected message")
        if len(message) > MAX_MESSAGE_LEN:
            raise MessageTooLarge(
                f"Noise handshake message of {len(message)} bytes exceeds {MAX_MESSAGE_LEN}"
            )
        msg = bytes(message)
        ss = self._ss
        pos = 0
        for token in _XX_PATTERN[self._index]:
            if token == "e":
                if len(msg) - pos < DHLEN:
                    raise DecodeError(
                        "Noise handshake message too short for an ephemeral key", protocol="/noise"
                    )
                self._re = msg[pos : pos + DHLEN]
                pos += DHLEN
                ss.mix_hash(self._re)
            elif token == "s":
                n = DHLEN + (TAG_LEN if ss.cipher.has_key() else 0)
                if len(msg) - pos < n:
                    raise DecodeError("Noise handshake message too short for a static key", protocol="/noise")
                self._rs = ss.decrypt_and_hash(msg[pos : pos + n])
                pos += n
            else:
                ss.mix_key(self._dh_token(token))
        if ss.cipher.has_key() and len(msg) - pos < TAG_LEN:
            raise DecodeError("Noise handshake payload shorter than its tag", protocol="/noise")
        payload = ss.decrypt_and_hash(msg[pos:])
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, receive)`` CipherStates for this side (Noise §5.2 Split, ordered by role)."""
        if not self.finished:
            raise HandshakeError("Noise handshake is not finished")
        c1, c2 = self._ss.split()
        return (c1, c2) if self._initiator else (c2, c1)


# --- the libp2p layer -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoiseExtensions:
    """``NoiseExtensions``: muxers for inlined negotiation, certificate hashes for WebTransport."""

    stream_muxers: tuple[str, ...] = ()
    webtransport_certhashes: tuple[bytes, ...] = ()

    def is_empty(self) -> bool:
        return not self.stream_muxers and not self.webtransport_certhashes


@dataclass(frozen=True, slots=True)
class NoiseHandshakeResult:
    """What a finished handshake established."""

    remote_peer: PeerId
    remote_public_key: PublicKey
    remote_extensions: NoiseExtensions
    early_muxer: str | None
    send_cipher: CipherState
    recv_cipher: CipherState
    remote_static_key: bytes
    handshake_hash: bytes


def select_early_muxer(initiator_muxers: Sequence[str], responder_muxers: Sequence[str]) -> str | None:
    """Inlined muxer negotiation: the first of the initiator's muxers the responder supports.

    None when either side sent no list (fall back to multistream-select); HandshakeError when both sent
    lists without a common entry (the spec says the handshake MUST fail).
    """
    if not initiator_muxers or not responder_muxers:
        return None
    supported = set(responder_muxers)
    for m in initiator_muxers:
        if m in supported:
            return m
    raise HandshakeError(
        f"no common stream muxer: initiator offers {list(initiator_muxers)}, "
        f"responder supports {list(responder_muxers)}"
    )


class NoiseHandshake:
    """One side of the libp2p Noise XX handshake (sans-I/O).

    Drive it by alternating :meth:`write_message` (when :attr:`our_turn`) and :meth:`read_message` until
    :attr:`complete`; then :attr:`result` holds the authenticated peer and the two CipherStates.
    Messages are unframed Noise messages (frame them with ``framing.encode_handshake_frame``).

    ``static_key`` is the local X25519 static key (a fresh one when None; it should not be persisted) and
    ``identity_sig`` may carry a precomputed :func:`sign_static_key` of it, saving a signature per handshake.
    """

    __slots__ = (
        "_early_muxer",
        "_expected_peer",
        "_extensions",
        "_identity_key",
        "_identity_sig",
        "_remote_extensions",
        "_remote_peer",
        "_remote_public_key",
        "_result",
        "_state",
    )

    def __init__(
        self,
        identity_key: PrivateKey,
        *,
        is_initiator: bool,
        static_key: X25519PrivateKey | X25519Keypair | None = None,
        identity_sig: bytes | None = None,
        expected_peer: PeerId | None = None,
        extensions: NoiseExtensions | None = None,
        prologue: bytes = b"",
    ) -> None:
        static_key = X25519Keypair.generate() if static_key is None else _keypair(static_key)
        if identity_sig is None:
            identity_sig = sign_static_key(identity_key, static_key.public)
        self._identity_key = identity_key
        self._identity_sig = identity_sig
        self._expected_peer = expected_peer
        self._extensions = extensions or NoiseExtensions()
        self._state = XXHandshakeState(initiator=is_initiator, static_key=static_key, prologue=prologue)
        self._remote_peer: PeerId | None = None
        self._remote_public_key: PublicKey | None = None
        self._remote_extensions = NoiseExtensions()
        self._early_muxer: str | None = None
        self._result: NoiseHandshakeResult | None = None

    @property
    def is_initiator(self) -> bool:
        return self._state.is_initiator

    @property
    def our_turn(self) -> bool:
        return self._state.our_turn

    @property
    def complete(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> NoiseHandshakeResult:
        if self._result is None:
            raise HandshakeError("Noise handshake is not complete")
        return self._result

    def _payload(self) -> bytes:
        msg = noise_pb2.NoiseHandshakePayload(
            identity_key=self._identity_key.public_key.to_protobuf(), identity_sig=self._identity_sig
        )
        ext = self._extensions
        if not ext.is_empty():
            msg.extensions.stream_muxers.extend(ext.stream_muxers)
            msg.extensions.webtransport_certhashes.extend(ext.webtransport_certhashes)
        return msg.SerializeToString()

    def write_message(self) -> bytes:
        """The next handshake message to send (unframed)."""
        state = self._state
        # Message 1 carries no payload (it would be unencrypted); messages 2 and 3 carry ours.
        payload = b"" if state.message_index == 0 else self._payload()
        message = state.write_message(payload)
        self._maybe_finish()
        return message

    def read_message(self, message: bytes | bytearray | memoryview) -> None:
        """Consume the peer's next handshake message (unframed). Raises a typed error on any failure."""
        state = self._state
        index = state.message_index
        payload = state.read_message(message)
        if index == 0:
            return  # message 1's payload is unauthenticated and must be empty; ignore whatever it holds
        self._accept_payload(payload)
        if index == 1:  # the initiator now knows both muxer lists: fail before sending message 3
            self._early_muxer = select_early_muxer(
                self._extensions.stream_muxers, self._remote_extensions.stream_muxers
            )
        else:
            self._early_muxer = select_early_muxer(
                self._remote_extensions.stream_muxers, self._extensions.stream_muxers
            )
        self._maybe_finish()

    def _accept_payload(self, payload: bytes) -> None:
        msg = noise_pb2.NoiseHandshakePayload()
        try:
            msg.ParseFromString(payload)
        except (_PbDecodeError, ValueError) as exc:
            raise DecodeError(f"bad Noise handshake payload: {exc}", protocol="/noise") from None
        if not msg.HasField("identity_key") or not msg.HasField("identity_sig"):
            raise HandshakeError("Noise handshake payload lacks identity_key or identity_sig")
        public_key = unmarshal_public_key(msg.identity_key)
        remote_static = self._state.remote_static
        assert remote_static is not None
        if not _verify_static_key_signature(
            msg.identity_key, public_key, bytes(remote_static), msg.identity_sig
        ):
            raise InvalidSignature("Noise identity_sig does not verify", protocol="/noise")
        peer = public_key.peer_id
        if self._expected_peer is not None and peer != self._expected_peer:
            raise PeerIdMismatch(self._expected_peer, peer)
        self._remote_public_key = public_key
        self._remote_peer = peer
        if msg.HasField("extensions"):
            ext = msg.extensions
            if (
                len(ext.stream_muxers) > MAX_STREAM_MUXERS
                or len(ext.webtransport_certhashes) > MAX_CERTHASHES
            ):
                raise DecodeError("Noise extensions list too many entries", protocol="/noise")
            self._remote_extensions = NoiseExtensions(
                stream_muxers=tuple(ext.stream_muxers),
                webtransport_certhashes=tuple(ext.webtransport_certhashes),
            )

    def _maybe_finish(self) -> None:
        state = self._state
        if not state.finished or self._result is not None:
            return
        assert self._remote_peer is not None and self._remote_public_key is not None
        assert state.remote_static is not None
        send, recv = state.split()
        self._result = NoiseHandshakeResult(
            remote_peer=self._remote_peer,
            remote_public_key=self._remote_public_key,
            remote_extensions=self._remote_extensions,
            early_muxer=self._early_muxer,
            send_cipher=send,
            recv_cipher=recv,
            remote_static_key=state.remote_static,
            handshake_hash=state.handshake_hash,
        )
