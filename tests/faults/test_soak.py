"""Soak (marked ``soak``, not in the default run): 20 hosts churning connections for a while, then no growth in
tasks, file descriptors or memory between the first and the last minute.

Duration: ``AIOLIBP2P_SOAK_SECONDS`` (default 600). The compared windows are the first and last
``min(60, duration / 4)`` seconds. Run: ``pytest -m soak tests/faults/test_soak.py -s``.

Each round picks 10 random pairs; each pair connects (sometimes a second connection), echoes a few streams,
pings, and ends in one of several ways (graceful close, abort, disconnect, a stream reset then close). Every
12th round one host is closed and replaced. Samples are taken when every connection is gone.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time

import pytest

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

pytestmark = pytest.mark.soak

N_HOSTS = 20
DURATION = float(os.environ.get("AIOLIBP2P_SOAK_SECONDS", "600"))
WINDOW = min(60.0, DURATION / 4)


def _sample() -> tuple[int, int, int]:
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), rss


def _new_host() -> aiolibp2p.Host:
    h = aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"])
    h.set_stream_handler(ECHO, handle_echo)
    return h


async def _pair_session(rng: random.Random, a: aiolibp2p.Host, b: aiolibp2p.Host) -> None:
    peer = await a.connect(b.full_addrs()[0], timeout=5)
    if rng.random() < 0.3:
        await a.connect(b.full_addrs()[0], new_connection=True, timeout=5)
    for _ in range(rng.randint(1, 3)):
        s = await a.new_stream(peer, [ECHO], timeout=5)
        await echo_roundtrip(s, rng.randint(0, 64 * 1024))
    await a.ping(peer, timeout=5)
    end = rng.choice(["close", "abort", "disconnect", "reset"])
    if end == "reset":
        s = await a.new_stream(peer, [ECHO], timeout=5)
        await s.write(b"x" * 1000)
        await s.reset()
        end = "close"
    if end == "disconnect":
        await a.disconnect(peer)
    for c in a.connections(peer):
        if end == "abort":
            c.abort()
        else:
            await c.close()


@pytest.mark.timeout(DURATION + 120)
async def test_connection_churn_does_not_leak() -> None:
    rng = random.Random(1)
    hosts = [_new_host() for _ in range(N_HOSTS)]
    for h in hosts:
        await h.start()
    samples: list[tuple[float, int, int, int]] = []
    errors = rounds = 0
    t_start = time.monotonic()
    try:
        while time.monotonic() - t_start < DURATION:
            rounds += 1
            async with asyncio.timeout(30):
                if rounds % 12 == 0:
                    i = rng.randrange(N_HOSTS)
                    await hosts[i].close()
                    hosts[i] = _new_host()
                    await hosts[i].start()
                pairs = [tuple(rng.sample(range(N_HOSTS), 2)) for _ in range(10)]
                results = await asyncio.gather(
                    *(_pair_session(rng, hosts[i], hosts[j]) for i, j in pairs), return_exceptions=True
                )
                for r in results:
                    if isinstance(r, BaseException):
                        # two pairs can share a host and close each other's connections: tolerated, counted
                        assert isinstance(r, Libp2pError | TimeoutError), r
                        errors += 1
                for h in hosts:  # quiescence: nobody holds a connection
                    for c in h.connections():
                        await c.close()
                while any(h.connections() for h in hosts):
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
            samples.append((time.monotonic() - t_start, *_sample()))
    finally:
        for h in hosts:
            await h.close()
    first = [s for s in samples if s[0] <= WINDOW]
    last = [s for s in samples if s[0] >= DURATION - WINDOW]
    assert first and last and rounds > 10
    summary = {
        "rounds": rounds,
        "errors": errors,
        "tasks first/last max": (max(s[1] for s in first), max(s[1] for s in last)),
        "fds first/last max": (max(s[2] for s in first), max(s[2] for s in last)),
        "rss MiB first/last median": (
            statistics.median(s[3] for s in first) / 2**20,
            statistics.median(s[3] for s in last) / 2**20,
        ),
    }
    print(f"soak {DURATION:g} s: {summary}")
    assert errors <= rounds, summary  # churn collisions are rare; a flood of errors is a bug
    assert max(s[1] for s in last) <= max(s[1] for s in first) + 2, summary
    assert max(s[2] for s in last) <= max(s[2] for s in first) + 2, summary
    rss_first = statistics.median(s[3] for s in first)
    rss_last = statistics.median(s[3] for s in last)
    assert rss_last <= rss_first + max(16 * 2**20, 0.1 * rss_first), summary
