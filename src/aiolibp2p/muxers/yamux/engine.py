"""Sans-I/O yamux engine (``/yamux/1.0.0``), modelled on h2's ``H2Connection``.

Spec: libp2p/specs ``yamux/README.md`` (the hashicorp yamux spec plus the libp2p notes: ACK backlog of at
most 256 streams, bounded inbound buffering). The engine never touches a socket, task or clock: it takes
bytes (and the current time, for RTT and window auto-tuning) and returns typed events plus bytes to send.

Frame header (12 bytes, big endian): version u8 (0), type u8 (Data 0, WindowUpdate 1, Ping 2, GoAway 3),
flags u16 (SYN 1, ACK 2, FIN 4, RST 8), stream id u32, length u32. The client (dialer of the secured
connection) opens odd stream ids, the server even ones; 0 is the session.

Flow control: every stream starts with a 256 KiB receive window. Receive windows grow with use, like
go-yamux's auto-tuning: when the application consumes half a window within ``autotune_rtt_multiplier``
round trips of the previous update, the window doubles, up to ``max_window`` (16 MiB).

Data payloads are streamed: once a Data header is validated against the stream's window, its payload is
delivered as ``memoryview`` slices of the received chunks, with no intermediate buffer.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

from ...exceptions import ConnectionClosed, ProtocolViolation, ResourceLimitExceeded, StreamClosed

__all__ = [
    "DEFAULT_WINDOW",
    "FLAG_ACK",
    "FLAG_FIN",
    "FLAG_RST",
    "FLAG_SYN",
    "GOAWAY_INTERNAL_ERROR",
    "GOAWAY_NORMAL",
    "GOAWAY_PROTOCOL_ERROR",
    "HEADER_SIZE",
    "PROTOCOL_ID",
    "TYPE_DATA",
    "TYPE_GO_AWAY",
    "TYPE_PING",
    "TYPE_WINDOW_UPDATE",
    "DataReceived",
    "GoAwayReceived",
    "PingReceived",
    "PongReceived",
    "ProtocolError",
    "StreamAcknowledged",
    "StreamEOF",
    "StreamOpened",
    "StreamResetEvent",
    "WindowUpdated",
    "YamuxConfig",
    "YamuxEngine",
    "YamuxEvent",
    "encode_header",
]

PROTOCOL_ID = "/yamux/1.0.0"

VERSION = 0
TYPE_DATA = 0
TYPE_WINDOW_UPDATE = 1
TYPE_PING = 2
TYPE_GO_AWAY = 3

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

GOAWAY_NORMAL = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

HEADER_SIZE = 12
DEFAULT_WINDOW = 256 * 1024  # the window every stream starts with (spec: not negotiable below this)
MAX_U32 = 0xFFFFFFFF

_HEADER = struct.Struct(">BBHII")
_unpack_header = _HEADER.unpack_from
_pack_header = _HEADER.pack


def _violation(message: str) -> ProtocolViolation:
    return ProtocolViolation(message, protocol=PROTOCOL_ID)


def encode_header(ftype: int, flags: int, stream_id: int, length: int) -> bytes:
    """One 12-byte yamux frame header."""
    return _pack_header(VERSION, ftype, flags, stream_id, length)


@dataclass(frozen=True, slots=True)
class YamuxConfig:
    """Every yamux limit, by name. Defaults follow go-yamux as configured by go-libp2p."""

    initial_window: int = DEFAULT_WINDOW
    """Receive window granted to each new stream (>= 256 KiB; the excess rides on the SYN/ACK)."""
    max_window: int = 16 * 1024 * 1024
    """Auto-tuning never grows a stream's receive window beyond this."""
    autotune_rtt_multiplier: float = 4.0
    """Double the window when half of it was consumed within this many RTTs (go-yamux uses 4)."""
    max_inbound_streams: int = 1000
    """Inbound streams open at once; further SYNs are refused with RST."""
    max_ack_backlog: int = 256
    """Outbound streams not yet acknowledged by the peer; opening more waits (spec: at most 256)."""
    max_frame_payload: int = 256 * 1024
    """Largest Data payload we send in one frame."""
    max_outstanding_pings: int = 16
    """Pings whose send time is remembered for RTT measurement."""
    keepalive_interval: float = 15.0
    """Send a Ping when no frame arrived for this long (seconds); 0 disables keep-alive."""
    keepalive_timeout: float = 10.0
    """After a keep-alive Ping, end the session if no frame arrives within this long."""
    rtt_measure_interval: float = 30.0
    """Measure the RTT (one Ping) at the start and then this often; 0 disables."""
    max_unflushed_control_bytes: int = 64 * 1024
    """Control frames (ACKs, pongs, RSTs) written while receiving before reading pauses for a drain."""

    def __post_init__(self) -> None:
        if not DEFAULT_WINDOW <= self.initial_window <= self.max_window <= MAX_U32:
            raise ValueError("need 256 KiB <= initial_window <= max_window < 4 GiB")
        if self.max_inbound_streams < 0 or self.max_ack_backlog < 1 or self.max_frame_payload < 1:
            raise ValueError("invalid yamux stream limits")
        if self.keepalive_interval < 0 or self.keepalive_timeout <= 0:
            raise ValueError("invalid yamux keep-alive timers")


