"""QUIC-v1 transport on loopback: dial/listen with mutual libp2p certificates, native streams (FIN half-close,
reset and STOP_SENDING with codes), close with an application code, idle timeout and keep-alive, a wrong or
missing certificate, garbage datagrams, stateless resets, the inbound stream limit, and transfers through a
lossy, reordering UDP relay that must arrive byte-exact."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aioquic.asyncio.client import connect as aioquic_connect
from aioquic.quic.configuration import QuicConfiguration

from aiolibp2p.core.interfaces import MuxedStream
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.exceptions import ConnectionClosed, PeerIdMismatch, StreamReset
from aiolibp2p.multiaddr import Multiaddr
from aiolibp2p.transports.quic import QuicConfig, QuicConnection, QuicTransport

LOOPBACK = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
FAST = QuicConfig(keep_alive_interval=0.2)  # idle timeout 0.4 s


class Server:
    def __init__(self, transport: QuicTransport) -> None:
        self.transport = transport
        self.conns: asyncio.Queue[QuicConnection] = asyncio.Queue()
        self.streams: asyncio.Queue[MuxedStream] = asyncio.Queue()
        self.addr: Multiaddr = LOOPBACK

    async def handle(self, conn: QuicConnection) -> None:
        conn.set_inbound_stream_handler(self.streams.put_nowait)
        self.conns.put_nowait(conn)


@asynccontextmanager
async def pair(
    server_cfg: QuicConfig | None = None, client_cfg: QuicConfig | None = None, relay: UdpRelay | None = None
) -> AsyncIterator[tuple[Server, QuicTransport, QuicConnection, QuicConnection]]:
    st = QuicTransport(generate_key_pair(), server_cfg)
    ct = QuicTransport(generate_key_pair(), client_cfg)
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    server.addr = listener.listen_addrs[0]
    target = server.addr
    try:
        if relay is not None:
            target = await relay.start(server.addr)
        client = await ct.dial(target, st.local_peer)
        sconn = await asyncio.wait_for(server.conns.get(), 5)
        yield server, ct, client, sconn
    finally:
        await listener.close()
        await st.close()
        await ct.close()
        if relay is not None:
            relay.close()


def closed_future(conn: QuicConnection) -> asyncio.Future[tuple[BaseException | None, float]]:
    fut: asyncio.Future[tuple[BaseException | None, float]] = asyncio.get_running_loop().create_future()

    def cb(exc: BaseException | None) -> None:
        if not fut.done():
            fut.set_result((exc, time.monotonic()))

    conn.set_close_callback(cb)
    return fut


async def read_until_eof(s: MuxedStream) -> bytes:
    buf = bytearray()
    while chunk := await s.read(1 << 20):
        buf += chunk
    return bytes(buf)


# --- handshake and identities -----------------------------------------------------------------------------


async def test_dial_listen_identities_and_echo() -> None:
    async with asyncio.timeout(15), pair() as (server, ct, client, sconn):
        assert client.remote_peer == server.transport.local_peer
        assert sconn.remote_peer == ct.local_peer
        assert client.remote_public_key == server.transport._key.public_key
        assert sconn.remote_addr.value_for_protocol("udp") == client.local_addr.value_for_protocol("udp")
        s = await client.open_stream()
        await s.write(b"hello")
        await s.close_write()  # FIN: a half-close, the reverse direction stays open
        r = await asyncio.wait_for(server.streams.get(), 5)
        assert await read_until_eof(r) == b"hello"
        await r.write(b"world")
        await r.close_write()
        assert await read_until_eof(s) == b"world"
        assert s.is_closed() and r.is_closed()


async def test_large_transfer_both_ways_byte_exact() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with asyncio.timeout(30), pair() as (server, _ct, client, _sconn):
        s = await client.open_stream()

        async def echo() -> None:
            r = await server.streams.get()
            while chunk := await r.read(65536):
                await r.write(chunk)
            await r.close_write()

        task = asyncio.ensure_future(echo())
        reader = asyncio.ensure_future(read_until_eof(s))
        await s.write(data)
        await s.close_write()
        assert await reader == data
        await task


async def test_dials_without_a_listener_share_one_socket_kept_for_a_linger() -> None:
    st = QuicTransport(generate_key_pair())
    ct = QuicTransport(generate_key_pair(), QuicConfig(dial_socket_linger=0.3))
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    try:
        async with asyncio.timeout(10):
            a = await ct.dial(listener.listen_addrs[0], st.local_peer)
            b = await ct.dial(listener.listen_addrs[0], st.local_peer)
            assert a.local_addr == b.local_addr and a.endpoint is b.endpoint
            ep = a.endpoint
            await a.close()
            await b.close()
            while ep.num_connections:  # both finish (their close linger), the socket stays
                await asyncio.sleep(0.05)
            assert not ep.closed
            c = await ct.dial(listener.listen_addrs[0], st.local_peer)
            assert c.endpoint is ep  # reused within the linger
            await c.close()
            while not ep.closed:  # then released: 0.3 s after the last connection finished
                await asyncio.sleep(0.05)
            d = await ct.dial(listener.listen_addrs[0], st.local_peer)
            assert d.endpoint is not ep and not d.endpoint.closed
        await ct.close()  # closing the transport releases the lingering socket at once
        assert d.endpoint.closed
    finally:
        await listener.close()
        await st.close()
        await ct.close()


async def test_a_dial_prepares_the_next_dials_first_flight() -> None:
    """After a dial sends its Initial, its endpoint builds the next dialer engine's first flight (while the
    dial waits for its peer); the next dial uses it, still checking the peer it expects."""
    st, ct = QuicTransport(generate_key_pair()), QuicTransport(generate_key_pair())
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    try:
        async with asyncio.timeout(10):
            a = await ct.dial(listener.listen_addrs[0], st.local_peer)
            ep = a.endpoint
            spare = ep._spare.get(True)
            assert spare is not None and spare._prepared
            other = generate_key_pair().public_key.peer_id
            with pytest.raises(PeerIdMismatch):
                await ct.dial(listener.listen_addrs[0], other)  # on the prepared engine
            assert ep._spare.get(True) is not spare
            b = await ct.dial(listener.listen_addrs[0], st.local_peer)
            assert b.engine is not spare and b.remote_peer == st.local_peer
            s = await b.open_stream()
            await s.write(b"ping")
            await s.close_write()
            got = await asyncio.wait_for(server.streams.get(), 5)
            assert await read_until_eof(got) == b"ping"
        await ct.close()
        assert not ep._spare  # released with the socket
    finally:
        await listener.close()
        await st.close()
        await ct.close()


async def test_the_dialers_finished_leaves_before_the_tasks_its_handshake_wakes() -> None:
    """When TLS completes on the dialer, its Finished is sent at once (not coalesced behind the work of the
    tasks the completion wakes): by the time the handshake's callbacks run, nothing is left to send."""
    st, ct = QuicTransport(generate_key_pair()), QuicTransport(generate_key_pair())
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    pending: list[int] = []
    try:
        async with asyncio.timeout(10):
            dial = asyncio.ensure_future(ct.dial(listener.listen_addrs[0], st.local_peer))
            while not ct._endpoints or not next(iter(ct._endpoints))._conns:
                await asyncio.sleep(0)
            conn = next(iter(next(iter(ct._endpoints))._conns))
            loop = asyncio.get_running_loop()
            conn.handshake.add_done_callback(
                lambda _: pending.append(len(conn.engine.datagrams_to_send(loop.time())))
            )
            assert (await dial) is conn
            assert pending == [0]
            assert (await asyncio.wait_for(server.conns.get(), 5)).remote_peer == ct.local_peer
    finally:
        await listener.close()
        await st.close()
        await ct.close()


