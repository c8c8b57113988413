"""The multiaddr protocol table and the value codec of each protocol.

Codes, names and sizes come from multiformats/multiaddr ``protocols.csv`` (sizes in bits; ``V`` — a
varint-length-prefixed value — is :data:`VAR_SIZE`). Each protocol with a value has a codec turning its text
form into its binary form and back, and a validator for binary values read off the wire. Every failure raises
:class:`~aiolibp2p.exceptions.MultiaddrError`.

https://github.com/multiformats/multiaddr/blob/master/protocols.csv
https://github.com/multiformats/multiaddr/blob/master/protocols/http-path.md
https://github.com/libp2p/specs/blob/master/addressing/README.md
https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md (text forms of peer IDs)
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ..exceptions import DecodeError, MultiaddrError
from ..wire.multibase import b58decode, b58encode, multibase_decode
from ..wire.multihash import IDENTITY, SHA2_256, multihash_decode
from ..wire.varint import decode_uvarint, encode_uvarint

__all__ = [
    "P_CERTHASH",
    "P_DCCP",
    "P_DNS",
    "P_DNS4",
    "P_DNS6",
    "P_DNSADDR",
    "P_GARLIC32",
    "P_GARLIC64",
    "P_HTTP",
    "P_HTTPS",
    "P_HTTP_PATH",
    "P_IP4",
    "P_IP6",
    "P_IP6ZONE",
    "P_IPCIDR",
    "P_MEMORY",
    "P_NOISE",
    "P_ONION",
    "P_ONION3",
    "P_P2P",
    "P_P2P_CIRCUIT",
    "P_QUIC",
    "P_QUIC_V1",
    "P_SCTP",
    "P_SNI",
    "P_TCP",
    "P_TLS",
    "P_UDP",
    "P_UNIX",
    "P_WEBRTC",
    "P_WEBRTC_DIRECT",
    "P_WEBTRANSPORT",
    "P_WS",
    "P_WSS",
    "VAR_SIZE",
    "ProtocolInfo",
    "all_protocols",
    "protocol_with_code",
    "protocol_with_name",
]

VAR_SIZE: Final = -1
"""``ProtocolInfo.size`` of protocols whose value is a varint-length-prefixed string (``V`` in the csv)."""

P_IP4: Final = 4
P_TCP: Final = 6
P_UDP: Final = 273
P_DCCP: Final = 33
P_IP6: Final = 41
P_IP6ZONE: Final = 42
P_IPCIDR: Final = 43
P_DNS: Final = 53
P_DNS4: Final = 54
P_DNS6: Final = 55
P_DNSADDR: Final = 56
P_SCTP: Final = 132
P_UDT: Final = 301
P_UTP: Final = 302
P_UNIX: Final = 400
P_P2P: Final = 421
P_ONION: Final = 444
P_ONION3: Final = 445
P_GARLIC64: Final = 446
P_GARLIC32: Final = 447
P_TLS: Final = 448
P_SNI: Final = 449
P_NOISE: Final = 454
P_QUIC: Final = 460
P_QUIC_V1: Final = 461
P_WEBTRANSPORT: Final = 465
P_CERTHASH: Final = 466
P_HTTP: Final = 480
P_HTTP_PATH: Final = 481
P_HTTPS: Final = 443
P_WS: Final = 477
P_WSS: Final = 478
P_P2P_WEBSOCKET_STAR: Final = 479
P_P2P_STARDUST: Final = 277
P_P2P_WEBRTC_STAR: Final = 275
P_P2P_WEBRTC_DIRECT: Final = 276
P_WEBRTC_DIRECT: Final = 280
P_WEBRTC: Final = 281
P_P2P_CIRCUIT: Final = 290
P_MEMORY: Final = 777

_LIBP2P_KEY_CODEC: Final = 0x72
# Bounds on values that go through quadratic base conversions, so hostile input cannot make us spin.
_MAX_PEER_ID_BYTES: Final = 1024
_MAX_MULTIBASE_TEXT: Final = 2048


@dataclass(frozen=True, slots=True)
class ProtocolInfo:
    """One row of protocols.csv: ``size`` is in bits, 0 for no value, :data:`VAR_SIZE` for length-prefixed."""

    code: int
    name: str
    size: int


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Protocol:
    """A protocol with its value codec. Internal: the public face is :class:`ProtocolInfo`."""

    __slots__ = ("code", "info", "name", "nbytes", "size", "to_bytes", "to_text", "validate", "vcode")

    def __init__(
        self,
        code: int,
        name: str,
        size: int,
        to_bytes: Callable[[str], bytes] | None = None,
        to_text: Callable[[bytes], str] | None = None,
        validate: Callable[[bytes], None] | None = None,
    ) -> None:
        self.code = code
        self.name = name
        self.size = size
        self.nbytes = size // 8 if size > 0 else 0
        self.info = ProtocolInfo(code, name, size)
        self.vcode = encode_uvarint(code)
        self.to_bytes: Callable[[str], bytes] = to_bytes or _no_value
        self.to_text: Callable[[bytes], str] = to_text or _no_text
        self.validate: Callable[[bytes], None] = validate or _valid_any

    def __repr__(self) -> str:
        return f"<protocol {self.name} ({self.code})>"


def _no_value(text: str) -> bytes:
    raise MultiaddrError("protocol takes no value")


def _no_text(value: bytes) -> str:
    return ""


def _valid_any(value: bytes) -> None:
    return None


# --- ip4, ip6 --------------------------------------------------------------------------------------------


def _ip4_to_bytes(text: str) -> bytes:
    # Strict dotted quad, as ipaddress.IPv4Address and Go's net.ParseIP (no leading zeros), but ~5x faster.
    octets = text.split(".")
    if len(octets) == 4 and text.isascii():
        out = []
        for octet in octets:
            if not octet.isdigit() or len(octet) > 3 or (octet[0] == "0" and len(octet) > 1):
                break
            number = int(octet)
            if number > 255:
                break
            out.append(number)
        else:
            return bytes(out)
    raise MultiaddrError(f"invalid ip4 address {_short(text)}")


def _ip4_to_text(value: bytes) -> str:
    return f"{value[0]}.{value[1]}.{value[2]}.{value[3]}"


def _ip6_to_bytes(text: str) -> bytes:
    if "%" in text:  # ipaddress accepts a scope id; in a multiaddr the zone is its own /ip6zone component
        raise MultiaddrError(f"invalid ip6 address {_short(text)} (put the zone in /ip6zone)")
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise MultiaddrError(f"invalid ip6 address {_short(text)}")


def _ip6_to_text(value: bytes) -> str:
    addr = ipaddress.IPv6Address(value)
    mapped = addr.ipv4_mapped
    if mapped is not None:  # the form go-multiaddr prints, whatever this Python's ipaddress does
        return f"::ffff:{mapped}"
    return addr.compressed


# --- unsigned integers (ports, ipcidr) -------------------------------------------------------------------


def _uint_codec(name: str, nbytes: int) -> tuple[Callable[[str], bytes], Callable[[bytes], str]]:
    maximum = (1 << (8 * nbytes)) - 1
    max_digits = len(str(maximum))

    def to_bytes(text: str) -> bytes:
        if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
            raise MultiaddrError(f"invalid {name} value {_short(text)}: expected an integer 0..{maximum}")
        number = int(text)
        if number > maximum:
            raise MultiaddrError(f"invalid {name} value {number}: greater than {maximum}")
        return number.to_bytes(nbytes, "big")

    def to_text(value: bytes) -> str:
        return str(int.from_bytes(value, "big"))

    return to_bytes, to_text


# --- length-prefixed strings (ip6zone, dns*, sni, memory) ------------------------------------------------


def _string_codec(
    name: str,
) -> tuple[Callable[[str], bytes], Callable[[bytes], str], Callable[[bytes], None]]:
    def validate(value: bytes) -> None:
        if not value:
            raise MultiaddrError(f"empty {name} value")
        if b"/" in value:
            raise MultiaddrError(f"{name} value {_short(value)} contains '/'")
        try:
            value.decode()
        except UnicodeDecodeError:
            raise MultiaddrError(f"{name} value {_short(value)} is not UTF-8")

    def to_bytes(text: str) -> bytes:
        if not text:
            raise MultiaddrError(f"empty {name} value")
        if "/" in text:
            raise MultiaddrError(f"{name} value {_short(text)} contains '/'")
        try:
            return text.encode()
        except UnicodeEncodeError:
            raise MultiaddrError(f"{name} value {_short(text)} is not encodable as UTF-8")

    def to_text(value: bytes) -> str:
        return value.decode()

    return to_bytes, to_text, validate


# --- percent-encoding (http-path, unix in its escaped form) ----------------------------------------------

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def percent_decode(text: str, what: str) -> bytes:
    """Strict RFC 3986 percent-decoding: every ``%`` must start a two-hex-digit escape."""
    if _BAD_PERCENT.search(text):
        raise MultiaddrError(f"invalid percent-encoding in {what} value {_short(text)}")
    try:
        return unquote_to_bytes(text.encode())
    except UnicodeEncodeError:
        raise MultiaddrError(f"{what} value {_short(text)} is not encodable as UTF-8")


def percent_encode(value: bytes) -> str:
    """Escape everything but RFC 3986 unreserved characters, so the text is one path segment."""
    return quote_from_bytes(value, safe="")


def _http_path_to_bytes(text: str) -> bytes:
    value = percent_decode(text, "http-path")
    if not value:
        raise MultiaddrError("empty http-path value")
    return value


def _http_path_validate(value: bytes) -> None:
    if not value:
        raise MultiaddrError("empty http-path value")


# --- unix ------------------------------------------------------------------------------------------------


def _unix_validate(value: bytes) -> None:
    # As go-multiaddr: an absolute path, not "/" alone, no trailing slash.
    if len(value) < 2 or value[0] != 0x2F or value[-1] == 0x2F:
        raise MultiaddrError(f"invalid unix path {_short(value)}: must be absolute and not end with '/'")
    try:
        value.decode()
    except UnicodeDecodeError:
        raise MultiaddrError(f"unix path {_short(value)} is not UTF-8")


def _unix_to_bytes(text: str) -> bytes:
    try:
        value = text.encode()
    except UnicodeEncodeError:
        raise MultiaddrError(f"unix path {_short(text)} is not encodable as UTF-8")
    _unix_validate(value)
    return value


def _unix_to_text(value: bytes) -> str:
    return value.decode()


# --- multihash-valued protocols (p2p, certhash) ----------------------------------------------------------


def _check_multihash(value: bytes, what: str) -> int:
    try:
        code, _digest = multihash_decode(value)
    except DecodeError as e:
        raise MultiaddrError(f"invalid {what}: not a multihash ({e})")
    return code


def _p2p_validate(value: bytes) -> None:
    if len(value) > _MAX_PEER_ID_BYTES:
        raise MultiaddrError(f"invalid peer id: {len(value)} bytes is too long")
    code = _check_multihash(value, "peer id")
    if code not in (IDENTITY, SHA2_256):
        raise MultiaddrError(f"invalid peer id: multihash code {code:#x} is neither identity nor sha2-256")
    if len(value) <= 2:
        raise MultiaddrError("invalid peer id: empty multihash digest")


def _check_multibase_text(text: str, what: str) -> None:
    if not text:
        raise MultiaddrError(f"empty {what}")
    if (
        len(text) > _MAX_MULTIBASE_TEXT
        or not text.isascii()
        or not text.replace("-", "").replace("_", "").replace("+", "").replace("=", "").isalnum()
    ):
        raise MultiaddrError(f"invalid {what} {_short(text)}")


def _p2p_to_bytes(text: str) -> bytes:
    _check_multibase_text(text, "peer id")
    if text.startswith(("Qm", "1")):  # a bare base58btc multihash: sha2-256 (Qm…) or identity (1…)
        try:
            value = b58decode(text)
        except DecodeError as e:
            raise MultiaddrError(f"invalid peer id {_short(text)}: {e}")
    else:  # a CIDv1 with the libp2p-key codec, in any multibase
        try:
            cid = multibase_decode(text)
            version, pos = decode_uvarint(cid)
            codec, pos = decode_uvarint(cid, pos)
        except DecodeError as e:
            raise MultiaddrError(f"invalid peer id {_short(text)}: {e}")
        if version != 1:
            raise MultiaddrError(f"invalid peer id {_short(text)}: CID version {version} is not 1")
        if codec != _LIBP2P_KEY_CODEC:
            raise MultiaddrError(f"invalid peer id {_short(text)}: CID codec {codec:#x} is not libp2p-key")
        value = cid[pos:]
    _p2p_validate(value)
    if text[0] in "Q1":  # base58btc is a bijection, so this is already the canonical text
        _remember_peer_text(value, text)
    return value


# Peer IDs recur across many addresses and base58 encoding costs ~15 µs, so keep the recent ones.
_PEER_TEXT: dict[bytes, str] = {}
_PEER_TEXT_MAX: Final = 4096


def _remember_peer_text(value: bytes, text: str) -> None:
    if len(_PEER_TEXT) >= _PEER_TEXT_MAX:
        _PEER_TEXT.clear()
    _PEER_TEXT[value] = text


def _p2p_to_text(value: bytes) -> str:
    text = _PEER_TEXT.get(value)
    if text is None:
        text = b58encode(value)
        _remember_peer_text(value, text)
    return text


def _certhash_validate(value: bytes) -> None:
    _check_multihash(value, "certhash")


def _certhash_to_bytes(text: str) -> bytes:
    _check_multibase_text(text, "certhash")
    try:
        value = multibase_decode(text)
    except DecodeError as e:
        raise MultiaddrError(f"invalid certhash {_short(text)}: {e}")
    _certhash_validate(value)
    return value


def _certhash_to_text(value: bytes) -> str:
    return "u" + base64.urlsafe_b64encode(value).decode().rstrip("=")


# --- onion, onion3, garlic64, garlic32 -------------------------------------------------------------------


def _onion_codec(
    name: str, host_chars: int, host_bytes: int
) -> tuple[Callable[[str], bytes], Callable[[bytes], str], Callable[[bytes], None]]:
    def validate(value: bytes) -> None:
        if int.from_bytes(value[host_bytes:], "big") == 0:
            raise MultiaddrError(f"invalid {name} address: port 0")

    def to_bytes(text: str) -> bytes:
        host, sep, port = text.partition(":")
        if not sep or len(host) != host_chars or not host.isascii() or not host.isalnum():
            raise MultiaddrError(f"invalid {name} address {_short(text)}")
        try:
            raw = base64.b32decode(host.upper())
        except (binascii.Error, ValueError):
            raise MultiaddrError(f"invalid {name} address {_short(text)}: bad base32")
        value = raw[:host_bytes] + _port_to_bytes(port)
        validate(value)
        return value

    def to_text(value: bytes) -> str:
        host = base64.b32encode(value[:host_bytes]).decode().lower().rstrip("=")
        return f"{host}:{int.from_bytes(value[host_bytes:], 'big')}"

    return to_bytes, to_text, validate


def _garlic64_validate(value: bytes) -> None:
    if len(value) < 386:
        raise MultiaddrError(f"invalid garlic64 address: {len(value)} bytes, expected at least 386")


def _garlic64_to_bytes(text: str) -> bytes:
    try:
        value = base64.b64decode(text, altchars=b"-~", validate=True)
    except (binascii.Error, ValueError):
        raise MultiaddrError(f"invalid garlic64 address {_short(text)}")
    _garlic64_validate(value)
    return value


def _garlic64_to_text(value: bytes) -> str:
    return base64.b64encode(value, altchars=b"-~").decode()


def _garlic32_validate(value: bytes) -> None:
    if len(value) < 35 and len(value) != 32:
        raise MultiaddrError(f"invalid garlic32 address: {len(value)} bytes, expected 32 or at least 35")


def _garlic32_to_bytes(text: str) -> bytes:
    if not text.isascii() or not text.isalnum() or not text.islower():
        raise MultiaddrError(f"invalid garlic32 address {_short(text)}")
    try:
        value = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise MultiaddrError(f"invalid garlic32 address {_short(text)}")
    _garlic32_validate(value)
    return value


def _garlic32_to_text(value: bytes) -> str:
    return base64.b32encode(value).decode().lower().rstrip("=")


# --- the table -------------------------------------------------------------------------------------------

_port_to_bytes, _port_to_text = _uint_codec("port", 2)
_cidr_to_bytes, _cidr_to_text = _uint_codec("ipcidr", 1)


def _zero(code: int, name: str) -> _Protocol:
    return _Protocol(code, name, 0)


def _port(code: int, name: str) -> _Protocol:
    return _Protocol(code, name, 16, _port_to_bytes, _port_to_text)


def _string(code: int, name: str) -> _Protocol:
    to_bytes, to_text, validate = _string_codec(name)
    return _Protocol(code, name, VAR_SIZE, to_bytes, to_text, validate)


def _onion(code: int, name: str, size: int, host_chars: int) -> _Protocol:
    host_bytes = size // 8 - 2
    to_bytes, to_text, validate = _onion_codec(name, host_chars, host_bytes)
    return _Protocol(code, name, size, to_bytes, to_text, validate)


_PROTOCOLS: Final[tuple[_Protocol, ...]] = (
    _Protocol(P_IP4, "ip4", 32, _ip4_to_bytes, _ip4_to_text),
    _port(P_TCP, "tcp"),
    _port(P_UDP, "udp"),
    _port(P_DCCP, "dccp"),
    _Protocol(P_IP6, "ip6", 128, _ip6_to_bytes, _ip6_to_text),
    _string(P_IP6ZONE, "ip6zone"),
    _Protocol(P_IPCIDR, "ipcidr", 8, _cidr_to_bytes, _cidr_to_text),
    _string(P_DNS, "dns"),
    _string(P_DNS4, "dns4"),
    _string(P_DNS6, "dns6"),
    _string(P_DNSADDR, "dnsaddr"),
    _port(P_SCTP, "sctp"),
    _zero(P_UDT, "udt"),
    _zero(P_UTP, "utp"),
    _Protocol(P_UNIX, "unix", VAR_SIZE, _unix_to_bytes, _unix_to_text, _unix_validate),
    _Protocol(P_P2P, "p2p", VAR_SIZE, _p2p_to_bytes, _p2p_to_text, _p2p_validate),
    _onion(P_ONION, "onion", 96, 16),
    _onion(P_ONION3, "onion3", 296, 56),
    _Protocol(P_GARLIC64, "garlic64", VAR_SIZE, _garlic64_to_bytes, _garlic64_to_text, _garlic64_validate),
    _Protocol(P_GARLIC32, "garlic32", VAR_SIZE, _garlic32_to_bytes, _garlic32_to_text, _garlic32_validate),
    _zero(P_TLS, "tls"),
    _string(P_SNI, "sni"),
    _zero(P_NOISE, "noise"),
    _zero(P_QUIC, "quic"),
    _zero(P_QUIC_V1, "quic-v1"),
    _zero(P_WEBTRANSPORT, "webtransport"),
    _Protocol(P_CERTHASH, "certhash", VAR_SIZE, _certhash_to_bytes, _certhash_to_text, _certhash_validate),
    _zero(P_HTTP, "http"),
    _Protocol(P_HTTP_PATH, "http-path", VAR_SIZE, _http_path_to_bytes, percent_encode, _http_path_validate),
    _zero(P_HTTPS, "https"),
    _zero(P_WS, "ws"),
    _zero(P_WSS, "wss"),
    _zero(P_P2P_WEBSOCKET_STAR, "p2p-websocket-star"),
    _zero(P_P2P_STARDUST, "p2p-stardust"),
    _zero(P_P2P_WEBRTC_STAR, "p2p-webrtc-star"),
    _zero(P_P2P_WEBRTC_DIRECT, "p2p-webrtc-direct"),
    _zero(P_WEBRTC_DIRECT, "webrtc-direct"),
    _zero(P_WEBRTC, "webrtc"),
    _zero(P_P2P_CIRCUIT, "p2p-circuit"),
    # protocols.csv gives memory a length-prefixed (V) value; go- and rust-multiaddr use a fixed 64-bit
    # integer instead. We follow the table: the value is any string (the memory transport uses numbers).
    _string(P_MEMORY, "memory"),
)

BY_CODE: Final[dict[int, _Protocol]] = {p.code: p for p in _PROTOCOLS}
BY_NAME: Final[dict[str, _Protocol]] = {p.name: p for p in _PROTOCOLS}
BY_NAME["ipfs"] = BY_CODE[P_P2P]  # the legacy text name of /p2p; always printed as p2p


def lookup_name(name: str) -> _Protocol:
    proto = BY_NAME.get(name)
    if proto is None:
        raise MultiaddrError(f"unknown multiaddr protocol {_short(name)}")
    return proto


def protocol_with_name(name: str) -> ProtocolInfo:
    """The protocol called ``name`` (``ipfs`` is accepted for ``p2p``); MultiaddrError if unknown."""
    return lookup_name(name).info


def protocol_with_code(code: int) -> ProtocolInfo:
    """The protocol with multicodec ``code``; MultiaddrError if unknown."""
    proto = BY_CODE.get(code)
    if proto is None:
        raise MultiaddrError(f"unknown multiaddr protocol code {code}")
    return proto.info


def all_protocols() -> list[ProtocolInfo]:
    """Every protocol this implementation knows, in protocols.csv order."""
    return [p.info for p in _PROTOCOLS]
