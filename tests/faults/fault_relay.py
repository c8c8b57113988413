"""A user-space TCP relay for fault injection: clients connect to the relay, which forwards to ``upstream``.

Faults apply to every link, current and future:

- ``set_latency(s)``: each chunk is delivered ``s`` seconds after it was read, in each direction;
- ``stall()``: stop reading (bytes pile up in the kernel buffers; nothing closes) until ``resume()``;
- ``blackhole()``: keep reading but drop everything (the sender's TCP is happy; nothing arrives);
- ``cut()``: abort both sockets of every link with an RST;
- ``close_links()``: close both sockets gracefully (FIN).

Every buffer is bounded (a queue of at most ``max_queued`` chunks per direction).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["FaultRelay"]


def _rst_abort(writer: asyncio.StreamWriter) -> None:
    """Abort with an RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.transport.is_closing():
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    def __init__(
        self,
        relay: FaultRelay,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.relay = relay
        self.writers = (client[1], upstream[1])
        self.tasks = [
            *self._direction(client[0], upstream[1], "up"),
            *self._direction(upstream[0], client[1], "down"),
        ]

    def _direction(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, name: str
    ) -> list[asyncio.Task[None]]:
        q: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(self.relay.max_queued)
        loop = asyncio.get_running_loop()

        async def pump_in() -> None:
            try:
                while True:
                    await self.relay._flowing.wait()
                    data = await r.read(65536)
                    await self.relay._flowing.wait()  # stalled meanwhile: hold this chunk
                    if not data:
                        break
                    if self.relay._blackhole:
                        continue
                    await q.put((loop.time() + self.relay.latency, data))
            except (ConnectionError, OSError):
                pass
            # A silent fault keeps this side's end (FIN or RST) from reaching the other side.
            await self.relay._flowing.wait()
            await self.relay._passing.wait()
            await q.put(None)

        async def pump_out() -> None:
            try:
                while (item := await q.get()) is not None:
                    due, data = item
                    if (delay := due - loop.time()) > 0:
                        await asyncio.sleep(delay)
                    if self.relay._blackhole:
                        continue
                    w.write(data)
                    await w.drain()
                if w.can_write_eof():
                    w.write_eof()
            except (ConnectionError, OSError):
                pass

        return [
            asyncio.ensure_future(pump_in()),
            asyncio.ensure_future(pump_out()),
        ]

    def abort(self, rst: bool) -> None:
        for w in self.writers:
            if rst:
                _rst_abort(w)
            else:
                w.close()
        for t in self.tasks:
            t.cancel()


class FaultRelay:
    def __init__(self, upstream: tuple[str, int], *, latency: float = 0.0, max_queued: int = 256) -> None:
        self.upstream = upstream
        self.latency = latency
        self.max_queued = max_queued
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._blackhole = False
        self._passing = asyncio.Event()  # set while not black-holed
        self._passing.set()
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def multiaddr(self, peer_id: object) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{peer_id}"

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            _rst_abort(w)
            return
        link = _Link(self, (r, w), (ur, uw))
        self._links.append(link)
        await asyncio.gather(*link.tasks, return_exceptions=True)
        for wr in link.writers:
            wr.close()

    @property
    def links(self) -> int:
        return len(self._links)

    # -- faults -----------------------------------------------------------------------------------------------
    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._blackhole = False
        self._passing.set()
        self._flowing.set()

    def blackhole(self) -> None:
        self._blackhole = True
        self._passing.clear()

    def cut(self) -> None:
        for link in self._links:
            link.abort(rst=True)

    def close_links(self) -> None:
        for link in self._links:
            link.abort(rst=False)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        tasks = [t for link in self._links for t in link.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
