"""In-process memory transport: ``/memory/<n>`` addresses, for tests and single-process networks.

Listeners live in a process-wide registry; ``/memory/0`` picks a free number. Pipes are
:class:`~aiolibp2p.transports.memory.pipe.MemoryPipe` pairs with real asynchronous delivery and backpressure,
so everything above (security, muxers) runs exactly as over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from ...exceptions import DialError, MultiaddrError
from ...multiaddr import Multiaddr
from .pipe import MemoryPipe, memory_pipe_pair

_registry: dict[int, MemoryListener] = {}
_next_port = itertools.count(1_000_000)
_next_dialer_port = itertools.count(1)


def _memory_port(addr: Multiaddr) -> int | None:
    items = addr.items()
    if items and items[-1][0] == "p2p":
        items = items[:-1]
    if len(items) != 1 or items[0][0] != "memory" or items[0][1] is None:
        return None
    return int(items[0][1])


class MemoryListener:
    def __init__(self, port: int, handler: Callable[[MemoryPipe], Awaitable[None]]) -> None:
        self.port = port
        self.addr = Multiaddr(f"/memory/{port}")
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return [self.addr]

    def _accept(self, pipe: MemoryPipe) -> None:
        task = asyncio.ensure_future(self._handler(pipe))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if _registry.get(self.port) is self:
            del _registry[self.port]
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class MemoryTransport:
    name = "memory"

    def can_dial(self, addr: Multiaddr) -> bool:
        return _memory_port(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        return _memory_port(addr) is not None

    async def dial(self, addr: Multiaddr) -> MemoryPipe:
        port = _memory_port(addr)
        if port is None:
            raise MultiaddrError(f"not a memory address: {addr}")
        listener = _registry.get(port)
        if listener is None:
            raise DialError(f"nothing listens on {addr}")
        local = Multiaddr(f"/memory/{next(_next_dialer_port)}")
        a, b = memory_pipe_pair(local, listener.addr)
        listener._accept(b)
        return a

    async def listen(
        self, addr: Multiaddr, handler: Callable[[MemoryPipe], Awaitable[None]]
    ) -> MemoryListener:
        port = _memory_port(addr)
        if port is None:
            raise MultiaddrError(f"not a memory address: {addr}")
        if port == 0:
            port = next(_next_port)
            while port in _registry:
                port = next(_next_port)
        elif port in _registry:
            raise DialError(f"{addr} is already in use")
        listener = MemoryListener(port, handler)
        _registry[port] = listener
        return listener
