"""WebSocket transport: raw byte pipes over WebSocket binary messages (libp2p ``websockets/README.md``).

Addresses (spec "Addressing"): ``/ip4|ip6|dns|dns4|dns6/<host>[/tcp/<port>]`` followed by ``/ws``, ``/wss``,
``/tls/ws`` or ``/tls/sni/<name>/ws``, then an optional ``/http-path/<percent-encoded path>``. Without a TCP
port, ``ws`` means port 80 and the secure forms port 443. ``/wss`` and ``/tls/ws`` are the same thing.

The WebSocket carries an opaque byte stream: libp2p negotiates Noise and yamux over it with multistream-select
exactly as over TCP, also over ``wss`` (the double encryption is intentional, spec "Encryption").

The RFC 6455 machinery is the ``websockets`` package's sans-I/O engine (``ClientProtocol`` /
``ServerProtocol``), driven from :class:`WebSocketPipe`, an ``asyncio.Protocol``: no reader task. Bytes of
every binary (or text) frame go straight to the pipe's receiver as they are parsed, so a peer's message
boundaries carry no meaning. :meth:`WebSocketPipe.write` sends each write as one binary message, split into
messages of at most :attr:`WebSocketConfig.max_frame_size` bytes. Pings are answered by the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, PayloadTooBig, ProtocolError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import WebSocketURI

try:
    from websockets.speedups import apply_mask  # the C extension, as websockets.frames uses it
except ImportError:  # pragma: no cover - a build of websockets without its C extension
    from websockets.utils import apply_mask

from ...core.pipe import PipeReceiver
from ...dns.families import socket_family
from ...exceptions import (
    ConnectionClosed,
    DialError,
    HandshakeError,
    MessageTooLarge,
    MultiaddrError,
    ProtocolViolation,
)
from ...multiaddr import Multiaddr

__all__ = [
    "WebSocketAddr",
    "WebSocketConfig",
    "WebSocketHandshakeError",
    "WebSocketListener",
    "WebSocketPipe",
    "WebSocketTransport",
    "parse_websocket_multiaddr",
]

log = logging.getLogger(__name__)
# websockets logs every accepted connection at INFO; keep that under our name and one level down.
_wire_log = logging.getLogger(__name__ + ".wire")

PROTOCOL_NAME = "websocket"
DEFAULT_WS_PORT = 80
DEFAULT_WSS_PORT = 443
_HOST_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")


class WebSocketHandshakeError(HandshakeError, DialError):
    """The HTTP upgrade failed: refused (``status`` set), not WebSocket, or timed out."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        DialError.__init__(self, message)
        self.status = status


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """Limits and TLS settings of the WebSocket transport. Every limit is named here."""

    dial_timeout: float = 5.0
    """Seconds a TCP connect may take (TLS and the HTTP upgrade have their own bound)."""
    handshake_timeout: float = 10.0
    """Seconds for the TLS handshake plus the HTTP upgrade, on either side."""
    close_timeout: float = 3.0
    """Seconds the WebSocket closing handshake (and flushing what was queued before it) may take before the
    TCP connection is dropped."""
    max_message_size: int = 4 * 1024 * 1024
    """Largest incoming message (all its fragments); a larger one closes the connection with 1009."""
    max_frame_size: int = 1024 * 1024
    """Largest message this side sends; longer writes are split. Peers accept ≥ 1 MiB (go, js: far more)."""
    listen_backlog: int = 1024
    write_high_water: int = 1024 * 1024
    """Send-buffer size above which :meth:`WebSocketPipe.drain` waits."""
    write_low_water: int = 256 * 1024
    server_ssl: ssl.SSLContext | None = None
    """Certificate and key for ``/wss`` and ``/tls/ws`` listeners (required to listen on them)."""
    client_ssl: ssl.SSLContext | None = None
    """Context for dialing ``/wss``; default: the system's trusted CAs with hostname checking."""
    default_path: str = "/"
    """HTTP path of the upgrade request when the address has no ``/http-path``."""


_FIN_BINARY = 0x82  # FIN + opcode 2
_HEAD_SHORT = struct.Struct("!BB")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


