"""The aiolibp2p side of ``bench/run.py``: a server and the benchmark clients, one JSON line of results each.

Usage (run.py does this for you)::

    python bench/peer_aiolibp2p.py [--no-uvloop] server [--transport T]
    python bench/peer_aiolibp2p.py perf ADDR --upload N --download N [--streams S] [--transport T]
    python bench/peer_aiolibp2p.py dial ADDR --count N [--transport T]
    python bench/peer_aiolibp2p.py ping ADDR --count N [--transport T]
    python bench/peer_aiolibp2p.py conns ADDR --count N [--concurrency C]

Stack (``--transport``, the same names in every bench peer): ``tcp`` = TCP + Noise + yamux (the default),
``tcp-tls`` = TCP + TLS 1.3 + yamux, ``ws`` = WebSocket + Noise + yamux, ``quic`` = QUIC-v1, ``webrtc-direct`` = WebRTC-direct. The server serves ``/perf/1.0.0`` (the spec's perf protocol, 256 KiB writes) and
``/ipfs/ping/1.0.0``, prints ``{"event": "listening", "addr": ..., "pid": ...}`` and exits on stdin EOF (or
after ``--lifetime`` seconds). The ``conns`` client opens N connections from N distinct identities (used to
measure any implementation's listener), prints its result, then holds them until stdin EOF.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import struct
import sys
import time
from typing import Any

from aiolibp2p import new_host
from aiolibp2p.network.connmgr import ConnManagerConfig
from aiolibp2p.protocols.perf import PROTOCOL_ID as PERF_ID
from aiolibp2p.protocols.perf import handle_perf

PING_ID = "/ipfs/ping/1.0.0"
MUXERS = ["/yamux/1.0.0"]
SECURITY = ["noise"]  # the stack the tables name: TCP + Noise + yamux (one security protocol: lazy select)
# --transport: exactly the stack each table row names, nothing else configured
STACKS: dict[str, dict[str, Any]] = {
    "tcp": {"listen": "/ip4/127.0.0.1/tcp/0", "transports": ["tcp"], "security": SECURITY},
    "tcp-tls": {"listen": "/ip4/127.0.0.1/tcp/0", "transports": ["tcp"], "security": ["tls"]},
    "ws": {"listen": "/ip4/127.0.0.1/tcp/0/ws", "transports": ["ws"], "security": SECURITY},
    "quic": {"listen": "/ip4/127.0.0.1/udp/0/quic-v1", "transports": ["quic"], "security": SECURITY},
    "webrtc-direct": {
        "listen": "/ip4/127.0.0.1/udp/0/webrtc-direct",
        "transports": ["webrtc-direct"],
        "security": SECURITY,
    },
}
BLOCK = 256 * 1024
_ZEROS = memoryview(bytes(BLOCK))
# the listener must keep every benchmark connection: no trimming by the connection manager
NO_TRIM = ConnManagerConfig(low_water=100_000, high_water=100_000)


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def stdin_eof(limit: float) -> None:
    """Return at EOF on stdin or after ``limit`` seconds, whichever comes first."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass


def make_host(transport: str, *, listen: bool, **kw: Any):  # type: ignore[no-untyped-def]
    stack = STACKS[transport]
    return new_host(
        listen=[stack["listen"]] if listen else [],
        transports=stack["transports"],
        security=stack["security"],
        muxers=MUXERS,
        **kw,
    )


async def server(args: argparse.Namespace) -> None:
    host = make_host(args.transport, listen=True, conn_manager=NO_TRIM)
    async with host:
        host.set_stream_handler(PERF_ID, handle_perf)  # ping is on by default
        emit({"event": "listening", "addr": str(host.full_addrs()[0]), "pid": os.getpid()})
        await stdin_eof(args.lifetime)


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
    while data := await stream.read(BLOCK):
        got += len(data)
    if got != download:
        raise RuntimeError(f"perf: got {got} of {download} bytes")
    await stream.close()


