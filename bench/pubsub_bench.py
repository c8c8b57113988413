"""GossipSub benchmark: delivery, latency and CPU per message hop at swept publish rates.

Usage::

    python bench/pubsub_bench.py mesh [--hosts 10] [--rates 50,100,200,400,600,800] [--seconds 3]
    python bench/pubsub_bench.py network [--procs 5] [--hosts-per-proc 10] [--degree 8] [--rate 100]
    python bench/pubsub_bench.py worker ...      (started by ``network``)

``mesh``: ``--hosts`` aiolibp2p hosts in ONE process (uvloop unless ``--no-uvloop``), every host connected
to every other over TCP + Noise + yamux on 127.0.0.1, GossipSub (defaults: StrictSign, flood publishing,
``/meshsub/1.2.0`` so 1 KiB messages also send IDONTWANT) on one topic. For each rate, messages of
``--size`` bytes (the first 16 carry the message number and the publish time) are published for
``--seconds`` seconds by the hosts in turn (message k by host k mod N), then up to ``--drain`` seconds are
left for the last ones to arrive. Per rate it reports

* delivery: share of (message, other host) pairs received by the subscription, i.e. every message must reach
  all N-1 other hosts (late arrivals within the drain count; subscription-queue drops are reported apart);
* median and p99 latency from the ``publish()`` call to the subscriber's ``next()`` returning it;
* CPU per hop: the process's CPU time (user + system, all hosts, over the publish and drain window) divided
  by the number of deliveries, where a hop is one host receiving, verifying (StrictSign), validating and
  forwarding one message; signing at the publisher and duplicate handling are included.

``network``: ``--procs`` worker processes of ``--hosts-per-proc`` hosts each (50 by default), each host
dialling ``--degree`` random others (a random connected graph), one topic, a fixed total publish rate for
``--seconds``; latency is measured across processes with the shared CLOCK_MONOTONIC.

Each command prints one JSON line per result (and ``mesh``/``network`` a final summary line). ``bench/run.py
--only gossipsub`` runs these next to js-libp2p (``interop/js/gossip_bench.mjs``) and py-libp2p
(``bench/pubsub_pylibp2p.py``) and writes ``bench/results/gossipsub.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">Qd")  # message number, publish time (time.monotonic(), shared by all processes)
TOPIC = "bench"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_host() -> Any:
    from aiolibp2p import new_host
    from aiolibp2p.network.connmgr import ConnManagerConfig

    return new_host(
        listen=["/ip4/127.0.0.1/tcp/0"],
        transports=["tcp"],
        security=["noise"],
        muxers=["/yamux/1.0.0"],
        conn_manager=ConnManagerConfig(low_water=10_000, high_water=10_000),
    )


class Receiver:
    """Drains one subscription, recording (message number, latency) for every message."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.got: dict[int, float] = {}
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        unpack = HEADER.unpack_from
        mono = time.monotonic
        got = self.got
        while True:
            msg = await self.sub.next()
            k, sent = unpack(msg.data)
            got[k] = mono() - sent


async def _start_pubsubs(hosts: list[Any]) -> tuple[list[Any], list[Any], list[Receiver]]:
    from aiolibp2p.pubsub import gossipsub

    pubsubs = [await gossipsub(h) for h in hosts]
    topics = [await ps.join(TOPIC) for ps in pubsubs]
    receivers = [Receiver(await t.subscribe()) for t in topics]
    return pubsubs, topics, receivers