# --- addresses -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebSocketAddr:
    """A parsed WebSocket multiaddr."""

    host_protocol: str  # ip4 / ip6 / dns / dns4 / dns6
    host: str
    port: int
    secure: bool
    sni: str | None
    path: str  # the HTTP path, decoded, starting with "/" (empty when the address has none)
    scheme_suffix: str  # "/ws", "/wss" or "/tls/ws": how the address spelled the WebSocket part
    suffix: str  # everything after /tcp/<port> as given (without /p2p), e.g. "/tls/sni/x/ws/http-path/a"


def parse_websocket_multiaddr(addr: Multiaddr) -> WebSocketAddr | None:
    """Parse ``addr`` as a WebSocket address (a trailing ``/p2p/<id>`` is allowed); None if it is not one."""
    items = addr.items()
    if items and items[-1][0] == "p2p":
        items = items[:-1]
    if len(items) < 2 or items[0][0] not in _HOST_PROTOCOLS or items[0][1] is None:
        return None
    host_protocol, host = items[0][0], items[0][1]
    i = 1
    port: int | None = None
    if items[i][0] == "tcp":
        port = int(cast(str, items[i][1]))
        i += 1
    rest = items[i:]
    names = [n for n, _ in rest]
    sni: str | None = None
    if names[:1] == ["ws"]:
        secure, scheme, n = False, "/ws", 1
    elif names[:1] == ["wss"]:
        secure, scheme, n = True, "/wss", 1
    elif names[:2] == ["tls", "ws"]:
        secure, scheme, n = True, "/tls/ws", 2
    elif names[:3] == ["tls", "sni", "ws"]:
        secure, scheme, n = True, "/tls/ws", 3
        sni = rest[1][1]
    else:
        return None
    path = ""
    tail = rest[n:]
    if tail:
        if len(tail) != 1 or tail[0][0] != "http-path":
            return None
        raw = addr.raw_value_for_protocol("http-path")
        if raw is None:
            return None
        path = raw.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = "/" + path
    if port is None:
        port = DEFAULT_WSS_PORT if secure else DEFAULT_WS_PORT
    suffix = "".join(f"/{name}" if value is None else f"/{name}/{value}" for name, value in rest)
    return WebSocketAddr(host_protocol, host, port, secure, sni, path, scheme, suffix)


def _tcp_multiaddr(sockaddr: tuple[object, ...] | None, suffix: str) -> Multiaddr | None:
    if not sockaddr:
        return None
    return Multiaddr.from_sockaddr(sockaddr, "tcp", Multiaddr(suffix) if suffix else None)


def _binary_frame(
    payload: bytes | bytearray | memoryview, masked: bool
) -> tuple[bytes, bytes | bytearray | memoryview]:
    """Header and payload of one final binary frame; clients mask (RFC 6455 §5.3)."""
    n = len(payload)
    second = 0x80 if masked else 0
    if n < 126:
        header = _HEAD_SHORT.pack(_FIN_BINARY, second | n)
    elif n < 65536:
        header = _HEAD_16.pack(_FIN_BINARY, second | 126, n)
    else:
        header = _HEAD_64.pack(_FIN_BINARY, second | 127, n)
    if not masked:
        return header, payload
    mask = os.urandom(4)
    return header + mask, apply_mask(payload, mask)


def _request_target(path: str) -> str:
    return urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%")


# --- the pipe ------------------------------------------------------------------------------------------


