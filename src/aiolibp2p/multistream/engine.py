"""multistream-select 1.0 as sans-I/O state machines (no sockets, no tasks, no clocks).

Spec: https://github.com/multiformats/multistream-select (README) and libp2p/specs
``connections/README.md`` §"Protocol Negotiation".

Every message is ``uvarint(len) ‖ UTF-8 text ‖ '\\n'`` where ``len`` counts the newline. Both sides send the
header ``/multistream/1.0.0`` first, without waiting for the other. The dialer proposes protocols one by one;
the listener echoes the one it accepts or answers ``na``.

:class:`MultistreamDialer` and :class:`MultistreamListener` take received bytes with :meth:`feed`, which
returns the events it produced and how many of the given bytes it consumed, and queue their output for
:meth:`bytes_to_send`. Once negotiation is complete an engine consumes nothing more: the bytes that follow
the final message (a pipelined proposal's application data, "lazy" or 0-RTT negotiation) are left in
:attr:`trailing_data` for the next layer. :meth:`read_hint` says how many bytes can be read from a stream
without ever reading past the current message, which lets a coroutine adapter read exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..exceptions import MessageTooLarge, NegotiationError, ProtocolNotSupported
from ..wire.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_NA_ATTEMPTS",
    "MULTISTREAM_PROTOCOL_ID",
    "NA",
    "Event",
    "FeedResult",
    "HeaderReceived",
    "MultistreamDialer",
    "MultistreamListener",
    "NegotiationComplete",
    "ProtocolProposed",
    "ProtocolRejected",
    "encode_message",
]

MULTISTREAM_PROTOCOL_ID = "/multistream/1.0.0"
"""The header both sides send first."""

NA = "na"
"""The listener's answer to a protocol it does not support."""

LS = "ls"
"""The optional listing command; not supported here (answered with ``na``, as go-multistream does)."""

MAX_MESSAGE_SIZE = 1024
"""Largest accepted message, in bytes, counting the trailing newline (go-multistream's limit)."""

MAX_NA_ATTEMPTS = 32
"""How many unsupported proposals a listener answers with ``na`` before giving up on the dialer."""

_MAX_LENGTH_PREFIX_BYTES = len(encode_uvarint(MAX_MESSAGE_SIZE))


