"""Sans-I/O libp2p TLS 1.3 engine: OpenSSL (through pyOpenSSL) over memory BIOs.

Spec: https://github.com/libp2p/specs/blob/master/tls/tls.md (TLS 1.3 only, mutual authentication with the
self-signed libp2p certificate, ALPN, no SNI) and
https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md §"Multiplexer Negotiation
over TLS" (the client offers its muxers in preference order, then ``"libp2p"``; the server picks the first
offered entry it supports; ``"libp2p"`` means multistream-select afterwards).

The engine takes bytes and returns bytes; it never touches a socket, a task or a clock (certificate validity
is checked against the wall clock unless a ``now`` is given). The stdlib ``ssl`` module cannot ask for a
client certificate while skipping CA validation, so pyOpenSSL drives OpenSSL: OpenSSL's own chain check is
accepted in the verify callback, and the libp2p checks (:func:`verify_certificate`) run inside that callback
on the leaf (so a bad certificate is answered with a TLS alert) and again on the complete chain after the
handshake, on both sides.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from OpenSSL import SSL, crypto

from ...exceptions import CertificateError, HandshakeError, Libp2pError, PeerIdMismatch, ProtocolViolation
from .certificate import TlsCertificate, verify_certificate, verify_certificate_chain

if TYPE_CHECKING:
    from ...crypto.keys import PublicKey
    from ...crypto.peer_id import PeerId

__all__ = [
    "ALPN_LIBP2P",
    "MAX_ALPN_PROTOCOL_BYTES",
    "PROTOCOL_ID",
    "READ_CHUNK",
    "TlsEngine",
    "TlsHandshakeResult",
    "make_tls_context",
]

PROTOCOL_ID: Final = "/tls/1.0.0"
ALPN_LIBP2P: Final = "libp2p"
MAX_ALPN_PROTOCOL_BYTES: Final = 255  # RFC 7301: a ProtocolName is 1..255 bytes
READ_CHUNK: Final = 65536  # SSL_read returns one record (<= 16 KiB plaintext) per call at most
_MAX_RECORD_OVERHEAD: Final = 256  # header + tag + content type, generously, per 16 KiB record


@dataclass(frozen=True, slots=True)
class TlsHandshakeResult:
    remote_peer: PeerId
    remote_public_key: PublicKey
    alpn: str | None  # the negotiated ALPN protocol (None if the client offered none)
    early_muxer: str | None  # the muxer chosen by ALPN; None means multistream-select ("libp2p")


def _ssl_error_text(exc: SSL.Error) -> str:
    parts: list[str] = []
    for item in exc.args[0] if exc.args and isinstance(exc.args[0], list) else ():
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(p for p in parts if p) or str(exc) or type(exc).__name__


def _encode_alpn(name: str) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) <= MAX_ALPN_PROTOCOL_BYTES:
        raise ValueError(f"ALPN protocol {name!r} must be 1..{MAX_ALPN_PROTOCOL_BYTES} bytes")
    return raw


# --- OpenSSL callbacks: they find their engine through the connection's app data -------------------------


def _engine_of(conn: SSL.Connection) -> TlsEngine | None:
    ref = conn.get_app_data()
    return ref() if isinstance(ref, weakref.ref) else None


def _verify_callback(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    # OpenSSL's verdict (``ok``/``errnum``) is about CA chains, which libp2p does not use: ignore it and
    # apply the libp2p rules instead. Returning False makes OpenSSL send a bad_certificate alert.
    engine = _engine_of(conn)
    if engine is None:
        return False
    return engine._check_peer_certificate(cert, depth)


def _alpn_select_callback(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    engine = _engine_of(conn)
    if engine is None:
        raise HandshakeError("TLS engine gone")
    return engine._select_alpn(offered)


def make_tls_context(certificate: TlsCertificate, *, is_client: bool) -> SSL.Context:
    """An OpenSSL context for libp2p TLS: TLS 1.3 only, our certificate, peer certificate required.

    One context serves every connection of one side (the callbacks are per connection via app data).
    """
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(certificate.certificate)
    ctx.use_privatekey(certificate.private_key)
    ctx.check_privatekey()
    # No resumption: every connection authenticates with a certificate (a PSK handshake would carry none).
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    if not is_client:
        ctx.set_alpn_select_callback(_alpn_select_callback)
    return ctx


class TlsEngine:
    """One side of a libp2p TLS connection, sans-I/O.

    Drive it with :meth:`receive_data` (bytes from the peer; returns decrypted application data) and
    :meth:`send` (application data to encrypt); after every call, send :meth:`data_to_send` to the peer.
    The client starts with :meth:`start`. Handshake failures raise CertificateError / PeerIdMismatch /
    HandshakeError (the alert, if any, is still in :meth:`data_to_send`); failures after the handshake raise
    ProtocolViolation.
    """

    __slots__ = (
        "__weakref__",
        "_body_left",
        "_cert_error",
        "_conn",
        "_expected_peer",
        "_header",
        "_muxers",
        "_now",
        "_result",
        "is_client",
        "peer_closed",
    )

    def __init__(
        self,
        context: SSL.Context,
        *,
        is_client: bool,
        muxers: Sequence[str] = (),
        expected_peer: PeerId | None = None,
        now: datetime.datetime | None = None,
    ) -> None:
        self.is_client = is_client
        self._muxers = tuple(muxers)
        self._expected_peer = expected_peer
        self._now = now
        self._cert_error: Libp2pError | None = None
        self._result: TlsHandshakeResult | None = None
        self.peer_closed = False  # the peer sent close_notify
        # Record framing of the incoming bytes, tracked only to tell a clean EOF from a truncated record.
        self._header = bytearray()
        self._body_left = 0
        conn = SSL.Connection(context, None)  # None: memory BIOs
        conn.set_app_data(weakref.ref(self))
        if is_client:
            # Muxers in preference order, then "libp2p" last; no SNI (set_tlsext_host_name is never called).
            conn.set_alpn_protos([_encode_alpn(m) for m in self._muxers if m != ALPN_LIBP2P] + [b"libp2p"])
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn = conn

    # -- handshake ---------------------------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> TlsHandshakeResult:
        if self._result is None:
            raise HandshakeError("TLS handshake not complete")
        return self._result

    def start(self) -> None:
        """Begin the handshake (the client's ClientHello appears in :meth:`data_to_send`)."""
        self._step_handshake()

    def _step_handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            if self._cert_error is not None:
                raise self._cert_error from None
            raise HandshakeError(f"TLS handshake failed: {_ssl_error_text(exc)}") from None
        self._result = self._finish_handshake()

    def _check_peer_certificate(self, cert: crypto.X509, depth: int) -> bool:
        if depth > 0:
            self._cert_error = CertificateError("peer sent more than one certificate")
            return False
        try:
            peer, _ = verify_certificate(cert.to_cryptography(), now=self._now)
        except CertificateError as exc:
            self._cert_error = exc
            return False
        if self._expected_peer is not None and peer != self._expected_peer:
            self._cert_error = PeerIdMismatch(self._expected_peer, peer)
            return False
        return True

    def _select_alpn(self, offered: list[bytes]) -> bytes:
        supported = {m.encode() for m in self._muxers}
        supported.add(b"libp2p")
        for proto in offered:
            if proto in supported:
                return proto
        names = [p.decode(errors="replace") for p in offered]
        self._cert_error = HandshakeError(f"no common ALPN protocol: the client offered {names}")
        raise self._cert_error

    def _finish_handshake(self) -> TlsHandshakeResult:
        conn = self._conn
        if conn.get_protocol_version_name() != "TLSv1.3":  # pragma: no cover - the context forbids others
            raise HandshakeError(f"negotiated {conn.get_protocol_version_name()}, libp2p requires TLS 1.3")
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        if not self.is_client:
            # On the server side OpenSSL keeps the client's leaf apart from the chain it sent.
            leaf = conn.get_peer_certificate(as_cryptography=True)
            chain = ([leaf] if leaf is not None else []) + list(chain)
        peer, key = verify_certificate_chain(chain, now=self._now)
        if self._expected_peer is not None and peer != self._expected_peer:
            raise PeerIdMismatch(self._expected_peer, peer)
        negotiated = conn.get_alpn_proto_negotiated()
        alpn = negotiated.decode(errors="replace") if negotiated else None
        early = None if alpn in (None, ALPN_LIBP2P) else alpn
        return TlsHandshakeResult(peer, key, alpn, early)

    # -- data --------------------------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed bytes from the peer. Returns the application data they complete (b"" if none)."""
        conn = self._conn
        if data:
            self._track_records(data)
            conn.bio_write(data)
        if self._result is None:
            self._step_handshake()
            if self._result is None:
                return b""
        chunks: list[bytes] = []
        recv = conn.recv
        try:
            while True:
                chunks.append(recv(READ_CHUNK))
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self.peer_closed = True
        except SSL.Error as exc:
            raise ProtocolViolation(f"TLS: {_ssl_error_text(exc)}", protocol=PROTOCOL_ID) from None
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _track_records(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        i = 0
        header = self._header
        while i < n:
            if self._body_left:
                take = min(self._body_left, n - i)
                self._body_left -= take
                i += take
                continue
            take = min(5 - len(header), n - i)
            header += data[i : i + take]
            i += take
            if len(header) == 5:
                self._body_left = (header[3] << 8) | header[4]
                header.clear()

    @property
    def mid_record(self) -> bool:
        """True if the bytes received so far end inside a TLS record."""
        return bool(self._header) or self._body_left > 0

    def receive_eof(self) -> None:
        """The peer's byte stream ended. Raises ProtocolViolation if it ended inside a record; an EOF at a
        record boundary without close_notify is accepted (the muxer above has its own framing)."""
        if self.mid_record:
            raise ProtocolViolation("connection closed in the middle of a TLS record", protocol=PROTOCOL_ID)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt application data into records (fetch them with :meth:`data_to_send`)."""
        if self._result is None:
            raise HandshakeError("TLS handshake not complete")
        try:
            self._conn.sendall(data)
        except SSL.Error as exc:
            raise ProtocolViolation(f"TLS: {_ssl_error_text(exc)}", protocol=PROTOCOL_ID) from None

    def data_to_send(self, size_hint: int = 0) -> bytes:
        """Everything OpenSSL has produced for the peer (records, alerts), in one bytes object."""
        size = size_hint + size_hint // 16384 * _MAX_RECORD_OVERHEAD + 16384
        bio_read = self._conn.bio_read
        chunks: list[bytes] = []
        try:
            while True:
                chunk = bio_read(size)
                chunks.append(chunk)
                if len(chunk) < size:  # a memory BIO hands over all it has, so it is empty now
                    break
        except SSL.WantReadError:
            pass
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Send close_notify (in :meth:`data_to_send`). Idempotent; errors are ignored."""
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
