"""Yamux engine tests: two sans-I/O engines back to back, no sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.exceptions import ConnectionClosed, ProtocolViolation, ResourceLimitExceeded, StreamClosed
from aiolibp2p.muxers.yamux.engine import (
    DEFAULT_WINDOW,
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    GOAWAY_PROTOCOL_ERROR,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_PING,
    TYPE_WINDOW_UPDATE,
    DataReceived,
    GoAwayReceived,
    PingReceived,
    PongReceived,
    ProtocolError,
    StreamAcknowledged,
    StreamEOF,
    StreamOpened,
    StreamResetEvent,
    WindowUpdated,
    YamuxConfig,
    YamuxEngine,
    YamuxEvent,
    encode_header,
)


def frames(data: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    """Parse a byte string of complete frames: (version, type, flags, id, length, payload)."""
    out = []
    pos = 0
    while pos < len(data):
        v, t, f, sid, ln = struct.unpack_from(">BBHII", data, pos)
        pos += 12
        payload = b""
        if t == TYPE_DATA:
            payload = data[pos : pos + ln]
            pos += ln
        out.append((v, t, f, sid, ln, payload))
    return out


def transfer(src: YamuxEngine, dst: YamuxEngine, now: float = 0.0) -> list[YamuxEvent]:
    return dst.receive_data(bytes(src.data_to_send()), now)


def pump(a: YamuxEngine, b: YamuxEngine) -> tuple[list[YamuxEvent], list[YamuxEvent]]:
    """Move bytes both ways until both are quiet; returns (events at a, events at b)."""
    ea: list[YamuxEvent] = []
    eb: list[YamuxEvent] = []
    for _ in range(100):
        if not a.pending_output and not b.pending_output:
            return ea, eb
        eb += transfer(a, b)
        ea += transfer(b, a)
    raise AssertionError("engines did not settle")


def data_of(events: list[YamuxEvent], sid: int) -> bytes:
    return b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived) and e.stream_id == sid)


def error_of(events: list[YamuxEvent]) -> ProtocolViolation:
    errs = [e for e in events if isinstance(e, ProtocolError)]
    assert len(errs) == 1, events
    return errs[0].error


def test_header_layout_matches_spec_example() -> None:
    # spec: WindowUpdate+SYN on stream 1 with delta 0
    assert encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0) == bytes.fromhex("000100010000000100000000")
    c = YamuxEngine(True)
    assert c.open_stream() == 1
    assert bytes(c.data_to_send()) == bytes.fromhex("000100010000000100000000")


def test_stream_ids_by_role() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    assert [c.open_stream() for _ in range(3)] == [1, 3, 5]
    assert [s.open_stream() for _ in range(3)] == [2, 4, 6]


def test_open_data_fin_roundtrip() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    sid = c.open_stream()
    assert c.send_data(sid, b"hello") == 5
    c.send_fin(sid)
    ec, es = pump(c, s)
    assert StreamOpened(sid) in es
    assert data_of(es, sid) == b"hello"
    assert es[-1] == StreamEOF(sid)
    assert StreamAcknowledged(sid) in ec
    assert c.ack_backlog == 0
    # reply and close: the stream is forgotten on both sides
    assert s.send_data(sid, b"world") == 5
    s.send_fin(sid)
    ec, _ = pump(c, s)
    assert data_of(ec, sid) == b"world"
    assert StreamEOF(sid) in ec
    assert not c.has_stream(sid) and not s.has_stream(sid)
    with pytest.raises(StreamClosed):
        c.send_data(sid, b"x")


def _scripted_client_bytes() -> tuple[bytes, dict[int, bytes]]:
    c = YamuxEngine(True)
    payloads: dict[int, bytes] = {}
    for i in range(3):
        sid = c.open_stream()
        payload = bytes([i + 1]) * (1000 * (i + 1) + 7)
        assert c.send_data(sid, payload) == len(payload)
        payloads[sid] = payload
    c.ping()
    c.send_fin(1)
    c.send_reset(3)
    c.send_data(5, b"")
    return bytes(c.data_to_send()), payloads


def _normalise(events: list[YamuxEvent]) -> tuple[list[YamuxEvent], dict[int, bytes]]:
    data: dict[int, bytes] = {}
    others: list[YamuxEvent] = []
    for e in events:
        if isinstance(e, DataReceived):
            data[e.stream_id] = data.get(e.stream_id, b"") + bytes(e.data)
        else:
            others.append(e)
    return others, data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    wire, payloads = _scripted_client_bytes()
    reference = YamuxEngine(False)
    ref_events = reference.receive_data(wire)
    points = sorted({min(c, len(wire)) for c in cuts})
    s = YamuxEngine(False)
    events: list[YamuxEvent] = []
    prev = 0
    for p in [*points, len(wire)]:
        events += s.receive_data(wire[prev:p])
        prev = p
    assert _normalise(events) == _normalise(ref_events)
    others, data = _normalise(events)
    assert data == {1: payloads[1], 3: payloads[3], 5: payloads[5]}
    assert StreamEOF(1) in others and StreamResetEvent(3) in others and PingReceived(1) in others
    assert bytes(s.data_to_send()) == bytes(reference.data_to_send())


def test_every_single_byte_boundary() -> None:
    wire, payloads = _scripted_client_bytes()
    for cut in range(len(wire) + 1):
        if cut % 97 and cut > 64 and cut < len(wire) - 64:
            continue  # every boundary inside headers and near the ends, a sample in the payloads
        s = YamuxEngine(False)
        events = s.receive_data(wire[:cut]) + s.receive_data(wire[cut:])
        assert _normalise(events)[1] == payloads


def test_send_is_bounded_by_the_peer_window_and_resumes_after_update() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    sid = c.open_stream()
    big = bytes(DEFAULT_WINDOW * 2)
    assert c.send_data(sid, big) == DEFAULT_WINDOW
    assert c.send_data(sid, big) == 0
    _, es = pump(c, s)
    assert len(data_of(es, sid)) == DEFAULT_WINDOW
    # consuming less than half the window sends nothing
    s.acknowledge_received_data(sid, DEFAULT_WINDOW // 2 - 1)
    assert not s.pending_output
    s.acknowledge_received_data(sid, 1)
    ec, _ = pump(c, s)
    assert WindowUpdated(sid, DEFAULT_WINDOW // 2) in ec
    assert c.send_window(sid) == DEFAULT_WINDOW // 2
    assert c.send_data(sid, big) == DEFAULT_WINDOW // 2


def test_large_frames_are_split_by_max_frame_payload() -> None:
    c = YamuxEngine(True, YamuxConfig(max_frame_payload=1000))
    sid = c.open_stream()
    assert c.send_data(sid, bytes(2500)) == 2500
    lengths = [f[4] for f in frames(bytes(c.data_to_send())) if f[1] == TYPE_DATA]
    assert lengths == [1000, 1000, 500]


def test_larger_initial_window_is_granted_on_syn_and_ack() -> None:
    cfg = YamuxConfig(initial_window=1024 * 1024)
    c, s = YamuxEngine(True, cfg), YamuxEngine(False, cfg)
    sid = c.open_stream()
    _, _ = pump(c, s)
    assert c.send_window(sid) == 1024 * 1024
    assert s.send_window(sid) == 1024 * 1024
    assert c.send_data(sid, bytes(2 * 1024 * 1024)) == 1024 * 1024
    _, es = pump(c, s)
    assert not any(isinstance(e, ProtocolError) for e in es)


def _measure_rtt(e: YamuxEngine, peer: YamuxEngine, rtt: float) -> None:
    e.ping(now=0.0)
    peer.receive_data(bytes(e.data_to_send()))
    events = e.receive_data(bytes(peer.data_to_send()), now=rtt)
    assert any(isinstance(ev, PongReceived) and ev.rtt == rtt for ev in events)
    assert e.rtt == rtt


def test_autotuning_doubles_a_window_consumed_fast_up_to_the_max() -> None:
    cfg = YamuxConfig(max_window=1024 * 1024)
    c, s = YamuxEngine(True, cfg), YamuxEngine(False, cfg)
    _measure_rtt(s, c, 0.1)
    sid = c.open_stream()
    pump(c, s)
    now = 0.0
    windows = []
    for _ in range(6):
        sent = c.send_data(sid, bytes(c.send_window(sid)))
        events = transfer(c, s, now)
        assert len(data_of(events, sid)) == sent
        now += 0.05  # consumed within a fraction of an RTT
        s.acknowledge_received_data(sid, sent, now)
        transfer(s, c, now)
        windows.append(s.recv_window(sid))
    assert windows[-1] == 1024 * 1024
    assert windows == sorted(windows) and windows[0] == 2 * DEFAULT_WINDOW
    assert c.send_window(sid) == 1024 * 1024


def test_autotuning_keeps_a_window_consumed_slowly() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    _measure_rtt(s, c, 0.01)
    sid = c.open_stream()
    pump(c, s)
    now = 0.0
    for _ in range(4):
        sent = c.send_data(sid, bytes(c.send_window(sid)))
        transfer(c, s, now)
        now += 10.0  # far slower than the RTT: the window is not the bottleneck
        s.acknowledge_received_data(sid, sent, now)
        transfer(s, c, now)
    assert s.recv_window(sid) == DEFAULT_WINDOW


def test_no_autotuning_without_rtt() -> None:
    c, s = YamuxEngine(True, YamuxConfig(rtt_measure_interval=0)), YamuxEngine(False)
    sid = c.open_stream()
    pump(c, s)
    sent = c.send_data(sid, bytes(DEFAULT_WINDOW))
    transfer(c, s)
    s.acknowledge_received_data(sid, sent)
    assert s.recv_window(sid) == DEFAULT_WINDOW


def test_ack_backlog_limits_unacknowledged_outbound_streams() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    ids = [c.open_stream() for _ in range(256)]
    assert not c.can_open_stream()
    with pytest.raises(ResourceLimitExceeded):
        c.open_stream()
    es = transfer(c, s)
    assert [e.stream_id for e in es if isinstance(e, StreamOpened)] == ids
    ec = transfer(s, c)
    assert sum(isinstance(e, StreamAcknowledged) for e in ec) == 256
    assert c.ack_backlog == 0
    c.open_stream()


def test_reset_of_an_unacked_stream_frees_its_backlog_slot() -> None:
    c = YamuxEngine(True, YamuxConfig(max_ack_backlog=1))
    sid = c.open_stream()
    with pytest.raises(ResourceLimitExceeded):
        c.open_stream()
    c.send_reset(sid)
    assert c.open_stream() == sid + 2


def test_inbound_stream_limit_refuses_with_rst() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False, YamuxConfig(max_inbound_streams=2))
    for _ in range(3):
        c.open_stream()
    c.send_data(5, b"refused data")
    es = transfer(c, s)
    assert [e.stream_id for e in es if isinstance(e, StreamOpened)] == [1, 3]
    assert not any(isinstance(e, DataReceived) for e in es)
    ec = transfer(s, c)
    assert StreamResetEvent(5) in ec
    assert c.ack_backlog == 0
    # closing one makes room again
    s.send_reset(1)
    transfer(s, c)
    c.open_stream()
    assert StreamOpened(7) in transfer(c, s)


def test_reset_from_either_side() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    a = c.open_stream()
    b = c.open_stream()
    pump(c, s)
    c.send_reset(a)
    s.send_reset(b)
    ec, es = pump(c, s)
    assert StreamResetEvent(a) in es and StreamResetEvent(b) in ec
    assert s.num_streams == 0 and c.num_streams == 0
    # data in flight for a reset stream is dropped silently
    assert s.receive_data(encode_header(TYPE_DATA, 0, a, 3) + b"abc") == []


def test_ping_is_answered_and_measures_rtt() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    opaque = c.ping(now=1.0)
    es = transfer(c, s)
    assert es == [PingReceived(opaque)]
    out = bytes(s.data_to_send())
    assert frames(out) == [(0, TYPE_PING, FLAG_ACK, 0, opaque, b"")]
    assert c.receive_data(out, now=1.25) == [PongReceived(opaque, 0.25)]
    assert c.rtt == 0.25
    # an unsolicited pong has no RTT
    assert c.receive_data(encode_header(TYPE_PING, FLAG_ACK, 0, 999)) == [PongReceived(999, None)]


def test_go_away_stops_new_streams_both_ways() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    s.go_away(0)
    assert transfer(s, c) == [GoAwayReceived(0)]
    with pytest.raises(ConnectionClosed):
        c.open_stream()
    # a SYN reaching a side that sent GoAway is refused
    c2 = YamuxEngine(True)
    c2.open_stream()
    assert transfer(c2, s) == []
    assert frames(bytes(s.data_to_send())) == [(0, TYPE_WINDOW_UPDATE, FLAG_RST, 1, 0, b"")]


def test_fin_and_rst_ride_on_window_updates() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    sid = c.open_stream()
    pump(c, s)
    assert s.receive_data(encode_header(TYPE_WINDOW_UPDATE, FLAG_FIN, sid, 10)) == [
        WindowUpdated(sid, 10),
        StreamEOF(sid),
    ]
    sid2 = c.open_stream()
    pump(c, s)
    assert s.receive_data(encode_header(TYPE_WINDOW_UPDATE, FLAG_RST, sid2, 0)) == [StreamResetEvent(sid2)]


def test_data_after_fin_resets_only_that_stream() -> None:
    c, s = YamuxEngine(True), YamuxEngine(False)
    sid = c.open_stream()
    c.send_fin(sid)
    pump(c, s)
    events = s.receive_data(encode_header(TYPE_DATA, 0, sid, 2) + b"xx")
    assert events == [StreamResetEvent(sid)]
    assert not s.is_dead


# --- violations ----------------------------------------------------------------------------------------


def _established() -> tuple[YamuxEngine, YamuxEngine, int]:
    c, s = YamuxEngine(True), YamuxEngine(False)
    sid = c.open_stream()
    pump(c, s)
    return c, s, sid


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x01" + encode_header(TYPE_PING, FLAG_SYN, 0, 1)[1:], "version"),
        (bytes([0, 7]) + encode_header(TYPE_PING, FLAG_SYN, 0, 1)[2:], "type"),
        (encode_header(TYPE_DATA, 0, 1, DEFAULT_WINDOW + 1) + bytes(DEFAULT_WINDOW + 1), "window"),
        (encode_header(TYPE_DATA, 0, 1, 32 * 1024 * 1024), "exceeds any window"),
        (encode_header(TYPE_WINDOW_UPDATE, 0, 1, 0xFFFFFFFF), "overflow"),
        (encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0), "open stream"),
        (encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 2, 0), "parity"),
        (encode_header(TYPE_DATA, 0, 0, 0), "session id"),
    ],
    ids=["version", "type", "beyond-window", "huge-frame", "overflow", "duplicate-syn", "parity", "id0"],
)
def test_violations_send_go_away_and_report_a_typed_error(wire: bytes, message: str) -> None:
    _, s, _ = _established()
    s.data_to_send()
    events = s.receive_data(wire)
    err = error_of(events)
    assert message in str(err)
    assert err.protocol == "/yamux/1.0.0"
    assert frames(bytes(s.data_to_send()))[-1] == (0, TYPE_GO_AWAY, 0, 0, GOAWAY_PROTOCOL_ERROR, b"")
    assert s.is_dead
    assert s.receive_data(encode_header(TYPE_PING, FLAG_SYN, 0, 1)) == []
    with pytest.raises(ConnectionClosed):
        s.open_stream()


def test_reused_stream_id_is_a_violation() -> None:
    c, s, sid = _established()
    c.send_reset(sid)
    pump(c, s)
    err = error_of(s.receive_data(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, sid, 0)))
    assert "reused" in str(err)


def test_data_beyond_window_is_detected_before_buffering() -> None:
    _, s, sid = _established()
    # only the header: the violation is found before any payload arrives
    events = s.receive_data(encode_header(TYPE_DATA, 0, sid, DEFAULT_WINDOW + 1))
    assert "window" in str(error_of(events))


def test_window_grows_within_u32_but_not_beyond() -> None:
    _, s, sid = _established()
    assert s.receive_data(encode_header(TYPE_WINDOW_UPDATE, 0, sid, 0xFFFFFFFF - DEFAULT_WINDOW)) == [
        WindowUpdated(sid, 0xFFFFFFFF - DEFAULT_WINDOW)
    ]
    assert "overflow" in str(error_of(s.receive_data(encode_header(TYPE_WINDOW_UPDATE, 0, sid, 1))))


# --- fuzzing -------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.booleans())
def test_random_bytes_never_raise(data: bytes, is_client: bool) -> None:
    e = YamuxEngine(is_client)
    events = e.receive_data(data)
    assert all(not isinstance(ev, ProtocolError) or isinstance(ev.error, ProtocolViolation) for ev in events)


_frame = st.tuples(
    st.sampled_from([TYPE_DATA, TYPE_WINDOW_UPDATE, TYPE_PING, TYPE_GO_AWAY]),
    st.integers(min_value=0, max_value=15),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=64) | st.integers(min_value=0, max_value=0xFFFFFFFF),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_frame, max_size=30), st.booleans())
def test_random_well_formed_headers_never_raise(
    spec: list[tuple[int, int, int, int]], is_client: bool
) -> None:
    e = YamuxEngine(is_client, YamuxConfig(max_inbound_streams=3))
    wire = bytearray()
    for ftype, flags, sid, length in spec:
        wire += encode_header(ftype, flags, sid, length)
        if ftype == TYPE_DATA and length <= 64:
            wire += bytes(length)
    events = e.receive_data(bytes(wire))
    assert e.num_streams <= 3
    assert sum(isinstance(ev, ProtocolError) for ev in events) <= 1
    # the engine keeps working (or stays dead) after any input
    e.receive_data(bytes(wire))
    if not e.is_dead:
        e.ping()
    assert isinstance(e.data_to_send(), bytearray)


def test_fin_on_unknown_stream_is_ignored() -> None:
    s = YamuxEngine(False)
    assert s.receive_data(encode_header(TYPE_DATA, FLAG_FIN, 9, 0)) == []
    assert s.receive_data(encode_header(TYPE_WINDOW_UPDATE, FLAG_RST, 9, 0)) == []


# --- the one-frame fast path ---------------------------------------------------------------------------


def _receive_fast_first(e: YamuxEngine, chunk: bytes) -> list[YamuxEvent]:
    """What YamuxSession does with a received chunk: the one-frame fast path, else the general path."""
    sid = e.receive_data_frame(chunk)
    if sid:
        return [DataReceived(sid, memoryview(chunk)[12:])]
    return e.receive_data(chunk)


def _comparable(events: list[YamuxEvent]) -> tuple[list[object], dict[int, bytes]]:
    others, data = _normalise(events)
    return [str(e.error) if isinstance(e, ProtocolError) else e for e in others], data


def _stream_state(e: YamuxEngine) -> dict[int, tuple[object, ...]]:
    return {
        sid: tuple(getattr(st, name) for name in type(st).__slots__)
        for sid, st in e._streams.items()  # the state both paths must leave identical
    }


def _two_servers() -> tuple[YamuxEngine, YamuxEngine]:
    """Two servers in the same state: streams 1 and 3 open (3 half-closed by the peer), 5 reset."""
    out = []
    for _ in range(2):
        c, s = YamuxEngine(True), YamuxEngine(False)
        for _ in range(3):
            c.open_stream()
        c.send_fin(3)
        c.send_reset(5)
        pump(c, s)
        out.append(s)
    return out[0], out[1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([TYPE_DATA] * 6 + [TYPE_WINDOW_UPDATE, TYPE_PING]),
            st.sampled_from([0] * 8 + [FLAG_SYN, FLAG_ACK, FLAG_FIN, FLAG_RST]),
            st.sampled_from([1] * 6 + [0, 2, 3, 5, 7]),
            st.integers(min_value=0, max_value=40) | st.just(DEFAULT_WINDOW),
            st.just(0) | st.integers(min_value=-3, max_value=3),
        ),
        max_size=20,
    )
)
def test_fast_path_agrees_with_receive_data(spec: list[tuple[int, int, int, int, int]]) -> None:
    # Each chunk is one frame, sometimes cut short or with extra bytes; the fast path must leave the same
    # events, output and stream state as receive_data alone.
    ref, fast = _two_servers()
    carry = b""
    for ftype, flags, sid, length, skew in spec:
        frame = encode_header(ftype, flags, sid, length) + (bytes(length) if ftype == TYPE_DATA else b"")
        frame = carry + frame
        cut = max(0, len(frame) + skew) if skew < 0 else len(frame)
        chunk, carry = frame[:cut], frame[cut:]
        if skew > 0:
            chunk += bytes(skew)  # trailing garbage: the next frame header starts with it
        ev_ref = _comparable(ref.receive_data(chunk))
        ev_fast = _comparable(_receive_fast_first(fast, chunk))
        assert ev_fast == ev_ref
        assert bytes(fast.data_to_send()) == bytes(ref.data_to_send())
        assert _stream_state(fast) == _stream_state(ref)
        assert fast.is_dead == ref.is_dead


def test_fast_path_takes_only_a_whole_flagless_data_frame_within_the_window() -> None:
    _, s = _two_servers()
    ok = encode_header(TYPE_DATA, 0, 1, 4) + b"ping"
    assert s.receive_data_frame(ok) == 1
    assert s.recv_window(1) == DEFAULT_WINDOW
    for chunk in (
        ok[:-1],  # cut short
        ok + b"x",  # more than one frame
        encode_header(TYPE_DATA, FLAG_FIN, 1, 4) + b"ping",  # flags
        encode_header(TYPE_DATA, 0, 1, 0),  # no payload
        encode_header(TYPE_DATA, 0, 3, 4) + b"ping",  # the peer closed stream 3
        encode_header(TYPE_DATA, 0, 9, 4) + b"ping",  # unknown stream
        encode_header(TYPE_WINDOW_UPDATE, 0, 1, 4) + b"ping",
        encode_header(TYPE_DATA, 0, 1, DEFAULT_WINDOW) + bytes(DEFAULT_WINDOW),  # beyond the credit left
    ):
        assert s.receive_data_frame(chunk) == 0
    # a frame header split over chunks is pending: the next chunk must take the general path
    s.receive_data(ok[:5])
    assert s.receive_data_frame(ok) == 0
