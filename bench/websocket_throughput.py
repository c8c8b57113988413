"""Single-stream throughput through the whole host stack, WebSocket next to TCP, in one run.

Usage: ``python bench/websocket_throughput.py [MiB] [--uvloop] [--rounds N]``.

Two hosts on loopback (Noise + yamux negotiated with multistream-select over each transport); one stream
sends ``MiB`` MiB in 256 KiB writes, the other side reads and discards, and the sender waits for the
receiver's byte count. Transports: tcp, ws, and wss (self-signed certificate; TLS under Noise, as the spec
asks). Rounds alternate transports, since absolute numbers on shared machines drift.

Measured 2026-11 (256 MiB x 5, Python 3.11, stdlib loop; median / best MB/s):
tcp 315 / 353, ws 249 / 298, wss 156 / 168. With uvloop: tcp 261 / 284, ws 232 / 240, wss 141 / 161.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import aiolibp2p
from aiolibp2p.core.interfaces import MuxedStream
from aiolibp2p.transports.tcp import TcpTransport
from aiolibp2p.transports.websocket import WebSocketConfig, WebSocketTransport

CHUNK = 256 * 1024
SINK = "/bench/sink/1.0.0"


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
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
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    d = Path(tempfile.mkdtemp())
    (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "c.pem", d / "k.pem")
    return server, ssl.create_default_context(cafile=str(d / "c.pem"))


async def one_run(listen: str, cfg: WebSocketConfig, total: int) -> float:
    def host() -> aiolibp2p.Host:
        return aiolibp2p.new_host(listen=[listen], transports=[TcpTransport(), WebSocketTransport(cfg)])

    async with host() as a, host() as b:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def sink(stream: MuxedStream) -> None:
            n = 0
            while data := await stream.read(1 << 20):
                n += len(data)
            await stream.write(n.to_bytes(8, "big"))
            await stream.close()
            done.set_result(n)

        a.set_stream_handler(SINK, sink)
        peer = await b.connect(a.full_addrs()[0])
        s = await b.new_stream(peer, [SINK])
        block = memoryview(bytes(CHUNK))
        start = time.perf_counter()
        for _ in range(total // CHUNK):
            await s.write(block)
        await s.close_write()
        assert int.from_bytes(await s.readexactly(8), "big") == total
        elapsed = time.perf_counter() - start
        assert await done == total
        return total / elapsed / 1e6


async def main(total: int, rounds: int) -> None:
    server_ssl, client_ssl = tls_contexts()
    cfg = WebSocketConfig(server_ssl=server_ssl, client_ssl=client_ssl)
    addrs = {
        "tcp": "/ip4/127.0.0.1/tcp/0",
        "ws": "/ip4/127.0.0.1/tcp/0/ws",
        "wss": "/ip4/127.0.0.1/tcp/0/wss",
    }
    results: dict[str, list[float]] = {k: [] for k in addrs}
    for _ in range(rounds):
        for name, listen in addrs.items():
            results[name].append(await one_run(listen, cfg, total))
    for name, r in results.items():
        print(
            f"{name:>4}: best {max(r):7.1f} MB/s   median {sorted(r)[len(r) // 2]:7.1f} MB/s  ({total >> 20} MiB x {rounds})"
        )


if __name__ == "__main__":
    argv = sys.argv[1:]
    n_rounds = 3
    if "--rounds" in argv:
        i = argv.index("--rounds")
        n_rounds = int(argv[i + 1])
        del argv[i : i + 2]
    args = [a for a in argv if not a.startswith("--")]
    mib = int(args[0]) if args else 256
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(mib * 1024 * 1024, n_rounds))
