"""libp2p TLS (``/tls/1.0.0``) throughput and handshake cost, side by side with Noise in one run.

Usage: ``python bench/tls_throughput.py [MiB] [--uvloop]``.

1. engine: encrypt+decrypt of 256 KiB writes through two back-to-back ``TlsEngine`` (pyOpenSSL memory BIOs),
   next to the stdlib ``ssl`` module's ``SSLObject`` over ``MemoryBIO`` (same OpenSSL, no client
   certificates: the stdlib cannot skip CA checks on a client certificate, which is why it is not used).
2. TlsPipe vs NoisePipe over a memory pipe (no muxer): one direction, 256 KiB writes.
3. TCP loopback + security + yamux, one stream, 256 KiB writes, TLS vs Noise.
4. handshakes per second over memory pipes, TLS vs Noise.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from aiolibp2p.core.interfaces import MuxedStream, SecurityTransport
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.crypto.keys import generate_key_pair
from aiolibp2p.security.noise import NoiseSecurity
from aiolibp2p.security.tls import TlsCertificate, TlsEngine, TlsSecurity, make_tls_context
from aiolibp2p.transports.memory.pipe import memory_pipe_pair

CHUNK = 256 * 1024


def bench_engine(total: int) -> float:
    ka, kb = generate_key_pair(), generate_key_pair()
    c = TlsEngine(make_tls_context(TlsCertificate.generate(ka), is_client=True), is_client=True)
    s = TlsEngine(make_tls_context(TlsCertificate.generate(kb), is_client=False), is_client=False)
    c.start()
    while not (c.handshake_complete and s.handshake_complete):
        s.receive_data(c.data_to_send())
        c.receive_data(s.data_to_send())
    data = bytes(CHUNK)
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        c.send(data)
        assert len(s.receive_data(c.data_to_send(CHUNK))) == CHUNK
    return total / (time.perf_counter() - start) / 1e6


def bench_stdlib_ssl(total: int) -> float:
    cert = TlsCertificate.generate(generate_key_pair())
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cert_path.write_bytes(cert.certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            cert.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert_path, key_path)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    for ctx in (sctx, cctx):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = cctx.wrap_bio(c_in, c_out, server_side=False)
    s = sctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(4):
        for obj in (c, s):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    data = bytes(CHUNK)
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        c.write(data)
        s_in.write(c_out.read())
        got = 0
        try:
            while True:
                got += len(s.read(65536))
        except ssl.SSLWantReadError:
            pass
        assert got == CHUNK
    return total / (time.perf_counter() - start) / 1e6


async def bench_pipe(total: int, make: type[SecurityTransport]) -> float:
    pa, pb = memory_pipe_pair()
    sa, sb = make(generate_key_pair()), make(generate_key_pair())  # type: ignore[call-arg]
    out, inb = await asyncio.gather(
        sa.secure_outbound(PipeReader(pa), None, []), sb.secure_inbound(PipeReader(pb), [])
    )
    done = asyncio.get_running_loop().create_future()
    got = 0

    class Sink:
        def pipe_data_received(self, data: bytes) -> None:
            nonlocal got
            got += len(data)
            if got >= total and not done.done():
                done.set_result(None)

        def pipe_eof_received(self) -> None:
            pass

        def pipe_connection_lost(self, exc: BaseException | None) -> None:
            if not done.done():
                done.set_exception(exc or ConnectionError("lost"))

    inb.reader.hand_over(Sink())
    data = bytes(CHUNK)
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        out.pipe.write(data)
        await out.pipe.drain()
    await done
    rate = total / (time.perf_counter() - start) / 1e6
    out.pipe.abort()
    return rate


async def bench_tcp_yamux(total: int, make: type[SecurityTransport]) -> float:
    from aiolibp2p.multiaddr import Multiaddr
    from aiolibp2p.muxers.yamux import YamuxMuxer
    from aiolibp2p.transports.tcp import TcpTransport

    tcp = TcpTransport()
    sa, sb = make(generate_key_pair()), make(generate_key_pair())  # type: ignore[call-arg]
    muxer = YamuxMuxer()
    server_conn: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def handler(pipe: object) -> None:
        session = await sb.secure_inbound(PipeReader(pipe), [muxer.protocol_id])  # type: ignore[arg-type]
        server_conn.set_result(muxer.create(session.reader, is_initiator=False))

    listener = await tcp.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), handler)
    raw = await tcp.dial(listener.listen_addrs[0])
    session = await sa.secure_outbound(PipeReader(raw), None, [muxer.protocol_id])
    client = muxer.create(session.reader, is_initiator=True)
    server = await server_conn
    inbound: asyncio.Queue[MuxedStream] = asyncio.Queue()
    server.set_inbound_stream_handler(inbound.put_nowait)  # type: ignore[attr-defined]
    stream = await client.open_stream()
    chunk = bytes(CHUNK)

    async def write() -> None:
        for _ in range(total // CHUNK):
            await stream.write(chunk)
        await stream.close_write()

    start = time.perf_counter()
    writer = asyncio.create_task(write())
    peer = await inbound.get()
    got = 0
    while data := await peer.read(1 << 20):
        got += len(data)
    await writer
    rate = total / (time.perf_counter() - start) / 1e6
    assert got == total
    client.abort()
    server.abort()  # type: ignore[attr-defined]
    await listener.close()
    return rate


async def bench_handshakes(make: type[SecurityTransport], n: int = 200) -> float:
    sa, sb = make(generate_key_pair()), make(generate_key_pair())  # type: ignore[call-arg]
    start = time.perf_counter()
    for _ in range(n):
        pa, pb = memory_pipe_pair()
        out, _ = await asyncio.gather(
            sa.secure_outbound(PipeReader(pa), None, ["/yamux/1.0.0"]),
            sb.secure_inbound(PipeReader(pb), ["/yamux/1.0.0"]),
        )
        out.pipe.abort()
    return n / (time.perf_counter() - start)


def fmt(rates: list[float]) -> str:
    return f"best {max(rates):7.0f}  (runs: {', '.join(f'{r:.0f}' for r in rates)})"


async def main(total: int) -> None:
    print(f"engine encrypt+decrypt  TlsEngine {fmt([bench_engine(total) for _ in range(3)])} MB/s")
    print(f"                        stdlib ssl {fmt([bench_stdlib_ssl(total) for _ in range(3)])} MB/s")
    for name, make in (("TlsPipe  ", TlsSecurity), ("NoisePipe", NoiseSecurity)):
        rates = [await bench_pipe(total, make) for _ in range(3)]  # type: ignore[type-abstract]
        print(f"{name} over memory     {fmt(rates)} MB/s")
    for name, make in (("TLS  ", TlsSecurity), ("Noise", NoiseSecurity)):
        rates = [await bench_tcp_yamux(total, make) for _ in range(3)]  # type: ignore[type-abstract]
        print(f"TCP+{name}+yamux        {fmt(rates)} MB/s")
    for name, make in (("TLS  ", TlsSecurity), ("Noise", NoiseSecurity)):
        rate = await bench_handshakes(make)  # type: ignore[type-abstract]
        print(f"handshakes {name}        {rate:7.0f} /s (memory pipes, both sides on one core)")


if __name__ == "__main__":
    mib = int(next((a for a in sys.argv[1:] if a.isdigit()), "256"))
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(mib * 1024 * 1024))
