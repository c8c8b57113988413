"""A misbehaving peer, run as its own process by tests/integration/test_limits.py so that the host under test
is measured alone.

``python flood_peer.py dial ADDR SECONDS``: dial ADDR in a tight loop (several loops at once), each connection
aborted as soon as it is up.
``python flood_peer.py streams ADDR SECONDS``: one connection; open echo streams without end, write into
each, never read and never close.

Prints one JSON line: attempts, ok, failed, seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO

DIAL_LOOPS = 8
STREAM_WRITE = 64 * 1024


async def dial_flood(h: aiolibp2p.Host, addr: str, seconds: float) -> dict[str, float]:
    counts: dict[str, float] = {"attempts": 0, "ok": 0, "failed": 0}
    end = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < end:
            counts["attempts"] += 1
            try:
                peer = await h.connect(addr, new_connection=True, timeout=2)
            except (Libp2pError, OSError):
                counts["failed"] += 1
                continue
            counts["ok"] += 1
            for c in h.connections(peer):
                c.abort()

    await asyncio.gather(*(loop() for _ in range(DIAL_LOOPS)))
    return counts


async def stream_flood(h: aiolibp2p.Host, addr: str, seconds: float) -> dict[str, float]:
    counts: dict[str, float] = {"attempts": 0, "ok": 0, "failed": 0}
    peer = await h.connect(addr, timeout=5)
    held = []  # never read, never closed
    payload = bytes(STREAM_WRITE)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        counts["attempts"] += 1
        try:
            s = await h.new_stream(peer, [ECHO], timeout=2)
            await s.write(payload, timeout=2)
        except (Libp2pError, OSError):
            counts["failed"] += 1
            await asyncio.sleep(0)  # a refusal comes back at once: let the connection's input through
            continue
        counts["ok"] += 1
        held.append(s)
    return counts


async def main() -> None:
    mode, addr, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    async with aiolibp2p.new_host(listen=[], transports=["tcp"]) as h:
        t0 = time.monotonic()
        flood = dial_flood if mode == "dial" else stream_flood
        counts = await flood(h, addr, seconds)
        print(json.dumps({**counts, "seconds": time.monotonic() - t0}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
