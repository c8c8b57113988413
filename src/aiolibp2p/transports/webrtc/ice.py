"""ICE for WebRTC-direct, sans-I/O: the STUN messages of an ICE-lite listener and of a dialer that knows the
listener's single candidate from its multiaddr (libp2p ``webrtc/webrtc-direct.md``).

Credentials: in v1 the dialer invents ``ufrag = pwd = "libp2p+webrtc+v1/" + random`` and uses it for both
sides. In v2 (go-libp2p ≥ 0.49) the dialer keeps its own pwd and sets the *server* ufrag (and pwd) to
``"libp2p+webrtc+v2/" + client_pwd``. Either way a connectivity check's USERNAME is ``server_ufrag:client_ufrag``
and its MESSAGE-INTEGRITY key is the server's pwd, which equals the server ufrag: so a listener learns the
key from the request itself, and tells connections apart by that ufrag. Unknown prefixes are refused.

STUN encoding and parsing come from ``aioice.stun`` (the library under aiortc).
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass

from aioice import stun

from ...exceptions import DecodeError

__all__ = [
    "UFRAG_PREFIX_V1",
    "UFRAG_PREFIX_V2",
    "BindingRequest",
    "IceCredentials",
    "binding_request",
    "binding_success",
    "is_dtls",
    "is_stun",
    "parse_binding_request",
    "parse_binding_response",
    "random_ufrag",
]

UFRAG_PREFIX_V1 = "libp2p+webrtc+v1/"
UFRAG_PREFIX_V2 = "libp2p+webrtc+v2/"
_ICE_CHARS = string.ascii_letters + string.digits + "+/"
MAX_USERNAME = 513  # two 256-char ufrags and the colon (RFC 8839 ice-char limits)


def random_ufrag(length: int = 32) -> str:
    """A v1 ufrag (also the pwd): the prefix and ``length`` random ice-chars (go uses 32)."""
    return UFRAG_PREFIX_V1 + "".join(secrets.choice(_ICE_CHARS) for _ in range(length))


def is_stun(data: bytes) -> bool:
    """RFC 7983 demultiplexing: the first byte of STUN is 0–3."""
    return len(data) >= 20 and data[0] < 4


def is_dtls(data: bytes) -> bool:
    """RFC 7983 demultiplexing: the first byte of DTLS is 20–63."""
    return bool(data) and 19 < data[0] < 64


def _valid_ice_chars(s: str, lo: int, hi: int) -> bool:
    return lo <= len(s) <= hi and all(c in _ICE_CHARS for c in s)


@dataclass(frozen=True, slots=True)
class IceCredentials:
    """Both sides' ICE credentials of one WebRTC-direct connection."""

    server_ufrag: str
    server_pwd: str
    client_ufrag: str
    client_pwd: str

    @classmethod
    def for_dial_v1(cls) -> IceCredentials:
        u = random_ufrag()
        return cls(server_ufrag=u, server_pwd=u, client_ufrag=u, client_pwd=u)

    @classmethod
    def for_dial_v2(cls) -> IceCredentials:
        """v2: our own ufrag and pwd (32 ice-chars each, as go), the server's ufrag = pwd = prefix + our pwd."""
        cu = "".join(secrets.choice(_ICE_CHARS) for _ in range(32))
        cp = "".join(secrets.choice(_ICE_CHARS) for _ in range(32))
        su = UFRAG_PREFIX_V2 + cp
        return cls(server_ufrag=su, server_pwd=su, client_ufrag=cu, client_pwd=cp)

    @classmethod
    def from_server_ufrag(cls, username: str) -> IceCredentials:
        """What a listener derives from a check's USERNAME (``server_ufrag:client_ufrag``).

        Raises DecodeError for a malformed USERNAME or an unknown version prefix."""
        if len(username) > MAX_USERNAME or username.count(":") != 1:
            raise DecodeError("STUN USERNAME is not server_ufrag:client_ufrag")
        server_ufrag, client_ufrag = username.split(":")
        if server_ufrag.startswith(UFRAG_PREFIX_V1):
            if client_ufrag != server_ufrag:
                raise DecodeError("WebRTC-direct v1 check whose two ufrags differ")
            pwd = server_ufrag
            client_pwd = server_ufrag
        elif server_ufrag.startswith(UFRAG_PREFIX_V2):
            client_pwd = server_ufrag[len(UFRAG_PREFIX_V2) :]
            if not _valid_ice_chars(client_pwd, 22, 256):
                raise DecodeError("WebRTC-direct v2 ufrag does not carry a valid ICE password")
            pwd = server_ufrag
        else:
            raise DecodeError("STUN USERNAME has no libp2p WebRTC-direct ufrag prefix")
        if not _valid_ice_chars(client_ufrag, 4, 256) or not _valid_ice_chars(
            server_ufrag[server_ufrag.index("/") + 1 :], 1, 256
        ):
            raise DecodeError("STUN USERNAME holds characters outside ice-char")
        return cls(
            server_ufrag=server_ufrag, server_pwd=pwd, client_ufrag=client_ufrag, client_pwd=client_pwd
        )


