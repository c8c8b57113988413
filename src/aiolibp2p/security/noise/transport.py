"""asyncio adapter of libp2p Noise (``/noise``): the handshake over a PipeReader, then a :class:`NoisePipe`.

Spec: https://github.com/libp2p/specs/blob/master/noise/README.md (handshake, framing, nonce exhaustion) and
https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md (early muxer).

The handshake is three framed messages, read with ``readexactly`` (short, so a coroutine is simplest). After
it, the :class:`NoisePipe` becomes the raw pipe's receiver (taking over the reader's leftover bytes) and the
data path is callbacks only: raw chunks are decrypted frame by frame and passed on in one call; writes made
in one loop iteration are coalesced into full frames and flushed with ``call_soon``, or at once when a frame
fills.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ...core.interfaces import SecureSession
from ...core.pipe import Pipe, PipeReader, PipeReceiver
from ...exceptions import ConnectionClosed, CryptoError, DeadlineExceeded, DecodeError, Libp2pError
from .framing import (
    FRAME_HEADER_LEN,
    MAX_PLAINTEXT,
    NoiseFrameDecoder,
    NoiseFrameEncoder,
    encode_handshake_frame,
)
from .handshake import NoiseExtensions, NoiseHandshake, sign_static_key, x25519_public_bytes

if TYPE_CHECKING:
    from ...crypto.keys import PrivateKey
    from ...crypto.peer_id import PeerId
    from .handshake import CipherState

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "MAX_UNDELIVERED", "PROTOCOL_ID", "NoisePipe", "NoiseSecurity"]

PROTOCOL_ID: Final = "/noise"
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds for the three handshake messages
MAX_UNDELIVERED: Final = 1024 * 1024  # plaintext held while no receiver is set; beyond it reading pauses


class NoisePipe:
    """A :class:`~aiolibp2p.core.pipe.Pipe` of plaintext over a raw pipe carrying Noise transport frames.

    Install it with ``reader.hand_over(noise_pipe)`` so bytes the handshake reader already holds are kept.
    A frame that fails authentication (or is malformed) aborts the raw pipe, and the receiver gets
    ``pipe_connection_lost(DecodeError)``.
    """

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_backlog_paused",
        "_closing",
        "_decoder",
        "_encoder",
        "_eof",
        "_error",
        "_flush_handle",
        "_loop",
        "_lost",
        "_lost_exc",
        "_lost_reported",
        "_pending",
        "_raw",
        "_receiver",
    )

    def __init__(self, raw: Pipe, send_cipher: CipherState, recv_cipher: CipherState) -> None:
        self._raw = raw
        self._encoder = NoiseFrameEncoder(send_cipher)
        self._decoder = NoiseFrameDecoder(recv_cipher)
        self._loop = asyncio.get_running_loop()
        self._receiver: PipeReceiver | None = None
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._backlog_paused = False
        self._pending = bytearray()  # plaintext written this loop iteration, < MAX_PLAINTEXT bytes
        self._flush_handle: asyncio.Handle | None = None
        self._closing = False
        self._eof = False
        self._lost = False
        self._lost_reported = False
        self._lost_exc: BaseException | None = None
        self._error: BaseException | None = None

    # -- Pipe: addresses and state ---------------------------------------------------------------------
    @property
    def raw_pipe(self) -> Pipe:
        return self._raw

    @property
    def local_addr(self) -> object | None:
        return self._raw.local_addr

    @property
    def remote_addr(self) -> object | None:
        return self._raw.remote_addr

    def is_closing(self) -> bool:
        return self._closing or self._lost or self._raw.is_closing()

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    # -- Pipe: receiving ---------------------------------------------------------------------------------
    def set_receiver(self, receiver: PipeReceiver) -> None:
        self._receiver = receiver
        self._deliver_backlog()

    def _deliver_backlog(self) -> None:
        backlog = self._backlog
        while backlog:
            r = self._receiver
            if r is None:
                return
            data = backlog.popleft()
            self._backlog_bytes -= len(data)
            r.pipe_data_received(data)
        if self._backlog_paused:
            self._backlog_paused = False
            self._raw.resume_reading()
        r = self._receiver
        if r is None:
            return
        if self._eof:
            self._eof = False  # delivered once
            r.pipe_eof_received()
        r = self._receiver
        if r is not None and self._lost and not self._lost_reported:
            self._lost_reported = True
            r.pipe_connection_lost(self._lost_exc)

    # -- PipeReceiver of the raw pipe -------------------------------------------------------------------
    def pipe_data_received(self, data: bytes) -> None:
        if self._error is not None or self._lost:
            return
        try:
            plaintext = self._decoder.feed(data)
        except Libp2pError as exc:
            self._fail(exc)
            return
        if not plaintext:
            return
        r = self._receiver
        if r is not None and not self._backlog:
            r.pipe_data_received(plaintext)
            return
        self._backlog.append(plaintext)
        self._backlog_bytes += len(plaintext)
        if self._backlog_bytes > MAX_UNDELIVERED and not self._backlog_paused:
            self._backlog_paused = True
            self._raw.pause_reading()

    def pipe_eof_received(self) -> None:
        if self._error is not None or self._lost:
            return
        if self._decoder.buffered:
            self._fail(DecodeError("connection closed in the middle of a Noise frame", protocol=PROTOCOL_ID))
            return
        self._eof = True
        if self._receiver is not None and not self._backlog:
            self._eof = False
            self._receiver.pipe_eof_received()

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._lost_exc = self._error if self._error is not None else exc
        self._cancel_flush()
        self._pending.clear()
        if self._receiver is not None and not self._backlog:
            self._lost_reported = True
            self._receiver.pipe_connection_lost(self._lost_exc)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._raw.abort()
        self.pipe_connection_lost(exc)  # at once, whether or not the raw pipe reports its loss synchronously

    # -- Pipe: sending -----------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or self._raw.is_closing():
            raise ConnectionClosed("write on a closed Noise pipe", cause="local-closed")
        n = len(data)
        if not n:
            return
        pending = self._pending
        if pending:
            room = MAX_PLAINTEXT - len(pending)
            if n < room:
                pending += data
                return  # a flush is already scheduled
            with memoryview(data) as mv:
                pending += mv[:room]
                self._send(pending)
                pending.clear()
                self._cancel_flush()
                if n == room:
                    return
                self._write_fresh(mv[room:])
            return
        self._write_fresh(data)

    def _write_fresh(self, data: bytes | bytearray | memoryview) -> None:
        # Nothing pending: send whole frames now, keep the tail for coalescing until the loop turns.
        n = len(data)
        tail = n % MAX_PLAINTEXT
        if n - tail:
            with memoryview(data) as mv:
                self._send(mv[: n - tail])
                if tail:
                    self._pending += mv[n - tail :]
        elif tail:
            self._pending += data
        if self._pending and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _send(self, plaintext: bytes | bytearray | memoryview) -> None:
        try:
            frames = self._encoder.encode(plaintext)
        except CryptoError as exc:  # nonce exhaustion: the spec says terminate the connection
            self._fail(exc)
            raise ConnectionClosed("Noise send nonce exhausted", cause="error") from exc
        self._raw.write(frames)

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _flush(self) -> None:
        self._flush_handle = None
        pending = self._pending
        if not pending or self._lost:
            return
        try:
            self._send(pending)
        except ConnectionClosed:
            pass  # the raw pipe's loss is reported to the receiver through pipe_connection_lost
        pending.clear()

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionClosed("Noise pipe closed", cause="error" if self._lost_exc else "closed")
        await self._raw.drain()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._lost:
            self._flush()
            self._cancel_flush()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._cancel_flush()
        self._pending.clear()
        self._raw.abort()


class NoiseSecurity:
    """The ``/noise`` security transport (``SecurityTransport``).

    One X25519 static key per instance (fresh, never persisted), signed once by the identity key.
    ``prologue`` is empty for TCP/WebSocket; WebRTC-direct passes its certificate-fingerprint prologue.
    On any failure the raw pipe is aborted and a typed error raised.
    """

    protocol_id: str = PROTOCOL_ID

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        prologue: bytes = b"",
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        static_key: X25519PrivateKey | None = None,
        webtransport_certhashes: Sequence[bytes] = (),
    ) -> None:
        self.private_key = private_key
        self.local_peer: PeerId = private_key.public_key.peer_id
        self.prologue = prologue
        self.handshake_timeout = handshake_timeout
        self._static_key = static_key if static_key is not None else X25519PrivateKey.generate()
        self._identity_sig = sign_static_key(private_key, x25519_public_bytes(self._static_key))
        self._certhashes = tuple(webtransport_certhashes)

    def _handshake(
        self, *, initiator: bool, muxers: Sequence[str], remote_peer: PeerId | None
    ) -> NoiseHandshake:
        return NoiseHandshake(
            self.private_key,
            is_initiator=initiator,
            static_key=self._static_key,
            identity_sig=self._identity_sig,
            expected_peer=remote_peer,
            extensions=NoiseExtensions(tuple(muxers), self._certhashes),
            prologue=self.prologue,
        )

    async def secure_outbound(
        self, reader: PipeReader, remote_peer: PeerId | None, muxers: Sequence[str]
    ) -> SecureSession:
        return await self._run(
            reader, self._handshake(initiator=True, muxers=muxers, remote_peer=remote_peer)
        )

    async def secure_inbound(self, reader: PipeReader, muxers: Sequence[str]) -> SecureSession:
        return await self._run(reader, self._handshake(initiator=False, muxers=muxers, remote_peer=None))

    async def _run(self, reader: PipeReader, hs: NoiseHandshake) -> SecureSession:
        raw = reader.pipe
        try:
            try:
                async with asyncio.timeout(self.handshake_timeout):
                    while not hs.complete:
                        if hs.our_turn:
                            reader.write(encode_handshake_frame(hs.write_message()))
                        else:
                            header = await reader.readexactly(FRAME_HEADER_LEN)
                            hs.read_message(await reader.readexactly(int.from_bytes(header, "big")))
            except TimeoutError:
                raise DeadlineExceeded("noise handshake", self.handshake_timeout) from None
        except BaseException:
            raw.abort()
            raise
        result = hs.result
        noise_pipe = NoisePipe(raw, result.send_cipher, result.recv_cipher)
        reader.hand_over(noise_pipe)
        return SecureSession(
            pipe=noise_pipe,
            reader=PipeReader(noise_pipe),
            local_peer=self.local_peer,
            remote_peer=result.remote_peer,
            remote_public_key=result.remote_public_key,
            security_protocol=PROTOCOL_ID,
            early_muxer=result.early_muxer,
        )