# --- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened stream ``stream_id`` (SYN); it has been acknowledged."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamAcknowledged:
    """The peer acknowledged our outbound stream (ACK): it no longer counts against the backlog."""

    stream_id: int


@dataclass(slots=True)  # not frozen: the one event of the data path, and a frozen __init__ costs more
class DataReceived:
    """Payload bytes for a stream (a slice of the received chunk; copy it if kept beyond the chunk)."""

    stream_id: int
    data: memoryview


@dataclass(frozen=True, slots=True)
class StreamEOF:
    """The peer closed its write side (FIN)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamResetEvent:
    """The peer reset (or refused) the stream (RST); the stream is gone."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """The peer granted more send credit on a stream; blocked writers can continue."""

    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The peer pinged us; the answer is already queued."""

    opaque: int


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The answer to one of our pings; ``rtt`` is set when the ping's send time was known."""

    opaque: int
    rtt: float | None


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer will accept no new streams (and is closing the session). ``code``: 0 normal, 1 protocol
    error, 2 internal error."""

    code: int


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol. A GoAway(protocol error) is queued; the engine accepts no more input."""

    error: ProtocolViolation


YamuxEvent = (
    StreamOpened
    | StreamAcknowledged
    | DataReceived
    | StreamEOF
    | StreamResetEvent
    | WindowUpdated
    | PingReceived
    | PongReceived
    | GoAwayReceived
    | ProtocolError
)


# --- engine --------------------------------------------------------------------------------------------


class _Stream:
    __slots__ = (
        "acked",
        "epoch_start",
        "local_closed",
        "outbound",
        "recv_credit",
        "recv_window",
        "remote_closed",
        "send_window",
        "unacked",
    )

    def __init__(self, outbound: bool, recv_window: int, now: float) -> None:
        self.outbound = outbound
        self.acked = not outbound
        self.send_window = DEFAULT_WINDOW  # credit the peer granted us
        self.recv_window = recv_window  # current receive window size (grows with auto-tuning)
        self.recv_credit = recv_window  # bytes the peer may still send before our next update
        self.unacked = 0  # bytes the application consumed that we have not yet returned as credit
        self.epoch_start = now
        self.local_closed = False
        self.remote_closed = False


