"""The :class:`Multiaddr` value type: parsing of the text and binary forms, encapsulation, peer-ID helpers.

Text form: ``(/<name>[/<value>])+``; binary form: ``(<uvarint code><value>)+`` where a value is either of
the protocol's fixed size or ``uvarint(len) ‖ bytes`` (see :mod:`.protocols`). Equality and hashing use the
binary form. Instances are immutable; parsing results are cached, so re-parsing a hot address is a lookup
and ``Multiaddr(ma)`` returns ``ma`` itself.

https://github.com/multiformats/multiaddr (README "Specification")
https://github.com/libp2p/specs/blob/master/addressing/README.md (encapsulation, /p2p, decapsulation)

``/unix`` paths: on output an absolute path is printed as the rest of the address (``/unix/tmp/p2p.sock``,
as go-multiaddr does) when it is the last component; otherwise it is one percent-escaped segment
(``/unix/%2Ftmp%2Fp2p.sock``, as js- and rust-multiaddr do). Both forms are accepted on input: a value
starting with ``%2F`` is one escaped segment, anything else takes the rest of the address.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import NamedTuple

from ..exceptions import MultiaddrError, VarintError
from ..wire.varint import decode_uvarint, encode_uvarint
from .protocols import (
    BY_CODE,
    P_DNS,
    P_DNS4,
    P_DNS6,
    P_IP4,
    P_IP6,
    P_IP6ZONE,
    P_P2P,
    P_TCP,
    P_UDP,
    P_UNIX,
    ProtocolInfo,
    _Protocol,
    _short,
    lookup_name,
    percent_decode,
    percent_encode,
)

__all__ = ["Multiaddr"]

_PARSE_CACHE_SIZE = 4096
_HOST_CODES = frozenset({P_IP4, P_IP6, P_DNS, P_DNS4, P_DNS6})
_P2P = BY_CODE[P_P2P]
_IP4 = BY_CODE[P_IP4]
_IP6 = BY_CODE[P_IP6]
_SOCKET_TRANSPORTS = {"tcp": BY_CODE[P_TCP], "udp": BY_CODE[P_UDP]}


class _Part(NamedTuple):
    """One component: its protocol, raw value bytes, and its full binary encoding (code ‖ [len] ‖ value)."""

    proto: _Protocol
    value: bytes
    encoded: bytes


def _part(proto: _Protocol, value: bytes) -> _Part:
    if proto.size == 0:
        return _Part(proto, b"", proto.vcode)
    if proto.size > 0:
        return _Part(proto, value, proto.vcode + value)
    return _Part(proto, value, proto.vcode + encode_uvarint(len(value)) + value)


def _unix_text(value: bytes, last: bool) -> str:
    path = value.decode()
    if last and path[1:4].lower() != "%2f":
        return path  # the whole path, printed as /unix/<path without its leading slash>, as go does
    return percent_encode(value)


class Multiaddr:
    """An immutable, hashable multiaddr. ``Multiaddr(text | bytes | Multiaddr)`` parses (or returns the
    Multiaddr itself); bad input raises :class:`~aiolibp2p.exceptions.MultiaddrError`."""

    __slots__ = ("__weakref__", "_bytes", "_items", "_parts", "_str")

    _bytes: bytes
    _parts: tuple[_Part, ...]
    _str: str | None
    _items: tuple[tuple[str, str | None], ...] | None

    def __new__(cls, addr: Multiaddr | str | bytes | bytearray | memoryview) -> Multiaddr:
        if isinstance(addr, Multiaddr):
            return addr
        if isinstance(addr, str):
            return _parse_text(addr)
        if isinstance(addr, bytes):
            return _parse_bytes(addr)
        if isinstance(addr, bytearray | memoryview):
            return _parse_bytes(bytes(addr))
        raise TypeError(f"cannot make a Multiaddr from {type(addr).__name__}")

    @classmethod
    def from_string(cls, text: str) -> Multiaddr:
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        return _parse_text(text)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, cache: bool = True) -> Multiaddr:
        """Parse the binary form. ``cache=False`` for an address unlikely to be seen again (a peer's view of
        our ephemeral port, say): it is parsed without entering the parse cache, where it would evict hot
        entries."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"expected bytes, got {type(data).__name__}")
        if cache:
            return _parse_bytes(bytes(data))
        return _parse_bytes.__wrapped__(bytes(data))

    @classmethod
    def from_sockaddr(
        cls, sockaddr: tuple[object, ...], transport: str = "tcp", suffix: Multiaddr | None = None
    ) -> Multiaddr:
        """``/ip4|ip6/<host>/tcp|udp/<port>`` followed by ``suffix``, from a socket address ``(host, port, ...)``.
        Built from binary, without the parse caches: a connection's ephemeral address would only evict hot
        entries there (and parsing its text costs more). An IPv6 scope (``%eth0``) is dropped. MultiaddrError
        for anything that is not an IP socket address."""
        t = _SOCKET_TRANSPORTS.get(transport)
        if t is None:
            raise MultiaddrError(f"not a socket transport: {transport!r}")
        host = str(sockaddr[0]) if sockaddr else ""
        try:
            if ":" in host:
                ip, value = _IP6, socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
            else:
                ip, value = _IP4, socket.inet_pton(socket.AF_INET, host)
            port = int(sockaddr[1]).to_bytes(2, "big")  # type: ignore[call-overload]
        except (OSError, ValueError, OverflowError, TypeError, IndexError) as e:
            raise MultiaddrError(f"not an IP socket address: {sockaddr!r}") from e
        parts = (_Part(ip, value, ip.vcode + value), _Part(t, port, t.vcode + port))
        return _from_parts(parts if suffix is None else parts + suffix._parts)

    @classmethod
    def empty(cls) -> Multiaddr:
        """The multiaddr with no components (what decapsulating everything leaves). It prints as ``""``
        and encodes as ``b""``; neither parses back, as an empty address is never valid input."""
        return _EMPTY

    # --- encodings ---------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return self._bytes

    def __bytes__(self) -> bytes:
        return self._bytes

    def __str__(self) -> str:
        text = self._str
        if text is None:
            out = []
            for name, value in self.items():
                if value is None:
                    out.append("/" + name)
                elif value.startswith("/"):  # only an absolute /unix path, which ends the address
                    out.append(f"/{name}{value}")
                else:
                    out.append(f"/{name}/{value}")
            text = self._str = "".join(out)
        return text

    def __repr__(self) -> str:
        return f"Multiaddr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Multiaddr):
            return self._bytes == other._bytes
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __len__(self) -> int:
        """The number of components."""
        return len(self._parts)

    def __reduce__(self) -> tuple[type[Multiaddr], tuple[bytes]]:
        return (Multiaddr, (self._bytes,))

    # --- components --------------------------------------------------------------------------------------

    def protocols(self) -> list[ProtocolInfo]:
        return [p.proto.info for p in self._parts]

    def items(self) -> list[tuple[str, str | None]]:
        """``(protocol name, text value)`` per component; the value is None for protocols without one."""
        items = self._items
        if items is None:
            parts = self._parts
            last = len(parts) - 1
            out: list[tuple[str, str | None]] = []
            for i, (proto, value, _) in enumerate(parts):
                if proto.size == 0:
                    out.append((proto.name, None))
                elif proto.code == P_UNIX:
                    out.append((proto.name, _unix_text(value, i == last)))
                else:
                    out.append((proto.name, proto.to_text(value)))
            items = self._items = tuple(out)
        return list(items)

    def split(self) -> list[Multiaddr]:
        """One single-component Multiaddr per component."""
        return [_from_parts((p,)) for p in self._parts]

    def has_protocol(self, name: str) -> bool:
        code = lookup_name(name).code
        return any(p.proto.code == code for p in self._parts)

    def value_for_protocol(self, name: str) -> str | None:
        """The text value of the first ``name`` component; ``""`` if that protocol has no value, None if it is
        absent. MultiaddrError if ``name`` is not a known protocol."""
        code = lookup_name(name).code
        for i, part in enumerate(self._parts):
            if part.proto.code == code:
                return self.items()[i][1] or ""
        return None

    def raw_value_for_protocol(self, name: str) -> bytes | None:
        """The binary value of the first ``name`` component (e.g. the peer-ID multihash of ``p2p``)."""
        code = lookup_name(name).code
        for part in self._parts:
            if part.proto.code == code:
                return part.value
        return None

    # --- encapsulation -----------------------------------------------------------------------------------

    def encapsulate(self, other: Multiaddr | str | bytes) -> Multiaddr:
        other = Multiaddr(other)
        if not other._parts:
            return self
        if not self._parts:
            return other
        return _from_parts(self._parts + other._parts)

    def decapsulate(self, other: Multiaddr | str | bytes) -> Multiaddr:
        """Remove everything from the last occurrence of ``other`` onward. ``other`` is a multiaddr, or a
        protocol name (text without a leading ``/``). Returns ``self`` unchanged when it does not occur."""
        parts = self._parts
        if isinstance(other, str) and not other.startswith("/"):
            code = lookup_name(other).code
            for i in range(len(parts) - 1, -1, -1):
                if parts[i].proto.code == code:
                    return _from_parts(parts[:i])
            return self
        sub = [p.encoded for p in Multiaddr(other)._parts]
        k = len(sub)
        if k == 0:
            return self
        encoded = [p.encoded for p in parts]
        for i in range(len(parts) - k, -1, -1):
            if encoded[i : i + k] == sub:
                return _from_parts(parts[:i])
        return self

    # --- peer IDs ----------------------------------------------------------------------------------------

    def split_peer_id(self) -> tuple[Multiaddr, str | None]:
        """``(address without a trailing /p2p/<id>, id text)``, or ``(self, None)`` when there is none."""
        parts = self._parts
        if parts and parts[-1].proto.code == P_P2P:
            return _from_parts(parts[:-1]), _P2P.to_text(parts[-1].value)
        return self, None

    def get_peer_id(self) -> str | None:
        """The base58btc text of the last ``/p2p`` component, or None."""
        for part in reversed(self._parts):
            if part.proto.code == P_P2P:
                return _P2P.to_text(part.value)
        return None

    def with_peer_id(self, peer_id: object) -> Multiaddr:
        """Append ``/p2p/<peer_id>`` unless the address already ends with it. ``peer_id`` is its text (base58
        or CID), its multihash bytes, or any object whose ``str()`` is its text. MultiaddrError if the address
        already ends with a different peer ID."""
        if isinstance(peer_id, bytes):
            _P2P.validate(peer_id)
            value = peer_id
        else:
            value = _P2P.to_bytes(peer_id if isinstance(peer_id, str) else str(peer_id))
        parts = self._parts
        if parts and parts[-1].proto.code == P_P2P:
            if parts[-1].value == value:
                return self
            raise MultiaddrError(f"{self} already ends with a different peer id than {_P2P.to_text(value)}")
        return _from_parts((*parts, _part(_P2P, value)))

    # --- IP helpers --------------------------------------------------------------------------------------

    def host_port(self) -> tuple[str, int]:
        """``(host, port)`` of an address starting ip4|ip6|dns|dns4|dns6 then tcp|udp. An ip6 with an
        ip6zone yields ``"addr%zone"``. MultiaddrError for any other address."""
        parts = self._parts
        i = 0
        if len(parts) >= 2 and parts[0].proto.code == P_IP6ZONE and parts[1].proto.code == P_IP6:
            host = f"{parts[1].proto.to_text(parts[1].value)}%{parts[0].value.decode()}"
            i = 2
        elif parts and parts[0].proto.code in _HOST_CODES:
            host = parts[0].proto.to_text(parts[0].value)
            i = 1
        else:
            raise MultiaddrError(f"{self} does not start with an ip4, ip6 or dns host")
        if i >= len(parts) or parts[i].proto.code not in (P_TCP, P_UDP):
            raise MultiaddrError(f"{self} has no tcp or udp port after its host")
        return host, int.from_bytes(parts[i].value, "big")

    def ip_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address of a leading ip4 or ip6 component (after an optional ip6zone), else None."""
        parts = self._parts
        i = 1 if parts and parts[0].proto.code == P_IP6ZONE else 0
        if i < len(parts):
            code = parts[i].proto.code
            if code == P_IP4:
                return ipaddress.IPv4Address(parts[i].value)
            if code == P_IP6:
                return ipaddress.IPv6Address(parts[i].value)
        return None

    def is_loopback(self) -> bool:
        """True when the address starts with a loopback IP (127.0.0.0/8, ::1, or ::ffff:127.x.y.z)."""
        ip = self.ip_address()
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_loopback
        return ip.is_loopback


def _from_parts(parts: tuple[_Part, ...]) -> Multiaddr:
    """A Multiaddr from already-validated components (no re-parsing)."""
    ma = object.__new__(Multiaddr)
    ma._parts = parts
    ma._bytes = b"".join(p.encoded for p in parts)
    ma._str = None
    ma._items = None
    return ma


_EMPTY = _from_parts(())


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_text(text: str) -> Multiaddr:
    if not text.startswith("/"):
        raise MultiaddrError(f"invalid multiaddr {_short(text)}: must begin with '/'")
    segments = text.rstrip("/").split("/")
    n = len(segments)
    if n == 1:
        raise MultiaddrError("empty multiaddr")
    parts: list[_Part] = []
    i = 1
    while i < n:
        name = segments[i]
        i += 1
        proto = lookup_name(name) if name else None
        if proto is None:
            raise MultiaddrError(f"invalid multiaddr {_short(text)}: empty protocol name")
        if proto.size == 0:
            parts.append(_Part(proto, b"", proto.vcode))
            continue
        if i >= n:
            raise MultiaddrError(f"invalid multiaddr {_short(text)}: missing value for /{proto.name}")
        segment = segments[i]
        if proto.code == P_UNIX:
            if segment[:3].lower() == "%2f":  # one percent-escaped segment (js/rust form)
                value = percent_decode(segment, "unix")
                proto.validate(value)
                i += 1
            else:  # the rest of the address is the path (go form)
                value = proto.to_bytes("/" + "/".join(segments[i:]))
                i = n
        else:
            value = proto.to_bytes(segment)
            i += 1
        parts.append(_part(proto, value))
    ma = _from_parts(tuple(parts))
    return ma


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_bytes(data: bytes) -> Multiaddr:
    end = len(data)
    if end == 0:
        raise MultiaddrError("empty multiaddr")
    parts: list[_Part] = []
    pos = 0
    try:
        while pos < end:
            start = pos
            code = data[pos]
            if code < 0x80:
                pos += 1
            else:
                code, pos = decode_uvarint(data, pos)
            proto = BY_CODE.get(code)
            if proto is None:
                raise MultiaddrError(f"unknown multiaddr protocol code {code} at byte {start}")
            size = proto.size
            if size == 0:
                parts.append(_Part(proto, b"", proto.vcode))
                continue
            if size > 0:
                length = proto.nbytes
            else:
                length, pos = decode_uvarint(data, pos)
            if pos + length > end:
                raise MultiaddrError(
                    f"truncated multiaddr: /{proto.name} needs {length} value bytes, {end - pos} left"
                )
            value = data[pos : pos + length]
            pos += length
            proto.validate(value)
            parts.append(_Part(proto, value, data[start:pos]))
    except VarintError as e:
        raise MultiaddrError(f"invalid multiaddr bytes: {e}")
    ma = _from_parts(tuple(parts))
    ma._bytes = data
    return ma
