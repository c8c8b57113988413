"""CPU time per dial + first ping with both hosts in one process (TCP + Noise + yamux on 127.0.0.1, or the
stack ``--transport`` names, as in ``bench/peer_aiolibp2p.py``).

Usage: ``python bench/dial_cpu.py [--count N] [--transport T]``; prints ``{"cpu_ms": [...]}`` (one value per batch of N/5
dials: this process's CPU time per dial, both hosts, closing included). With no second process there are no
cross-process wake-ups and no scheduler effects between two processes, so it is the steadiest measure of the
work a dial costs; ``bench/ab_dial.py`` runs it for both trees in each round.
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
        addr = server.full_addrs()[0]

        async def one() -> None:
            peer = await client.connect(addr, new_connection=True)
            stream = await client.new_stream(peer, [PING_ID])
            await ping_roundtrip(stream)
            await stream.close()
            await client.disconnect(peer)

        for _ in range(20):  # warm up
            await one()
        out = []
        per = max(count // batches, 1)
        for _ in range(batches):
            await asyncio.sleep(0.05)  # let the closes of the previous batch finish
            c0 = time.process_time()
            for _ in range(per):
                await one()
            out.append((time.process_time() - c0) * 1e3 / per)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--transport", choices=list(STACKS), default="tcp")
    args = p.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(json.dumps({"cpu_ms": asyncio.run(run(args.count, args.batches, args.transport))}))


if __name__ == "__main__":
    main()
