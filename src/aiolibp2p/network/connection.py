"""A live libp2p connection (secured + multiplexed) and the protocol streams opened on it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..core.interfaces import Direction, MuxedConnection, MuxedStream
from ..exceptions import ConnectionClosed, DeadlineExceeded, StreamReset

if TYPE_CHECKING:
    from ..crypto.keys import PublicKey
    from ..crypto.peer_id import PeerId
    from ..multiaddr import Multiaddr
    from .resources import ConnectionScope, StreamScope

_conn_ids = itertools.count(1)
_T = TypeVar("_T")


async def _within(aw: Awaitable[_T], timeout: float, what: str) -> _T:
    """``await aw`` bounded by ``timeout`` seconds; DeadlineExceeded(what) when it runs out."""
    try:
        async with asyncio.timeout(timeout):
            return await aw
    except TimeoutError:
        raise DeadlineExceeded(what, timeout) from None


class Stream:
    """A negotiated protocol stream: what handlers receive and ``new_stream`` returns."""

    __slots__ = (
        "_closed",
        "_inner",
        "_on_done",
        "bytes_read",
        "bytes_written",
        "conn",
        "direction",
        "protocol",
        "scope",
    )

    def __init__(
        self,
        inner: MuxedStream,
        conn: Connection,
        protocol: str,
        direction: Direction,
        on_done: Callable[[Stream], None] | None = None,
    ) -> None:
        self._inner = inner
        self.conn = conn
        self.protocol = protocol
        self.direction = direction
        self._on_done = on_done
        self._closed = False
        self.scope: StreamScope | None = None
        self.bytes_read = 0
        """Payload bytes this stream has returned to its reader (metrics; one integer add per read)."""
        self.bytes_written = 0
        """Payload bytes this stream has been given to write."""

    @property
    def remote_peer(self) -> PeerId:
        return self.conn.remote_peer

    @property
    def muxed_stream(self) -> MuxedStream:
        return self._inner

    async def read(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; b"" at EOF. ``timeout`` (s) raises DeadlineExceeded."""
        aw = self._inner.read(max_bytes)
        try:
            data = await (aw if timeout is None else _within(aw, timeout, "stream read"))
        except StreamReset:
            self._done()  # a reset stream is finished: release its resources even if nobody closes it
            raise
        self.bytes_read += len(data)
        return data

    async def readexactly(self, n: int, *, timeout: float | None = None) -> bytes:
        aw = self._inner.readexactly(n)
        try:
            data = await (aw if timeout is None else _within(aw, timeout, "stream read"))
        except StreamReset:
            self._done()
            raise
        self.bytes_read += n
        return data

    async def read_all(self, limit: int, *, timeout: float | None = None) -> bytes:
        """Read until EOF, refusing more than ``limit`` bytes (MessageTooLarge)."""
        from ..exceptions import MessageTooLarge

        buf = bytearray()

        async def _loop() -> None:
            while True:
                chunk = await self._inner.read(65536)
                if not chunk:
                    return
                self.bytes_read += len(chunk)
                buf.extend(chunk)
                if len(buf) > limit:
                    raise MessageTooLarge(f"stream sent more than {limit} bytes", protocol=self.protocol)

        await (_loop() if timeout is None else _within(_loop(), timeout, "stream read"))
        return bytes(buf)

    async def write(self, data: bytes | bytearray | memoryview, *, timeout: float | None = None) -> None:
        self.bytes_written += len(data)
        aw = self._inner.write(data)
        try:
            await (aw if timeout is None else _within(aw, timeout, "stream write"))
        except StreamReset:
            self._done()
            raise

    async def close_write(self) -> None:
        try:
            await self._inner.close_write()
        except StreamReset:
            self._done()
            raise

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            self._done()

    async def reset(self, code: int = 0) -> None:
        try:
            await self._inner.reset(code)
        finally:
            self._done()

    def is_closed(self) -> bool:
        return self._closed or self._inner.is_closed()

    def _done(self) -> None:
        if not self._closed:
            self._closed = True
            if self._on_done is not None:
                self._on_done(self)

    def __repr__(self) -> str:
        return f"<Stream {self.protocol} {self.direction.value} conn={self.conn.id}>"


