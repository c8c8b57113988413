"""In-process byte pipes: two connected :class:`MemoryPipe` ends, for tests and the memory transport.

Delivery is asynchronous (``call_soon``), like a socket's, and backpressure is real: a writer's
:meth:`drain` waits while the other end holds more than ``high_water`` undelivered bytes (for example
because it paused reading).
"""

from __future__ import annotations

import asyncio
from collections import deque

from ...core.pipe import PipeReceiver
from ...exceptions import ConnectionClosed

DEFAULT_HIGH_WATER = 256 * 1024


class MemoryPipe:
    """One end of an in-memory pipe. Create pairs with :func:`memory_pipe_pair`."""

    def __init__(
        self,
        *,
        local_addr: object | None = None,
        remote_addr: object | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self.peer: MemoryPipe | None = None
        self._receiver: PipeReceiver | None = None
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self._paused = False
        self._scheduled = False
        self._closing = False
        self._lost = False
        self._pending_eof = False
        self._pending_lost = False
        self._lost_exc: BaseException | None = None
        self._high_water = high_water
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._local_addr = local_addr
        self._remote_addr = remote_addr
        self._loop = asyncio.get_running_loop()
        self.bytes_written = 0

    # -- addresses ----------------------------------------------------------------------------------------
    @property
    def local_addr(self) -> object | None:
        return self._local_addr

    @property
    def remote_addr(self) -> object | None:
        return self._remote_addr

    # -- receiving ----------------------------------------------------------------------------------------
    def set_receiver(self, receiver: PipeReceiver) -> None:
        self._receiver = receiver
        self._schedule()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and self._receiver is not None and not self._lost:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        r = self._receiver
        if r is None or self._lost:
            return
        while self._inbox and not self._paused:
            data = self._inbox.popleft()
            self._inbox_bytes -= len(data)
            r.pipe_data_received(data)
            if self._receiver is not r:  # a layer switch happened inside the callback
                self._schedule()
                break
        if self.peer is not None:
            self.peer._wake_drainers()
        if not self._inbox and not self._paused and self._receiver is r:
            if self._pending_eof:
                self._pending_eof = False
                r.pipe_eof_received()
            if self._pending_lost:
                self._pending_lost = False
                self._finish_lost(self._lost_exc)

    def _finish_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._inbox.clear()
        self._inbox_bytes = 0
        self._wake_drainers()
        if self._receiver is not None:
            self._receiver.pipe_connection_lost(exc)

    # -- called by the other end ----------------------------------------------------------------------------
    def _enqueue(self, data: bytes) -> None:
        if self._lost:
            return
        self._inbox.append(data)
        self._inbox_bytes += len(data)
        self._schedule()

    def _remote_closed(self) -> None:
        self._pending_eof = True
        self._pending_lost = True
        self._lost_exc = None
        self._schedule()

    def _remote_aborted(self) -> None:
        self._inbox.clear()
        self._inbox_bytes = 0
        self._lost_exc = ConnectionResetError("memory pipe reset by peer")
        if self._receiver is None:
            self._pending_lost = True
            return
        self._finish_lost(self._lost_exc)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # -- sending ------------------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self.peer is None:
            raise ConnectionClosed("write on a closed memory pipe", cause="local-closed")
        if data:
            b = bytes(data)
            self.bytes_written += len(b)
            self.peer._enqueue(b)

    async def drain(self) -> None:
        while True:
            if self._closing:
                raise ConnectionClosed("memory pipe closed", cause="closed")
            peer = self.peer
            if peer is None or peer._inbox_bytes <= self._high_water:
                return
            fut = self._loop.create_future()
            self._drain_waiters.append(fut)
            peer._drain_waiters.append(fut)
            await fut

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        peer = self.peer
        if peer is not None:
            peer._remote_closed()
        self._loop.call_soon(self._finish_lost, None)

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        peer = self.peer
        if peer is not None and not peer._lost:
            peer._remote_aborted()
        self._finish_lost(None)

    def is_closing(self) -> bool:
        return self._closing


def memory_pipe_pair(
    addr_a: object | None = None, addr_b: object | None = None, *, high_water: int = DEFAULT_HIGH_WATER
) -> tuple[MemoryPipe, MemoryPipe]:
    """Two connected pipe ends. Must be called with a running event loop."""
    a = MemoryPipe(local_addr=addr_a, remote_addr=addr_b, high_water=high_water)
    b = MemoryPipe(local_addr=addr_b, remote_addr=addr_a, high_water=high_water)
    a.peer, b.peer = b, a
    return a, b
