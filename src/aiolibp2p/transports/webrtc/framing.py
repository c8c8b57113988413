"""WebRTC stream framing (libp2p ``webrtc/README.md``, "Multiplexing"), sans-I/O.

One libp2p stream is one SCTP data channel. Every data-channel message carries ``uvarint(len) ‖ Message``
with ``Message{optional Flag flag = 1; optional bytes message = 2; optional uint32 errorCode = 3}``; the
encoded message and its prefix are at most 16 KiB. The flags follow QUIC: ``FIN`` ends the sender's data,
``STOP_SENDING`` says the sender reads no more, ``RESET_STREAM`` aborts the sender's side (with an error
code), and ``FIN_ACK`` acknowledges a FIN. A side's write half is closed only once its FIN is acknowledged;
the channel itself is closed when both halves are done (or on a timeout, which the adapter owns).

:class:`StreamCore` is the state of one stream: the adapter gives it what the application does and what the
data channel delivers, and gets back the messages to send and typed events. No sockets, tasks or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError as _PbDecodeError

from ...exceptions import DecodeError, MessageTooLarge, StreamClosed
from ...wire.pb import webrtc_pb2 as pb
from ...wire.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "FLAG_FIN",
    "FLAG_FIN_ACK",
    "FLAG_RESET",
    "FLAG_STOP_SENDING",
    "MAX_MESSAGE_SIZE",
    "MAX_PAYLOAD_SIZE",
    "DataReceived",
    "FinAckReceived",
    "FinReceived",
    "MessageDecoder",
    "ResetReceived",
    "StopSendingReceived",
    "StreamCore",
    "StreamEvent",
    "encode_data",
    "encode_flag",
]

FLAG_FIN = pb.Message.FIN
FLAG_STOP_SENDING = pb.Message.STOP_SENDING
FLAG_RESET = pb.Message.RESET_STREAM
FLAG_FIN_ACK = pb.Message.FIN_ACK

MAX_MESSAGE_SIZE = 16384
"""Bytes of one framed message, length prefix included (the spec's 16 KiB)."""
MAX_PAYLOAD_SIZE = MAX_MESSAGE_SIZE - 2 - 1 - 2 - 2
"""Payload bytes per message: 16 KiB less the 2-byte length prefix, the field tag, the field's 2-byte length
and 2 spare bytes (go-libp2p sends 16384 − 7)."""
DEFAULT_MAX_RECEIVE_SIZE = 256 * 1024 + 1024
"""Largest framed message accepted (go-libp2p since v0.42 receives up to 256 KiB + 1 KiB)."""


def encode_data(data: bytes | bytearray | memoryview) -> bytes:
    """``uvarint(len) ‖ Message{message: data}``, encoded by hand (this is the hot path)."""
    n = len(data)
    field_len = encode_uvarint(n)
    body_len = 1 + len(field_len) + n
    return b"".join((encode_uvarint(body_len), b"\x12", field_len, data))


def encode_flag(flag: int, error_code: int | None = None) -> bytes:
    """``uvarint(len) ‖ Message{flag[, errorCode]}``."""
    msg = pb.Message(flag=flag)  # type: ignore[arg-type]
    if error_code is not None:
        msg.errorCode = error_code
    body = msg.SerializeToString()
    return encode_uvarint(len(body)) + body


class MessageDecoder:
    """Splits the bytes of a data channel into ``Message`` objects.

    Data-channel messages are treated as a byte stream (js-libp2p does the same), so a framed message split
    over two channel messages, or two in one, both decode. ``max_size`` bounds one framed message: a larger
    length prefix raises :class:`MessageTooLarge` before any of it is buffered.
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_RECEIVE_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[pb.Message]:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = bytes(data)
        out: list[pb.Message] = []
        pos = 0
        end = len(view)
        while pos < end:
            try:
                length, start = decode_uvarint(view, pos)
            except IncompleteVarint:
                break
            if length > self.max_size:
                raise MessageTooLarge(
                    f"WebRTC message of {length} bytes exceeds the limit of {self.max_size}"
                )
            if start + length > end:
                break
            msg = pb.Message()
            try:
                msg.ParseFromString(bytes(view[start : start + length]))
            except (_PbDecodeError, ValueError) as e:
                raise DecodeError(f"malformed WebRTC stream message: {e}") from None
            out.append(msg)
            pos = start + length
        if view is buf:
            del buf[:pos]
        elif pos < end:
            self._buf += view[pos:]
        return out


# -- events ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DataReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class FinReceived:
    """The remote sends no more: end of stream for the reader (a FIN_ACK went out)."""


@dataclass(frozen=True, slots=True)
class FinAckReceived:
    """Our FIN was acknowledged: our write half is closed."""


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The remote reads no more: later writes fail."""


@dataclass(frozen=True, slots=True)
class ResetReceived:
    code: int


StreamEvent = DataReceived | FinReceived | FinAckReceived | StopSendingReceived | ResetReceived


class StreamCore:
    """The framing state of one stream.

    Methods that act return the framed messages to send, in order; :meth:`receive` also returns the events
    the data produced. After :meth:`reset` or a received reset, nothing more is sent or delivered.
    :attr:`done` says when the data channel can be closed: both halves finished (FIN acknowledged or reset,
    and FIN received, reading stopped or reset).
    """

    __slots__ = (
        "_decoder",
        "fin_acked",
        "fin_received",
        "fin_sent",
        "reset_received",
        "reset_sent",
        "stop_received",
        "stop_sent",
    )

    def __init__(self, max_receive_size: int = DEFAULT_MAX_RECEIVE_SIZE) -> None:
        self._decoder = MessageDecoder(max_receive_size)
        self.fin_sent = False
        self.fin_acked = False
        self.fin_received = False
        self.stop_sent = False
        self.stop_received = False
        self.reset_sent = False
        self.reset_received = False

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def is_reset(self) -> bool:
        return self.reset_sent or self.reset_received

    @property
    def write_closed(self) -> bool:
        return self.fin_sent or self.is_reset or self.stop_received

    @property
    def read_closed(self) -> bool:
        return self.fin_received or self.stop_sent or self.is_reset

    @property
    def done(self) -> bool:
        """Both halves are finished: the channel may be closed."""
        if self.is_reset:
            return True
        write_done = self.fin_acked or self.stop_received
        return write_done and (self.fin_received or self.stop_sent)

    # -- the application ----------------------------------------------------------------------------------
    def send_data(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self.write_closed:
            raise StreamClosed("the stream's write side is closed")
        view = memoryview(data).cast("B")
        return [encode_data(view[i : i + MAX_PAYLOAD_SIZE]) for i in range(0, len(view), MAX_PAYLOAD_SIZE)]

    def send_fin(self) -> list[bytes]:
        if self.write_closed:
            return []
        self.fin_sent = True
        return [encode_flag(FLAG_FIN)]

    def send_stop_sending(self) -> list[bytes]:
        if self.read_closed:
            return []
        self.stop_sent = True
        return [encode_flag(FLAG_STOP_SENDING)]

    def send_reset(self, code: int = 0) -> list[bytes]:
        if self.is_reset:
            return []
        self.reset_sent = True
        return [encode_flag(FLAG_RESET, code)]

    # -- the remote ---------------------------------------------------------------------------------------
    def receive(self, data: bytes | bytearray | memoryview) -> tuple[list[StreamEvent], list[bytes]]:
        """Decode a data-channel message. Raises DecodeError / MessageTooLarge on a protocol violation."""
        events: list[StreamEvent] = []
        out: list[bytes] = []
        for msg in self._decoder.feed(data):
            if self.is_reset:
                break
            # a message may carry data and a flag together: the data comes first
            if msg.HasField("message") and msg.message and not self.fin_received and not self.stop_sent:
                events.append(DataReceived(msg.message))
            if not msg.HasField("flag"):
                continue
            flag = msg.flag
            if flag == FLAG_FIN:
                if not self.fin_received:
                    self.fin_received = True
                    events.append(FinReceived())
                out.append(encode_flag(FLAG_FIN_ACK))  # every FIN is acknowledged (a repeat too)
            elif flag == FLAG_FIN_ACK:
                if self.fin_sent and not self.fin_acked:
                    self.fin_acked = True
                    events.append(FinAckReceived())
            elif flag == FLAG_STOP_SENDING:
                if not self.stop_received:
                    self.stop_received = True
                    events.append(StopSendingReceived())
            elif flag == FLAG_RESET:
                self.reset_received = True
                events.append(ResetReceived(msg.errorCode))
        return events, out
