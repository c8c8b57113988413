"""asyncio adapter of libp2p TLS (``/tls/1.0.0``): the handshake over a PipeReader, then a :class:`TlsPipe`.

Spec: https://github.com/libp2p/specs/blob/master/tls/tls.md and
https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md (ALPN muxer choice).

The handshake is a few flights of records: bytes read from the :class:`PipeReader` are fed to the sans-I/O
:class:`~.engine.TlsEngine` and its output written back, under ``handshake_timeout``. After it, the
:class:`TlsPipe` becomes the raw pipe's receiver (``reader.hand_over`` keeps the bytes the reader already
holds) and the data path is callbacks only: each raw chunk is decrypted by OpenSSL (one ``SSL_read`` per
record, gathered into one delivery), and writes made in one loop iteration are coalesced into full records
and flushed with ``call_soon``, or at once when a record's worth is pending.

Note (tls.md): in TLS 1.3 the client finishes before the server has checked the client's certificate; a
server that refuses it sends an alert and closes, which the client sees as the :class:`TlsPipe` failing
(``pipe_connection_lost(ProtocolViolation)``), not as a handshake error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from OpenSSL import SSL

from ...core.interfaces import SecureSession
from ...core.pipe import Pipe, PipeReader
from ...exceptions import ConnectionClosed, DeadlineExceeded, HandshakeError, Libp2pError
from ..secure_pipe import MAX_UNDELIVERED, SecurePipe
from .certificate import TlsCertificate
from .engine import PROTOCOL_ID, TlsEngine, make_tls_context

if TYPE_CHECKING:
    from ...crypto.keys import PrivateKey
    from ...crypto.peer_id import PeerId

__all__ = [
    "COALESCE_LIMIT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "HANDSHAKE_READ",
    "MAX_UNDELIVERED",
    "PROTOCOL_ID",
    "TlsPipe",
    "TlsSecurity",
]

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds for the whole TLS handshake
HANDSHAKE_READ: Final = 65536  # bytes taken from the reader per handshake step
COALESCE_LIMIT: Final = 16384  # one full TLS record of plaintext: pending small writes are sent at this size


class TlsPipe(SecurePipe):
    """A :class:`~aiolibp2p.core.pipe.Pipe` of plaintext over a raw pipe carrying TLS 1.3 records.

    Install it with ``reader.hand_over(tls_pipe)`` so bytes the handshake reader already holds are kept;
    ``initial`` is plaintext the engine decrypted during the handshake. A record that fails (tampering,
    an alert from the peer) aborts the raw pipe, and the receiver gets ``pipe_connection_lost(exc)``. A
    close_notify from the peer is delivered as ``pipe_eof_received``; :meth:`close` sends one.
    """

    __slots__ = ("_engine", "_eof_seen")

    _label = "TLS"

    def __init__(self, raw: Pipe, engine: TlsEngine, *, initial: bytes = b"") -> None:
        super().__init__(raw)
        self._engine = engine
        self._eof_seen = False  # EOF (close_notify or raw EOF) already happened
        if initial:
            self._backlog.append(initial)
            self._backlog_bytes = len(initial)
        if engine.peer_closed:
            self._eof = self._eof_seen = True

    @property
    def engine(self) -> TlsEngine:
        return self._engine

    def _deliver_eof(self) -> None:
        if self._eof_seen:
            return
        self._eof_seen = True
        super()._deliver_eof()

    # -- PipeReceiver of the raw pipe -------------------------------------------------------------------
    def pipe_data_received(self, data: bytes) -> None:
        if self._error is not None or self._lost:
            return
        engine = self._engine
        try:
            plaintext = engine.receive_data(data)
        except Libp2pError as exc:
            self._fail(exc)
            return
        # Records may need an answer (a KeyUpdate); an empty BIO costs one cheap call.
        out = engine.data_to_send()
        if out and not self._raw.is_closing():
            self._raw.write(out)
        if plaintext:
            self._deliver(plaintext)
        if engine.peer_closed:
            self._deliver_eof()

    def pipe_eof_received(self) -> None:
        if self._error is not None or self._lost:
            return
        try:
            self._engine.receive_eof()
        except Libp2pError as exc:
            self._fail(exc)
            return
        self._deliver_eof()

    # -- Pipe: sending -----------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or self._raw.is_closing():
            raise ConnectionClosed("write on a closed TLS pipe", cause="local-closed")
        n = len(data)
        if not n:
            return
        pending = self._pending
        if n < COALESCE_LIMIT:
            pending += data
            if len(pending) >= COALESCE_LIMIT:
                self._flush()
            elif self._flush_handle is None:
                self._flush_handle = self._loop.call_soon(self._flush)
            return
        if not pending:
            self._encrypt(data)
            return
        # Top the pending bytes (a muxer frame header, say) up to one full record rather than sending a
        # tiny record of their own.
        room = COALESCE_LIMIT - len(pending)
        with memoryview(data) as mv:
            pending += mv[:room]
            self._encrypt(pending)
            pending.clear()
            self._cancel_flush()
            if n > room:
                self._encrypt(mv[room:])

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        engine = self._engine
        try:
            engine.send(data)
        except Libp2pError as exc:
            self._fail(exc)
            raise ConnectionClosed("TLS encryption failed", cause="error") from exc
        self._raw.write(engine.data_to_send(len(data)))

    def _close_notify(self) -> None:
        self._engine.close()
        out = self._engine.data_to_send()
        if out and not self._raw.is_closing():
            try:
                self._raw.write(out)
            except ConnectionClosed:
                pass


class TlsSecurity:
    """The ``/tls/1.0.0`` security transport (``SecurityTransport``).

    ``TlsSecurity(private_key)`` makes one certificate (fresh P-256 key, signed into the libp2p extension by
    ``private_key``) reused for every connection, as the spec allows; pass ``certificate`` to choose it.
    ``secure_outbound(reader, remote_peer, muxers)`` runs the client side: ALPN offers ``muxers`` in order
    then ``"libp2p"``, and the server's certificate must authenticate ``remote_peer`` (PeerIdMismatch
    otherwise). ``secure_inbound(reader, muxers)`` runs the server side: it requires a client certificate
    and picks the first offered ALPN entry among ``muxers`` + ``"libp2p"`` (no overlap: the handshake
    fails). ``SecureSession.early_muxer`` is the muxer ALPN chose, or None for multistream-select.

    A refusal by the engine (bad certificate, wrong peer, no common ALPN) sends the TLS alert and closes the
    raw pipe; any other failure (timeout, cancellation, the peer closing) aborts it. Errors are typed:
    CertificateError, PeerIdMismatch, HandshakeError, ConnectionClosed, DeadlineExceeded.
    """

    protocol_id: str = PROTOCOL_ID

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        certificate: TlsCertificate | None = None,
    ) -> None:
        self.private_key = private_key
        self.local_peer: PeerId = private_key.public_key.peer_id
        self.handshake_timeout = handshake_timeout
        self.certificate = certificate if certificate is not None else TlsCertificate.generate(private_key)
        self._client_context: SSL.Context | None = None
        self._server_context: SSL.Context | None = None

    def _context(self, *, is_client: bool) -> SSL.Context:
        if is_client:
            if self._client_context is None:
                self._client_context = make_tls_context(self.certificate, is_client=True)
            return self._client_context
        if self._server_context is None:
            self._server_context = make_tls_context(self.certificate, is_client=False)
        return self._server_context

    async def secure_outbound(
        self, reader: PipeReader, remote_peer: PeerId | None, muxers: Sequence[str]
    ) -> SecureSession:
        engine = TlsEngine(
            self._context(is_client=True), is_client=True, muxers=muxers, expected_peer=remote_peer
        )
        return await self._run(reader, engine)

    async def secure_inbound(self, reader: PipeReader, muxers: Sequence[str]) -> SecureSession:
        return await self._run(
            reader, TlsEngine(self._context(is_client=False), is_client=False, muxers=muxers)
        )

    async def _run(self, reader: PipeReader, engine: TlsEngine) -> SecureSession:
        raw = reader.pipe
        early = b""
        try:
            try:
                async with asyncio.timeout(self.handshake_timeout):
                    try:
                        if engine.is_client:
                            engine.start()
                        while not engine.handshake_complete:
                            out = engine.data_to_send()
                            if out:
                                reader.write(out)
                            data = await reader.read_some(HANDSHAKE_READ)
                            if not data:
                                raise ConnectionClosed(
                                    "connection closed during the TLS handshake", cause="remote-closed"
                                )
                            early = engine.receive_data(data)
                    finally:
                        out = engine.data_to_send()  # our last flight, or the alert of a refusal
                        if out and not raw.is_closing():
                            try:
                                reader.write(out)
                            except ConnectionClosed:
                                if engine.handshake_complete:
                                    raise
            except TimeoutError:
                raise DeadlineExceeded("tls handshake", self.handshake_timeout) from None
        except HandshakeError:
            raw.close()  # after the alert
            raise
        except BaseException:
            raw.abort()
            raise
        result = engine.result
        tls_pipe = TlsPipe(raw, engine, initial=early)
        reader.hand_over(tls_pipe)
        return SecureSession(
            pipe=tls_pipe,
            reader=PipeReader(tls_pipe),
            local_peer=self.local_peer,
            remote_peer=result.remote_peer,
            remote_public_key=result.remote_public_key,
            security_protocol=PROTOCOL_ID,
            early_muxer=result.early_muxer,
        )