async def test_wrong_expected_peer_is_refused_and_server_sees_nothing() -> None:
    st, ct = QuicTransport(generate_key_pair()), QuicTransport(generate_key_pair())
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    try:
        async with asyncio.timeout(10):
            other = generate_key_pair().public_key.peer_id
            with pytest.raises(PeerIdMismatch) as info:
                await ct.dial(listener.listen_addrs[0], other)
            assert info.value.expected == other and info.value.actual == st.local_peer
            await asyncio.sleep(0.2)
            assert server.conns.empty()
            # the right peer ID (here taken from /p2p) works on the same listener
            conn = await ct.dial(listener.listen_addrs[0].with_peer_id(st.local_peer))
            assert conn.remote_peer == st.local_peer
    finally:
        await listener.close()
        await st.close()
        await ct.close()


async def test_client_without_libp2p_certificate_is_refused() -> None:
    """A plain QUIC client (no certificate, then one without the libp2p extension) must not get through."""
    from aiolibp2p.security.tls.certificate import TlsCertificate

    st = QuicTransport(generate_key_pair())
    server = Server(st)
    listener = await st.listen(LOOPBACK, server.handle)
    host, port = listener.listen_addrs[0].host_port()
    try:
        async with asyncio.timeout(15):
            for with_cert in (False, True):
                cfg = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE)
                if with_cert:  # a self-signed certificate whose libp2p extension signs another key
                    good = TlsCertificate.generate(generate_key_pair())
                    cfg.certificate = good.certificate
                    cfg.private_key = TlsCertificate.generate(generate_key_pair()).private_key
                with pytest.raises((ConnectionError, TimeoutError)):
                    async with aioquic_connect(host, port, configuration=cfg, wait_connected=True) as proto:
                        await asyncio.wait_for(proto.wait_closed(), 3)
                        raise ConnectionError("closed by the server")
            await asyncio.sleep(0.2)
            assert server.conns.empty()
    finally:
        await listener.close()
        await st.close()


