"""PubSub messages: signing policies, signatures, message IDs and validation verdicts.

Implements pubsub/README.md §"The Message" and §"Message Signing" of https://github.com/libp2p/specs:

* StrictSign: ``from`` and an 8-byte big-endian ``seqno`` are set and ``signature`` covers
  ``"libp2p-pubsub:" ‖ protobuf(Message with signature and key absent)`` (go clears both fields, the spec text
  names only the signature). ``key`` is set only when the public key cannot be inlined in the ``from`` peer
  ID, and then it must hash to ``from``.
* StrictNoSign: ``from``, ``seqno``, ``signature`` and ``key`` are all *absent* (not merely empty).

The default message ID is go's ``from ‖ seqno`` (LIBP2P-NOTES §3.9: implementations differ; make it
configurable, which :data:`MessageIdFn` is).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..crypto.keys import PrivateKey, PublicKey, unmarshal_public_key
from ..crypto.peer_id import PeerId
from ..exceptions import Libp2pError
from ..wire.pb import pubsub_pb2 as pb

SIGNING_PREFIX: Final = b"libp2p-pubsub:"
SEQNO_LENGTH: Final = 8
DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20
"""Largest RPC frame sent or accepted (go's DefaultMaxMessageSize, 1 MiB); a message must fit in one."""


class SignaturePolicy(enum.Enum):
    """The signature policies of pubsub/README.md §"Signature Policy Options" (the two strict ones)."""

    STRICT_SIGN = "strict-sign"
    STRICT_NO_SIGN = "strict-no-sign"


class ValidationResult(enum.Enum):
    """Verdict of a topic validator (gossipsub-v1.1.md §"Extended Validators")."""

    ACCEPT = "accept"
    REJECT = "reject"  # invalid: penalised (P4) and not forwarded
    IGNORE = "ignore"  # not forwarded, no penalty


class RejectReason(enum.Enum):
    """Why a message was dropped before or during validation (mirrors go's trace reasons)."""

    MISSING_SIGNATURE = "missing signature"
    INVALID_SIGNATURE = "invalid signature"
    UNEXPECTED_SIGNATURE = "unexpected signature"
    UNEXPECTED_AUTH_INFO = "unexpected auth info"
    SELF_ORIGIN = "self originated message"
    VALIDATION_FAILED = "validation failed"
    VALIDATION_IGNORED = "validation ignored"
    VALIDATION_THROTTLED = "validation throttled"
    MESSAGE_TOO_LARGE = "message too large"
    MALFORMED = "malformed message"
    NOT_SUBSCRIBED = "topic not subscribed"

    @property
    def penalised(self) -> bool:
        """Whether the forwarding peer is penalised as for an invalid message (P4)."""
        return self in _PENALISED


_PENALISED: Final = frozenset(
    {
        RejectReason.MISSING_SIGNATURE,
        RejectReason.INVALID_SIGNATURE,
        RejectReason.UNEXPECTED_SIGNATURE,
        RejectReason.UNEXPECTED_AUTH_INFO,
        RejectReason.SELF_ORIGIN,
        RejectReason.MALFORMED,
    }
)


class MessageRejected(Libp2pError):
    """A message broke the signing policy or is otherwise unacceptable; ``reason`` says how."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """A received or published message. ``pb`` is the wire form that is forwarded unchanged."""

    topic: str
    data: bytes
    source: PeerId | None
    seqno: bytes | None
    pb: pb.Message

    @property
    def seqno_int(self) -> int | None:
        return None if self.seqno is None else int.from_bytes(self.seqno, "big")

    @property
    def size(self) -> int:
        return len(self.data)


MessageIdFn = Callable[[pb.Message], bytes]
"""Computes a message ID from the wire message; every peer of a topic must use the same one."""


def message_from(msg: pb.Message) -> bytes:
    """The ``from`` field (a Python keyword, so the generated class has no attribute for it)."""
    value: bytes = getattr(msg, "from")
    return value


def default_message_id(msg: pb.Message) -> bytes:
    """go's default: ``from ‖ seqno`` (raw bytes)."""
    return message_from(msg) + msg.seqno


def content_message_id(msg: pb.Message) -> bytes:
    """A content-addressed ID (sha256 of the data), the usual choice with StrictNoSign."""
    return hashlib.sha256(msg.data).digest()


def signing_bytes(msg: pb.Message) -> bytes:
    """The bytes a StrictSign signature covers: the prefix and the message without signature and key."""
    if msg.HasField("signature") or msg.HasField("key"):
        stripped = pb.Message()
        stripped.CopyFrom(msg)
        stripped.ClearField("signature")
        stripped.ClearField("key")
        return SIGNING_PREFIX + stripped.SerializeToString()
    return SIGNING_PREFIX + msg.SerializeToString()


def build_message(
    topic: str,
    data: bytes,
    *,
    policy: SignaturePolicy,
    private_key: PrivateKey | None = None,
    seqno: int | None = None,
) -> pb.Message:
    """Author a wire message under ``policy`` (StrictSign needs ``private_key`` and ``seqno``)."""
    msg = pb.Message(data=data, topic=topic)
    if policy is SignaturePolicy.STRICT_SIGN:
        if private_key is None or seqno is None:
            raise ValueError("StrictSign needs a private key and a sequence number")
        pid = private_key.public_key.peer_id
        setattr(msg, "from", pid.to_bytes())
        msg.seqno = seqno.to_bytes(SEQNO_LENGTH, "big")
        msg.signature = private_key.sign(signing_bytes(msg))
        if pid.extract_public_key() is None:
            msg.key = private_key.public_key.to_protobuf()
    return msg


def check_message(msg: pb.Message, policy: SignaturePolicy, *, verify: bool = True) -> PubSubMessage:
    """Check ``msg`` against ``policy`` and, with ``verify``, its signature; raise :class:`MessageRejected`.

    With ``verify=False`` only the cheap structural checks run (the router verifies signatures after the
    seen-cache lookup, like go, so a duplicate costs no signature check).
    """
    if not msg.HasField("topic") or not isinstance(msg.topic, str):
        raise MessageRejected(RejectReason.MALFORMED, "missing or non-UTF-8 topic")
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        if msg.HasField("signature"):
            raise MessageRejected(RejectReason.UNEXPECTED_SIGNATURE)
        if msg.HasField("from") or msg.HasField("seqno") or msg.HasField("key"):
            raise MessageRejected(RejectReason.UNEXPECTED_AUTH_INFO)
        return PubSubMessage(msg.topic, msg.data, None, None, msg)
    if not msg.HasField("signature"):
        raise MessageRejected(RejectReason.MISSING_SIGNATURE)
    if not msg.HasField("from") or len(msg.seqno) != SEQNO_LENGTH:
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, "from or 8-byte seqno missing")
    try:
        source = _author(message_from(msg))
    except Libp2pError as exc:
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, f"bad from: {exc}")
    if verify:
        verify_signature(msg, source)
    return PubSubMessage(msg.topic, msg.data, source, msg.seqno, msg)


