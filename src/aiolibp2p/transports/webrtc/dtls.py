"""DTLS 1.2 for WebRTC-direct, sans-I/O: OpenSSL (pyOpenSSL) over memory BIOs.

Datagrams go in with :meth:`DtlsEngine.receive`, which returns the events they produced; what OpenSSL wants
sent comes out of :meth:`DtlsEngine.datagrams_to_send`. The adapter runs the retransmission timer from
:meth:`DtlsEngine.timeout` / :meth:`DtlsEngine.handle_timeout` while the handshake lasts.

Both sides present their self-signed certificate and accept any certificate at the DTLS layer: the dialer
checks the listener's fingerprint against the address's ``/certhash`` (:attr:`remote_fingerprint`), and the
Noise prologue binds both fingerprints to the libp2p identities.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

try:  # the OpenSSL bindings pyOpenSSL itself uses: a tight per-datagram path once the handshake is done
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover - depends on the pyOpenSSL version
    _ffi = _lib = None

from .certificate import WebRtcCertificate

__all__ = ["DtlsClosed", "DtlsData", "DtlsEngine", "DtlsEvent", "DtlsFailed", "DtlsHandshakeComplete"]

_CIPHERS = b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384"
_MAX_RECORD = 65536


@dataclass(frozen=True, slots=True)
class DtlsHandshakeComplete:
    remote_fingerprint: bytes  # SHA-256 of the remote certificate (DER)


@dataclass(frozen=True, slots=True)
class DtlsData:
    data: bytes


@dataclass(frozen=True, slots=True)
class DtlsClosed:
    """The remote sent close_notify."""


@dataclass(frozen=True, slots=True)
class DtlsFailed:
    reason: str


DtlsEvent = DtlsHandshakeComplete | DtlsData | DtlsClosed | DtlsFailed


_CONTEXTS: weakref.WeakKeyDictionary[WebRtcCertificate, SSL.Context] = weakref.WeakKeyDictionary()


def _context(cert: WebRtcCertificate) -> SSL.Context:
    """One OpenSSL context per certificate, shared by its connections (making one costs ~0.6 ms)."""
    ctx = _CONTEXTS.get(cert)
    if ctx is None:
        ctx = _CONTEXTS[cert] = _new_context(cert)
    return ctx


def _new_context(cert: WebRtcCertificate) -> SSL.Context:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
    ctx.use_privatekey(cert.private_key)
    ctx.use_certificate(cert.certificate)
    ctx.set_cipher_list(_CIPHERS)
    return ctx


class DtlsEngine:
    """One side of a DTLS association. ``is_server`` follows the WebRTC-direct roles (listener = server)."""

    __slots__ = (
        "_buf",
        "_closed",
        "_fast",
        "_out",
        "_ssl",
        "handshake_done",
        "is_server",
        "remote_fingerprint",
    )

    def __init__(self, cert: WebRtcCertificate, *, is_server: bool, mtu: int = 1400) -> None:
        self.is_server = is_server
        conn = SSL.Connection(_context(cert), None)
        conn.set_ciphertext_mtu(mtu)
        if is_server:
            conn.set_accept_state()
        else:
            conn.set_connect_state()
        self._ssl = conn
        self._out: list[bytes] = []
        self._fast = _lib is not None and hasattr(conn, "_from_ssl") and hasattr(conn, "_into_ssl")
        self._buf: object = _ffi.new("char[]", _MAX_RECORD) if self._fast else None
        self._closed = False
        self.handshake_done = False
        self.remote_fingerprint: bytes | None = None

    # -- output ---------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        ssl = self._ssl
        while True:
            try:
                data = ssl.bio_read(_MAX_RECORD)
            except SSL.WantReadError:
                return
            except SSL.Error:
                return
            if not data:
                return
            self._out.append(data)

    def datagrams_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    # -- handshake ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin (a client sends its ClientHello; a server waits)."""
        if not self.is_server:
            self._advance([])

    def _advance(self, events: list[DtlsEvent]) -> None:
        if self.handshake_done or self._closed:
            return
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return
        except SSL.Error as e:
            self._closed = True
            self._flush()
            events.append(DtlsFailed(f"DTLS handshake failed: {e}"))
            return
        self._flush()
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._closed = True
            events.append(DtlsFailed("the remote presented no DTLS certificate"))
            return
        der = cert.public_bytes(serialization.Encoding.DER)
        self.remote_fingerprint = hashlib.sha256(der).digest()
        self.handshake_done = True
        events.append(DtlsHandshakeComplete(self.remote_fingerprint))

    def timeout(self) -> float | None:
        """Seconds until the handshake's retransmission timer fires (None once done)."""
        if self.handshake_done or self._closed:
            return None
        t: float | None = self._ssl.DTLSv1_get_timeout()
        return t

    def handle_timeout(self) -> None:
        if self.handshake_done or self._closed:
            return
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error:
            pass
        self._flush()

    # -- data -------------------------------------------------------------------------------------------------
    def receive(self, datagram: bytes) -> list[DtlsEvent]:
        events: list[DtlsEvent] = []
        if self._closed:
            return events
        ssl = self._ssl
        if self._fast and self.handshake_done:
            return self._receive_fast(datagram, events)
        ssl.bio_write(datagram)
        if not self.handshake_done:
            self._advance(events)
            if not self.handshake_done:
                return events
        while True:
            try:
                data = ssl.recv(_MAX_RECORD)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._closed = True
                events.append(DtlsClosed())
                break
            except SSL.Error as e:
                # a record that does not decrypt is dropped (DTLS, RFC 6347 §4.1.2.7); a fatal alert ends it
                if "alert" in str(e).lower():
                    self._closed = True
                    events.append(DtlsFailed(f"DTLS alert from the remote: {e}"))
                break
            if not data:
                break
            events.append(DtlsData(data))
        self._flush()
        return events

    def _receive_fast(self, datagram: bytes, events: list[DtlsEvent]) -> list[DtlsEvent]:
        conn = self._ssl
        ssl = conn._ssl
        _lib.BIO_write(conn._into_ssl, datagram, len(datagram))
        buf = self._buf
        while True:
            n = _lib.SSL_read(ssl, buf, _MAX_RECORD)
            if n <= 0:
                break
            events.append(DtlsData(_ffi.buffer(buf, n)[:]))
        err = _lib.SSL_get_error(ssl, n)
        if err == _lib.SSL_ERROR_ZERO_RETURN:
            self._closed = True
            events.append(DtlsClosed())
        elif err != _lib.SSL_ERROR_WANT_READ:
            _lib.ERR_clear_error()  # a record that does not decrypt is dropped; the public path reports alerts
            try:
                conn.recv(_MAX_RECORD)
            except SSL.ZeroReturnError:
                self._closed = True
                events.append(DtlsClosed())
            except SSL.Error as e:
                if "alert" in str(e).lower():
                    self._closed = True
                    events.append(DtlsFailed(f"DTLS alert from the remote: {e}"))
        self._flush_fast()
        return events

    def _flush_fast(self) -> None:
        bio = self._ssl._from_ssl
        buf = self._buf
        while True:
            n = _lib.BIO_read(bio, buf, _MAX_RECORD)
            if n <= 0:
                return
            self._out.append(_ffi.buffer(buf, n)[:])

    def send(self, data: bytes) -> None:
        """Encrypt one application datagram (an SCTP packet)."""
        if self._closed or not self.handshake_done:
            return
        if self._fast and data:
            n = _lib.SSL_write(self._ssl._ssl, data, len(data))
            if n == len(data):
                self._flush_fast()
                return
            _lib.ERR_clear_error()
            return
        try:
            self._ssl.send(data)
        except SSL.Error:
            return
        self._flush()

    def close(self) -> None:
        """Send close_notify."""
        if self._closed:
            return
        self._closed = True
        if self.handshake_done:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass
            self._flush()

    @property
    def closed(self) -> bool:
        return self._closed