class WebSocketPipe(asyncio.Protocol):
    """One WebSocket connection as a :class:`~aiolibp2p.core.pipe.Pipe`.

    Client side: created by :meth:`WebSocketTransport.dial`, which awaits :meth:`wait_open`. Server side:
    created by the listener; ``on_open`` runs once the upgrade succeeded (it starts the libp2p upgrade).
    """

    __slots__ = (
        "_buffer",
        "_close_timer",
        "_closed",
        "_config",
        "_drain_waiters",
        "_eof",
        "_expected_path",
        "_handshake_timer",
        "_local_addr",
        "_local_suffix",
        "_lost",
        "_lost_exc",
        "_masked",
        "_on_open",
        "_on_rejected",
        "_open",
        "_opened",
        "_receiver",
        "_remote_addr",
        "_remote_suffix",
        "_transport",
        "_write_paused",
        "_ws",
    )

    def __init__(
        self,
        config: WebSocketConfig,
        *,
        client_uri: WebSocketURI | None = None,
        expected_path: str | None = None,
        local_suffix: str = "/ws",
        remote_suffix: str = "/ws",
        on_open: Callable[[WebSocketPipe], None] | None = None,
        on_rejected: Callable[[WebSocketPipe, WebSocketHandshakeError], None] | None = None,
    ) -> None:
        self._config = config
        self._ws: ClientProtocol | ServerProtocol
        max_size = config.max_message_size
        self._masked = client_uri is not None
        if client_uri is not None:
            self._ws = ClientProtocol(client_uri, max_size=max_size, logger=_wire_log)
        else:
            self._ws = ServerProtocol(max_size=max_size, logger=_wire_log)
        self._expected_path = expected_path
        self._local_suffix = local_suffix
        self._remote_suffix = remote_suffix
        self._on_open = on_open
        self._on_rejected = on_rejected
        self._transport: asyncio.Transport | None = None
        self._receiver: PipeReceiver | None = None
        self._buffer: list[bytes] = []
        self._open = False
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._eof = False
        self._lost = False
        self._lost_exc: BaseException | None = None
        self._closed = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._local_addr: Multiaddr | None = None
        self._remote_addr: Multiaddr | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast rather than a check.
        self._transport = t = cast(asyncio.Transport, transport)
        sock = t.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        t.set_write_buffer_limits(high=self._config.write_high_water, low=self._config.write_low_water)
        self._local_addr = _tcp_multiaddr(t.get_extra_info("sockname"), self._local_suffix)
        self._remote_addr = _tcp_multiaddr(t.get_extra_info("peername"), self._remote_suffix)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._config.handshake_timeout, self._handshake_timed_out)
        ws = self._ws
        if isinstance(ws, ClientProtocol):
            ws.send_request(ws.connect())
            self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        try:
            ws.receive_data(data)
        except EOFError:  # data after the engine saw the end of the stream: nothing to do with it
            return
        events = ws.events_received()
        if events:
            self._process(events)
        self._flush()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._flush()
        self._set_eof()
        return None  # let asyncio close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closed = True
        self._cancel_timers()
        ws = self._ws
        lost_exc: BaseException | None = exc
        parser_exc = ws.parser_exc
        if isinstance(parser_exc, PayloadTooBig):
            lost_exc = MessageTooLarge(f"WebSocket message too large: {parser_exc}", protocol=PROTOCOL_NAME)
        elif isinstance(parser_exc, (ProtocolError, UnicodeDecodeError)):
            lost_exc = ProtocolViolation(f"WebSocket protocol error: {parser_exc}", protocol=PROTOCOL_NAME)
        self._lost_exc = lost_exc
        if not self._opened.done() and not self._open:
            err = self._handshake_error("connection closed during the WebSocket handshake")
            if exc is not None and err.__cause__ is None:
                err.__cause__ = exc
            self._reject(err)
        self._wake_drainers()
        if self._receiver is not None:
            self._receiver.pipe_connection_lost(lost_exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers()

    # -- engine events ----------------------------------------------------------------------------------
    def _process(self, events: list[Request | Response | Frame]) -> None:
        for ev in events:
            if isinstance(ev, Frame):
                op = ev.opcode
                if op is Opcode.BINARY or op is Opcode.CONT or op is Opcode.TEXT:
                    if ev.data:
                        data = ev.data
                        self._deliver(data if type(data) is bytes else bytes(data))
                elif op is Opcode.CLOSE:
                    # The remote is done sending; the engine has echoed the close frame.
                    self._set_eof()
            elif isinstance(ev, Request):
                self._on_request(ev)
            else:
                self._on_response(ev)

    def _deliver(self, data: bytes) -> None:
        r = self._receiver
        if r is None:
            self._buffer.append(data)
        else:
            r.pipe_data_received(data)

    def _set_eof(self) -> None:
        if self._eof or not self._open:
            return
        self._eof = True
        if self._receiver is not None:
            self._receiver.pipe_eof_received()

    def _on_request(self, request: Request) -> None:
        ws = cast(ServerProtocol, self._ws)
        response = ws.accept(request)
        if response.status_code == 101 and self._expected_path is not None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(request.path).path)
            if path != self._expected_path:
                response = ws.reject(404, f"no WebSocket endpoint at {request.path}\n")
        ws.send_response(response)
        if response.status_code == 101:
            self._handshake_done()
            if self._on_open is not None:
                on_open, self._on_open = self._on_open, None
                on_open(self)
        else:
            err = self._handshake_error(
                f"refused WebSocket upgrade of {request.path!r}", response.status_code
            )
            self._reject(err)

    def _on_response(self, response: Response) -> None:
        if self._ws.state is State.OPEN:
            self._handshake_done()
            if not self._opened.done():
                self._opened.set_result(None)
        else:
            self._reject(self._handshake_error("WebSocket upgrade refused", response.status_code))

    def _handshake_done(self) -> None:
        self._open = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _handshake_error(self, what: str, status: int | None = None) -> WebSocketHandshakeError:
        exc = self._ws.handshake_exc
        if status is None and isinstance(exc, InvalidStatus):
            status = exc.response.status_code
        detail = f": {exc}" if exc is not None else ""
        err = WebSocketHandshakeError(f"{what}{detail}", status=status)
        err.__cause__ = exc
        return err

    def _reject(self, err: WebSocketHandshakeError) -> None:
        log.debug("WebSocket handshake with %s failed: %s", self._remote_addr, err)
        if not self._opened.done():
            self._opened.set_exception(err)
            self._opened.exception()  # retrieved: a dial that already gave up must not log it
        if self._on_rejected is not None:
            on_rejected, self._on_rejected = self._on_rejected, None
            on_rejected(self, err)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._open or self._lost:
            return
        err = WebSocketHandshakeError(
            f"WebSocket handshake did not complete within {self._config.handshake_timeout:g} s"
        )
        self._reject(err)
        self.abort()

    # -- sending ----------------------------------------------------------------------------------------
    def _flush(self) -> None:
        writes = self._ws.data_to_send()
        if not writes:
            return
        t = self._transport
        if t is None or self._lost:
            return
        for chunk in writes:
            if not chunk:  # websockets' SEND_EOF: the engine is done with the connection
                self._closed = True
                if self._handshake_timer is not None:
                    self._handshake_timer.cancel()
                    self._handshake_timer = None
                t.close()  # flushes first; the close timer bounds that
                break
            t.write(chunk)
        if (self._ws.close_expected() or t.is_closing()) and self._close_timer is None and not self._lost:
            self._close_timer = asyncio.get_running_loop().call_later(
                self._config.close_timeout, self._close_timed_out
            )

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if not self._lost and self._transport is not None:
            self._transport.abort()

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._close_timer = None

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # -- Pipe -------------------------------------------------------------------------------------------
    async def wait_open(self) -> None:
        """Wait for the HTTP upgrade (client side); raises :class:`WebSocketHandshakeError`."""
        await asyncio.shield(self._opened)

    def set_receiver(self, receiver: PipeReceiver) -> None:
        self._receiver = receiver
        if self._buffer:
            buffered, self._buffer = self._buffer, []
            for i, chunk in enumerate(buffered):
                receiver.pipe_data_received(chunk)
                if self._receiver is not receiver:  # switched layers inside the callback
                    self._buffer[:0] = buffered[i + 1 :]
                    return
        if self._lost:
            receiver.pipe_connection_lost(self._lost_exc)
        elif self._eof:
            receiver.pipe_eof_received()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        ws = self._ws
        if self._closed or self._transport is None or ws.state is not State.OPEN:
            if not self._closed and ws.close_rcvd is not None:  # the remote's close frame came first
                raise ConnectionClosed(
                    "write on a WebSocket connection the peer closed", cause="remote-closed"
                )
            raise ConnectionClosed("write on a closed WebSocket connection", cause="local-closed")
        n = len(data)
        if not n:
            return
        limit = self._config.max_frame_size
        if ws.expect_continuation_frame or ws.extensions:  # never, as we negotiate neither: the engine's path
            for start in range(0, n, limit):
                ws.send_binary(data[start : start + limit])
            self._flush()
            return
        # Fast path: build unfragmented binary frames here (RFC 6455 §5.2) rather than through
        # Frame.serialize, which copies every payload twice; the engine's outgoing queue is always empty
        # between calls (every engine call is followed by _flush), so the order of frames is kept.
        t = self._transport
        masked = self._masked
        if n <= limit:
            t.writelines(_binary_frame(data, masked))
        else:
            with memoryview(data) as mv:
                for start in range(0, n, limit):
                    t.writelines(_binary_frame(mv[start : start + limit], masked))

    async def drain(self) -> None:
        while self._write_paused and not self._closed:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut
        if self._lost:
            raise ConnectionClosed("WebSocket connection lost", cause="remote-closed") from self._lost_exc

    def close(self) -> None:
        """Send a close frame (1000) after what is queued; TCP closes when the remote answers, or after
        :attr:`WebSocketConfig.close_timeout`."""
        if self._closed:
            return
        t = self._transport
        ws = self._ws
        if t is None:
            self._closed = True
            return
        if ws.state is State.OPEN:
            ws.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
            self._closed = True
            return
        self._closed = True
        if ws.state is State.CONNECTING or ws.state is State.CLOSED:
            self._cancel_timers()
            t.close()
        # CLOSING: the engine's closing handshake (and its timer) finishes the job.

    def abort(self) -> None:
        if self._transport is not None and not self._lost:
            self._closed = True
            self._cancel_timers()
            self._transport.abort()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._lost:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._lost:
            self._transport.resume_reading()

    def is_closing(self) -> bool:
        """True once we closed, the transport is closing, or the peer's close frame arrived (we can no longer
        write, while frames that came before its close frame may still be being delivered)."""
        return (
            self._closed
            or self._transport is None
            or self._transport.is_closing()
            or self._ws.close_rcvd is not None
        )

    @property
    def is_open(self) -> bool:
        """The HTTP upgrade succeeded."""
        return self._open

    @property
    def close_code(self) -> int | None:
        """The close code received from the remote, once it sent one."""
        rcvd = self._ws.close_rcvd
        return None if rcvd is None else int(rcvd.code)

    @property
    def local_addr(self) -> Multiaddr | None:
        return self._local_addr

    @property
    def remote_addr(self) -> Multiaddr | None:
        return self._remote_addr