# --- streams ----------------------------------------------------------------------------------------------


async def test_reset_codes_both_directions() -> None:
    async with asyncio.timeout(15), pair() as (server, _ct, client, _sconn):
        s = await client.open_stream()
        await s.write(b"x")
        r = await server.streams.get()
        assert await r.read() == b"x"
        await s.reset(7)
        with pytest.raises(StreamReset) as info:
            await asyncio.wait_for(r.read(), 5)
        assert info.value.code == 7 and info.value.remote
        with pytest.raises(StreamReset) as info:
            await s.write(b"y")
        assert not info.value.remote

        s2 = await client.open_stream()
        await s2.write(b"x")
        r2 = await server.streams.get()
        await r2.reset(42)  # RESET_STREAM + STOP_SENDING with the code
        with pytest.raises(StreamReset) as info:
            await asyncio.wait_for(s2.read(), 5)
        assert info.value.code == 42
        await asyncio.sleep(0.05)
        assert client.num_streams == 0 and _sconn.num_streams == 0


async def test_stop_sending_fails_the_writer_with_its_code() -> None:
    async with asyncio.timeout(15), pair() as (server, _ct, client, _sconn):
        s = await client.open_stream()
        await s.write(b"x")
        r = await server.streams.get()
        await r.close()  # FIN + STOP_SENDING(0): we will not read any more
        assert await asyncio.wait_for(s.read(), 5) == b""
        with pytest.raises(StreamReset) as info:
            for _ in range(200):
                await s.write(b"z" * 1000)
                await asyncio.sleep(0.005)
        assert info.value.code == 0


async def test_inbound_stream_limit() -> None:
    async with (
        asyncio.timeout(15),
        pair(server_cfg=QuicConfig(max_inbound_streams=4)) as (server, _, client, _s),
    ):
        streams = [await client.open_stream() for _ in range(6)]
        for s in streams:
            await s.write(b"x")
        accepted = [await asyncio.wait_for(server.streams.get(), 5) for _ in range(4)]
        await asyncio.sleep(0.3)
        assert server.streams.empty()  # streams 5 and 6 wait for MAX_STREAMS
        for r in accepted[:2]:
            await r.reset(1)  # finishing two streams grants two more
        more = [await asyncio.wait_for(server.streams.get(), 5) for _ in range(2)]
        assert {r.stream_id for r in more} == {streams[4].stream_id, streams[5].stream_id}


