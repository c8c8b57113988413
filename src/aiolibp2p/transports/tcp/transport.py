"""TCP transport: raw byte pipes over TCP, driven by ``asyncio.Protocol`` callbacks.

Addresses: ``/ip4|ip6/<addr>/tcp/<port>`` (and ``/dns|dns4|dns6/<name>/tcp/<port>`` for dialing). No reader task:
the event loop calls :meth:`TcpPipe.data_received`, which hands the bytes straight to the layer above
(security channel during the upgrade, then the muxer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from ...core.pipe import PipeReceiver
from ...dns.families import socket_family
from ...exceptions import ConnectionClosed, DialError, MultiaddrError
from ...multiaddr import Multiaddr

__all__ = ["TcpConfig", "TcpListener", "TcpPipe", "TcpTransport"]

_DIALABLE_HOSTS = ("ip4", "ip6", "dns", "dns4", "dns6")


@dataclass(frozen=True, slots=True)
class TcpConfig:
    dial_timeout: float = 5.0
    """Seconds a TCP connect may take (go: 5 s for local, 15 s otherwise)."""
    listen_backlog: int = 1024
    write_high_water: int = 1024 * 1024
    """Send-buffer size above which :meth:`TcpPipe.drain` waits."""
    write_low_water: int = 256 * 1024
    close_linger: float = 2.0
    """Seconds ``close()`` keeps reading (and discarding) after its FIN, waiting for the peer's FIN. Closing
    a socket with unread input makes the kernel send an RST, which the peer reports as a connection error
    (and which can destroy our last frames, a GoAway, in its receive queue)."""


def sockaddr_to_multiaddr(sockaddr: tuple[object, ...] | None) -> Multiaddr | None:
    if not sockaddr:
        return None
    return Multiaddr.from_sockaddr(sockaddr, "tcp")


class TcpPipe(asyncio.Protocol):
    """One TCP connection as a :class:`~aiolibp2p.core.pipe.Pipe`."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_config",
        "_drain_waiters",
        "_eof",
        "_linger",
        "_local_addr",
        "_lost",
        "_lost_exc",
        "_on_made",
        "_receiver",
        "_remote_addr",
        "_transport",
        "_write_paused",
    )

    def __init__(
        self, config: TcpConfig | None = None, on_made: Callable[[TcpPipe], None] | None = None
    ) -> None:
        self._config = config or TcpConfig()
        self._on_made = on_made
        self._transport: asyncio.Transport | None = None
        self._receiver: PipeReceiver | None = None
        self._buffer: list[bytes] = []
        self._eof = False
        self._lost = False
        self._lost_exc: BaseException | None = None
        self._closed = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._linger: asyncio.TimerHandle | None = None
        self._local_addr: Multiaddr | None = None
        self._remote_addr: Multiaddr | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast rather than a check.
        self._transport = cast(asyncio.Transport, transport)
        transport = self._transport
        # TCP_NODELAY: both asyncio and uvloop set it on every TCP transport they make (asking for the socket
        # object to set it again cost ~45 us per connection on uvloop).
        transport.set_write_buffer_limits(
            high=self._config.write_high_water, low=self._config.write_low_water
        )
        self._local_addr = sockaddr_to_multiaddr(transport.get_extra_info("sockname"))
        self._remote_addr = sockaddr_to_multiaddr(transport.get_extra_info("peername"))
        if self._on_made is not None:
            on_made, self._on_made = self._on_made, None
            on_made(self)

    def data_received(self, data: bytes) -> None:
        r = self._receiver
        if r is None:
            self._buffer.append(data)
        else:
            r.pipe_data_received(data)

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._receiver is not None:
            self._receiver.pipe_eof_received()
        # libp2p layers above TCP do not half-close the raw socket: a FIN means the peer is done. Let asyncio
        # close the transport, which leads to connection_lost.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._lost_exc = exc
        self._closed = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._wake_drainers(exc)
        if self._receiver is not None:
            self._receiver.pipe_connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # -- Pipe -------------------------------------------------------------------------------------------
    def set_receiver(self, receiver: PipeReceiver) -> None:
        self._receiver = receiver
        buffered = self._buffer
        while buffered:
            receiver.pipe_data_received(buffered.pop(0))
            if self._receiver is not receiver:
                # A layer switch inside the callback: the nested set_receiver delivered what was left.
                return
        if self._lost:
            receiver.pipe_connection_lost(self._lost_exc)
        elif self._eof:
            receiver.pipe_eof_received()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        t = self._transport
        if t is None or self._closed or t.is_closing():
            raise ConnectionClosed("write on a closed TCP connection", cause="local-closed")
        t.write(data)

    def write_blocked(self) -> bool:
        """True when :meth:`drain` would wait or raise (the send buffer is above its high-water mark, or the
        connection is gone); False means it would return at once."""
        return self._write_paused or self._lost

    async def drain(self) -> None:
        while self._write_paused:
            if self._closed:
                break
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut
        if self._lost:
            raise ConnectionClosed("TCP connection lost", cause="remote-closed") from self._lost_exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        t = self._transport
        if t is None:
            return
        if self._eof or self._lost or self._config.close_linger <= 0 or not t.can_write_eof():
            t.close()
            return
        # Lingering close: FIN after the queued bytes, then read (input goes to the closed receiver, which
        # drops it) until the peer's FIN closes the transport, or close_linger runs out.
        try:
            t.write_eof()
            t.resume_reading()
        except (OSError, RuntimeError):
            t.close()
            return
        self._linger = asyncio.get_running_loop().call_later(self._config.close_linger, t.abort)

    def abort(self) -> None:
        if self._transport is not None and not self._lost:
            self._closed = True
            self._transport.abort()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def is_closing(self) -> bool:
        return self._closed or self._transport is None or self._transport.is_closing()

    @property
    def local_addr(self) -> Multiaddr | None:
        return self._local_addr

    @property
    def remote_addr(self) -> Multiaddr | None:
        return self._remote_addr