class Connection:
    """One secured, multiplexed connection to a peer."""

    def __init__(
        self,
        muxed: MuxedConnection,
        *,
        local_peer: PeerId,
        remote_peer: PeerId,
        remote_public_key: PublicKey,
        local_addr: Multiaddr | None,
        remote_addr: Multiaddr | None,
        direction: Direction,
        transport: str,
        security: str,
        muxer: str,
        limited: bool = False,
    ) -> None:
        self.id = next(_conn_ids)
        self.muxed = muxed
        self.local_peer = local_peer
        self.remote_peer = remote_peer
        self.remote_public_key = remote_public_key
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.direction = direction
        self.transport = transport
        self.security = security
        self.muxer = muxer
        self.limited = limited
        self.opened_at = time.monotonic()
        self.identified = asyncio.Event()
        self.streams: set[Stream] = set()
        self.close_cause: str | None = None
        self.close_code = 0
        """The error code the connection was closed with, where the transport carried one."""
        self.scope: ConnectionScope | None = None
        self.negotiating = 0
        """Inbound streams still negotiating their protocol."""
        self._closed_event = asyncio.Event()

    # -- state ------------------------------------------------------------------------------------------
    def is_closed(self) -> bool:
        return self._closed_event.is_set() or self.muxed.is_closed()

    async def wait_closed(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._closed_event.wait()

    def _mark_closed(self, cause: str) -> None:
        if self.close_cause is None:
            self.close_cause = cause
        self._closed_event.set()

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(
            f"connection {self.id} is closed", cause=self.close_cause or "closed", code=self.close_code
        )

    @property
    def num_streams(self) -> int:
        return self.muxed.num_streams

    # -- operations -------------------------------------------------------------------------------------
    def received_within(self, seconds: float) -> bool:
        """True if the muxer got bytes from the peer in the last ``seconds`` (False when it cannot tell)."""
        last = getattr(self.muxed, "last_rx", None)
        return isinstance(last, float) and asyncio.get_running_loop().time() - last <= seconds

    async def open_stream(
        self,
        protocols: Sequence[str],
        *,
        timeout: float,
        on_done: Callable[[Stream], None] | None = None,
        lazy: bool = False,
        scope: StreamScope | None = None,
    ) -> Stream:
        """Open a muxed stream and negotiate one of ``protocols`` on it, all within ``timeout`` seconds.

        ``lazy``: propose ``protocols[0]`` without waiting for the answer (the peer is known to support it);
        the proposal leaves with the first write, and the answer is checked by the first read or, failing
        that, in the background (a refusal resets the stream).

        ``scope`` (the stream's resources) is attached as the stream is made, so that a connection closing
        before the caller resumes still releases it through ``on_done``."""
        from ..multistream import LazyNegotiatedStream, select_protocol

        if self.is_closed():
            raise self._closed_error()
        ms: MuxedStream | None = None
        try:
            async with asyncio.timeout(timeout):
                ms = await self.muxed.open_stream()
                if lazy:
                    proto = protocols[0]
                    ms = LazyNegotiatedStream(ms, proto, verify_in_background=True)
                else:
                    proto = await select_protocol(ms, list(protocols))
        except TimeoutError:
            if ms is not None:
                await ms.reset()
            raise DeadlineExceeded("new stream", timeout) from None
        except BaseException:
            if ms is not None:
                await ms.reset()
            raise
        if self._closed_event.is_set():
            # The connection ended while the open finished; its streams were already finished, so this one
            # would never be (nor its resources released).
            raise self._closed_error()
        s = Stream(ms, self, proto, Direction.OUTBOUND, on_done)
        s.scope = scope
        self.streams.add(s)
        return s

    async def close(self, code: int = 0) -> None:
        """Close gracefully; the remote sees it at once (muxer GoAway / transport close)."""
        if self.close_cause is None:
            self.close_cause = "local-close"
        await self.muxed.close(code)

    def abort(self) -> None:
        if self.close_cause is None:
            self.close_cause = "local-abort"
        self.muxed.abort(None)

    def __repr__(self) -> str:
        return (
            f"<Connection {self.id} {self.direction.value} {self.remote_peer!s} via {self.remote_addr}"
            f" {self.transport}/{self.security}/{self.muxer}{' closed' if self.is_closed() else ''}>"
        )
