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
handshake (exactly one certificate: :func:`verify_certificate_chain`'s rule), on both sides.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography import x509
from OpenSSL import SSL, crypto

try:  # the OpenSSL bindings pyOpenSSL itself uses: a tight data path (see _FAST_NAMES)
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover - depends on the pyOpenSSL version
    _ffi = _lib = None

from ...exceptions import CertificateError, HandshakeError, Libp2pError, PeerIdMismatch, ProtocolViolation
from .certificate import TlsCertificate, verify_certificate

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
MAX_RECORD_PLAINTEXT: Final = 16384  # TLS 1.3: 2^14 bytes of plaintext per record

# pyOpenSSL's public recv/send cost a buffer allocation, a copy and an error check per 16 KiB record, and
# its send writes one record per call (it sets SSL_MODE_ENABLE_PARTIAL_WRITE). Where pyOpenSSL exposes
# these OpenSSL functions (it always has), the data path calls them directly: measured +37 % on
# encrypt+decrypt (bench/tls_throughput.py). Errors still go through the public API for typed exceptions.
_FAST_NAMES: Final = (
    "SSL_read",
    "SSL_write",
    "SSL_get_error",
    "SSL_clear_mode",
    "SSL_MODE_ENABLE_PARTIAL_WRITE",
    "SSL_ERROR_WANT_READ",
    "SSL_ERROR_ZERO_RETURN",
)
FAST_PATH_AVAILABLE: Final = _lib is not None and all(hasattr(_lib, n) for n in _FAST_NAMES)
USE_FAST_PATH = FAST_PATH_AVAILABLE  # the default for new engines (tests run both paths)


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
        "_fast",
        "_header",
        "_muxers",
        "_now",
        "_read_buf",
        "_result",
        "_verified",
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
        fast_path: bool | None = None,
    ) -> None:
        self.is_client = is_client
        self._muxers = tuple(muxers)
        self._expected_peer = expected_peer
        self._now = now
        self._cert_error: Libp2pError | None = None
        self._result: TlsHandshakeResult | None = None
        self._verified: tuple[x509.Certificate, PeerId, PublicKey] | None = None
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
        self._fast = FAST_PATH_AVAILABLE and (USE_FAST_PATH if fast_path is None else fast_path)
        self._read_buf: Any = None
        if self._fast:
            # whole writes in one SSL_write: a memory BIO never blocks, so no partial writes are needed
            _lib.SSL_clear_mode(conn._ssl, _lib.SSL_MODE_ENABLE_PARTIAL_WRITE)

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
            peer, _ = self._verify_once(cert.to_cryptography())
        except CertificateError as exc:
            self._cert_error = exc
            return False
        if self._expected_peer is not None and peer != self._expected_peer:
            self._cert_error = PeerIdMismatch(self._expected_peer, peer)
            return False
        return True

    def _verify_once(self, cert: x509.Certificate) -> tuple[PeerId, PublicKey]:
        # OpenSSL calls the verify callback more than once for the leaf, and the chain is checked again
        # after the handshake: verify each distinct certificate once.
        cached = self._verified
        if cached is not None and cached[0] == cert:
            return cached[1], cached[2]
        peer, key = verify_certificate(cert, now=self._now)
        self._verified = (cert, peer, key)
        return peer, key

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
        if len(chain) != 1:
            raise CertificateError(f"expected exactly one certificate, got {len(chain)}")
        peer, key = self._verify_once(chain[0])
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
        if self._fast:
            return self._read_fast()
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

    def _read_fast(self) -> bytes:
        buf = self._read_buf
        if buf is None:
            buf = self._read_buf = _ffi.new("char[]", MAX_RECORD_PLAINTEXT)
        ssl = self._conn._ssl
        ssl_read = _lib.SSL_read
        chunks: list[bytes] = []
        while True:
            n = ssl_read(ssl, buf, MAX_RECORD_PLAINTEXT)
            if n <= 0:
                break
            chunks.append(_ffi.buffer(buf, n)[:])
        err = _lib.SSL_get_error(ssl, n)
        if err == _lib.SSL_ERROR_ZERO_RETURN:
            self.peer_closed = True
        elif err != _lib.SSL_ERROR_WANT_READ:
            # let pyOpenSSL turn the error state into its typed exception
            try:
                self._conn.recv(MAX_RECORD_PLAINTEXT)
            except SSL.ZeroReturnError:
                self.peer_closed = True
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                raise ProtocolViolation(f"TLS: {_ssl_error_text(exc)}", protocol=PROTOCOL_ID) from None
            else:
                raise ProtocolViolation(f"TLS: SSL_read failed ({err})", protocol=PROTOCOL_ID)
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _track_records(self, data: bytes | bytearray | memoryview) -> None:
        # Hop from record header to record header (5 bytes: type, version, length); one step per record.
        n = len(data)
        header = self._header
        i = self._body_left  # where the next header starts in this chunk
        if header:
            need = 5 - len(header)
            header += data[:need]
            if len(header) < 5:
                return
            i = need + ((header[3] << 8) | header[4])
            header.clear()
        while i + 5 <= n:
            i += 5 + ((data[i + 3] << 8) | data[i + 4])
        if i > n:
            self._body_left = i - n
        else:
            self._body_left = 0
            if i < n:
                header += data[i:]

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
        if self._fast and data:
            with _ffi.from_buffer(data) as ptr:
                n = _lib.SSL_write(self._conn._ssl, ptr, len(data))
            if n == len(data):
                return
            data = memoryview(data)[max(n, 0) :]  # not expected with memory BIOs: the public path decides
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