@dataclass(frozen=True, slots=True)
class BindingRequest:
    transaction_id: bytes
    username: str
    use_candidate: bool
    controlling: bool


def parse_binding_request(data: bytes, key_for: str | None = None) -> BindingRequest | None:
    """A Binding request whose integrity verifies, or None for anything else (responses, indications,
    garbage, a bad FINGERPRINT or MESSAGE-INTEGRITY). The integrity key is the USERNAME's server ufrag unless
    ``key_for`` (our own pwd, when we are the dialer answering the listener's checks) is given."""
    try:
        msg = stun.parse_message(data)
    except (ValueError, KeyError):
        return None
    if msg.message_method != stun.Method.BINDING or msg.message_class != stun.Class.REQUEST:
        return None
    username = msg.attributes.get("USERNAME")
    if not isinstance(username, str) or ":" not in username or len(username) > MAX_USERNAME:
        return None
    key = key_for if key_for is not None else username.split(":", 1)[0]
    if "MESSAGE-INTEGRITY" not in msg.attributes or not msg.check_message_integrity(key.encode()):
        return None
    return BindingRequest(
        transaction_id=msg.transaction_id,
        username=username,
        use_candidate="USE-CANDIDATE" in msg.attributes,
        controlling="ICE-CONTROLLING" in msg.attributes,
    )


def binding_success(transaction_id: bytes, mapped: tuple[str, int], pwd: str) -> bytes:
    """The Binding success response (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY with ``pwd``, FINGERPRINT)."""
    msg = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE, transaction_id=transaction_id
    )
    msg.attributes["XOR-MAPPED-ADDRESS"] = (mapped[0], mapped[1])
    msg.add_message_integrity(pwd.encode())
    msg.add_fingerprint()
    return bytes(msg)


def binding_request(
    creds: IceCredentials, *, controlling: bool, tie_breaker: int, use_candidate: bool
) -> tuple[bytes, bytes]:
    """A connectivity check from our side: ``(transaction id, datagram)``. The dialer (controlling) checks
    the listener with ``server_ufrag:client_ufrag`` and the server pwd; the other way round for a check the
    listener sends (consent)."""
    txid = os.urandom(12)
    msg = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST, transaction_id=txid
    )
    if controlling:
        msg.attributes["USERNAME"] = f"{creds.server_ufrag}:{creds.client_ufrag}"
        key = creds.server_pwd
        msg.attributes["ICE-CONTROLLING"] = tie_breaker
        if use_candidate:
            msg.attributes["USE-CANDIDATE"] = None
    else:
        msg.attributes["USERNAME"] = f"{creds.client_ufrag}:{creds.server_ufrag}"
        key = creds.client_pwd
        msg.attributes["ICE-CONTROLLED"] = tie_breaker
    msg.attributes["PRIORITY"] = 0x6E0001FF  # host candidate, UDP (RFC 8445 §5.1.2.1)
    msg.add_message_integrity(key.encode())
    msg.add_fingerprint()
    return txid, bytes(msg)


def parse_binding_response(data: bytes, pwd: str) -> bytes | None:
    """The transaction ID of a Binding success response authenticated with ``pwd``, else None."""
    try:
        msg = stun.parse_message(data)
    except (ValueError, KeyError):
        return None
    if msg.message_method != stun.Method.BINDING or msg.message_class != stun.Class.RESPONSE:
        return None
    if "MESSAGE-INTEGRITY" not in msg.attributes or not msg.check_message_integrity(pwd.encode()):
        return None
    return msg.transaction_id