class YamuxEngine:
    """One yamux session's protocol state; see the module docstring.

    Feed received bytes to :meth:`receive_data`; send with the command methods; fetch the bytes to write
    with :meth:`data_to_send`. Protocol violations become a :class:`ProtocolError` event (never an
    exception out of :meth:`receive_data`); commands raise typed errors on misuse.
    """

    def __init__(self, is_client: bool, config: YamuxConfig | None = None) -> None:
        self.config = config if config is not None else YamuxConfig()
        self.is_client = is_client
        self._out = bytearray()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if is_client else 2
        self._highest_inbound = 0
        self._num_inbound = 0
        self._backlog = 0
        self._hbuf = bytearray()
        # the Data frame whose payload is being streamed
        self._payload_left = 0
        self._payload_id = 0
        self._payload_deliver = False
        self._payload_flags = 0
        self._pings: OrderedDict[int, float] = OrderedDict()
        self._next_ping = 1
        self.rtt: float | None = None
        self.local_goaway = False
        self.remote_goaway: int | None = None
        self.error: ProtocolViolation | None = None

    # -- state ------------------------------------------------------------------------------------------
    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def ack_backlog(self) -> int:
        """Outbound streams not yet acknowledged."""
        return self._backlog

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st is not None else 0

    def recv_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.recv_window if st is not None else 0

    def can_open_stream(self) -> bool:
        return self._backlog < self.config.max_ack_backlog

    @property
    def is_dead(self) -> bool:
        return self.error is not None

    def data_to_send(self) -> bytearray:
        """The bytes to write, handed over (the engine keeps no reference)."""
        out = self._out
        if out:
            self._out = bytearray()
        return out

    @property
    def pending_output(self) -> int:
        return len(self._out)

    # -- commands ---------------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self.error is not None:
            raise ConnectionClosed("yamux session failed", cause="protocol-error", code=GOAWAY_PROTOCOL_ERROR)

    def open_stream(self, now: float = 0.0) -> int:
        """Open an outbound stream (sends SYN at once). Raises ResourceLimitExceeded when the ACK backlog
        is full (retry after a :class:`StreamAcknowledged` or :class:`StreamResetEvent`), ConnectionClosed
        after a GoAway either way."""
        self._check_alive()
        if self.local_goaway or self.remote_goaway is not None:
            raise ConnectionClosed(
                "yamux session is going away", cause="goaway", code=self.remote_goaway or 0
            )
        if self._backlog >= self.config.max_ack_backlog:
            raise ResourceLimitExceeded("yamux ACK backlog is full", limit="max_ack_backlog")
        sid = self._next_id
        if sid > MAX_U32:
            raise ResourceLimitExceeded("yamux stream ids exhausted", limit="stream_ids")
        self._next_id += 2
        self._streams[sid] = _Stream(True, self.config.initial_window, now)
        self._backlog += 1
        self._out += _pack_header(
            VERSION, TYPE_WINDOW_UPDATE, FLAG_SYN, sid, self.config.initial_window - DEFAULT_WINDOW
        )
        return sid

    def _stream_for_send(self, stream_id: int) -> _Stream:
        self._check_alive()
        st = self._streams.get(stream_id)
        if st is None or st.local_closed:
            raise StreamClosed(f"yamux stream {stream_id} is closed for writing")
        return st

    def send_data(self, stream_id: int, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as the peer's window allows; returns the number of bytes accepted
        (0 when the window is exhausted: wait for :class:`WindowUpdated`)."""
        st = self._streams.get(stream_id)
        if st is None or st.local_closed or self.error is not None:
            st = self._stream_for_send(stream_id)  # raises the typed error
        n = min(len(data), st.send_window)
        if n <= 0:
            return 0
        st.send_window -= n
        out = self._out
        step = self.config.max_frame_payload
        if n == len(data) and n <= step:  # one frame, all of it
            out += _pack_header(VERSION, TYPE_DATA, 0, stream_id, n)
            out += data
            return n
        mv = memoryview(data)
        for off in range(0, n, step):
            end = min(off + step, n)
            out += _pack_header(VERSION, TYPE_DATA, 0, stream_id, end - off)
            out += mv[off:end]
        return n

    def send_fin(self, stream_id: int) -> None:
        """Half-close our side (FIN). Idempotent."""
        self._check_alive()
        st = self._streams.get(stream_id)
        if st is None or st.local_closed:
            return
        st.local_closed = True
        self._out += _pack_header(VERSION, TYPE_DATA, FLAG_FIN, stream_id, 0)
        if st.remote_closed:
            self._forget(stream_id, st)

    def send_reset(self, stream_id: int) -> None:
        """Abort the stream (RST). Idempotent; unknown streams are ignored."""
        if self.error is not None:
            return
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._out += _pack_header(VERSION, TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
        self._forget(stream_id, st)

    def acknowledge_received_data(self, stream_id: int, n: int, now: float = 0.0) -> bool:
        """The application consumed ``n`` bytes of the stream: return them as credit once half a window has
        been consumed, growing the window when it was consumed within a few RTTs (auto-tuning). True when a
        window update was queued."""
        st = self._streams.get(stream_id)
        if st is None or self.error is not None or n <= 0:
            return False
        if st.remote_closed:  # the peer sends no more data: no credit needed
            st.unacked = 0
            return False
        st.unacked += n
        if st.unacked < st.recv_window >> 1:
            return False
        window = st.recv_window
        rtt = self.rtt
        if (
            rtt is not None
            and window < self.config.max_window
            and now - st.epoch_start < rtt * self.config.autotune_rtt_multiplier
        ):
            window = min(window * 2, self.config.max_window)
        delta = st.unacked + window - st.recv_window
        st.recv_window = window
        st.recv_credit += delta
        st.unacked = 0
        st.epoch_start = now
        self._out += _pack_header(VERSION, TYPE_WINDOW_UPDATE, 0, stream_id, delta)
        return True

    def ping(self, now: float = 0.0) -> int:
        """Send a Ping; returns its opaque value. The matching :class:`PongReceived` carries the RTT."""
        self._check_alive()
        opaque = self._next_ping
        self._next_ping = (self._next_ping + 1) & MAX_U32 or 1
        self._pings[opaque] = now
        while len(self._pings) > self.config.max_outstanding_pings:
            self._pings.popitem(last=False)
        self._out += _pack_header(VERSION, TYPE_PING, FLAG_SYN, 0, opaque)
        return opaque

    def go_away(self, code: int = GOAWAY_NORMAL) -> None:
        """Tell the peer we accept no new streams (and are closing). Inbound SYNs are refused afterwards."""
        if self.local_goaway or self.error is not None:
            return
        self.local_goaway = True
        self._out += _pack_header(VERSION, TYPE_GO_AWAY, 0, 0, code & MAX_U32)

    # -- receiving --------------------------------------------------------------------------------------
    def receive_data_frame(self, data: bytes | bytearray) -> int:
        """The fast path of :meth:`receive_data` for a chunk that is exactly one flagless Data frame with a
        payload, on an open stream and within its window (a small message: the common case). Returns the
        stream id, whose payload is ``data[HEADER_SIZE:]``; 0 when the chunk needs :meth:`receive_data`
        (then nothing was consumed). Never queues output."""
        n = len(data) - HEADER_SIZE
        if n <= 0 or self._payload_left or self._hbuf or self.error is not None:
            return 0
        sid: int
        version, ftype, flags, sid, length = _unpack_header(data)
        if length != n or version or ftype or flags:
            return 0
        st = self._streams.get(sid)
        if st is None or st.remote_closed or n > st.recv_credit:
            return 0
        st.recv_credit -= n
        return sid

    def receive_data(self, data: bytes | bytearray | memoryview, now: float = 0.0) -> list[YamuxEvent]:
        """Process received bytes; return the events they caused. Never raises on bad input: a violation
        queues GoAway(protocol error) and returns a :class:`ProtocolError` event."""
        events: list[YamuxEvent] = []
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
                    if self._payload_deliver:
                        events.append(DataReceived(self._payload_id, mv[pos : pos + take]))
                    pos += take
                    self._payload_left = left - take
                    if not self._payload_left and self._payload_flags:
                        self._data_frame_done(events)
                    continue
                hbuf = self._hbuf
                if hbuf:
                    need = HEADER_SIZE - len(hbuf)
                    hbuf += mv[pos : pos + need]
                    pos += need
                    if len(hbuf) < HEADER_SIZE:
                        break
                    version, ftype, flags, sid, length = _unpack_header(hbuf)
                    hbuf.clear()
                elif end - pos >= HEADER_SIZE:
                    version, ftype, flags, sid, length = _unpack_header(mv, pos)
                    pos += HEADER_SIZE
                else:
                    hbuf += mv[pos:]
                    break
                if version != VERSION:
                    raise _violation(f"yamux: unknown version {version}")
                if ftype == TYPE_DATA:
                    self._on_data_header(flags, sid, length, now, events)
                elif ftype == TYPE_WINDOW_UPDATE:
                    self._on_window_update(flags, sid, length, now, events)
                elif ftype == TYPE_PING:
                    self._on_ping(flags, length, now, events)
                elif ftype == TYPE_GO_AWAY:
                    self.remote_goaway = length
                    events.append(GoAwayReceived(length))
                else:
                    raise _violation(f"yamux: unknown frame type {ftype}")
        except ProtocolViolation as exc:
            self.error = exc
            self._hbuf.clear()
            self._payload_left = 0
            self._out += _pack_header(VERSION, TYPE_GO_AWAY, 0, 0, GOAWAY_PROTOCOL_ERROR)
            self.local_goaway = True
            events.append(ProtocolError(exc))
        return events

    def _stream_for_frame(self, flags: int, sid: int, now: float, events: list[YamuxEvent]) -> _Stream | None:
        """Apply SYN/ACK; return the stream the frame concerns, or None to ignore it."""
        if sid == 0:
            raise _violation("yamux: stream frame on the session id 0")
        if flags & FLAG_SYN:
            if sid in self._streams:
                raise _violation(f"yamux: SYN for open stream {sid}")
            if (sid & 1) == (1 if self.is_client else 0):
                raise _violation(f"yamux: peer opened stream {sid} of our parity")
            if sid <= self._highest_inbound:
                raise _violation(f"yamux: peer reused stream id {sid}")
            self._highest_inbound = sid
            if self.local_goaway or self._num_inbound >= self.config.max_inbound_streams:
                self._out += _pack_header(VERSION, TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0)
                return None
            new = _Stream(False, self.config.initial_window, now)
            self._streams[sid] = new
            self._num_inbound += 1
            self._out += _pack_header(
                VERSION, TYPE_WINDOW_UPDATE, FLAG_ACK, sid, self.config.initial_window - DEFAULT_WINDOW
            )
            events.append(StreamOpened(sid))
            return new
        st = self._streams.get(sid)
        if st is None:
            return None  # a stream we reset or refused: frames in flight are dropped
        if flags & FLAG_ACK and not st.acked:
            st.acked = True
            self._backlog -= 1
            events.append(StreamAcknowledged(sid))
        return st

    def _on_data_header(
        self, flags: int, sid: int, length: int, now: float, events: list[YamuxEvent]
    ) -> None:
        if length > self.config.max_window:
            raise ProtocolViolation(
                f"yamux: data frame of {length} bytes exceeds any window", protocol=PROTOCOL_ID
            )
        st = self._stream_for_frame(flags, sid, now, events)
        deliver = False
        if st is not None:
            if st.remote_closed:
                if length:  # data after FIN: the stream is broken, not the session
                    self._out += _pack_header(VERSION, TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0)
                    self._forget(sid, st)
                    events.append(StreamResetEvent(sid))
                    flags = 0
            else:
                if length > st.recv_credit:
                    raise ProtocolViolation(
                        f"yamux: {length} bytes on stream {sid} exceed its window of {st.recv_credit}",
                        protocol=PROTOCOL_ID,
                    )
                st.recv_credit -= length
                deliver = True
        self._payload_id = sid
        self._payload_deliver = deliver
        self._payload_flags = flags & (FLAG_FIN | FLAG_RST) if st is not None else 0
        self._payload_left = length
        if not length and self._payload_flags:
            self._data_frame_done(events)

    def _data_frame_done(self, events: list[YamuxEvent]) -> None:
        flags = self._payload_flags
        self._payload_flags = 0
        self._apply_close_flags(self._payload_id, flags, events)

    def _apply_close_flags(self, sid: int, flags: int, events: list[YamuxEvent]) -> None:
        st = self._streams.get(sid)
        if st is None:
            return
        if flags & FLAG_RST:
            self._forget(sid, st)
            events.append(StreamResetEvent(sid))
        elif flags & FLAG_FIN and not st.remote_closed:
            st.remote_closed = True
            events.append(StreamEOF(sid))
            if st.local_closed:
                self._forget(sid, st)

    def _on_window_update(
        self, flags: int, sid: int, delta: int, now: float, events: list[YamuxEvent]
    ) -> None:
        st = self._stream_for_frame(flags, sid, now, events)
        if st is None:
            return
        if delta:
            window = st.send_window + delta
            if window > MAX_U32:
                raise ProtocolViolation(
                    f"yamux: window of stream {sid} overflows 2^32-1", protocol=PROTOCOL_ID
                )
            st.send_window = window
            if not st.local_closed:
                events.append(WindowUpdated(sid, delta))
        if flags & (FLAG_FIN | FLAG_RST):
            self._apply_close_flags(sid, flags, events)

    def _on_ping(self, flags: int, opaque: int, now: float, events: list[YamuxEvent]) -> None:
        if flags & FLAG_SYN:
            self._out += _pack_header(VERSION, TYPE_PING, FLAG_ACK, 0, opaque)
            events.append(PingReceived(opaque))
            return
        sent = self._pings.pop(opaque, None)
        rtt = None
        if sent is not None:
            rtt = max(now - sent, 0.0)
            self.rtt = rtt
        events.append(PongReceived(opaque, rtt))

    def _forget(self, sid: int, st: _Stream) -> None:
        del self._streams[sid]
        if st.outbound:
            if not st.acked:
                self._backlog -= 1
        else:
            self._num_inbound -= 1