# --- connection close, idle, keep-alive, stateless reset ------------------------------------------------------


async def test_close_with_application_code_seen_within_a_second() -> None:
    async with asyncio.timeout(15), pair() as (server, _ct, client, sconn):
        s = await client.open_stream()
        await s.write(b"x")
        r = await server.streams.get()
        fut = closed_future(sconn)
        t0 = time.monotonic()
        await client.close(0x1234)
        exc, t1 = await asyncio.wait_for(fut, 1.0)
        assert t1 - t0 < 1.0
        assert isinstance(exc, ConnectionClosed) and exc.code == 0x1234 and exc.cause == "remote-closed"
        assert await r.read() == b"x"  # what had arrived can still be read, then the loss shows
        with pytest.raises(ConnectionClosed):
            await r.read()
        assert client.is_closed() and sconn.is_closed()
        with pytest.raises(ConnectionClosed):
            await client.open_stream()


async def test_keep_alive_holds_an_idle_connection_open() -> None:
    async with asyncio.timeout(15), pair(FAST, FAST) as (_server, _ct, client, sconn):
        await asyncio.sleep(1.5)  # almost 4 idle timeouts without application traffic
        assert not client.is_closed() and not sconn.is_closed()
        await asyncio.wait_for(client.ping(), 2)


async def test_silent_death_detected_within_two_keep_alive_intervals() -> None:
    relay = UdpRelay()
    async with asyncio.timeout(15), pair(FAST, FAST, relay=relay) as (_server, _ct, client, sconn):
        fc, fs = closed_future(client), closed_future(sconn)
        await asyncio.sleep(0.5)
        relay.blackhole = True
        t0 = time.monotonic()
        for fut in (fc, fs):
            exc, t1 = await asyncio.wait_for(fut, 3)
            assert isinstance(exc, ConnectionClosed) and exc.cause == "idle-timeout"
            assert t1 - t0 <= 2 * FAST.keep_alive_interval + 0.3


async def test_stateless_reset_ends_a_connection_the_server_forgot() -> None:
    slow = QuicConfig(keep_alive_interval=30.0)
    async with asyncio.timeout(15), pair(slow, slow) as (_server, _ct, client, sconn):
        fut = closed_future(client)
        sconn._finish()  # the server loses the connection's state without telling anyone
        s = await client.open_stream()
        t0 = time.monotonic()
        await s.write(b"anyone there?")
        exc, t1 = await asyncio.wait_for(fut, 3)
        assert isinstance(exc, ConnectionClosed) and exc.cause == "stateless-reset"
        assert t1 - t0 < 1.0


# --- hostile and lossy networks ----------------------------------------------------------------------------


