"""The plaintext side shared by the secured pipes (:class:`~.noise.transport.NoisePipe`,
:class:`~.tls.transport.TlsPipe`).

A secured pipe is the raw pipe's receiver and a :class:`~aiolibp2p.core.pipe.Pipe` of plaintext to the layer
above. This base holds what does not depend on the cipher: the receiver and the plaintext held until one is
set (bounded by :data:`MAX_UNDELIVERED`, beyond which the raw pipe is paused), EOF and connection-loss
propagation, the call_soon flush of coalesced writes, drain, close and abort. A subclass decrypts in
``pipe_data_received``/``pipe_eof_received`` (handing plaintext to :meth:`SecurePipe._deliver` and EOF to
:meth:`SecurePipe._deliver_eof`), coalesces in ``write``, and encrypts and writes to the raw pipe in
:meth:`SecurePipe._encrypt`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final

from ..core.pipe import Pipe, PipeReceiver
from ..exceptions import ConnectionClosed

__all__ = ["MAX_UNDELIVERED", "SecurePipe"]

MAX_UNDELIVERED: Final = 1024 * 1024  # plaintext held while no receiver is set; beyond it reading pauses


class SecurePipe(ABC):
    """Receiver handling, buffering, flow control and shutdown of a secured pipe; see the module docstring."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_backlog_paused",
        "_closing",
        "_eof",
        "_error",
        "_flush_handle",
        "_loop",
        "_lost",
        "_lost_exc",
        "_lost_reported",
        "_pending",
        "_raw",
        "_raw_write_blocked",
        "_receiver",
    )

    _label: ClassVar[str]  # the protocol's name in error messages ("Noise", "TLS")

    def __init__(self, raw: Pipe) -> None:
        self._raw = raw
        self._raw_write_blocked: Callable[[], bool] | None = getattr(raw, "write_blocked", None)
        self._loop = asyncio.get_running_loop()
        self._receiver: PipeReceiver | None = None
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._backlog_paused = False
        self._pending = bytearray()  # plaintext written this loop iteration, less than one frame/record
        self._flush_handle: asyncio.Handle | None = None
        self._closing = False
        self._eof = False  # an EOF waiting to be delivered
        self._lost = False
        self._lost_reported = False
        self._lost_exc: BaseException | None = None
        self._error: BaseException | None = None

    # -- cipher hooks ------------------------------------------------------------------------------------
    @abstractmethod
    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and write it to the raw pipe; on a cipher failure ``_fail`` and raise
        ConnectionClosed."""

    def _close_notify(self) -> None:  # noqa: B027 (an optional hook)
        """Write what a graceful close sends after the pending plaintext (nothing by default)."""

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

    def _deliver(self, plaintext: bytes) -> None:
        r = self._receiver
        if r is not None and not self._backlog:
            r.pipe_data_received(plaintext)
            return
        self._backlog.append(plaintext)
        self._backlog_bytes += len(plaintext)
        if self._backlog_bytes > MAX_UNDELIVERED and not self._backlog_paused:
            self._backlog_paused = True
            self._raw.pause_reading()

    def _deliver_eof(self) -> None:
        self._eof = True
        if self._receiver is not None and not self._backlog:
            self._eof = False
            self._receiver.pipe_eof_received()

    # -- PipeReceiver of the raw pipe (the data callbacks are the subclass's) --------------------------
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

    # -- Pipe: sending (``write`` is the subclass's) -----------------------------------------------------
    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _flush(self) -> None:
        self._cancel_flush()
        pending = self._pending
        if not pending or self._lost:
            return
        try:
            self._encrypt(pending)
        except ConnectionClosed:
            pass  # the raw pipe's loss is reported to the receiver through pipe_connection_lost
        pending.clear()

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue plaintext; small writes coalesce until the loop turns (or :meth:`write_now`)."""

    def write_now(self, data: bytes | bytearray) -> None:
        """:meth:`write`, then encrypt and hand to the raw pipe at once rather than when the loop turns: for a
        writer that coalesced its output already (a muxer session's flush)."""
        self.write(data)
        if self._pending:
            self._flush()

    def write_blocked(self) -> bool:
        """True when :meth:`drain` would wait or raise; a raw pipe that cannot tell counts as blocked."""
        if self._lost:
            return True
        blocked = self._raw_write_blocked
        return True if blocked is None else blocked()

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionClosed(
                f"{self._label} pipe closed", cause="error" if self._lost_exc else "closed"
            )
        await self._raw.drain()

    def close(self) -> None:
        """Graceful close: flush pending writes (then :meth:`_close_notify`), close the raw pipe."""
        if self._closing:
            return
        self._closing = True
        if not self._lost:
            self._flush()
            self._close_notify()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._cancel_flush()
        self._pending.clear()
        self._raw.abort()