AUTHOR_CACHE_SIZE: Final = 4096
"""Recent message authors remembered with their parsed peer ID and inlined key (the cache is emptied when
full): a busy topic has few authors, so parsing each ``from`` and key once saves work on every message."""
_authors: dict[bytes, PeerId] = {}
_inlined_keys: dict[PeerId, PublicKey | None] = {}


def _author(raw: bytes) -> PeerId:
    """``PeerId.from_bytes(raw)``, remembered (raises DecodeError like it)."""
    pid = _authors.get(raw)
    if pid is None:
        pid = PeerId.from_bytes(raw)
        if len(_authors) >= AUTHOR_CACHE_SIZE:
            _authors.clear()
        _authors[raw] = pid
    return pid


def _inlined_key(source: PeerId) -> PublicKey | None:
    """``source.extract_public_key()``, remembered (raises like it)."""
    try:
        return _inlined_keys[source]
    except KeyError:
        pass
    key = source.extract_public_key()
    if len(_inlined_keys) >= AUTHOR_CACHE_SIZE:
        _inlined_keys.clear()
    _inlined_keys[source] = key
    return key


def _signing_key(msg: pb.Message, source: PeerId) -> PublicKey:
    try:
        inlined = _inlined_key(source)
    except Libp2pError as exc:
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, f"bad inlined key: {exc}")
    if inlined is not None:
        if msg.HasField("key") and msg.key != inlined.to_protobuf():
            raise MessageRejected(RejectReason.INVALID_SIGNATURE, "key does not match from")
        return inlined
    if not msg.HasField("key"):
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, "no key for a hashed peer ID")
    try:
        key = unmarshal_public_key(msg.key)
    except Libp2pError as exc:
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, f"bad key: {exc}")
    if not source.matches_public_key(key):
        raise MessageRejected(RejectReason.INVALID_SIGNATURE, "key does not match from")
    return key


def verify_signature(msg: pb.Message, source: PeerId) -> None:
    """Verify the StrictSign signature of ``msg`` authored by ``source``; raise :class:`MessageRejected`."""
    key = _signing_key(msg, source)
    try:
        ok = key.verify(signing_bytes(msg), msg.signature)
    except Libp2pError:
        ok = False
    if not ok:
        raise MessageRejected(RejectReason.INVALID_SIGNATURE)
