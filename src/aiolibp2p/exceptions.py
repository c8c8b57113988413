"""Typed errors of aiolibp2p.

Every failure a peer can cause (bad bytes, bad signatures, protocol violations, floods) surfaces as one of
these, carrying what it concerns. Nothing in the library raises a bare ``Exception``.
"""

from __future__ import annotations


class Libp2pError(Exception):
    """Base class of every aiolibp2p error."""


# --- input and protocol errors -------------------------------------------------------------------------


class ProtocolViolation(Libp2pError):
    """The remote side broke a wire protocol; the stream or connection concerned is reset/closed."""

    def __init__(self, message: str, *, protocol: str | None = None, peer: object | None = None) -> None:
        super().__init__(message)
        self.protocol = protocol
        self.peer = peer


class DecodeError(ProtocolViolation, ValueError):
    """Malformed bytes: a varint, protobuf, multiaddr, key or frame that does not parse."""


class MessageTooLarge(ProtocolViolation):
    """A length-prefixed message or frame exceeds the named limit."""


class VarintError(DecodeError):
    """A varint that is not minimal, overflows 63 bits, or is longer than 9 bytes."""


class MultiaddrError(DecodeError):
    """A multiaddr that does not parse (text or binary)."""


class CryptoError(Libp2pError):
    """A key that cannot be parsed or a signature operation that failed."""


class InvalidSignature(CryptoError, ProtocolViolation):
    """A signature that does not verify."""

    def __init__(self, message: str = "signature does not verify", **kw: object) -> None:
        ProtocolViolation.__init__(self, message, **kw)  # type: ignore[arg-type]


# --- handshakes and negotiation ------------------------------------------------------------------------


class HandshakeError(Libp2pError):
    """A security handshake failed."""


class PeerIdMismatch(HandshakeError):
    """The peer authenticated by the handshake is not the peer that was dialed."""

    def __init__(self, expected: object, actual: object) -> None:
        super().__init__(f"dialed peer {expected} but the remote authenticated as {actual}")
        self.expected = expected
        self.actual = actual


class CertificateError(HandshakeError):
    """A libp2p TLS certificate (chain) that is malformed or does not authenticate a peer (tls/tls.md)."""


class NegotiationError(Libp2pError):
    """multistream-select failed."""


class ProtocolNotSupported(NegotiationError):
    """The remote answered ``na`` to every protocol we proposed."""

    def __init__(self, protocols: list[str] | tuple[str, ...]) -> None:
        super().__init__(f"remote supports none of {list(protocols)}")
        self.protocols = list(protocols)


# --- streams and connections ---------------------------------------------------------------------------


class StreamError(Libp2pError):
    """Base class of stream errors."""


class StreamReset(StreamError):
    """The stream was reset (by either side). ``code`` is the error code where the transport carries one."""

    def __init__(self, message: str = "stream reset", *, code: int = 0, remote: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.remote = remote


class StreamClosed(StreamError):
    """A write on a stream whose write side is closed, or an operation on a closed stream."""


class ConnectionClosed(Libp2pError):
    """The connection is closed. ``cause`` says why, ``code`` is the error code where one was carried."""

    def __init__(self, message: str = "connection closed", *, cause: str = "closed", code: int = 0) -> None:
        super().__init__(message)
        self.cause = cause
        self.code = code


class DialError(Libp2pError):
    """Dialing a peer failed on every address. ``errors`` maps each address tried to its error."""

    def __init__(self, message: str, errors: dict[str, BaseException] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class NoTransportForAddress(DialError):
    """No configured transport can dial this multiaddr."""


class DnsResolutionError(DialError):
    """A ``/dnsaddr`` or ``/dns*`` address did not resolve to any dialable address: the name does not exist,
    the query failed or timed out, or no record matched. ``name`` is the address or DNS name concerned."""

    def __init__(
        self, message: str, errors: dict[str, BaseException] | None = None, *, name: str | None = None
    ) -> None:
        super().__init__(message, errors)
        self.name = name


class ResourceLimitExceeded(Libp2pError):
    """A named resource limit (connections, streams, memory) refused the request."""

    def __init__(self, message: str, *, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit


class GaterRefused(Libp2pError):
    """The connection gater refused a peer, address or connection."""


class DeadlineExceeded(Libp2pError, TimeoutError):
    """A bounded wait ran out. ``what`` names the wait (dial, handshake, negotiation, ...)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} did not complete within {seconds:g} s")
        self.what = what
        self.seconds = seconds