async def _wait_peers(topics: list[Any], want: list[int], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while any(len(t.peers()) < w for t, w in zip(topics, want, strict=True)):
            await asyncio.sleep(0.05)


async def _publish_schedule(
    topics: dict[int, Any], owner_of: Any, first: int, count: int, rate: float, start: float, size: int
) -> None:
    """Publish messages first..first+count-1 (k by ``topics[owner_of(k)]`` if it is ours) at ``rate``/s."""
    pad = bytes(size - HEADER.size)
    mono = time.monotonic
    k = first
    end = first + count
    while k < end:
        due = start + (k - first) / rate
        delay = due - mono()
        if delay > 0:
            await asyncio.sleep(delay)
        # publish everything that is due (we may have fallen behind)
        now = mono()
        while k < end and start + (k - first) / rate <= now:
            topic = topics.get(owner_of(k))
            if topic is not None:
                await topic.publish(HEADER.pack(k, mono()) + pad)
            k += 1


async def mesh(args: argparse.Namespace) -> None:
    n = args.hosts
    hosts = [make_host() for _ in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h)
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(
                    hosts[i].connect(hosts[j].listen_addrs[0], peer=hosts[j].peer_id)
                    for i in range(n)
                    for j in range(i + 1, n)
                )
            )
        pubsubs, topics, receivers = await _start_pubsubs(hosts)
        for ps in pubsubs:
            stack.push_async_callback(ps.close)
        await _wait_peers(topics, [n - 1] * n, 30)
        await asyncio.sleep(2.0)  # a couple of heartbeats: meshes settle
        first = 0
        summary = []
        rates = [float(r) for r in args.rates.split(",")]
        plan = [(rates[0], True)] if args.warmup else []
        for rate, warmup in plan + [(r, False) for r in rates]:
            count = max(1, int(rate * args.seconds))
            for r in receivers:
                r.got.clear()
            drops0 = sum(r.sub.dropped for r in receivers)
            stats0 = [
                (
                    ps.router.stats.messages_duplicate,
                    ps.router.stats.rpcs_dropped,
                    ps.router.stats.forwards_cancelled,
                )
                for ps in pubsubs
            ]
            cpu0, t0 = cpu_seconds(), time.monotonic()
            await _publish_schedule(
                dict(enumerate(topics)), lambda k: k % n, first, count, rate, t0, args.size
            )
            t_pub = time.monotonic() - t0
            want = {k for k in range(first, first + count)}
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline:
                if all(len(r.got) >= count for r in receivers):
                    break
                await asyncio.sleep(0.01)
            cpu = cpu_seconds() - cpu0
            wall = time.monotonic() - t0
            # (each host's subscription also gets its own messages: those are not hops)
            lats = [v for i, r in enumerate(receivers) for k, v in r.got.items() if k in want and k % n != i]
            deliveries = len(lats)
            expected = count * (n - 1)
            res = {
                "impl": "aiolibp2p",
                "hosts": n,
                "rate": rate,
                "achieved_rate": count / t_pub if t_pub > 0 else rate,
                "messages": count,
                "deliveries": deliveries,
                "expected": expected,
                "delivery_pct": 100.0 * deliveries / expected,
                "lat_median_ms": 1e3 * pct(lats, 50),
                "lat_p99_ms": 1e3 * pct(lats, 99),
                "cpu_s": cpu,
                "wall_s": wall,
                "cpu_per_hop_us": 1e6 * cpu / max(deliveries, 1),
                "sub_drops": sum(r.sub.dropped for r in receivers) - drops0,
                "duplicates": sum(
                    ps.router.stats.messages_duplicate - d
                    for ps, (d, _, _) in zip(pubsubs, stats0, strict=True)
                ),
                "rpcs_dropped": sum(
                    ps.router.stats.rpcs_dropped - q for ps, (_, q, _) in zip(pubsubs, stats0, strict=True)
                ),
                # queued forwards taken back after the peer's IDONTWANT (gossipsub v1.2)
                "forwards_cancelled": sum(
                    ps.router.stats.forwards_cancelled - c
                    for ps, (_, _, c) in zip(pubsubs, stats0, strict=True)
                ),
            }
            first += count
            if warmup:
                emit({**res, "warmup": True})
                continue
            summary.append(res)
            emit(res)
            await asyncio.sleep(0.5)
        for r in receivers:
            r.task.cancel()
        emit({"event": "done", "results": summary})


# -- the 50-host network in separate processes ----------------------------------------------------------------------
def _read_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"worker sent nothing within {timeout:.0f} s")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
        if ready:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited with {proc.poll()}")
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]


