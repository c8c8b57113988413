"""Single-stream throughput of the yamux and mplex adapters over an in-memory pipe, side by side.

Usage: ``python bench/muxer_throughput.py [MiB] [--uvloop]``. Measures the muxer alone (no TCP, no Noise):
one stream, 256 KiB writes, the reader draining 1 MiB at a time.
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiolibp2p.core.interfaces import MuxedStream, MuxerFactory
from aiolibp2p.core.pipe import PipeReader
from aiolibp2p.muxers.mplex import MplexMuxer
from aiolibp2p.muxers.yamux import YamuxMuxer
from aiolibp2p.transports.memory.pipe import memory_pipe_pair


async def one_run(muxer: MuxerFactory, total: int) -> float:
    a, b = memory_pipe_pair()
    client = muxer.create(PipeReader(a), is_initiator=True)
    server = muxer.create(PipeReader(b), is_initiator=False)
    inbound: asyncio.Queue[MuxedStream] = asyncio.Queue()
    server.set_inbound_stream_handler(inbound.put_nowait)
    stream = await client.open_stream()
    chunk = bytes(256 * 1024)

    async def write() -> None:
        for _ in range(total // len(chunk)):
            await stream.write(chunk)
        await stream.close_write()

    start = time.perf_counter()
    writer = asyncio.create_task(write())
    peer = await inbound.get()
    got = 0
    while data := await peer.read(1 << 20):
        got += len(data)
    await writer
    elapsed = time.perf_counter() - start
    assert got == total
    client.abort()
    server.abort()
    return total / elapsed / 1e6


async def main(total: int) -> None:
    for name, muxer in (("yamux", YamuxMuxer()), ("mplex", MplexMuxer())):
        rates = [await one_run(muxer, total) for _ in range(3)]
        print(f"{name:6s} best {max(rates):7.0f} MB/s  (runs: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    mib = int(next((a for a in sys.argv[1:] if a.isdigit()), "256"))
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(mib * 1024 * 1024))