async def test_garbage_datagrams_are_ignored() -> None:
    async with asyncio.timeout(20), pair() as (server, ct, client, _sconn):
        host, port = server.addr.host_port()
        rng = random.Random(1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(400):
                n = rng.choice([0, 1, 5, 20, 40, 100, 1199, 1200, 1500])
                data = bytearray(rng.randbytes(n))
                if data and i % 3 == 0:
                    data[0] |= 0xC0  # a long header: Initial-looking garbage
                if len(data) > 5 and i % 5 == 0:
                    data[1:5] = b"\x00\x00\x00\x01"
                sock.sendto(bytes(data), (host, port))
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
        finally:
            sock.close()
        await asyncio.sleep(0.2)
        # the listener and the existing connection still work, and a new dial succeeds
        await asyncio.wait_for(client.ping(), 2)
        again = await ct.dial(server.addr, server.transport.local_peer)
        s = await again.open_stream()
        await s.write(b"still here")
        await s.close_write()
        r = await asyncio.wait_for(server.streams.get(), 5)
        assert await read_until_eof(r) == b"still here"


@pytest.mark.parametrize("loss,reorder", [(0.05, 0.1), (0.15, 0.3)])
async def test_transfer_through_a_lossy_reordering_relay(loss: float, reorder: float) -> None:
    relay = UdpRelay(loss=loss, reorder=reorder, seed=7)
    data = os.urandom(512 * 1024)
    async with asyncio.timeout(60), pair(relay=relay) as (server, _ct, client, _sconn):

        async def echo(r: MuxedStream) -> None:
            while chunk := await r.read(65536):
                await r.write(chunk)
            await r.close_write()

        async def one() -> None:
            s = await client.open_stream()
            reader = asyncio.ensure_future(read_until_eof(s))
            await s.write(data)
            await s.close_write()
            assert await reader == data

        tasks = [asyncio.ensure_future(one()) for _ in range(3)]
        echoes = [asyncio.ensure_future(echo(await server.streams.get())) for _ in range(3)]
        await asyncio.gather(*tasks, *echoes)
        assert relay.dropped > 0 and relay.delayed > 0


class UdpRelay(asyncio.DatagramProtocol):
    """Forwards datagrams between one client and a server, dropping and delaying (reordering) some."""

    def __init__(self, loss: float = 0.0, reorder: float = 0.0, seed: int = 0) -> None:
        self.loss, self.reorder = loss, reorder
        self.rng = random.Random(seed)
        self.blackhole = False
        self.dropped = self.delayed = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._server: tuple[str, int] = ("127.0.0.1", 0)
        self._client: Any = None

    async def start(self, server: Multiaddr) -> Multiaddr:
        self._server = server.host_port()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._transport = transport
        port = transport.get_extra_info("sockname")[1]
        return Multiaddr(f"/ip4/127.0.0.1/udp/{port}/quic-v1")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if addr[:2] == self._server:
            dest = self._client
        else:
            self._client = addr
            dest = self._server
        if dest is None or self.blackhole:
            return
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        send: Callable[[], None] = lambda: self._transport.sendto(data, dest) if self._transport else None  # noqa: E731
        if self.rng.random() < self.reorder:
            self.delayed += 1
            asyncio.get_running_loop().call_later(self.rng.uniform(0.001, 0.02), send)
        else:
            send()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


async def test_ipv6_loopback_and_dialing_from_the_listening_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    a, b = QuicTransport(generate_key_pair()), QuicTransport(generate_key_pair())
    sa, sb = Server(a), Server(b)
    try:
        la = await a.listen(Multiaddr("/ip6/::1/udp/0/quic-v1"), sa.handle)
        lb = await b.listen(Multiaddr("/ip6/::1/udp/0/quic-v1"), sb.handle)
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    try:
        async with asyncio.timeout(10):
            conn = await b.dial(la.listen_addrs[0], a.local_peer)
            inbound = await sa.conns.get()
            # b dialed from its listening socket, so a sees b's listen port
            assert inbound.remote_addr == lb.listen_addrs[0]
            s = await conn.open_stream()
            await s.write(b"v6")
            await s.close_write()
            assert await read_until_eof(await sa.streams.get()) == b"v6"
    finally:
        await la.close()
        await lb.close()
        await a.close()
        await b.close()


def _rcvbuf_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return 0


@pytest.mark.parametrize("size", [1 << 20, 0])
async def test_udp_socket_buffers_follow_the_setting(size: int) -> None:
    """The socket of every endpoint (listening and dialing) gets ``socket_buffer`` bytes of kernel buffer
    (Linux reports twice what was granted), 0 keeps the system default: bursts of a fast sender overflowed
    the default and each drop halved QUIC's congestion window (download throughput bimodal)."""
    if _rcvbuf_max() < 1 << 20:
        pytest.skip("net.core.rmem_max below 1 MiB")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        default = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    cfg = QuicConfig(socket_buffer=size)
    async with asyncio.timeout(10), pair(cfg, cfg) as (server, ct, _client, _sconn):
        eps = list(server.transport._endpoints) + list(ct._endpoints)
        assert len(eps) == 2
        for ep in eps:
            assert ep._transport is not None
            sock = ep._transport.get_extra_info("socket")
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                got = sock.getsockopt(socket.SOL_SOCKET, opt)
                if size:
                    assert got >= size
                elif opt == socket.SO_RCVBUF:
                    assert got == default
