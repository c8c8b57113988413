"""WebSocket transport over loopback: raw pipes over ws and wss (self-signed certificate), closes, aborts,
refused handshakes (the listener keeps serving), a stock websockets client as the remote, and the full
libp2p stack (Noise + yamux over multistream-select) through the host."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError

import aiolibp2p
from aiolibp2p.core.pipe import Pipe
from aiolibp2p.exceptions import DialError, MessageTooLarge
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo
from aiolibp2p.transports.tcp import TcpTransport
from aiolibp2p.transports.websocket import (
    WebSocketConfig,
    WebSocketHandshakeError,
    WebSocketListener,
    WebSocketPipe,
    WebSocketTransport,
)

MiB = 1024 * 1024


# --- certificates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext  # trusts the self-signed certificate
    untrusting: ssl.SSLContext  # the system CAs only


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d: Path = tmp_path_factory.mktemp("wss")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = d / "cert.pem", d / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return Certs(server, client, ssl.create_default_context())


# --- helpers ---------------------------------------------------------------------------------------------


class Collect:
    """A receiver that keeps everything and reports the end."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, data: bytes) -> None:
        self.data += data

    def pipe_eof_received(self) -> None:
        self.eof = True

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    async def wait_bytes(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.data) < n:
                await asyncio.sleep(0.001)