def encode_message(text: str) -> bytes:
    """One multistream message: ``uvarint(len(text) + 1) ‖ text ‖ '\\n'``.

    Raises ValueError for text that cannot be sent (contains a newline, or too long): these are local
    programming errors, never caused by the remote.
    """
    if "\n" in text:
        raise ValueError(f"multistream message {text!r} contains a newline")
    payload = text.encode() + b"\n"
    if len(payload) > MAX_MESSAGE_SIZE:
        raise ValueError(f"multistream message of {len(payload)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return encode_uvarint(len(payload)) + payload


_HEADER_MESSAGE = encode_message(MULTISTREAM_PROTOCOL_ID)
_NA_MESSAGE = encode_message(NA)


# --- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderReceived:
    """The remote's ``/multistream/1.0.0`` header arrived."""


@dataclass(frozen=True, slots=True)
class ProtocolProposed:
    """Listener: the dialer proposed ``protocol``; ``accepted`` says whether it was echoed or refused."""

    protocol: str
    accepted: bool


@dataclass(frozen=True, slots=True)
class ProtocolRejected:
    """Dialer: the listener answered ``na`` to ``protocol``; the next one (if any) has been proposed."""

    protocol: str


@dataclass(frozen=True, slots=True)
class NegotiationComplete:
    """Both sides agreed on ``protocol``. The engine consumes no more bytes after this event."""

    protocol: str


Event = HeaderReceived | ProtocolProposed | ProtocolRejected | NegotiationComplete


class FeedResult(NamedTuple):
    """What :meth:`_Engine.feed` did: the events produced and how many of the fed bytes were consumed.

    Bytes not consumed (``len(data) - consumed``) belong to the next layer; they are also kept in
    :attr:`_Engine.trailing_data`.
    """

    events: list[Event]
    consumed: int


# --- engines -------------------------------------------------------------------------------------------


class _Engine:
    """Message framing and the header check shared by both roles."""

    __slots__ = ("_buf", "_got_header", "_out", "protocol", "trailing_data")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes of the message being received (never more than one message)
        self._out = bytearray(_HEADER_MESSAGE)  # both roles send the header at once
        self._got_header = False
        self.protocol: str | None = None
        self.trailing_data = b""

    @property
    def done(self) -> bool:
        """True once a protocol has been agreed."""
        return self.protocol is not None

    def bytes_to_send(self) -> bytes:
        """The bytes queued for the remote since the last call (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def at_message_start(self) -> bool:
        """True when no byte of the next message has been fed yet (and no protocol agreed)."""
        return not self._buf and self.protocol is None

    def read_hint(self) -> int:
        """How many bytes may be read next without reading past the current message (0 once done).

        While the length prefix is incomplete this is 1 (the prefix is read byte by byte), afterwards it is
        the rest of the message.
        """
        if self.done:
            return 0
        buf = self._buf
        if not buf:
            return 1
        if buf[0] < 0x80:  # a one-byte length prefix: every multistream message below 128 bytes
            return 1 + buf[0] - len(buf)
        try:
            n, pos = decode_uvarint(buf)
        except IncompleteVarint:
            return 1
        return pos + n - len(buf)

    def feed(self, data: bytes | bytearray | memoryview) -> FeedResult:
        """Process received bytes; see :class:`FeedResult`.

        Raises NegotiationError (bad header, malformed message, unexpected answer, too many ``na``),
        ProtocolNotSupported (dialer: every proposal refused), MessageTooLarge (a message above
        :data:`MAX_MESSAGE_SIZE`) or VarintError (a malformed length prefix).
        """
        events: list[Event] = []
        if self.done:
            self.trailing_data += bytes(data)
            return FeedResult(events, 0)
        view = memoryview(data)
        total = len(view)
        pos = 0
        while pos < total and not self.done:
            pos = self._take_message(view, pos)
            if pos < 0:  # message incomplete: everything so far is buffered
                return FeedResult(events, total)
            self._handle(self._finish_message(), events)
        if self.done:
            self.trailing_data = bytes(view[pos:])
        return FeedResult(events, pos)

    def _take_message(self, view: memoryview, pos: int) -> int:
        """Move bytes of one message from ``view[pos:]`` into the buffer. Returns the position after the
        message, or -1 if the data ended first (everything was buffered)."""
        buf = self._buf
        if not buf and pos < len(view) and view[pos] < 0x80:
            # Fast path: a one-byte length prefix at a message boundary.
            end = pos + 1 + view[pos]
            if end <= len(view):
                buf += view[pos:end]
                return end
        while True:
            try:
                n, start = decode_uvarint(buf)
            except IncompleteVarint:
                if len(buf) >= _MAX_LENGTH_PREFIX_BYTES:  # any longer prefix announces too much
                    raise MessageTooLarge(
                        f"multistream message longer than {MAX_MESSAGE_SIZE} bytes",
                        protocol=MULTISTREAM_PROTOCOL_ID,
                    ) from None
                if pos >= len(view):
                    return -1
                buf.append(view[pos])
                pos += 1
                continue
            if n > MAX_MESSAGE_SIZE:
                raise MessageTooLarge(
                    f"multistream message of {n} bytes exceeds the limit of {MAX_MESSAGE_SIZE}",
                    protocol=MULTISTREAM_PROTOCOL_ID,
                )
            need = start + n - len(buf)
            take = min(need, len(view) - pos)
            buf += view[pos : pos + take]
            pos += take
            return pos if take == need else -1

    def _finish_message(self) -> str:
        """Decode the complete message in the buffer and clear it."""
        buf = self._buf
        start = 1 if buf[0] < 0x80 else decode_uvarint(buf)[1]
        payload = bytes(buf[start:])
        self._buf.clear()
        if not payload.endswith(b"\n"):
            raise NegotiationError(f"multistream message {payload[:64]!r} does not end with a newline")
        try:
            return payload[:-1].decode()
        except UnicodeDecodeError:
            raise NegotiationError(f"multistream message {payload[:64]!r} is not UTF-8") from None

    def _handle(self, message: str, events: list[Event]) -> None:
        if not self._got_header:
            if message != MULTISTREAM_PROTOCOL_ID:
                raise NegotiationError(f"expected the {MULTISTREAM_PROTOCOL_ID} header, got {message[:64]!r}")
            self._got_header = True
            events.append(HeaderReceived())
            return
        self._handle_message(message, events)

    def _handle_message(self, message: str, events: list[Event]) -> None:
        raise NotImplementedError


class MultistreamDialer(_Engine):
    """The initiator: proposes ``protocols`` in order until the listener echoes one.

    The header and the first proposal are queued at construction, so they leave in one write. A "lazy"
    (0-RTT) dialer sends them together with application data and feeds the answers later; the engine is the
    same.
    """

    __slots__ = ("_index", "_protocols")

    def __init__(self, protocols: Sequence[str]) -> None:
        super().__init__()
        if not protocols:
            raise ValueError("at least one protocol must be proposed")
        self._protocols = tuple(protocols)
        for p in self._protocols:
            if p in (NA, LS, ""):
                raise ValueError(f"{p!r} cannot be proposed as a protocol")
            encode_message(p)  # validates newline and size before anything is sent
        self._index = 0
        self._out += encode_message(self._protocols[0])

    @property
    def proposing(self) -> str | None:
        """The protocol awaiting an answer (None once done)."""
        return None if self.done else self._protocols[self._index]

    def _handle_message(self, message: str, events: list[Event]) -> None:
        current = self._protocols[self._index]
        if message == current:
            self.protocol = current
            events.append(NegotiationComplete(current))
        elif message == NA:
            events.append(ProtocolRejected(current))
            self._index += 1
            if self._index >= len(self._protocols):
                raise ProtocolNotSupported(self._protocols)
            self._out += encode_message(self._protocols[self._index])
        else:
            raise NegotiationError(f"proposed {current!r} but the listener answered {message[:64]!r}")


class MultistreamListener(_Engine):
    """The responder: echoes the first proposal ``supported`` accepts, answers ``na`` to the others.

    Its header is queued at construction (sent without waiting for the dialer's). The dialer may pipeline
    the header, a proposal and application data in one packet; only whole messages are consumed.
    """

    __slots__ = ("_na_count", "_supported")

    def __init__(self, supported: Callable[[str], bool]) -> None:
        super().__init__()
        self._supported = supported
        self._na_count = 0

    def _handle_message(self, message: str, events: list[Event]) -> None:
        if message not in (NA, LS, "", MULTISTREAM_PROTOCOL_ID) and self._supported(message):
            self._out += encode_message(message)
            self.protocol = message
            events.append(ProtocolProposed(message, True))
            events.append(NegotiationComplete(message))
            return
        self._na_count += 1
        if self._na_count > MAX_NA_ATTEMPTS:
            raise NegotiationError(f"dialer proposed more than {MAX_NA_ATTEMPTS} unsupported protocols")
        self._out += _NA_MESSAGE
        events.append(ProtocolProposed(message, False))