class TcpListener:
    def __init__(
        self, server: asyncio.Server, addrs: list[Multiaddr], tasks: set[asyncio.Task[None]]
    ) -> None:
        self._server = server
        self._addrs = addrs
        self._tasks = tasks

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def close(self) -> None:
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        except TimeoutError:
            pass


def _tcp_host_port(addr: Multiaddr) -> tuple[str, str, int] | None:
    """(host protocol, host, port) when ``addr`` is exactly host/tcp/port (optionally /p2p/...)."""
    items = addr.items()
    if items and items[-1][0] == "p2p":
        items = items[:-1]
    if len(items) != 2 or items[0][0] not in _DIALABLE_HOSTS or items[1][0] != "tcp":
        return None
    host, port = items[0][1], items[1][1]
    assert host is not None and port is not None
    return items[0][0], host, int(port)


class TcpTransport:
    """Dials and listens on TCP. Produces raw pipes; the upgrader secures and multiplexes them."""

    name = "tcp"

    def __init__(self, config: TcpConfig | None = None) -> None:
        self.config = config or TcpConfig()

    def can_dial(self, addr: Multiaddr) -> bool:
        return _tcp_host_port(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        hp = _tcp_host_port(addr)
        return hp is not None and hp[0] in ("ip4", "ip6")

    async def dial(self, addr: Multiaddr) -> TcpPipe:
        hp = _tcp_host_port(addr)
        if hp is None:
            raise MultiaddrError(f"not a TCP address: {addr}")
        proto, host, port = hp
        family = socket_family(proto)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.config.dial_timeout):
                _, pipe = await loop.create_connection(
                    lambda: TcpPipe(self.config), host, port, family=family
                )
        except TimeoutError:
            raise DialError(f"TCP connect to {addr} timed out after {self.config.dial_timeout:g} s") from None
        except OSError as e:
            raise DialError(f"TCP connect to {addr} failed: {e}") from e
        return pipe

    async def listen(self, addr: Multiaddr, handler: Callable[[TcpPipe], Awaitable[None]]) -> TcpListener:
        hp = _tcp_host_port(addr)
        if hp is None or hp[0] not in ("ip4", "ip6"):
            raise MultiaddrError(f"cannot listen on {addr}")
        _, host, port = hp
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def start_upgrade(pipe: TcpPipe) -> None:
            # Called from connection_made (uvloop may call it a loop turn after the factory).
            task: asyncio.Task[None] = asyncio.ensure_future(handler(pipe))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def factory() -> TcpPipe:
            return TcpPipe(self.config, on_made=start_upgrade)

        try:
            server = await loop.create_server(
                factory, host, port, backlog=self.config.listen_backlog, reuse_address=True
            )
        except OSError as e:
            raise DialError(f"cannot listen on {addr}: {e}") from e
        addrs = []
        for sock in server.sockets:
            ma = sockaddr_to_multiaddr(sock.getsockname())
            if ma is not None:
                addrs.append(ma)
        return TcpListener(server, addrs, tasks)
