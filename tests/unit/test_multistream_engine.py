"""multistream-select sans-I/O engine tests: wire bytes, splits at every boundary, limits, violations."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolibp2p.exceptions import MessageTooLarge, NegotiationError, ProtocolNotSupported, VarintError
from aiolibp2p.multistream.engine import (
    MAX_MESSAGE_SIZE,
    MAX_NA_ATTEMPTS,
    HeaderReceived,
    MultistreamDialer,
    MultistreamListener,
    NegotiationComplete,
    ProtocolProposed,
    ProtocolRejected,
    encode_message,
)

HEADER = b"\x13/multistream/1.0.0\n"
NA = b"\x03na\n"


def msg(text: str) -> bytes:
    return encode_message(text)


def listener(*supported: str) -> MultistreamListener:
    return MultistreamListener(set(supported).__contains__)


def feed_in_pieces(engine: MultistreamDialer | MultistreamListener, data: bytes, cuts: list[int]) -> int:
    """Feed ``data`` cut at ``cuts``; returns the total consumed. Checks nothing past the end is consumed."""
    consumed = 0
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    for lo, hi in itertools.pairwise(bounds):
        r = engine.feed(data[lo:hi])
        assert 0 <= r.consumed <= hi - lo
        consumed += r.consumed
        if r.consumed < hi - lo:
            assert engine.done
    return consumed


# --- wire bytes ----------------------------------------------------------------------------------------


def test_wire_encoding_matches_spec_examples() -> None:
    assert msg("/multistream/1.0.0") == HEADER
    assert msg("na") == NA
    assert msg("/noise")[:1] == b"\x07"
    assert msg("/yamux/1.0.0")[:1] == b"\x0d"


def test_encode_rejects_newline_and_oversize() -> None:
    with pytest.raises(ValueError):
        encode_message("a\nb")
    encode_message("x" * (MAX_MESSAGE_SIZE - 1))
    with pytest.raises(ValueError):
        encode_message("x" * MAX_MESSAGE_SIZE)


def test_dialer_sends_header_and_first_proposal_together() -> None:
    d = MultistreamDialer(["/noise", "/tls/1.0.0"])
    assert d.bytes_to_send() == HEADER + msg("/noise")
    assert d.bytes_to_send() == b""
    assert d.proposing == "/noise"


def test_listener_sends_header_at_once() -> None:
    assert listener("/noise").bytes_to_send() == HEADER


def test_dialer_rejects_unproposable_protocols() -> None:
    for bad in ([], ["na"], ["ls"], [""], ["a\nb"], ["x" * 2000]):
        with pytest.raises(ValueError):
            MultistreamDialer(bad)


# --- full exchanges ------------------------------------------------------------------------------------


def run_back_to_back(
    dialer: MultistreamDialer, lst: MultistreamListener
) -> tuple[list[object], list[object]]:
    d_events: list[object] = []
    l_events: list[object] = []
    for _ in range(100):
        to_l = dialer.bytes_to_send()
        to_d = lst.bytes_to_send()
        if not to_l and not to_d:
            break
        if to_l and not lst.done:
            l_events += lst.feed(to_l).events
        if to_d and not dialer.done:
            d_events += dialer.feed(to_d).events
    return d_events, l_events


def test_negotiation_first_choice() -> None:
    d, lst = MultistreamDialer(["/yamux/1.0.0"]), listener("/yamux/1.0.0")
    d_events, l_events = run_back_to_back(d, lst)
    assert d.protocol == lst.protocol == "/yamux/1.0.0"
    assert d_events == [HeaderReceived(), NegotiationComplete("/yamux/1.0.0")]
    assert l_events == [
        HeaderReceived(),
        ProtocolProposed("/yamux/1.0.0", True),
        NegotiationComplete("/yamux/1.0.0"),
    ]


def test_negotiation_after_na() -> None:
    d, lst = MultistreamDialer(["/a", "/b", "/c"]), listener("/c", "/b")
    d_events, l_events = run_back_to_back(d, lst)
    assert d.protocol == lst.protocol == "/b"
    assert ProtocolRejected("/a") in d_events
    assert ProtocolProposed("/a", False) in l_events


def test_dialer_na_to_everything_raises_protocol_not_supported() -> None:
    d = MultistreamDialer(["/a", "/b"])
    d.bytes_to_send()
    d.feed(HEADER + NA)
    assert d.bytes_to_send() == msg("/b")
    with pytest.raises(ProtocolNotSupported) as ei:
        d.feed(NA)
    assert ei.value.protocols == ["/a", "/b"]


def test_dialer_unexpected_answer() -> None:
    d = MultistreamDialer(["/a"])
    with pytest.raises(NegotiationError):
        d.feed(HEADER + msg("/b"))


def test_listener_answers_na_to_ls_and_header_repeat() -> None:
    lst = listener("/a")
    lst.bytes_to_send()
    r = lst.feed(HEADER + msg("ls") + msg("/multistream/1.0.0") + msg(""))
    assert not lst.done and r.consumed == len(HEADER + msg("ls") + msg("/multistream/1.0.0") + msg(""))
    assert lst.bytes_to_send() == NA * 3


def test_listener_gives_up_after_max_na() -> None:
    lst = listener("/a")
    data = HEADER + b"".join(msg(f"/x/{i}") for i in range(MAX_NA_ATTEMPTS))
    lst.feed(data)
    assert lst.bytes_to_send().count(NA) == MAX_NA_ATTEMPTS
    with pytest.raises(NegotiationError):
        lst.feed(msg("/one-too-many"))


def test_listener_accepts_after_max_minus_one_na() -> None:
    lst = listener("/a")
    lst.feed(HEADER + b"".join(msg(f"/x/{i}") for i in range(MAX_NA_ATTEMPTS)) + msg("/a"))
    assert lst.protocol == "/a"


# --- trailing data and splitting -----------------------------------------------------------------------

PIPELINED = HEADER + msg("/nope") + msg("/proto/1.0.0")
APP_DATA = b"\x05hello application bytes \x13/multistream/1.0.0\n"


def test_listener_leaves_pipelined_application_data() -> None:
    lst = listener("/proto/1.0.0")
    r = lst.feed(PIPELINED + APP_DATA)
    assert lst.protocol == "/proto/1.0.0"
    assert r.consumed == len(PIPELINED)
    assert lst.trailing_data == APP_DATA
    assert lst.bytes_to_send() == HEADER + NA + msg("/proto/1.0.0")
    # after completion nothing more is consumed
    assert lst.feed(b"more").consumed == 0
    assert lst.trailing_data == APP_DATA + b"more"


def test_listener_split_at_every_byte_boundary() -> None:
    data = PIPELINED + APP_DATA
    for cut in range(len(data) + 1):
        lst = listener("/proto/1.0.0")
        consumed = feed_in_pieces(lst, data, [cut])
        assert consumed == len(PIPELINED), cut
        assert lst.protocol == "/proto/1.0.0"


def test_dialer_split_at_every_byte_boundary() -> None:
    answer = HEADER + NA + msg("/b") + APP_DATA
    for cut in range(len(answer) + 1):
        d = MultistreamDialer(["/a", "/b"])
        consumed = feed_in_pieces(d, answer, [cut])
        assert d.protocol == "/b"
        assert consumed == len(answer) - len(APP_DATA)
        assert d.bytes_to_send() == HEADER + msg("/a") + msg("/b")


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(PIPELINED + APP_DATA)), max_size=12),
    app=st.binary(max_size=64),
)
def test_listener_any_split(cuts: list[int], app: bytes) -> None:
    data = PIPELINED + app
    lst = listener("/proto/1.0.0")
    consumed = feed_in_pieces(lst, data, cuts)
    assert consumed == len(PIPELINED)
    assert lst.protocol == "/proto/1.0.0"
    # the unconsumed bytes of the last feed are the trailing data
    assert lst.trailing_data == data[consumed:] == app


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_read_hint_never_overshoots(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.text(min_size=1, max_size=200).filter(lambda s: "\n" not in s), max_size=5))
    names = [n for n in names if n not in ("na", "ls", "/proto") and len(n.encode()) < MAX_MESSAGE_SIZE]
    stream = HEADER + b"".join(msg(n) for n in names) + msg("/proto") + APP_DATA
    lst = listener("/proto")
    pos = 0
    while not lst.done:
        hint = lst.read_hint()
        assert hint > 0
        r = lst.feed(stream[pos : pos + hint])
        assert r.consumed == hint
        pos += hint
    assert lst.read_hint() == 0
    assert stream[pos:] == APP_DATA
    assert lst.trailing_data == b""


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_fuzz_listener_only_typed_errors(data: bytes, cuts: list[int]) -> None:
    lst = listener("/a", "/b")
    try:
        feed_in_pieces(lst, HEADER + data, cuts)
    except (NegotiationError, MessageTooLarge, VarintError):
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_dialer_only_typed_errors(data: bytes) -> None:
    d = MultistreamDialer(["/a", "/b"])
    try:
        d.feed(data)
    except (NegotiationError, MessageTooLarge, VarintError):
        pass


# --- violations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["dialer", "listener"])
def test_first_message_must_be_header(engine: str) -> None:
    e = MultistreamDialer(["/a"]) if engine == "dialer" else listener("/a")
    with pytest.raises(NegotiationError):
        e.feed(msg("/multistream/2.0.0"))


def test_oversize_length_prefix_rejected_before_body() -> None:
    lst = listener("/a")
    lst.feed(HEADER)
    too_long = MAX_MESSAGE_SIZE + 1
    prefix = bytes([(too_long & 0x7F) | 0x80, too_long >> 7])
    with pytest.raises(MessageTooLarge):
        lst.feed(prefix)  # no body needed: refused as soon as the length is known


def test_exact_max_message_accepted() -> None:
    name = "/" + "x" * (MAX_MESSAGE_SIZE - 2)
    lst = listener(name)
    lst.feed(HEADER + msg(name))
    assert lst.protocol == name


def test_three_byte_length_prefix_rejected_early() -> None:
    lst = listener("/a")
    lst.feed(HEADER)
    with pytest.raises(MessageTooLarge):
        lst.feed(b"\xff\xff")  # two continuation bytes: at least 16384


def test_non_minimal_varint_rejected() -> None:
    with pytest.raises(VarintError):
        listener("/a").feed(b"\x93\x00")


@pytest.mark.parametrize("bad", [b"\x00", b"\x02na", b"\x03\xff\xfe\n"])
def test_malformed_messages(bad: bytes) -> None:
    lst = listener("/a")
    lst.feed(HEADER)
    with pytest.raises(NegotiationError):
        lst.feed(bad)
