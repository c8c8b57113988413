"""WebSocket transport without sockets: address grammar, and two WebSocketPipes wired back to back through
in-memory asyncio transports (bytes split arbitrarily, close handshake, limits, pings, handshake failures)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Side
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol
from websockets.uri import WebSocketURI

from aiolibp2p.exceptions import ConnectionClosed, MessageTooLarge, ProtocolViolation
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.transports.websocket import (
    WebSocketConfig,
    WebSocketHandshakeError,
    WebSocketPipe,
    WebSocketTransport,
    parse_websocket_multiaddr,
)

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


# --- addresses -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "secure", "sni", "path", "suffix"),
    [
        ("/ip4/127.0.0.1/tcp/4001/ws", "127.0.0.1", 4001, False, None, "", "/ws"),
        (f"/ip4/127.0.0.1/tcp/4001/ws/p2p/{PEER}", "127.0.0.1", 4001, False, None, "", "/ws"),
        ("/ip4/192.0.2.0/tcp/1234/wss", "192.0.2.0", 1234, True, None, "", "/wss"),
        ("/ip4/192.0.2.0/tcp/1234/tls/ws", "192.0.2.0", 1234, True, None, "", "/tls/ws"),
        (
            "/ip4/192.0.2.0/tcp/1234/tls/sni/foo.example.com/ws",
            "192.0.2.0",
            1234,
            True,
            "foo.example.com",
            "",
            "/tls/sni/foo.example.com/ws",
        ),
        ("/ip4/192.0.2.0/ws", "192.0.2.0", 80, False, None, "", "/ws"),
        ("/ip4/192.0.2.0/tls/ws", "192.0.2.0", 443, True, None, "", "/tls/ws"),
        ("/ip4/192.0.2.0/wss", "192.0.2.0", 443, True, None, "", "/wss"),
        ("/dns/example.com/wss", "example.com", 443, True, None, "", "/wss"),
        (
            "/dns/example.com/wss/http-path/path%2Fto%2Fendpoint",
            "example.com",
            443,
            True,
            None,
            "/path/to/endpoint",
            "/wss/http-path/path%2Fto%2Fendpoint",
        ),
        ("/ip6/::1/tcp/5/ws", "::1", 5, False, None, "", "/ws"),
        ("/dns4/a.example/tcp/80/ws", "a.example", 80, False, None, "", "/ws"),
    ],
)
def test_parse_websocket_addresses(
    text: str, host: str, port: int, secure: bool, sni: str | None, path: str, suffix: str
) -> None:
    wa = parse_websocket_multiaddr(Multiaddr(text))
    assert wa is not None
    got = (wa.host, wa.port, wa.secure, wa.sni, wa.path, wa.suffix)
    assert got == (host, port, secure, sni, path, suffix)


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/127.0.0.1/udp/4001/ws",
        "/ip4/127.0.0.1/tcp/4001/tls",
        "/ip4/127.0.0.1/tcp/4001/ws/ws",
        "/ip4/127.0.0.1/tcp/4001/tls/sni/x.example",
        "/ip4/127.0.0.1/tcp/4001/ws/http-path/a/tls",
        f"/ip4/127.0.0.1/tcp/4001/ws/p2p/{PEER}/p2p-circuit",
        "/memory/5",
        "/ws",
        "/unix/tmp%2Fx/ws",
    ],
)
def test_not_websocket_addresses(text: str) -> None:
    assert parse_websocket_multiaddr(Multiaddr(text)) is None
    assert not WebSocketTransport().can_dial(Multiaddr(text))


def test_can_listen_needs_ip_and_a_certificate_for_tls() -> None:
    import ssl

    t = WebSocketTransport()
    assert t.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0/ws"))
    assert t.can_listen(Multiaddr("/ip6/::/tcp/0/ws"))
    assert not t.can_listen(Multiaddr("/dns/example.com/tcp/0/ws"))
    assert not t.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0/wss"))
    assert t.can_dial(Multiaddr("/dns/example.com/tcp/443/wss"))
    tls = WebSocketTransport(WebSocketConfig(server_ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)))
    assert tls.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0/wss"))
    assert tls.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0/tls/ws"))


# --- pipes over in-memory transports -------------------------------------------------------------------


class MemTransport(asyncio.Transport):
    """Delivers writes to the peer protocol on the next loop turns, ``chunk`` bytes at a time."""

    def __init__(self, local: tuple[str, int], remote: tuple[str, int], chunk: int = 1 << 20) -> None:
        super().__init__()
        self.protocol: asyncio.Protocol | None = None
        self.peer: MemTransport | None = None
        self._extra = {"sockname": local, "peername": remote}
        self._closing = False
        self._gone = False
        self._chunk = chunk
        self.written: list[bytes] = []
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self._closing
        data = bytes(data)
        self.written.append(data)
        loop = asyncio.get_running_loop()
        for i in range(0, len(data), self._chunk):
            loop.call_soon(self._deliver, data[i : i + self._chunk])

    def _deliver(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and not peer._gone and peer.protocol is not None:
            peer.protocol.data_received(data)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        loop.call_soon(self._finish, None)

    def abort(self) -> None:
        self.aborted = True
        self._closing = True
        self._finish(None)

    def _finish(self, exc: Exception | None) -> None:
        if self._gone:
            return
        self._gone = True
        assert self.protocol is not None
        self.protocol.connection_lost(exc)
        peer = self.peer
        if peer is not None and not peer._gone:
            assert peer.protocol is not None
            if not peer.protocol.eof_received():
                peer._closing = True
                peer._finish(None)

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.data += data

    def pipe_eof_received(self) -> None:
        self.eof = True

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        assert not self.lost.done(), "pipe_connection_lost called twice"
        self.lost.set_result(exc)


def wire(
    client: asyncio.Protocol, server: asyncio.Protocol, chunk: int = 1 << 20
) -> tuple[MemTransport, MemTransport]:
    ct = MemTransport(("127.0.0.1", 50000), ("127.0.0.1", 4001), chunk)
    st = MemTransport(("127.0.0.1", 4001), ("127.0.0.1", 50000), chunk)
    ct.peer, st.peer = st, ct
    ct.protocol, st.protocol = client, server
    server.connection_made(st)
    client.connection_made(ct)
    return ct, st


URI = WebSocketURI(secure=False, host="127.0.0.1", port=4001, path="/", query="")


async def open_pair(
    config: WebSocketConfig | None = None, chunk: int = 1 << 20
) -> tuple[WebSocketPipe, WebSocketPipe, MemTransport, MemTransport]:
    cfg = config or WebSocketConfig()
    opened: asyncio.Future[WebSocketPipe] = asyncio.get_running_loop().create_future()
    server = WebSocketPipe(cfg, on_open=opened.set_result)
    client = WebSocketPipe(cfg, client_uri=URI)
    ct, st = wire(client, server, chunk)
    async with asyncio.timeout(2):
        await client.wait_open()
        assert await opened is server
    return client, server, ct, st


async def wait_for_bytes(sink: Sink, n: int) -> None:
    async with asyncio.timeout(2):
        while len(sink.data) < n:
            await asyncio.sleep(0)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
async def test_bytes_both_ways_whatever_the_tcp_chunking(chunk: int) -> None:
    client, server, _, _ = await open_pair(chunk=chunk)
    assert client.is_open and server.is_open
    assert str(client.remote_addr) == "/ip4/127.0.0.1/tcp/4001/ws"
    assert str(server.remote_addr) == "/ip4/127.0.0.1/tcp/50000/ws"
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    payload = bytes(range(256)) * 40
    client.write(payload)
    client.write(memoryview(payload)[:5])
    server.write(bytearray(b"pong"))
    await wait_for_bytes(ss, len(payload) + 5)
    await wait_for_bytes(cs, 4)
    assert bytes(ss.data) == payload + payload[:5]
    assert bytes(cs.data) == b"pong"


@pytest.mark.parametrize("size", [1, 125, 126, 127, 65535, 65536, 70000])
async def test_every_frame_length_encoding_both_ways(size: int) -> None:
    # 7-bit, 16-bit and 64-bit payload lengths, masked (client) and unmasked (server), parsed by websockets
    client, server, _, _ = await open_pair()
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    payload = bytes(i % 251 for i in range(size))
    client.write(payload)
    server.write(memoryview(payload))
    await wait_for_bytes(ss, size)
    await wait_for_bytes(cs, size)
    assert bytes(ss.data) == payload and bytes(cs.data) == payload


async def test_bytes_before_the_receiver_is_set_are_kept() -> None:
    client, server, _, _ = await open_pair()
    client.write(b"early")
    client.write(b"bird")
    await asyncio.sleep(0.01)
    ss = Sink()
    server.set_receiver(ss)
    assert bytes(ss.data) == b"earlybird"


async def test_large_write_is_split_into_max_frame_size_messages() -> None:
    client, server, ct, _ = await open_pair(WebSocketConfig(max_frame_size=1000))
    ss = Sink()
    server.set_receiver(ss)
    ct.written.clear()
    client.write(b"x" * 3500)
    assert len(ct.written) == 4  # 1000 + 1000 + 1000 + 500
    await wait_for_bytes(ss, 3500)
    assert bytes(ss.data) == b"x" * 3500


async def test_close_handshake_reaches_both_receivers() -> None:
    client, server, ct, st = await open_pair()
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    client.write(b"last words")
    client.close()
    client.close()  # idempotent
    with pytest.raises(ConnectionClosed):
        client.write(b"more")
    async with asyncio.timeout(2):
        assert await ss.lost is None
        assert await cs.lost is None
    assert bytes(ss.data) == b"last words" and ss.eof
    assert server.close_code == CloseCode.NORMAL_CLOSURE
    assert client.close_code == CloseCode.NORMAL_CLOSURE
    assert not ct.aborted and not st.aborted


async def test_frames_before_the_peers_close_are_delivered_as_closing() -> None:
    """Frames and the peer's close frame that arrive in one TCP read: while the frames before it are delivered,
    the pipe already says it is closing (no write can go out any more), so a receiver whose answer cannot be
    written leaves the end to the pipe instead of failing on the write and losing what follows."""
    client, server, ct, _ = await open_pair()
    seen: list[tuple[bytes, bool, str]] = []

    class Answering(Sink):
        def pipe_data_received(self, data: bytes) -> None:
            super().pipe_data_received(data)
            try:
                server.write(b"answer")
                outcome = "written"
            except ConnectionClosed as exc:
                outcome = exc.cause
            seen.append((data, server.is_closing(), outcome))

    ss = Answering()
    server.set_receiver(ss)
    client.set_receiver(Sink())
    held: list[bytes] = []
    send = ct.write
    ct.write = lambda data: held.append(bytes(data))  # type: ignore[method-assign]
    client.write(b"first")
    client.write(b"second")
    client.close()
    ct.write = send  # type: ignore[method-assign]
    server.data_received(b"".join(held))  # the two frames and the close frame in one read
    async with asyncio.timeout(2):
        assert await ss.lost is None
    assert seen == [(b"first", True, "remote-closed"), (b"second", True, "remote-closed")] and ss.eof


async def test_server_side_close() -> None:
    client, server, _, _ = await open_pair()
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    server.close()
    async with asyncio.timeout(2):
        assert await cs.lost is None
        assert await ss.lost is None
    assert cs.eof


async def test_abort_is_seen_as_loss() -> None:
    client, server, ct, _ = await open_pair()
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    client.abort()
    assert ct.aborted
    async with asyncio.timeout(2):
        await cs.lost
        await ss.lost
    with pytest.raises(ConnectionClosed):
        await client.drain()


async def test_oversize_message_closes_with_1009() -> None:
    client, server, _, _ = await open_pair(WebSocketConfig(max_message_size=1024, max_frame_size=4096))
    cs, ss = Sink(), Sink()
    client.set_receiver(cs)
    server.set_receiver(ss)
    client.write(b"y" * 2048)
    async with asyncio.timeout(2):
        exc = await ss.lost
        await cs.lost
    assert isinstance(exc, MessageTooLarge)
    assert client.close_code == CloseCode.MESSAGE_TOO_BIG
    assert ss.data == b""


async def test_fragmented_message_over_the_limit_is_refused_too() -> None:
    cfg = WebSocketConfig(max_message_size=1000)
    opened: asyncio.Future[WebSocketPipe] = asyncio.get_running_loop().create_future()
    server = WebSocketPipe(cfg, on_open=opened.set_result)
    raw = _RawClient()
    wire(raw, server)
    await raw.handshake()
    await opened
    ss = Sink()
    server.set_receiver(ss)
    raw.send(Frame(Opcode.BINARY, b"a" * 600, fin=False))
    raw.send(Frame(Opcode.CONT, b"b" * 600, fin=True))
    async with asyncio.timeout(2):
        assert isinstance(await ss.lost, MessageTooLarge)
    assert bytes(ss.data) == b"a" * 600  # bytes of an accepted fragment are delivered at once


async def test_ping_is_answered_and_text_frames_carry_bytes() -> None:
    opened: asyncio.Future[WebSocketPipe] = asyncio.get_running_loop().create_future()
    server = WebSocketPipe(WebSocketConfig(), on_open=opened.set_result)
    raw = _RawClient()
    wire(raw, server)
    await raw.handshake()
    await opened
    ss = Sink()
    server.set_receiver(ss)
    raw.send(Frame(Opcode.PING, b"hello?"))
    raw.send(Frame(Opcode.TEXT, b"text"))
    async with asyncio.timeout(2):
        frame = await raw.frames.get()
    assert frame.opcode is Opcode.PONG and frame.data == b"hello?"
    await wait_for_bytes(ss, 4)
    assert bytes(ss.data) == b"text"


async def test_protocol_error_is_a_typed_loss() -> None:
    opened: asyncio.Future[WebSocketPipe] = asyncio.get_running_loop().create_future()
    server = WebSocketPipe(WebSocketConfig(), on_open=opened.set_result)
    raw = _RawClient()
    wire(raw, server)
    await raw.handshake()
    await opened
    ss = Sink()
    server.set_receiver(ss)
    raw.transport.write(b"\x8f\x80\x00\x00\x00\x00")  # reserved opcode 0xF
    async with asyncio.timeout(2):
        exc = await ss.lost
    assert isinstance(exc, ProtocolViolation) and exc.protocol == "websocket"


async def test_refused_upgrade_is_a_typed_error() -> None:
    client = WebSocketPipe(WebSocketConfig(), client_uri=URI)
    refusing = _RefusingServer()
    wire(client, refusing)
    with pytest.raises(WebSocketHandshakeError) as ei:
        async with asyncio.timeout(2):
            await client.wait_open()
    assert ei.value.status == 404


async def test_wrong_path_is_refused_with_404() -> None:
    rejected: list[WebSocketHandshakeError] = []
    server = WebSocketPipe(
        WebSocketConfig(), expected_path="/libp2p", on_rejected=lambda _p, e: rejected.append(e)
    )
    client = WebSocketPipe(WebSocketConfig(), client_uri=URI)
    wire(client, server)
    with pytest.raises(WebSocketHandshakeError) as ei:
        async with asyncio.timeout(2):
            await client.wait_open()
    assert ei.value.status == 404
    assert len(rejected) == 1 and rejected[0].status == 404


async def test_handshake_timeout() -> None:
    client = WebSocketPipe(WebSocketConfig(handshake_timeout=0.05), client_uri=URI)
    silent = asyncio.Protocol()
    ct, _ = wire(client, silent)
    with pytest.raises(WebSocketHandshakeError, match="within"):
        async with asyncio.timeout(2):
            await client.wait_open()
    assert ct.aborted


# --- helpers: a raw websockets client and a refusing server on MemTransport ------------------------------


class _RawClient(asyncio.Protocol):
    """A client built on websockets' own engine that can send any frame."""

    def __init__(self) -> None:
        from websockets.client import ClientProtocol

        self.ws = ClientProtocol(URI, max_size=None)
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.opened = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for ev in self.ws.events_received():
            if isinstance(ev, Frame):
                self.frames.put_nowait(ev)
            elif not self.opened.done():
                self.opened.set_result(None)
        self._flush()

    def _flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    async def handshake(self) -> None:
        async with asyncio.timeout(2):
            await self.opened
        assert self.ws.state is WsState.OPEN

    def send(self, frame: Frame) -> None:
        self.ws.send_frame(frame)
        self._flush()


class _RefusingServer(asyncio.Protocol):
    def __init__(self) -> None:
        self.ws = ServerProtocol()
        assert self.ws.side is Side.SERVER

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for _ in self.ws.events_received():
            self.ws.send_response(self.ws.reject(404, "no\n"))
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()
