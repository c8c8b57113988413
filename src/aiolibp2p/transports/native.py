"""What QUIC and WebRTC-direct connections share: transports that bring their own streams.

Such a connection is at once the swarm's secured, multiplexed connection (``MuxedConnection``), its own
session and its own muxer: no security or muxer upgrade runs over it. This base keeps the streams, hands
inbound ones to the swarm's handler (holding those that arrive before it is set), runs the close callback
exactly once, and ends the connection in one order for both transports: ``_terminate`` fails the handshake
waiter and every stream, then runs the close callback, and ``_finish`` (after ``close_linger``, or at once on
``abort``) lets the endpoint forget it. The subclass supplies what goes on the wire and its own timers and
waiters through the hooks below.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from ..core.interfaces import Direction, MuxedStream, StreamCallback
from ..exceptions import ConnectionClosed, DeadlineExceeded

if TYPE_CHECKING:
    from ..multiaddr import Multiaddr

    class _Config(Protocol):
        @property
        def close_linger(self) -> float: ...

    class _Endpoint(Protocol):
        def forget(self, conn: Any) -> None: ...


__all__ = ["NativeConnection"]


class NativeStream(MuxedStream, Protocol):
    def fail(self, exc: BaseException) -> None:
        """The stream is over: every waiter and every later call raises ``exc`` (``BufferedStream.fail``)."""


S = TypeVar("S", bound=NativeStream)


class NativeConnection(Generic[S]):
    """Base of ``QuicConnection`` and ``WebRtcConnection`` (streams of type ``S``)."""

    security_protocol: str
    muxer: str
    handshake_name: str  # for the DeadlineExceeded of wait_handshake

    def __init__(
        self,
        endpoint: _Endpoint,
        config: _Config,
        direction: Direction,
        remote_sockaddr: tuple[Any, ...],
        local_addr: Multiaddr,
        remote_addr: Multiaddr,
    ) -> None:
        self.endpoint = endpoint
        self.direction = direction
        self.remote_sockaddr = remote_sockaddr
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.config = config
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, S] = {}
        self._pending_inbound: deque[S] = deque()
        self._inbound_cb: StreamCallback | None = None
        self._close_cb: Callable[[BaseException | None], None] | None = None
        self._close_cb_done = False
        self._closed_exc: ConnectionClosed | None = None
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        self.terminated = False  # over and forgotten by the endpoint

    # what the swarm reads from a capable connection (it is its own session, muxer and address holder)
    @property
    def session(self) -> Self:
        return self

    @property
    def muxed(self) -> Self:
        return self

    # -- MuxedConnection -------------------------------------------------------------------------------
    @property
    def num_streams(self) -> int:
        return len(self._streams)

    def is_closed(self) -> bool:
        return self._closed_exc is not None

    def set_inbound_stream_handler(self, callback: StreamCallback) -> None:
        self._inbound_cb = callback
        while self._pending_inbound:
            s = self._pending_inbound.popleft()
            if not s.is_closed():  # reset (or over) before anyone could handle it: nothing to hand over
                callback(s)

    def set_close_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        self._close_cb = callback
        if self._closed_exc is not None and not self._close_cb_done:
            self._close_cb_done = True
            callback(self._closed_exc)

    async def close(self, code: int = 0) -> None:
        if self._closed_exc is not None:
            return
        self._send_close(code, "")
        self._terminate(ConnectionClosed("connection closed locally", cause="local-close", code=code))

    def abort(self, exc: BaseException | None = None) -> None:
        """Tear down at once; the remote is still told (as by ``close``) if the socket is open."""
        if self._closed_exc is None:
            self._send_close(0, "aborted")
            cause = getattr(exc, "cause", None) or "aborted"
            self._terminate(ConnectionClosed(f"connection aborted: {exc!r}", cause=cause))
        self._finish()

    async def wait_handshake(self, timeout: float) -> None:
        """Until the handshake completed; past ``timeout`` the connection is aborted."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.handshake)
        except TimeoutError:
            self.abort(DeadlineExceeded(self.handshake_name, timeout))
            raise DeadlineExceeded(self.handshake_name, timeout) from None

    # -- hooks -----------------------------------------------------------------------------------------------
    def _send_close(self, code: int, reason: str) -> None:
        """Tell the remote the connection is closed (with ``code`` where the transport carries one)."""
        raise NotImplementedError

    def _stop_timers(self) -> None:
        """First step of ``_terminate``: stop the timers that serve the application (keep-alive, checks)."""

    def _handshake_failure(self, exc: ConnectionClosed) -> BaseException:
        """What a handshake waiter gets when the connection ends before the handshake completed."""
        return exc

    def _fail_stream(self, s: S, exc: ConnectionClosed) -> None:
        s.fail(exc)

    def _on_terminated(self, exc: ConnectionClosed) -> None:
        """After the streams failed, before the close callback: fail the transport's own waiters."""

    def _forget(self) -> None:
        """Last step of ``_finish``: stop every timer left and leave the endpoint."""
        self.endpoint.forget(self)

    # -- ending ----------------------------------------------------------------------------------------------
    def fail_handshake(self, exc: BaseException) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc)
            self.handshake.exception()  # retrieved: nobody may be waiting any more

    def _terminate(self, exc: ConnectionClosed) -> None:
        """The connection is over for the application: fail streams and waiters, run the close callback."""
        if self._closed_exc is not None:
            return
        self._closed_exc = exc
        self._stop_timers()
        self.fail_handshake(self._handshake_failure(exc))
        for s in list(self._streams.values()):
            self._fail_stream(s, exc)
        self._streams.clear()
        self._pending_inbound.clear()
        self._on_terminated(exc)
        if self._close_cb is not None and not self._close_cb_done:
            self._close_cb_done = True
            self._close_cb(exc)
        # keep answering for a moment (repeat the close, absorb stray packets), then forget
        self._loop.call_later(self.config.close_linger, self._finish)

    def _finish(self) -> None:
        if self.terminated:
            return
        self.terminated = True
        if self._closed_exc is None:
            self._terminate(ConnectionClosed("connection ended", cause="closed"))
        self._forget()