# --- listener and transport ----------------------------------------------------------------------------


class WebSocketListener:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._addrs: list[Multiaddr] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshaking: set[WebSocketPipe] = set()
        self.rejected = 0
        """How many connections failed the HTTP upgrade (refused, not WebSocket, or timed out)."""
        self.last_error: WebSocketHandshakeError | None = None

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def close(self) -> None:
        server = self._server
        if server is None:
            return
        server.close()
        for pipe in list(self._handshaking):
            pipe.abort()
        self._handshaking.clear()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except TimeoutError:
            pass


class WebSocketTransport:
    """Dials and listens on WebSocket (``/ws``, ``/wss``, ``/tls/ws``). Produces raw pipes; the upgrader
    secures and multiplexes them."""

    name = "websocket"

    def __init__(self, config: WebSocketConfig | None = None) -> None:
        self.config = config or WebSocketConfig()

    def can_dial(self, addr: Multiaddr) -> bool:
        return parse_websocket_multiaddr(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        wa = parse_websocket_multiaddr(addr)
        if wa is None or wa.host_protocol not in ("ip4", "ip6"):
            return False
        return not wa.secure or self.config.server_ssl is not None

    async def dial(self, addr: Multiaddr) -> WebSocketPipe:
        wa = parse_websocket_multiaddr(addr)
        if wa is None:
            raise MultiaddrError(f"not a WebSocket address: {addr}")
        cfg = self.config
        server_name = wa.sni or wa.host
        uri = WebSocketURI(
            secure=wa.secure,
            host=server_name,
            port=wa.port,
            path=_request_target(wa.path or cfg.default_path),
            query="",
        )
        ssl_ctx: ssl.SSLContext | None = None
        if wa.secure:
            ssl_ctx = cfg.client_ssl or ssl.create_default_context()
        scheme = wa.scheme_suffix
        loop = asyncio.get_running_loop()
        family = socket_family(wa.host_protocol)
        try:
            async with asyncio.timeout(cfg.dial_timeout + (cfg.handshake_timeout if wa.secure else 0.0)):
                _, pipe = await loop.create_connection(
                    lambda: WebSocketPipe(cfg, client_uri=uri, local_suffix=scheme, remote_suffix=scheme),
                    wa.host,
                    wa.port,
                    family=family,
                    ssl=ssl_ctx,
                    server_hostname=server_name if ssl_ctx is not None else None,
                    ssl_handshake_timeout=cfg.handshake_timeout if ssl_ctx is not None else None,
                )
        except TimeoutError:
            raise DialError(f"connect to {addr} timed out") from None
        except ssl.SSLError as e:
            raise WebSocketHandshakeError(f"TLS handshake with {addr} failed: {e}") from e
        except OSError as e:
            raise DialError(f"connect to {addr} failed: {e}") from e
        try:
            async with asyncio.timeout(cfg.handshake_timeout):
                await pipe.wait_open()
        except TimeoutError:
            pipe.abort()
            raise WebSocketHandshakeError(
                f"WebSocket upgrade with {addr} did not complete within {cfg.handshake_timeout:g} s"
            ) from None
        except BaseException:
            pipe.abort()
            raise
        return pipe

    async def listen(
        self, addr: Multiaddr, handler: Callable[[WebSocketPipe], Awaitable[None]]
    ) -> WebSocketListener:
        wa = parse_websocket_multiaddr(addr)
        if wa is None or wa.host_protocol not in ("ip4", "ip6"):
            raise MultiaddrError(f"cannot listen on {addr}")
        cfg = self.config
        if wa.secure and cfg.server_ssl is None:
            raise DialError(
                f"cannot listen on {addr}: WebSocketConfig.server_ssl (a certificate) is required"
            )
        ssl_ctx = cfg.server_ssl if wa.secure else None
        loop = asyncio.get_running_loop()
        listener = WebSocketListener()  # before the server: a connection may arrive while it starts
        scheme = wa.scheme_suffix
        expected_path = wa.path or None

        def start_upgrade(pipe: WebSocketPipe) -> None:
            listener._handshaking.discard(pipe)
            task: asyncio.Task[None] = asyncio.ensure_future(handler(pipe))
            listener._tasks.add(task)
            task.add_done_callback(listener._tasks.discard)

        def rejected(pipe: WebSocketPipe, err: WebSocketHandshakeError) -> None:
            listener._handshaking.discard(pipe)
            listener.rejected += 1
            listener.last_error = err

        def factory() -> WebSocketPipe:
            pipe = WebSocketPipe(
                cfg,
                expected_path=expected_path,
                local_suffix=wa.suffix,
                remote_suffix=scheme,
                on_open=start_upgrade,
                on_rejected=rejected,
            )
            listener._handshaking.add(pipe)
            return pipe

        try:
            server = await loop.create_server(
                factory,
                wa.host,
                wa.port,
                backlog=cfg.listen_backlog,
                reuse_address=True,
                ssl=ssl_ctx,
                ssl_handshake_timeout=cfg.handshake_timeout if ssl_ctx is not None else None,
            )
        except OSError as e:
            raise DialError(f"cannot listen on {addr}: {e}") from e
        listener._server = server
        for sock in server.sockets:
            ma = _tcp_multiaddr(sock.getsockname(), wa.suffix)
            if ma is not None:
                listener._addrs.append(ma)
        return listener
