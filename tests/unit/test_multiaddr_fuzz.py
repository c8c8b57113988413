"""Property tests for multiaddr: generated valid addresses round-trip text <-> bytes, and arbitrary or mutated
input either parses (and then round-trips) or raises MultiaddrError — never anything else."""

from __future__ import annotations

import hashlib
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiolibp2p.exceptions import MultiaddrError
from aiolibp2p.multiaddr import Multiaddr, all_protocols

_CODES = {p.name: p.code for p in all_protocols()}


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _component(name: str, value: bytes | None) -> bytes:
    """Independent reference encoder of one component (fixed sizes come from the caller's value)."""
    head = _uvarint(_CODES[name])
    if value is None:
        return head
    if name in _FIXED:
        assert len(value) == _FIXED[name]
        return head + value
    return head + _uvarint(len(value)) + value


_FIXED = {"ip4": 4, "ip6": 16, "tcp": 2, "udp": 2, "dccp": 2, "sctp": 2, "ipcidr": 1, "onion": 12}
_ZERO = [
    "tls",
    "noise",
    "quic",
    "quic-v1",
    "webtransport",
    "ws",
    "wss",
    "http",
    "p2p-circuit",
    "webrtc",
    "webrtc-direct",
    "udt",
    "utp",
    "https",
]
_STRING = ["ip6zone", "dns", "dns4", "dns6", "dnsaddr", "sni", "memory"]

_no_slash_text = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s)
_identity_mh = st.binary(min_size=1, max_size=42).map(lambda d: b"\x00" + _uvarint(len(d)) + d)
_sha256_mh = st.binary(max_size=16).map(lambda d: b"\x12\x20" + hashlib.sha256(d).digest())
_peer_id = st.one_of(_identity_mh, _sha256_mh)
_unix_path = st.text(min_size=1, max_size=20).map(lambda s: "/" + s).filter(lambda s: not s.endswith("/"))
_onion_value = st.tuples(st.binary(min_size=10, max_size=10), st.integers(1, 65535)).map(
    lambda t: t[0] + t[1].to_bytes(2, "big")
)


def _fixed(name: str) -> st.SearchStrategy[tuple[str, bytes | None]]:
    return st.binary(min_size=_FIXED[name], max_size=_FIXED[name]).map(lambda b: (name, b))


_component_strategy: st.SearchStrategy[tuple[str, bytes | None]] = st.one_of(
    *[_fixed(n) for n in ("ip4", "ip6", "tcp", "udp", "dccp", "sctp", "ipcidr")],
    _onion_value.map(lambda b: ("onion", b)),
    st.sampled_from(_ZERO).map(lambda n: (n, None)),
    st.tuples(st.sampled_from(_STRING), _no_slash_text.map(str.encode)),
    _unix_path.map(lambda s: ("unix", s.encode())),
    _peer_id.map(lambda b: ("p2p", b)),
    st.one_of(_identity_mh, _sha256_mh).map(lambda b: ("certhash", b)),
    st.binary(min_size=1, max_size=20).map(lambda b: ("http-path", b)),
)

_address = st.lists(_component_strategy, min_size=1, max_size=8)


@given(_address)
def test_generated_addresses_round_trip(components: list[tuple[str, bytes | None]]) -> None:
    encoded = b"".join(_component(name, value) for name, value in components)
    ma = Multiaddr.from_bytes(encoded)
    assert ma.to_bytes() == encoded
    assert [p.name for p in ma.protocols()] == [name for name, _ in components]
    text = str(ma)
    again = Multiaddr.from_string(text)
    assert again == ma
    assert again.to_bytes() == encoded
    assert str(again) == text
    for (name, value), (item_name, item_value) in zip(components, ma.items(), strict=True):
        assert item_name == name
        assert (item_value is None) == (value is None)
    singles = ma.split()
    assert [m.to_bytes() for m in singles] == [_component(name, value) for name, value in components]
    for single in singles:
        assert Multiaddr(str(single)) == single
    # encapsulation and decapsulation of the last component undo each other
    *head, last = ma.split()
    if head:
        prefix = Multiaddr.from_bytes(b"".join(m.to_bytes() for m in head))
        assert prefix.encapsulate(last) == ma
        assert ma.decapsulate(last) == prefix  # the last occurrence of the last component is itself


def _check_parse(make: object, data: object) -> None:
    try:
        ma = make(data)  # type: ignore[operator]
    except MultiaddrError:
        return
    # anything that parses must round-trip through both forms
    assert Multiaddr(ma.to_bytes()) == ma
    assert Multiaddr(str(ma)) == ma
    ma.items()
    ma.protocols()


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_multiaddr_error(data: bytes) -> None:
    _check_parse(Multiaddr.from_bytes, data)


@settings(max_examples=400)
@given(st.text(max_size=64))
def test_random_text_only_raises_multiaddr_error(text: str) -> None:
    _check_parse(Multiaddr.from_string, text)


_names = st.sampled_from([*(p.name for p in all_protocols()), "ipfs", "", "bogus"])
_segments = st.one_of(
    _names,
    st.integers(-5, 70000).map(str),
    st.text(max_size=12),
    st.sampled_from(
        ["127.0.0.1", "::1", "%2Fa", "%zz", "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC", "u"]
    ),
)


@settings(max_examples=250)
@given(st.lists(_segments, max_size=10))
def test_structured_text_only_raises_multiaddr_error(segments: list[str]) -> None:
    _check_parse(Multiaddr.from_string, "/" + "/".join(segments))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_address, st.data())
def test_mutated_encodings_only_raise_multiaddr_error(
    components: list[tuple[str, bytes | None]], data: st.DataObject
) -> None:
    encoded = bytearray(b"".join(_component(name, value) for name, value in components))
    action = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    pos = data.draw(st.integers(0, len(encoded) - 1))
    if action == "truncate":
        del encoded[pos:]
    elif action == "flip":
        encoded[pos] ^= data.draw(st.integers(1, 255))
    else:
        encoded[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    _check_parse(Multiaddr.from_bytes, bytes(encoded))


@settings(max_examples=300)
@given(st.text(alphabet="0123456789.+- a", max_size=17))
def test_ip4_parser_agrees_with_ipaddress(text: str) -> None:
    try:
        expected: bytes | None = ipaddress.IPv4Address(text).packed
    except ValueError:
        expected = None
    try:
        got: bytes | None = Multiaddr("/ip4/" + text).to_bytes()[1:]
    except MultiaddrError:
        got = None
    assert got == expected
