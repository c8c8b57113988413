"""CPU time per ping round trip with both hosts in one process (TCP + Noise + yamux on 127.0.0.1, or the stack
``--transport`` names, as in ``bench/peer_aiolibp2p.py``).

Usage: ``python bench/ping_cpu.py [--count N] [--batches B] [--transport T]``; prints ``{"cpu_us": [...]}`` (one
value per batch of N pings of 32 bytes on one ``/ipfs/ping/1.0.0`` stream: this process's CPU time per round
trip, both sides: the client's write and read, the server's handler, the kernel's loopback). With no second
process there are no cross-process wake-ups, so it is the steadiest measure of the work a ping costs;
``bench/ab_ping.py`` runs it for both trees in each round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from peer_aiolibp2p import (
    NO_TRIM,
    PING_ID,
    STACKS,
    make_host,
    ping_roundtrip,
)  # bench/ is the script's folder


async def run(count: int, batches: int, transport: str = "tcp") -> list[float]:
    async with (
        make_host(transport, listen=True, conn_manager=NO_TRIM) as server,
        make_host(transport, listen=False) as client,
    ):
        peer = await client.connect(server.full_addrs()[0])
        stream = await client.new_stream(peer, [PING_ID])
        for _ in range(200):  # warm up
            await ping_roundtrip(stream)
        out = []
        for _ in range(batches):
            c0 = time.process_time()
            for _ in range(count):
                await ping_roundtrip(stream)
            out.append((time.process_time() - c0) * 1e6 / count)
        await stream.close()
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=4000, help="pings per batch")
    p.add_argument("--batches", type=int, default=7)
    p.add_argument("--transport", choices=list(STACKS), default="tcp")
    args = p.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(json.dumps({"cpu_us": asyncio.run(run(args.count, args.batches, args.transport))}))


if __name__ == "__main__":
    main()
