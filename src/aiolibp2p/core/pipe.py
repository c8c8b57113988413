"""Byte pipes: the layer every transport, security channel and muxer hands bytes through.

A :class:`Pipe` is a bidirectional byte stream driven by callbacks (modelled on ``asyncio.Protocol``/
``Transport``): the lower layer pushes received bytes into a :class:`PipeReceiver`, and the upper layer
writes with :meth:`Pipe.write` and awaits :meth:`Pipe.drain` for backpressure. There is no reader task and
no ``await`` per frame on the data path.

Handshakes (multistream-select, Noise) are short and easiest to write as coroutines, so during an upgrade
a :class:`PipeReader` is installed as the receiver: it buffers bytes and offers bounded awaitable reads.
When the handshake is over, :meth:`PipeReader.detach` returns the bytes it holds that belong to the next
layer ("trailing data", as h11 calls it), and the next layer becomes the receiver.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from ..exceptions import ConnectionClosed, MessageTooLarge, VarintError

__all__ = ["Pipe", "PipeReader", "PipeReceiver"]


class PipeReceiver(Protocol):
    """What a pipe delivers to. Called from the event loop; must not block."""

    def pipe_data_received(self, data: bytes) -> None: ...

    def pipe_eof_received(self) -> None:
        """The remote closed its write side (TCP FIN / stream FIN). Writing may still be possible."""

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        """The pipe is gone (closed, aborted, or failed with ``exc``). Called exactly once."""


@runtime_checkable
class Pipe(Protocol):
    """A bidirectional byte stream.

    Bytes received before a receiver is set are buffered and delivered by :meth:`set_receiver`.
    """

    def set_receiver(self, receiver: PipeReceiver) -> None: ...

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for sending. Never blocks; callers honour :meth:`drain`. Raises ConnectionClosed."""

    async def drain(self) -> None:
        """Wait until the pipe's send buffer is below its high-water mark. Raises ConnectionClosed."""

    def close(self) -> None:
        """Graceful close: flush what is queued, then close. Idempotent."""

    def abort(self) -> None:
        """Close at once, dropping queued bytes (TCP: RST where possible). Idempotent."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool: ...

    @property
    def local_addr(self) -> object | None:
        """The local multiaddr (``Multiaddr``), where known."""

    @property
    def remote_addr(self) -> object | None:
        """The remote multiaddr (``Multiaddr``), where known."""


class PipeReader:
    """Buffers a pipe's bytes and offers awaitable reads, for handshakes.

    Every read is bounded in size; time bounds are the caller's (``asyncio.timeout``). The buffer is capped
    at ``max_buffer`` bytes: beyond that reading is paused on the pipe.
    """

    __slots__ = ("_buf", "_eof", "_exc", "_lost", "_max_buffer", "_paused", "_waiter", "pipe")

    def __init__(self, pipe: Pipe, *, max_buffer: int = 256 * 1024, initial: bytes = b"") -> None:
        self.pipe = pipe
        self._buf = bytearray(initial)
        self._eof = False
        self._lost = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._max_buffer = max_buffer
        self._paused = False
        pipe.set_receiver(self)

    # -- PipeReceiver -----------------------------------------------------------------------------------
    def pipe_data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self._max_buffer and not self._paused:
            self._paused = True
            self.pipe.pause_reading()
        self._wake()

    def pipe_eof_received(self) -> None:
        self._eof = True
        self._wake()

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        self._eof = True
        self._lost = True
        self._exc = exc
        self._wake()

    # -- reads ------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        if self._eof:
            raise ConnectionClosed(
                "connection closed during handshake", cause="remote-closed" if not self._exc else "error"
            ) from self._exc
        if self._paused and len(self._buf) < self._max_buffer:
            self._paused = False
            self.pipe.resume_reading()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; ConnectionClosed if the pipe ends first."""
        if n > self._max_buffer:
            raise MessageTooLarge(f"read of {n} bytes exceeds the handshake buffer of {self._max_buffer}")
        while len(self._buf) < n:
            await self._wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        """Read at least one and at most ``max_bytes`` bytes; b"" at EOF."""
        while not self._buf:
            if self._eof:
                return b""
            await self._wait()
        data = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        return data

    async def read_uvarint(self) -> int:
        """Read one unsigned varint (multiformats rules: minimal, at most 9 bytes)."""
        value = 0
        for i in range(9):
            b = (await self.readexactly(1))[0]
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise VarintError("varint is not minimally encoded")
                return value
        raise VarintError("varint longer than 9 bytes")

    async def read_length_prefixed(self, max_size: int) -> bytes:
        """Read a uvarint length prefix and then that many bytes, refusing lengths above ``max_size``."""
        n = await self.read_uvarint()
        if n > max_size:
            raise MessageTooLarge(f"message of {n} bytes exceeds the limit of {max_size}")
        return await self.readexactly(n)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.pipe.write(data)

    async def drain(self) -> None:
        await self.pipe.drain()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def peek_byte(self) -> int:
        """The next buffered byte without consuming it, or -1 when nothing is buffered."""
        return self._buf[0] if self._buf else -1

    def hand_over(self, receiver: PipeReceiver) -> None:
        """Make ``receiver`` the pipe's receiver: it first gets the bytes buffered here, then EOF or loss if
        they already happened. Use this at every protocol switch so no byte or close is lost."""
        leftover = self.detach()
        self.pipe.set_receiver(receiver)
        if leftover:
            receiver.pipe_data_received(leftover)
        if self._lost:
            receiver.pipe_connection_lost(self._exc)
        elif self._eof:
            receiver.pipe_eof_received()

    def detach(self) -> bytes:
        """Stop receiving; return the bytes read from the pipe but not consumed (for the next layer)."""
        data = bytes(self._buf)
        self._buf.clear()
        if self._paused:
            self._paused = False
            self.pipe.resume_reading()
        return data
