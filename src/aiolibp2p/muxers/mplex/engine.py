"""Sans-I/O mplex engine (``/mplex/6.7.0``, deprecated in the specs but still spoken by many peers).

Spec: libp2p/specs ``mplex/README.md``. A frame is ``uvarint(id << 3 | flag) ‖ uvarint(length) ‖ data``
with flags NewStream 0, MessageReceiver 1, MessageInitiator 2, CloseReceiver 3, CloseInitiator 4,
ResetReceiver 5, ResetInitiator 6. Both sides number their own streams, so the same numeric id can name two
streams: a stream is keyed by ``(id, opened_locally)``, and the flag says which side sent the frame.

mplex has no flow control. Each stream's unread input is bounded (``max_stream_buffer``): a stream whose
reader does not keep up is reset. Message lengths are checked (``max_message_size``) before any payload is
buffered, and payloads are delivered as ``memoryview`` slices of the received chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ...exceptions import ConnectionClosed, MessageTooLarge, ProtocolViolation, StreamClosed
from ...wire.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "PROTOCOL_ID",
    "DataReceived",
    "MplexConfig",
    "MplexEngine",
    "MplexEvent",
    "ProtocolError",
    "StreamEOF",
    "StreamKey",
    "StreamOpened",
    "StreamResetEvent",
]

PROTOCOL_ID = "/mplex/6.7.0"

NEW_STREAM = 0
MESSAGE_RECEIVER = 1
MESSAGE_INITIATOR = 2
CLOSE_RECEIVER = 3
CLOSE_INITIATOR = 4
RESET_RECEIVER = 5
RESET_INITIATOR = 6

MAX_STREAM_ID = (1 << 60) - 1  # id << 3 must fit a 63-bit varint


class StreamKey(NamedTuple):
    """A stream: its number and whether we opened it."""

    id: int
    local: bool


@dataclass(frozen=True, slots=True)
class MplexConfig:
    """Every mplex limit, by name."""

    max_message_size: int = 1024 * 1024
    """Largest message payload accepted or sent (spec: 1 MiB)."""
    max_stream_buffer: int = 4 * 1024 * 1024
    """Unread input per stream; beyond it the stream is reset (there is no flow control to slow the peer)."""
    max_inbound_streams: int = 1000
    """Inbound streams open at once; further NewStreams are reset at once."""

    def __post_init__(self) -> None:
        if self.max_message_size < 1 or self.max_stream_buffer < 1 or self.max_inbound_streams < 0:
            raise ValueError("invalid mplex limits")


@dataclass(frozen=True, slots=True)
class StreamOpened:
    key: StreamKey
    name: bytes


@dataclass(frozen=True, slots=True)
class DataReceived:
    key: StreamKey
    data: memoryview


@dataclass(frozen=True, slots=True)
class StreamEOF:
    key: StreamKey


@dataclass(frozen=True, slots=True)
class StreamResetEvent:
    """The stream is gone: reset by the peer, or (``local``) by us because its reader fell behind."""

    key: StreamKey
    local: bool = False


@dataclass(frozen=True, slots=True)
class ProtocolError:
    error: ProtocolViolation


MplexEvent = StreamOpened | DataReceived | StreamEOF | StreamResetEvent | ProtocolError


def _violation(message: str) -> ProtocolViolation:
    return ProtocolViolation(message, protocol=PROTOCOL_ID)


class _Stream:
    __slots__ = ("buffered", "local_closed", "remote_closed")

    def __init__(self) -> None:
        self.buffered = 0
        self.local_closed = False
        self.remote_closed = False


class MplexEngine:
    """One mplex session's protocol state (see the module docstring)."""

    def __init__(self, config: MplexConfig | None = None) -> None:
        self.config = config if config is not None else MplexConfig()
        self._out = bytearray()
        self._streams: dict[StreamKey, _Stream] = {}
        self._next_id = 0
        self._num_inbound = 0
        self._hbuf = bytearray()
        self._payload_left = 0
        self._payload_key: StreamKey | None = None  # where payload goes (None: skipped)
        self._name_buf: bytearray | None = None  # a NewStream name being collected
        self._name_key: StreamKey | None = None
        self.error: ProtocolViolation | None = None

    # -- state ------------------------------------------------------------------------------------------
    @property
    def num_streams(self) -> int:
        return len(self._streams)

    def has_stream(self, key: StreamKey) -> bool:
        return key in self._streams

    @property
    def is_dead(self) -> bool:
        return self.error is not None

    @property
    def pending_output(self) -> int:
        return len(self._out)

    def data_to_send(self) -> bytearray:
        out = self._out
        if out:
            self._out = bytearray()
        return out

    def _frame(self, sid: int, flag: int, payload: bytes | memoryview = b"") -> None:
        out = self._out
        out += encode_uvarint(sid << 3 | flag)
        out += encode_uvarint(len(payload))
        if payload:
            out += payload

    # -- commands ---------------------------------------------------------------------------------------
    def open_stream(self, name: bytes | None = None) -> StreamKey:
        if self.error is not None:
            raise ConnectionClosed("mplex session failed", cause="protocol-error")
        sid = self._next_id
        if sid > MAX_STREAM_ID:
            raise ConnectionClosed("mplex stream ids exhausted", cause="ids-exhausted")
        self._next_id += 1
        key = StreamKey(sid, True)
        self._streams[key] = _Stream()
        self._frame(sid, NEW_STREAM, name if name is not None else str(sid).encode())
        return key

    def _stream_for_send(self, key: StreamKey) -> _Stream:
        if self.error is not None:
            raise ConnectionClosed("mplex session failed", cause="protocol-error")
        st = self._streams.get(key)
        if st is None or st.local_closed:
            raise StreamClosed(f"mplex stream {key.id} is closed for writing")
        return st

    def send_data(self, key: StreamKey, data: bytes | bytearray | memoryview) -> int:
        """Queue all of ``data`` (no flow control), in messages of at most ``max_message_size``."""
        self._stream_for_send(key)
        flag = MESSAGE_INITIATOR if key.local else MESSAGE_RECEIVER
        mv = memoryview(data)
        step = self.config.max_message_size
        for off in range(0, len(mv), step):
            self._frame(key.id, flag, mv[off : off + step])
        return len(mv)

    def send_close(self, key: StreamKey) -> None:
        """Half-close our side. Idempotent."""
        if self.error is not None:
            return
        st = self._streams.get(key)
        if st is None or st.local_closed:
            return
        st.local_closed = True
        self._frame(key.id, CLOSE_INITIATOR if key.local else CLOSE_RECEIVER)
        if st.remote_closed:
            self._forget(key)

    def send_reset(self, key: StreamKey) -> None:
        if self.error is not None or key not in self._streams:
            return
        self._frame(key.id, RESET_INITIATOR if key.local else RESET_RECEIVER)
        self._forget(key)

    def acknowledge_received_data(self, key: StreamKey, n: int) -> None:
        """The application consumed ``n`` buffered bytes of the stream."""
        st = self._streams.get(key)
        if st is not None:
            st.buffered = max(st.buffered - n, 0)

    def _forget(self, key: StreamKey) -> None:
        del self._streams[key]
        if not key.local:
            self._num_inbound -= 1

    # -- receiving --------------------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> list[MplexEvent]:
        """Process received bytes; never raises on bad input (a violation is a :class:`ProtocolError`)."""
        events: list[MplexEvent] = []
        if self.error is not None:
            return events
        mv = memoryview(data)
        pos = 0
        end = len(mv)
        try:
            while pos < end:
                left = self._payload_left
                if left:
                    take = left if left < end - pos else end - pos
                    chunk = mv[pos : pos + take]
                    pos += take
                    self._payload_left = left - take
                    if self._name_buf is not None:
                        self._name_buf += chunk
                        if not self._payload_left:
                            self._finish_new_stream(events)
                    elif self._payload_key is not None:
                        events.append(DataReceived(self._payload_key, chunk))
                    continue
                hbuf = self._hbuf
                if hbuf:
                    take = min(end - pos, 18)
                    tmp = hbuf + mv[pos : pos + take]
                    try:
                        header, p = decode_uvarint(tmp, 0)
                        length, p = decode_uvarint(tmp, p)
                    except IncompleteVarint:
                        hbuf[:] = tmp
                        pos += take
                        continue
                    pos += p - len(hbuf)
                    hbuf.clear()
                else:
                    try:
                        header, p = decode_uvarint(mv, pos)
                        length, p = decode_uvarint(mv, p)
                    except IncompleteVarint:
                        hbuf += mv[pos:]
                        break
                    pos = p
                self._on_header(header >> 3, header & 7, length, events)
        except ProtocolViolation as exc:  # includes VarintError and MessageTooLarge
            self.error = exc
            self._payload_left = 0
            self._hbuf.clear()
            events.append(ProtocolError(exc))
        return events

    def _on_header(self, sid: int, flag: int, length: int, events: list[MplexEvent]) -> None:
        if length > self.config.max_message_size:
            raise MessageTooLarge(
                f"mplex message of {length} bytes exceeds {self.config.max_message_size}",
                protocol=PROTOCOL_ID,
            )
        self._payload_key = None
        self._payload_left = length
        if flag == NEW_STREAM:
            key = StreamKey(sid, False)
            if key in self._streams:
                raise _violation(f"mplex: NewStream for open stream {sid}")
            self._name_key = key
            self._name_buf = bytearray()
            if not length:
                self._finish_new_stream(events)
            return
        if flag > RESET_INITIATOR:
            raise _violation(f"mplex: unknown flag {flag}")
        # odd flags come from the stream's receiver (so we opened it), even ones from its initiator
        key = StreamKey(sid, flag & 1 == 1)
        st = self._streams.get(key)
        if st is None:
            return  # a stream reset or refused earlier: frames in flight are dropped
        if flag <= MESSAGE_INITIATOR:
            if not length:
                return
            if st.remote_closed or st.buffered + length > self.config.max_stream_buffer:
                # data after the peer's close is a broken stream, not a broken session; and a reader that
                # does not keep up cannot slow the writer (no flow control): either way, drop the stream
                self._frame(sid, RESET_INITIATOR if key.local else RESET_RECEIVER)
                self._forget(key)
                events.append(StreamResetEvent(key, local=True))
                return
            st.buffered += length
            self._payload_key = key
        elif flag <= CLOSE_INITIATOR:
            if not st.remote_closed:
                st.remote_closed = True
                events.append(StreamEOF(key))
                if st.local_closed:
                    self._forget(key)
        else:
            self._forget(key)
            events.append(StreamResetEvent(key))

    def _finish_new_stream(self, events: list[MplexEvent]) -> None:
        key = self._name_key
        name = bytes(self._name_buf or b"")
        self._name_buf = None
        self._name_key = None
        assert key is not None
        if self._num_inbound >= self.config.max_inbound_streams:
            self._frame(key.id, RESET_RECEIVER)
            return
        self._streams[key] = _Stream()
        self._num_inbound += 1
        events.append(StreamOpened(key, name))