class Echo:
    """Sends back what it receives (with backpressure: pauses reading while the send buffer is full)."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._draining: asyncio.Task[None] | None = None

    def pipe_data_received(self, data: bytes) -> None:
        self.pipe.write(data)
        if self._draining is None:
            self.pipe.pause_reading()
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            await self.pipe.drain()
            self.pipe.resume_reading()
        except Exception:
            pass
        finally:
            self._draining = None

    def pipe_eof_received(self) -> None:
        pass

    def pipe_connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@dataclass
class Server:
    transport: WebSocketTransport
    listener: WebSocketListener
    accepted: asyncio.Queue[WebSocketPipe]

    @property
    def addr(self) -> Multiaddr:
        return self.listener.listen_addrs[0]


async def serve(
    addr: str, config: WebSocketConfig | None = None, on_pipe: Callable[[WebSocketPipe], None] | None = None
) -> Server:
    t = WebSocketTransport(config)
    accepted: asyncio.Queue[WebSocketPipe] = asyncio.Queue()

    async def handler(pipe: WebSocketPipe) -> None:
        if on_pipe is not None:
            on_pipe(pipe)
        accepted.put_nowait(pipe)

    listener = await t.listen(Multiaddr(addr), handler)
    return Server(t, listener, accepted)


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        await s.listener.close()


def echo_on(pipe: WebSocketPipe) -> None:
    pipe.set_receiver(Echo(pipe))


async def echo_4mib(pipe: WebSocketPipe) -> None:
    got = Collect()
    pipe.set_receiver(got)
    payload = os.urandom(4 * MiB)
    sizes = [1, 2, 100, 65536, 65537, 3 * MiB]  # whole frames, a split write (> max_frame_size), the rest
    pos = 0
    for n in sizes:
        pipe.write(payload[pos : pos + n])
        await pipe.drain()
        pos += n
    pipe.write(payload[pos:])
    await pipe.drain()
    await got.wait_bytes(len(payload), 10)
    assert bytes(got.data) == payload


# --- raw pipes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["ws", "wss", "tls/ws", "tls/sni/localhost/ws"])
async def test_echo_4mib_integrity(suffix: str, certs: Certs, servers: list[Server]) -> None:
    cfg = WebSocketConfig(server_ssl=certs.server, client_ssl=certs.client)
    listen_suffix = "wss" if suffix.startswith("tls/sni") else suffix
    srv = await serve(f"/ip4/127.0.0.1/tcp/0/{listen_suffix}", cfg, echo_on)
    servers.append(srv)
    # the listen address keeps the suffix as given, with the real port
    (la,) = srv.listener.listen_addrs
    assert str(la).startswith("/ip4/127.0.0.1/tcp/") and str(la).endswith(f"/{listen_suffix}")
    assert la.value_for_protocol("tcp") != "0"
    port = la.value_for_protocol("tcp")
    dial_addr = Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/{suffix}")
    async with asyncio.timeout(15):
        pipe = await WebSocketTransport(cfg).dial(dial_addr)
        server_pipe = await srv.accepted.get()
        assert pipe.remote_addr is not None and pipe.remote_addr.value_for_protocol("tcp") == port
        assert server_pipe.local_addr == la
        await echo_4mib(pipe)
        pipe.close()


async def test_dns_localhost_dial(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", on_pipe=echo_on)
    servers.append(srv)
    port = srv.addr.value_for_protocol("tcp")
    async with asyncio.timeout(5):
        pipe = await WebSocketTransport().dial(Multiaddr(f"/dns4/localhost/tcp/{port}/ws"))
        got = Collect()
        pipe.set_receiver(got)
        pipe.write(b"hi")
        await got.wait_bytes(2)
        pipe.abort()


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_close_seen_by_the_other_side_within_one_second(closer: str, servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws")
    servers.append(srv)
    async with asyncio.timeout(5):
        pipe = await WebSocketTransport().dial(srv.addr)
        server_pipe = await srv.accepted.get()
    c, s = Collect(), Collect()
    pipe.set_receiver(c)
    server_pipe.set_receiver(s)
    pipe.write(b"bye")
    await s.wait_bytes(3)
    closing, other, other_pipe = (pipe, s, server_pipe) if closer == "client" else (server_pipe, c, pipe)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    closing.close()
    async with asyncio.timeout(1):
        assert await other.lost is None
        assert await c.lost is None and await s.lost is None
    assert loop.time() - t0 < 1
    assert other.eof
    assert other_pipe.close_code == 1000


async def test_abort_seen_by_the_other_side(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws")
    servers.append(srv)
    async with asyncio.timeout(5):
        pipe = await WebSocketTransport().dial(srv.addr)
        server_pipe = await srv.accepted.get()
    s = Collect()
    server_pipe.set_receiver(s)
    pipe.abort()
    async with asyncio.timeout(1):
        await s.lost
    assert server_pipe.close_code is None  # no closing handshake happened


async def test_backpressure_drain_waits_for_a_slow_reader(servers: list[Server]) -> None:
    cfg = WebSocketConfig(write_high_water=64 * 1024, write_low_water=16 * 1024)
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", cfg)
    servers.append(srv)
    async with asyncio.timeout(5):
        pipe = await WebSocketTransport(cfg).dial(srv.addr)
        server_pipe = await srv.accepted.get()
    s = Collect()
    server_pipe.set_receiver(s)
    server_pipe.pause_reading()
    block = b"z" * 65536
    sent = 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            while True:  # fills the socket buffers, then drain() must block
                pipe.write(block)
                sent += len(block)
                await pipe.drain()
    assert sent < 64 * MiB
    server_pipe.resume_reading()
    async with asyncio.timeout(5):
        await pipe.drain()
        await s.wait_bytes(sent)
    assert len(s.data) == sent
    pipe.close()


# --- refused handshakes: typed errors, and the listener keeps serving ----------------------------------


async def _raw_http(addr: Multiaddr, request: bytes) -> bytes:
    port = int(addr.value_for_protocol("tcp") or 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(2):
            return await reader.read()
    finally:
        writer.close()


async def _still_serving(srv: Server) -> None:
    async with asyncio.timeout(5):
        pipe = await WebSocketTransport().dial(srv.addr)
        got = Collect()
        pipe.set_receiver(got)
        pipe.write(b"still here")
        await got.wait_bytes(10)
        pipe.close()


async def test_plain_http_request_is_refused(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", on_pipe=echo_on)
    servers.append(srv)
    reply = await _raw_http(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 426 ")
    assert srv.listener.rejected == 1
    assert isinstance(srv.listener.last_error, WebSocketHandshakeError)
    assert srv.accepted.empty()
    await _still_serving(srv)


async def test_garbage_and_oversized_headers_are_refused(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", on_pipe=echo_on)
    servers.append(srv)
    assert await _raw_http(srv.addr, b"\x13/multistream/1.0.0\n") == b""  # libp2p without the upgrade
    reply = await _raw_http(srv.addr, b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    async with asyncio.timeout(2):
        while srv.listener.rejected < 2:
            await asyncio.sleep(0.01)
    await _still_serving(srv)


async def test_silent_client_times_out_on_the_server(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", WebSocketConfig(handshake_timeout=0.2), on_pipe=echo_on)
    servers.append(srv)
    port = int(srv.addr.value_for_protocol("tcp") or 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(2):
        assert await reader.read() == b""  # dropped after the handshake timeout
    writer.close()
    assert srv.listener.rejected == 1
    await _still_serving(srv)


async def test_wrong_http_path_is_refused(servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws/http-path/libp2p%2Fws", on_pipe=echo_on)
    servers.append(srv)
    assert str(srv.addr).endswith("/ws/http-path/libp2p%2Fws")
    port = srv.addr.value_for_protocol("tcp")
    t = WebSocketTransport()
    with pytest.raises(WebSocketHandshakeError) as ei:
        async with asyncio.timeout(5):
            await t.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/ws"))
    assert ei.value.status == 404
    assert isinstance(ei.value, DialError)
    async with asyncio.timeout(5):
        pipe = await t.dial(srv.addr)
        pipe.close()


async def _one_shot_server(reply: bytes | None) -> tuple[asyncio.Server, Multiaddr]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reply is not None:
            writer.write(reply)
            await writer.drain()
            writer.close()
        else:
            await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/ws")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101),
        (b"/multistream/1.0.0\n", None),
        (None, None),
    ],
    ids=["http-200", "bad-accept", "not-http", "silent"],
)
async def test_dialing_a_non_websocket_server_is_a_typed_error(
    reply: bytes | None, status: int | None
) -> None:
    server, addr = await _one_shot_server(reply)
    try:
        t = WebSocketTransport(WebSocketConfig(handshake_timeout=0.3))
        with pytest.raises(WebSocketHandshakeError) as ei:
            async with asyncio.timeout(3):
                await t.dial(addr)
        assert ei.value.status == status
    finally:
        server.close()


async def test_untrusted_certificate_is_a_typed_error(certs: Certs, servers: list[Server]) -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/wss", WebSocketConfig(server_ssl=certs.server))
    servers.append(srv)
    with pytest.raises(WebSocketHandshakeError):
        async with asyncio.timeout(5):
            await WebSocketTransport(WebSocketConfig(client_ssl=certs.untrusting)).dial(srv.addr)
    # a plain ws client on the wss port fails too, typed
    port = srv.addr.value_for_protocol("tcp")
    with pytest.raises(WebSocketHandshakeError):
        async with asyncio.timeout(5):
            await WebSocketTransport(WebSocketConfig(handshake_timeout=0.5)).dial(
                Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/ws")
            )


async def test_wss_listen_needs_a_certificate() -> None:
    with pytest.raises(DialError, match="server_ssl"):
        await WebSocketTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0/wss"), _never)


async def _never(pipe: WebSocketPipe) -> None:
    raise AssertionError("no connection expected")


async def test_connection_refused_is_a_dial_error() -> None:
    srv = await serve("/ip4/127.0.0.1/tcp/0/ws")
    addr = srv.addr
    await srv.listener.close()
    with pytest.raises(DialError):
        async with asyncio.timeout(5):
            await WebSocketTransport().dial(addr)


# --- a stock websockets client as the remote --------------------------------------------------------------


async def test_stock_client_messages_pings_and_1009(servers: list[Server]) -> None:
    received: list[Collect] = []

    def collect(pipe: WebSocketPipe) -> None:
        c = Collect()
        pipe.set_receiver(c)
        received.append(c)

    srv = await serve("/ip4/127.0.0.1/tcp/0/ws", WebSocketConfig(max_message_size=MiB), collect)
    servers.append(srv)
    uri = f"ws://127.0.0.1:{srv.addr.value_for_protocol('tcp')}/"
    async with asyncio.timeout(10):
        async with ws_connect(uri, max_size=None, compression=None) as ws:
            await ws.send(b"a" * 1000)
            await ws.send(b"b" * MiB)  # exactly the limit: accepted
            pong = await ws.ping(b"x")
            await pong
            server_pipe = await srv.accepted.get()
            await received[0].wait_bytes(1000 + MiB)
            server_pipe.write(b"from libp2p")
            assert await ws.recv() == b"from libp2p"
            await ws.send(b"c" * (MiB + 1))  # over the limit
            with pytest.raises(ConnectionClosedError) as ei:
                await ws.recv()
            assert ei.value.rcvd is not None and ei.value.rcvd.code == 1009
        assert isinstance(await received[0].lost, MessageTooLarge)
        # the listener still accepts
        pipe = await WebSocketTransport().dial(srv.addr)
        await srv.accepted.get()
        pipe.close()


# --- the full stack through the host --------------------------------------------------------------------


def _host(listen: str, cfg: WebSocketConfig | None = None) -> aiolibp2p.Host:
    return aiolibp2p.new_host(listen=[listen], transports=[WebSocketTransport(cfg), TcpTransport()])


@pytest.mark.parametrize("suffix", ["ws", "wss"])
async def test_host_connect_ping_identify_echo(suffix: str, certs: Certs) -> None:
    cfg = WebSocketConfig(server_ssl=certs.server, client_ssl=certs.client)
    listen = f"/ip4/127.0.0.1/tcp/0/{suffix}"
    async with asyncio.timeout(30):
        async with _host(listen, cfg) as a, _host(listen, cfg) as b:
            a.set_stream_handler(ECHO, handle_echo)
            full = a.full_addrs()[0]
            # what js-libp2p produces: /ip4/127.0.0.1/tcp/P/ws/p2p/ID
            assert str(full) == f"{a.listen_addrs[0]}/p2p/{a.peer_id}"
            assert str(a.listen_addrs[0]).endswith(f"/{suffix}")
            peer = await b.connect(full)
            assert peer == a.peer_id
            (conn,) = b.connections(peer)
            assert conn.transport == "websocket"
            assert conn.security == "/noise" and conn.muxer == "/yamux/1.0.0"
            assert str(conn.remote_addr).endswith(f"/{suffix}")
            assert 0 < await b.ping(peer) < 5
            info = await b.identify(peer)
            assert [str(x) for x in info.listen_addrs] == [str(x) for x in a.listen_addrs]
            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 4 * MiB) == 4 * MiB
            assert await a.ping(b.peer_id) > 0


async def test_host_ws_and_tcp_side_by_side() -> None:
    async with asyncio.timeout(20):
        async with (
            aiolibp2p.new_host(
                listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"], transports=["tcp", "ws"]
            ) as a,
            aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0/ws"], transports=["websocket"]) as b,
        ):
            a.set_stream_handler(ECHO, handle_echo)
            ws_addr = next(x for x in a.full_addrs() if x.has_protocol("ws"))
            peer = await b.connect(ws_addr)
            s = await b.new_stream(peer, [ECHO])
            assert await echo_roundtrip(s, 256 * 1024) == 256 * 1024
