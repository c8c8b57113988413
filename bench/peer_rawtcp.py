"""The floor for ``bench/run.py``: plain TCP on asyncio (+ uvloop when installed), no libp2p at all.

Same commands and JSON output as ``bench/peer_aiolibp2p.py`` (server, perf, dial, ping, conns). No security, no
muxer, no protocol negotiation: one tag byte picks perf (``P``, then the perf protocol's u64 + upload + EOF,
256 KiB writes) or ping (``I``, then 32-byte echoes). It shows what this machine's loopback, syscalls and event
loop cost by themselves, so the libp2p numbers can be read against it (``--impls`` ``tcp-floor``).
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

BLOCK = 256 * 1024
_ZEROS = memoryview(bytes(BLOCK))


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def stdin_eof(limit: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        tag = await reader.readexactly(1)
        if tag == b"P":
            (size,) = struct.unpack(">Q", await reader.readexactly(8))
            while await reader.read(BLOCK):
                pass
            left = size
            while left > 0:
                n = min(left, BLOCK)
                writer.write(_ZEROS[:n])
                await writer.drain()
                left -= n
            writer.write_eof()
        elif tag == b"I":
            while True:
                writer.write(await reader.readexactly(32))
        else:
            await reader.read()  # an idle connection (conns): hold it until the peer leaves
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def server(args: argparse.Namespace) -> None:
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = srv.sockets[0].getsockname()[1]
    emit({"event": "listening", "addr": f"/ip4/127.0.0.1/tcp/{port}", "pid": os.getpid()})
    await stdin_eof(args.lifetime)
    srv.close()


def _hostport(addr: str) -> tuple[str, int]:
    parts = addr.split("/")
    return parts[2], int(parts[4])


async def perf_one(addr: str, upload: int, download: int) -> None:
    reader, writer = await asyncio.open_connection(*_hostport(addr))
    writer.write(b"P" + struct.pack(">Q", download))
    left = upload
    while left > 0:
        n = min(left, BLOCK)
        writer.write(_ZEROS[:n])
        await writer.drain()
        left -= n
    writer.write_eof()
    got = 0
    while data := await reader.read(BLOCK):
        got += len(data)
    if got != download:
        raise RuntimeError(f"perf: got {got} of {download} bytes")
    writer.close()


async def perf(args: argparse.Namespace) -> None:
    s = args.streams  # one TCP connection per "stream": there is no muxer
    t0 = time.perf_counter()
    async with asyncio.timeout(args.timeout):
        await asyncio.gather(*(perf_one(args.addr, args.upload // s, args.download // s) for _ in range(s)))
    emit({"seconds": time.perf_counter() - t0})


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    payload = os.urandom(32)
    writer.write(payload)
    if await reader.readexactly(32) != payload:
        raise RuntimeError("ping: wrong echo")


async def dial(args: argparse.Namespace) -> None:
    samples = []
    async with asyncio.timeout(args.timeout):
        for _ in range(args.count):
            t0 = time.perf_counter()
            reader, writer = await asyncio.open_connection(*_hostport(args.addr))
            writer.write(b"I")
            await roundtrip(reader, writer)
            samples.append((time.perf_counter() - t0) * 1e3)
            writer.close()
            await writer.wait_closed()
    emit({"ms": samples})


async def ping(args: argparse.Namespace) -> None:
    samples = []
    async with asyncio.timeout(args.timeout):
        reader, writer = await asyncio.open_connection(*_hostport(args.addr))
        writer.write(b"I")
        for _ in range(10):
            await roundtrip(reader, writer)
        for _ in range(args.count):
            t0 = time.perf_counter()
            await roundtrip(reader, writer)
            samples.append((time.perf_counter() - t0) * 1e6)
        writer.close()
    emit({"us": samples})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-uvloop", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--lifetime", type=float, default=3600.0)
    for name in ("perf", "dial", "ping"):
        c = sub.add_parser(name)
        c.add_argument("addr")
        c.add_argument("--timeout", type=float, default=120.0)
        c.add_argument("--count", type=int, default=100)
        if name == "perf":
            c.add_argument("--upload", type=int, default=0)
            c.add_argument("--download", type=int, default=0)
            c.add_argument("--streams", type=int, default=1)
    args = p.parse_args()
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run({"server": server, "perf": perf, "dial": dial, "ping": ping}[args.cmd](args))


if __name__ == "__main__":
    main()
