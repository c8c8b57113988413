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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ...core.interfaces import SecureSession
from ...core.pipe import Pipe, PipeReader
from ...exceptions import ConnectionClosed, CryptoError, DeadlineExceeded, DecodeError, Libp2pError
from ..secure_pipe import MAX_UNDELIVERED, SecurePipe
from .framing import (
    FRAME_HEADER_LEN,
    MAX_PLAINTEXT,
    NoiseFrameDecoder,
    NoiseFrameEncoder,
    encode_handshake_frame,
)
from .handshake import NoiseExtensions, NoiseHandshake, X25519Keypair, sign_static_key

if TYPE_CHECKING:
    from ...crypto.keys import PrivateKey
    from ...crypto.peer_id import PeerId
    from .handshake import CipherState

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "MAX_UNDELIVERED", "PROTOCOL_ID", "NoisePipe", "NoiseSecurity"]

PROTOCOL_ID: Final = "/noise"
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds for the three handshake messages


class NoisePipe(SecurePipe):
    """A :class:`~aiolibp2p.core.pipe.Pipe` of plaintext over a raw pipe carrying Noise transport frames.

    Install it with ``reader.hand_over(noise_pipe)`` so bytes the handshake reader already holds are kept.
    A frame that fails authentication (or is malformed) aborts the raw pipe, and the receiver gets
    ``pipe_connection_lost(DecodeError)``.
    """

    __slots__ = ("_decoder", "_encoder")

    _label = "Noise"

    def __init__(self, raw: Pipe, send_cipher: CipherState, recv_cipher: CipherState) -> None:
        super().__init__(raw)
        self._encoder = NoiseFrameEncoder(send_cipher)
        self._decoder = NoiseFrameDecoder(recv_cipher)

    # -- PipeReceiver of the raw pipe -------------------------------------------------------------------
    def pipe_data_received(self, data: bytes) -> None:
        if self._error is not None or self._lost:
            return
        try:
            plaintext = self._decoder.feed(data)
        except Libp2pError as exc:
            self._fail(exc)
            return
        if plaintext:
            r = self._receiver
            if r is not None and not self._backlog:
                r.pipe_data_received(plaintext)  # _deliver's common case, one call less per message
            else:
                self._deliver(plaintext)

    def pipe_eof_received(self) -> None:
        if self._error is not None or self._lost:
            return
        if self._decoder.buffered:
            self._fail(DecodeError("connection closed in the middle of a Noise frame", protocol=PROTOCOL_ID))
            return
        self._deliver_eof()

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
                self._encrypt(pending)
                pending.clear()
                self._cancel_flush()
                if n == room:
                    return
                self._write_fresh(mv[room:])
            return
        self._write_fresh(data)

    def write_now(self, data: bytes | bytearray) -> None:
        if self._closing or self._lost or self._raw.is_closing():
            raise ConnectionClosed("write on a closed Noise pipe", cause="local-closed")
        if len(data) > MAX_PLAINTEXT:
            # Bulk: whole frames go now and the tail is held to fill the next frame, as write() does (frames
            # cut at each flush instead cost ~20% of download throughput).
            self.write(data)
        elif self._pending:
            super().write_now(data)
        elif data:
            try:  # _encrypt, inlined: this is every muxer flush
                frames = self._encoder.encode(data)
            except CryptoError as exc:
                self._fail(exc)
                raise ConnectionClosed("Noise send nonce exhausted", cause="error") from exc
            self._raw.write(frames)

    def _write_fresh(self, data: bytes | bytearray | memoryview) -> None:
        # Nothing pending: send whole frames now, keep the tail for coalescing until the loop turns.
        n = len(data)
        tail = n % MAX_PLAINTEXT
        if n - tail:
            with memoryview(data) as mv:
                self._encrypt(mv[: n - tail])
                if tail:
                    self._pending += mv[n - tail :]
        elif tail:
            self._pending += data
        if self._pending and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        try:
            frames = self._encoder.encode(data)
        except CryptoError as exc:  # nonce exhaustion: the spec says terminate the connection
            self._fail(exc)
            raise ConnectionClosed("Noise send nonce exhausted", cause="error") from exc
        self._raw.write(frames)


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
        self._static_pair = X25519Keypair.from_private_key(
            self._static_key
        )  # converted once, not per handshake
        self._identity_sig = sign_static_key(private_key, self._static_pair.public)
        self._certhashes = tuple(webtransport_certhashes)

    def _handshake(
        self, *, initiator: bool, muxers: Sequence[str], remote_peer: PeerId | None
    ) -> NoiseHandshake:
        return NoiseHandshake(
            self.private_key,
            is_initiator=initiator,
            static_key=self._static_pair,
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