def network(args: argparse.Namespace) -> None:
    """Coordinator: start the workers, hand out the graph, start the clock, gather the results."""
    procs: list[subprocess.Popen[str]] = []
    cmd = [sys.executable, __file__, *(["--no-uvloop"] if args.no_uvloop else []), "worker"]
    try:
        for _ in range(args.procs):
            procs.append(
                subprocess.Popen(
                    [*cmd, "--hosts", str(args.hosts_per_proc)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        peers: list[list[str]] = []  # [peer id, addr], global index = proc * hosts_per_proc + local
        for p in procs:
            peers += _read_line(p, 60)["peers"]
        total = len(peers)
        rng = random.Random(args.seed)
        edges: set[tuple[int, int]] = set()
        for i in range(total):  # a ring first (connected), then random extra edges up to the degree
            edges.add((min(i, (i + 1) % total), max(i, (i + 1) % total)))
        for i in range(total):
            while sum(1 for e in edges if i in e) < args.degree:
                j = rng.randrange(total)
                if j != i:
                    edges.add((min(i, j), max(i, j)))
        degree = [sum(1 for e in edges if i in e) for i in range(total)]
        count = int(args.rate * args.seconds)
        start = time.monotonic() + 2.0  # set after everyone is ready, below
        for w, p in enumerate(procs):
            base = w * args.hosts_per_proc
            mine = range(base, base + args.hosts_per_proc)
            plan = {
                "peers": peers,
                "base": base,
                "dial": [[i, j] for i, j in sorted(edges) if i in mine],
                "degree": [degree[i] for i in mine],
            }
            assert p.stdin is not None
            p.stdin.write(json.dumps(plan) + "\n")
            p.stdin.flush()
        for p in procs:
            _read_line(p, 120)  # ready: every host has all its neighbours on the topic
        time.sleep(2.0)  # meshes settle
        start = time.monotonic() + 0.5
        go = {"start": start, "rate": args.rate, "count": count, "total": total, "size": args.size}
        go["drain"] = args.drain
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps(go) + "\n")
            p.stdin.flush()
        results = [_read_line(p, args.seconds + args.drain + 60) for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                if p.stdin is not None:
                    p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    lats = [x for r in results for x in r["lat"]]
    expected = count * (total - 1)
    cpu = sum(r["cpu_s"] for r in results)
    emit(
        {
            "impl": "aiolibp2p",
            "scenario": "network",
            "hosts": total,
            "procs": args.procs,
            "edges": len(edges),
            "mean_degree": 2 * len(edges) / total,
            "rate": args.rate,
            "messages": count,
            "deliveries": len(lats),
            "expected": expected,
            "delivery_pct": 100.0 * len(lats) / expected,
            "lat_median_ms": 1e3 * pct(lats, 50),
            "lat_p99_ms": 1e3 * pct(lats, 99),
            "lat_max_ms": 1e3 * max(lats) if lats else float("nan"),
            "cpu_per_hop_us": 1e6 * cpu / max(len(lats), 1),
            "rss_mib_per_proc": [r["rss_mib"] for r in results],
        }
    )


async def worker(args: argparse.Namespace) -> None:
    from aiolibp2p.crypto.peer_id import PeerId

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    hosts = [make_host() for _ in range(args.hosts)]
    async with contextlib.AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h)
        emit({"peers": [[str(h.peer_id), str(h.listen_addrs[0])] for h in hosts]})
        plan = json.loads(await reader.readline())
        base = plan["base"]
        pubsubs, topics, receivers = await _start_pubsubs(hosts)
        for ps in pubsubs:
            stack.push_async_callback(ps.close)
        peers = plan["peers"]

        async def dial(i: int, j: int) -> None:
            pid, addr = peers[j]
            await hosts[i - base].connect(addr, peer=PeerId.from_string(pid), timeout=30)

        async with asyncio.timeout(60):
            await asyncio.gather(*(dial(i, j) for i, j in plan["dial"]))
        await _wait_peers(topics, plan["degree"], 60)
        emit({"ready": True})
        go = json.loads(await reader.readline())
        total, count = go["total"], go["count"]
        local = {base + i: t for i, t in enumerate(topics)}
        cpu0 = cpu_seconds()
        await _publish_schedule(local, lambda k: k % total, 0, count, go["rate"], go["start"], go["size"])
        await asyncio.sleep(max(0.0, go["start"] + count / go["rate"] - time.monotonic()))
        deadline = time.monotonic() + go["drain"]
        while time.monotonic() < deadline:
            if all(len(r.got) >= count for r in receivers):
                break
            await asyncio.sleep(0.02)
        cpu = cpu_seconds() - cpu0
        lat = [v for i, r in enumerate(receivers) for k, v in r.got.items() if k % total != base + i]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        emit({"lat": lat, "cpu_s": cpu, "rss_mib": round(rss, 1)})
        for r in receivers:
            r.task.cancel()
        await reader.read()  # until the coordinator closes stdin


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--profile", metavar="FILE", help="mesh: run under cProfile, dump the stats to FILE")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mesh")
    m.add_argument("--hosts", type=int, default=10)
    m.add_argument("--rates", default="50,100,200,400,600,800")
    m.add_argument("--seconds", type=float, default=3.0)
    m.add_argument("--drain", type=float, default=3.0)
    m.add_argument("--size", type=int, default=1024)
    m.add_argument("--warmup", action="store_true", help="run the first rate once unreported first")
    nw = sub.add_parser("network")
    nw.add_argument("--procs", type=int, default=5)
    nw.add_argument("--hosts-per-proc", type=int, default=10)
    nw.add_argument("--degree", type=int, default=8)
    nw.add_argument("--rate", type=float, default=100.0)
    nw.add_argument("--seconds", type=float, default=5.0)
    nw.add_argument("--drain", type=float, default=5.0)
    nw.add_argument("--size", type=int, default=1024)
    nw.add_argument("--seed", type=int, default=1)
    w = sub.add_parser("worker")
    w.add_argument("--hosts", type=int, default=10)
    args = p.parse_args()
    if args.cmd == "network":
        network(args)
        return
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    coro = mesh(args) if args.cmd == "mesh" else worker(args)
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            asyncio.run(coro)
        finally:
            prof.disable()
            prof.dump_stats(args.profile)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
