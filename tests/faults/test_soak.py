"""Soak (marked ``soak``, not in the default run): 20 hosts churning connections for a while, then no growth in
tasks, file descriptors or memory after warm-up, and every per-peer structure empty once nobody is connected.

Duration: ``AIOLIBP2P_SOAK_SECONDS`` (default 600). The first ``WARMUP`` seconds fill what is bounded by design
(multiaddr parse caches, Noise's verified-payload cache, the peer store's departed peers); the window right
after it is compared with the last window. Run: ``pytest -m soak tests/faults/test_soak.py -s``; the result
of the full run is in ``bench/results/soak.md``.

Each round picks 10 random pairs; each pair connects (sometimes a second connection), echoes a few streams,
pings, and ends in one of several ways (graceful close, abort, disconnect, a stream reset then close). Every
12th round one host is closed and replaced by a new peer. Samples are taken when every connection is gone.

A departed peer stays in a peer store until its addresses expire (``RECENTLY_CONNECTED_ADDR_TTL``, 15 min by
default, longer than the run); the soak shortens that to ``RETENTION`` seconds and sweeps every
``SWEEP_INTERVAL`` so that the peer stores reach their steady state during warm-up and are checked too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pathlib
import random
import statistics
import time

import host_state
import pytest

import aiolibp2p
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.network import peerstore as peerstore_mod
from aiolibp2p.network import swarm as swarm_mod
from aiolibp2p.protocols.echo import PROTOCOL_ID as ECHO
from aiolibp2p.protocols.echo import echo_roundtrip, handle_echo

pytestmark = pytest.mark.soak

N_HOSTS = 20
DURATION = float(os.environ.get("AIOLIBP2P_SOAK_SECONDS", "600"))
WARMUP = min(120.0, DURATION / 4)
WINDOW = min(60.0, DURATION / 8)
RETENTION = 20.0
SWEEP_INTERVAL = 5.0
MAX_TASK_GROWTH = 2
MAX_FD_GROWTH = 2
MAX_RSS_GROWTH = 8 * 2**20
"""Allowed RSS growth between the window after warm-up and the last window (median of each): 8 MiB, about
10 % of the process."""
SAMPLES_FILE = os.environ.get("AIOLIBP2P_SOAK_SAMPLES")
"""If set, every sample (seconds, tasks, fds, RSS bytes) is written there as JSON."""


def _sample() -> tuple[int, int, int]:
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), rss


def _save(samples: list[tuple[float, int, int, int]], path: str) -> None:
    pathlib.Path(path).write_text(json.dumps(samples))


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
async def test_connection_churn_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_mod, "RECENTLY_CONNECTED_ADDR_TTL", RETENTION)
    monkeypatch.setattr(peerstore_mod, "GC_INTERVAL", SWEEP_INTERVAL)
    rng = random.Random(1)
    hosts = [_new_host() for _ in range(N_HOSTS)]
    for h in hosts:
        await h.start()
    samples: list[tuple[float, int, int, int]] = []
    errors = rounds = 0
    leftovers: dict[str, dict[str, int]] = {}
    max_known_peers = 0
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
            if time.monotonic() - t_start > WARMUP:
                max_known_peers = max(max_known_peers, *(len(h.peerstore.peers()) for h in hosts))
        await asyncio.sleep(0.5)  # let the last closes' callbacks and handler tasks finish
        for i, h in enumerate(hosts):
            if left := host_state.leftovers(h):
                leftovers[f"host {i}"] = left
    finally:
        for h in hosts:
            await h.close()
    if SAMPLES_FILE:
        _save(samples, SAMPLES_FILE)
    base = [s for s in samples if WARMUP <= s[0] <= WARMUP + WINDOW]
    last = [s for s in samples if s[0] >= DURATION - WINDOW]
    assert base and last and rounds > 10
    rss_base = statistics.median(s[3] for s in base)
    rss_last = statistics.median(s[3] for s in last)
    summary = {
        "rounds": rounds,
        "errors": errors,
        "tasks after warm-up/last max": (max(s[1] for s in base), max(s[1] for s in last)),
        "fds after warm-up/last max": (max(s[2] for s in base), max(s[2] for s in last)),
        "rss MiB start/after warm-up/last median": (
            round(samples[0][3] / 2**20, 1),
            round(rss_base / 2**20, 1),
            round(rss_last / 2**20, 1),
        ),
        "max peers known by a host after warm-up": max_known_peers,
    }
    print(f"soak {DURATION:g} s: {summary}")
    assert not leftovers, leftovers
    assert errors <= rounds, summary  # churn collisions are rare; a flood of errors is a bug
    # a peer store holds the live hosts and the peers that left within RETENTION (+ one sweep)
    assert max_known_peers <= 2 * N_HOSTS, summary
    assert max(s[1] for s in last) <= max(s[1] for s in base) + MAX_TASK_GROWTH, summary
    assert max(s[2] for s in last) <= max(s[2] for s in base) + MAX_FD_GROWTH, summary
    assert rss_last <= rss_base + MAX_RSS_GROWTH, summary
