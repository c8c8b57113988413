"""Rendezvous wire codec: message builders, framing with a size cap, status codes and the typed error.

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md (§Protobuf). The spec does not state the
framing; like every implementation (LIBP2P-NOTES §3.1) each message is ``uvarint(len) ‖ protobuf``. Sans-I/O:
nothing here touches a stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Final

from google.protobuf.message import DecodeError as _PbDecodeError

from ...exceptions import DecodeError, Libp2pError, MessageTooLarge, ProtocolViolation
from ...wire.pb import rendezvous_pb2
from ...wire.varint import length_prefixed, try_decode_length_prefixed

__all__ = [
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "Message",
    "MessageReader",
    "MessageType",
    "RendezvousError",
    "Status",
    "decode_message",
    "discover_message",
    "discover_response",
    "encode_message",
    "register_message",
    "register_response",
    "unregister_message",
]

PROTOCOL_ID: Final = "/rendezvous/1.0.0"
MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024
"""Largest framed rendezvous message read or written (go's ``network.MessageSizeMax``): a DISCOVER_RESPONSE
carries up to 1000 signed records."""

Message = rendezvous_pb2.Message


class MessageType(IntEnum):
    REGISTER = 0
    REGISTER_RESPONSE = 1
    UNREGISTER = 2
    DISCOVER = 3
    DISCOVER_RESPONSE = 4


class Status(IntEnum):
    """``Message.ResponseStatus``."""

    OK = 0
    E_INVALID_NAMESPACE = 100
    E_INVALID_SIGNED_PEER_RECORD = 101
    E_INVALID_TTL = 102
    E_INVALID_COOKIE = 103
    E_NOT_AUTHORIZED = 200
    E_INTERNAL_ERROR = 300
    E_UNAVAILABLE = 400


class RendezvousError(Libp2pError):
    """A rendezvous point refused a request: ``status`` is the spec's response status, ``text`` its reason."""

    def __init__(self, status: Status | int, text: str = "", *, peer: object | None = None) -> None:
        try:
            self.status: Status | int = Status(status)
            name = self.status.name
        except ValueError:
            self.status = status
            name = str(status)
        super().__init__(f"rendezvous {name}" + (f": {text}" if text else ""))
        self.text = text
        self.peer = peer


def encode_message(msg: rendezvous_pb2.Message, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """``uvarint(len) ‖ msg``; raises MessageTooLarge above ``max_size``."""
    body = msg.SerializeToString()
    if len(body) > max_size:
        raise MessageTooLarge(
            f"rendezvous message of {len(body)} bytes exceeds {max_size}", protocol=PROTOCOL_ID
        )
    return length_prefixed(body)


def decode_message(body: bytes) -> rendezvous_pb2.Message:
    """Parse one (unframed) message; its type must be known and its sub-message present (proto2 zero values:
    an absent ``type`` is REGISTER)."""
    msg = rendezvous_pb2.Message()
    try:
        msg.ParseFromString(body)
    except (_PbDecodeError, ValueError, RuntimeError) as e:
        raise DecodeError(f"malformed rendezvous message: {e}", protocol=PROTOCOL_ID) from None
    try:
        kind = MessageType(msg.type)
    except ValueError:
        raise ProtocolViolation(f"unknown rendezvous message type {msg.type}", protocol=PROTOCOL_ID) from None
    # UNREGISTER{} and DISCOVER{} (all namespaces) may legitimately be empty, so absent means default.
    if (kind == MessageType.REGISTER and not msg.HasField("register")) or (
        kind == MessageType.REGISTER_RESPONSE and not msg.HasField("registerResponse")
    ):
        raise ProtocolViolation(f"{kind.name} without its body", protocol=PROTOCOL_ID)
    return msg


class MessageReader:
    """Splits a byte stream into rendezvous messages, refusing any frame above ``max_size``."""

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[rendezvous_pb2.Message]:
        self._buf.extend(data)
        out: list[rendezvous_pb2.Message] = []
        pos = 0
        while True:
            got = try_decode_length_prefixed(self._buf, self.max_size, pos)
            if got is None:
                break
            body, pos = got
            out.append(decode_message(body))
        del self._buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


# -- builders -----------------------------------------------------------------------------------------------------


def register_message(namespace: str, signed_record: bytes, ttl: int | None = None) -> rendezvous_pb2.Message:
    m = Message(type=Message.REGISTER)
    m.register.ns = namespace
    m.register.signedPeerRecord = signed_record
    if ttl is not None:
        m.register.ttl = ttl
    return m


def register_response(status: Status, text: str = "", ttl: int = 0) -> rendezvous_pb2.Message:
    m = Message(type=Message.REGISTER_RESPONSE)
    m.registerResponse.status = int(status)  # type: ignore[assignment]
    if text:
        m.registerResponse.statusText = text
    if status == Status.OK:
        m.registerResponse.ttl = ttl
    return m


def unregister_message(namespace: str) -> rendezvous_pb2.Message:
    m = Message(type=Message.UNREGISTER)
    m.unregister.ns = namespace
    return m


def discover_message(namespace: str = "", limit: int = 0, cookie: bytes = b"") -> rendezvous_pb2.Message:
    m = Message(type=Message.DISCOVER)
    m.discover.SetInParent()
    if namespace:
        m.discover.ns = namespace
    if limit:
        m.discover.limit = limit
    if cookie:
        m.discover.cookie = cookie
    return m


def discover_response(
    registrations: Iterable[tuple[str, bytes, int]],
    cookie: bytes = b"",
    status: Status = Status.OK,
    text: str = "",
) -> rendezvous_pb2.Message:
    """``registrations`` are ``(namespace, signed record, remaining ttl)``."""
    m = Message(type=Message.DISCOVER_RESPONSE)
    r = m.discoverResponse
    r.status = int(status)  # type: ignore[assignment]
    if text:
        r.statusText = text
    for ns, record, ttl in registrations:
        r.registrations.add(ns=ns, signedPeerRecord=record, ttl=ttl)
    if cookie:
        r.cookie = cookie
    return m
