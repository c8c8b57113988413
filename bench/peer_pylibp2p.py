"""The py-libp2p (PyPI ``libp2p==0.8.1``, trio) side of ``bench/run.py``: server and clients.

Runs in its own venv (``bench/.venv-py-libp2p``, made by run.py). Same commands, arguments and JSON output
as ``bench/peer_aiolibp2p.py``, ``--transport`` included: ``tcp`` = TCP + Noise + yamux (default), ``tcp-tls`` =
TCP + TLS + yamux, ``ws`` = WebSocket + Noise + yamux, ``quic`` = QUIC-v1 (py-libp2p's aioquic-based
transport); the server uses py-libp2p's own ``PerfService``
(with 256 KiB writes, like the other two) and its default ``/ipfs/ping/1.0.0`` handler. Connection limits are
raised (``ConnectionConfig``, the resource manager's ``ConnectionLimits``) so the listener may hold every benchmark connection.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
import time

import multiaddr
import trio
from libp2p import create_yamux_muxer_option, new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.perf import PROTOCOL_NAME, PerfService
from libp2p.rcmgr import new_resource_manager
from libp2p.rcmgr.connection_limits import ConnectionLimits
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.security.tls.transport import PROTOCOL_ID as TLS_ID
from libp2p.security.tls.transport import TLSTransport

LISTEN = {
    "tcp": "/ip4/127.0.0.1/tcp/0",
    "tcp-tls": "/ip4/127.0.0.1/tcp/0",
    "ws": "/ip4/127.0.0.1/tcp/0/ws",
    "quic": "/ip4/127.0.0.1/udp/0/quic-v1",
}

PERF_ID = TProtocol(PROTOCOL_NAME)
PING_ID = TProtocol("/ipfs/ping/1.0.0")
BLOCK = 256 * 1024
_ZEROS = bytes(BLOCK)


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_host(listen: bool, transport: str = "tcp"):  # type: ignore[no-untyped-def]
    key_pair = create_new_key_pair()
    if transport == "tcp-tls":
        sec_opt = {TLS_ID: TLSTransport(key_pair)}
    else:
        noise = NoiseTransport(
            libp2p_keypair=key_pair, noise_privkey=create_new_x25519_key_pair().private_key, early_data=None
        )
        sec_opt = {NOISE_ID: noise}
    cfg = ConnectionConfig(
        max_connections=5000,
        high_watermark=5000,
        min_connections=0,
        low_watermark=0,
        max_connections_per_peer=8,
    )
    addrs = [multiaddr.Multiaddr(LISTEN[transport])] if listen else []
    host = new_host(
        key_pair=key_pair,
        sec_opt=sec_opt,
        enable_quic=transport == "quic",
        enable_websocket=transport == "ws",
        enable_tcp=transport != "quic",
        muxer_opt=create_yamux_muxer_option(),
        listen_addrs=addrs,
        connection_config=cfg,
        # the resource manager's default caps established inbound connections at 256
        resource_manager=new_resource_manager(
            connection_limits=ConnectionLimits(
                max_pending_inbound=1024,
                max_pending_outbound=1024,
                max_established_inbound=5000,
                max_established_outbound=5000,
                max_established_per_peer=8,
                max_established_total=10000,
            )
        ),
    )
    return host, addrs


async def stdin_eof(limit: float) -> None:
    with trio.move_on_after(limit):
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def server(args: argparse.Namespace) -> None:
    host, addrs = make_host(listen=True, transport=args.transport)
    async with host.run(listen_addrs=addrs):
        perf = PerfService(host, {"write_block_size": BLOCK})
        await perf.start()
        addr = f"{host.get_addrs()[0]}"
        if "/p2p/" not in addr:
            addr = f"{addr}/p2p/{host.get_id()}"
        emit({"event": "listening", "addr": addr, "pid": os.getpid()})
        await stdin_eof(args.lifetime)
    os._exit(0)  # py-libp2p's shutdown can linger on open connections


async def _connect(host, addr: str):  # type: ignore[no-untyped-def]
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    await host.connect(info)
    return info.peer_id


async def perf_one(host, peer, upload: int, download: int) -> None:  # type: ignore[no-untyped-def]
    stream = await host.new_stream(peer, [PERF_ID])
    await stream.write(struct.pack(">Q", download))
    left = upload
    while left > 0:
        n = min(left, BLOCK)
        await stream.write(_ZEROS[:n])
        left -= n
    await stream.close_write()
    got = 0
    while True:
        try:
            data = await stream.read(BLOCK)
        except StreamEOF:  # py-libp2p signals EOF with an exception, not b""
            break
        if not data:
            break
        got += len(data)
    if got != download:
        raise RuntimeError(f"perf: got {got} of {download} bytes")
    await stream.close()


async def perf(args: argparse.Namespace) -> None:
    host, _ = make_host(listen=False, transport=args.transport)
    async with host.run(listen_addrs=[]):
        peer = await _connect(host, args.addr)
        s = args.streams
        t0 = time.perf_counter()
        with trio.fail_after(args.timeout):
            async with trio.open_nursery() as n:
                for _ in range(s):
                    n.start_soon(perf_one, host, peer, args.upload // s, args.download // s)
        emit({"seconds": time.perf_counter() - t0})
    os._exit(0)


async def ping_roundtrip(stream) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(32)
    await stream.write(payload)
    got = b""
    while len(got) < 32:
        chunk = await stream.read(32 - len(got))
        if not chunk:
            raise RuntimeError("ping: EOF")
        got += chunk
    if got != payload:
        raise RuntimeError("ping: wrong echo")


async def dial(args: argparse.Namespace) -> None:
    samples = []
    host, _ = make_host(listen=False, transport=args.transport)
    async with host.run(listen_addrs=[]):
        with trio.fail_after(args.timeout):
            for _ in range(args.count):
                t0 = time.perf_counter()
                peer = await _connect(host, args.addr)
                stream = await host.new_stream(peer, [PING_ID])
                await ping_roundtrip(stream)
                samples.append((time.perf_counter() - t0) * 1e3)
                await stream.close()
                await host.disconnect(peer)
        emit({"ms": samples})
    os._exit(0)


async def ping(args: argparse.Namespace) -> None:
    samples = []
    host, _ = make_host(listen=False, transport=args.transport)
    async with host.run(listen_addrs=[]):
        with trio.fail_after(args.timeout):
            peer = await _connect(host, args.addr)
            stream = await host.new_stream(peer, [PING_ID])
            for _ in range(10):
                await ping_roundtrip(stream)
            for _ in range(args.count):
                t0 = time.perf_counter()
                await ping_roundtrip(stream)
                samples.append((time.perf_counter() - t0) * 1e6)
        emit({"us": samples})
    os._exit(0)


def main() -> None:
    logging.disable(logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--lifetime", type=float, default=3600.0)
    s.add_argument("--transport", choices=list(LISTEN), default="tcp")
    for name in ("perf", "dial", "ping"):
        c = sub.add_parser(name)
        c.add_argument("--transport", choices=list(LISTEN), default="tcp")
        c.add_argument("addr")
        c.add_argument("--timeout", type=float, default=120.0)
        c.add_argument("--count", type=int, default=100)
        if name == "perf":
            c.add_argument("--upload", type=int, default=0)
            c.add_argument("--download", type=int, default=0)
            c.add_argument("--streams", type=int, default=1)
    args = p.parse_args()
    fn = {"server": server, "perf": perf, "dial": dial, "ping": ping}[args.cmd]
    trio.run(fn, args)


if __name__ == "__main__":
    main()