async def perf(args: argparse.Namespace) -> None:
    async with make_host(args.transport, listen=False) as host:
        peer = await host.connect(args.addr)
        s = args.streams
        t0 = time.perf_counter()
        async with asyncio.timeout(args.timeout):
            await asyncio.gather(
                *(perf_one(host, peer, args.upload // s, args.download // s) for _ in range(s))
            )
        emit({"seconds": time.perf_counter() - t0})


async def ping_roundtrip(stream) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(32)
    await stream.write(payload)
    if await stream.readexactly(32) != payload:
        raise RuntimeError("ping: wrong echo")


async def dial(args: argparse.Namespace) -> None:
    samples = []
    async with make_host(args.transport, listen=False) as host, asyncio.timeout(args.timeout):
        cpu0 = time.process_time()
        for _ in range(args.count):
            t0 = time.perf_counter()
            peer = await host.connect(args.addr, new_connection=True)
            stream = await host.new_stream(peer, [PING_ID])
            await ping_roundtrip(stream)
            samples.append((time.perf_counter() - t0) * 1e3)
            await stream.close()
            await host.disconnect(peer)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / max(args.count, 1)
    emit({"ms": samples, "cpu_ms": cpu_ms})  # cpu_ms: this process's CPU per dial (closing included)


async def ping(args: argparse.Namespace) -> None:
    samples = []
    async with make_host(args.transport, listen=False) as host, asyncio.timeout(args.timeout):
        peer = await host.connect(args.addr)
        stream = await host.new_stream(peer, [PING_ID])
        for _ in range(10):  # warm up
            await ping_roundtrip(stream)
        for _ in range(args.count):
            t0 = time.perf_counter()
            await ping_roundtrip(stream)
            samples.append((time.perf_counter() - t0) * 1e6)
        await stream.close()
    emit({"us": samples})


async def conns(args: argparse.Namespace) -> None:
    hosts = [
        new_host(listen=[], muxers=MUXERS, security=SECURITY, conn_manager=NO_TRIM) for _ in range(args.count)
    ]
    for h in hosts:
        await h.start()
    sem = asyncio.Semaphore(args.concurrency)
    failures: list[str] = []

    async def one(h) -> None:  # type: ignore[no-untyped-def]
        async with sem:
            try:
                await h.connect(args.addr, timeout=args.timeout)
            except Exception as e:
                failures.append(repr(e))

    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(args.timeout * 4):
            await asyncio.gather(*(one(h) for h in hosts))
    except TimeoutError:
        failures.append("overall timeout")
    elapsed = time.perf_counter() - t0
    ok = sum(1 for h in hosts if h.connected_peers())
    emit(
        {
            "event": "connected",
            "ok": ok,
            "failed": args.count - ok,
            "seconds": elapsed,
            "errors": failures[:3],
        }
    )
    await stdin_eof(args.hold)
    ok_end = sum(1 for h in hosts if h.connected_peers())
    emit({"event": "released", "still_connected": ok_end})
    await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio event loop")
    p.add_argument("--profile", metavar="FILE", help="run under cProfile and dump the stats to FILE")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--lifetime", type=float, default=3600.0)
    s.add_argument("--transport", choices=list(STACKS), default="tcp")
    for name in ("perf", "dial", "ping", "conns"):
        c = sub.add_parser(name)
        if name != "conns":
            c.add_argument("--transport", choices=list(STACKS), default="tcp")
        c.add_argument("addr")
        c.add_argument("--timeout", type=float, default=120.0)
        c.add_argument("--count", type=int, default=100)
        if name == "perf":
            c.add_argument("--upload", type=int, default=0)
            c.add_argument("--download", type=int, default=0)
            c.add_argument("--streams", type=int, default=1)
        if name == "conns":
            c.add_argument("--concurrency", type=int, default=32)
            c.add_argument("--hold", type=float, default=600.0)
    args = p.parse_args()
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    fn = {"server": server, "perf": perf, "dial": dial, "ping": ping, "conns": conns}[args.cmd]
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        try:
            prof.runcall(asyncio.run, fn(args))
        finally:
            prof.dump_stats(args.profile)
    else:
        asyncio.run(fn(args))


if __name__ == "__main__":
    main()
