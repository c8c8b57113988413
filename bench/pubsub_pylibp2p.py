"""The py-libp2p (PyPI ``libp2p==0.8.1``, trio) side of the gossipsub benchmark (``bench/pubsub_bench.py mesh``).

Runs in the venv ``bench/.venv-py-libp2p`` (made by ``bench/run.py``). N py-libp2p hosts in ONE process,
every host connected to every other over TCP + Noise + yamux on 127.0.0.1 (the host setup of
``bench/peer_pylibp2p.py``), py-libp2p's GossipSub on one topic with go's mesh parameters (D=6, D_lo=5,
D_hi=12, 1 s heartbeat; py-libp2p's other defaults kept, StrictSign included), ``/meshsub/1.2.0`` first.
Same schedule, measurements and JSON lines as the aiolibp2p benchmark.

Usage: ``bench/.venv-py-libp2p/bin/python bench/pubsub_pylibp2p.py [--hosts 10] [--rates 5,10,25]
[--seconds 3] [--drain 3] [--size 1024] [--warmup]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import struct
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from peer_pylibp2p import make_host

HEADER = struct.Struct(">Qd")
TOPIC = "bench"


def emit(obj: dict[str, object]) -> None:
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


async def receive(sub, got: dict[int, float]) -> None:  # type: ignore[no-untyped-def]
    while True:
        msg = await sub.get()
        k, sent = HEADER.unpack_from(msg.data)
        got[k] = time.monotonic() - sent


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    n = args.hosts
    made = [make_host(listen=True) for _ in range(n)]
    async with trio.open_nursery() as nursery:
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            pubsubs = []
            for host, addrs in made:
                await stack.enter_async_context(host.run(listen_addrs=addrs))
                router = GossipSub(
                    protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
                    degree=6,
                    degree_low=5,
                    degree_high=12,
                    heartbeat_interval=1,
                )
                ps = Pubsub(host, router)
                await stack.enter_async_context(background_trio_service(ps))
                await stack.enter_async_context(background_trio_service(router))
                await ps.wait_until_ready()
                pubsubs.append(ps)
            got: list[dict[int, float]] = [{} for _ in range(n)]
            for i, ps in enumerate(pubsubs):
                sub = await ps.subscribe(TOPIC)
                nursery.start_soon(receive, sub, got[i])
            hosts = [h for h, _ in made]
            for i in range(n):
                for j in range(i + 1, n):
                    addr = f"{hosts[j].get_addrs()[0]}"
                    if "/p2p/" not in addr:
                        addr = f"{addr}/p2p/{hosts[j].get_id()}"
                    import multiaddr

                    await hosts[i].connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
            with trio.fail_after(30):
                while any(len(ps.peer_topics.get(TOPIC, ())) < n - 1 for ps in pubsubs):
                    await trio.sleep(0.05)
            await trio.sleep(2.0)
            rates = [float(r) for r in args.rates.split(",")]
            plan = [(rates[0], True)] if args.warmup else []
            first = 0
            pad = bytes(args.size - HEADER.size)
            for rate, warmup in plan + [(r, False) for r in rates]:
                count = max(1, int(rate * args.seconds))
                for g in got:
                    g.clear()
                cpu0, t0 = cpu_seconds(), time.monotonic()
                k = first
                while k < first + count:
                    delay = t0 + (k - first) / rate - time.monotonic()
                    if delay > 0:
                        await trio.sleep(delay)
                    now = time.monotonic()
                    while k < first + count and t0 + (k - first) / rate <= now:
                        await pubsubs[k % n].publish(TOPIC, HEADER.pack(k, time.monotonic()) + pad)
                        k += 1
                t_pub = time.monotonic() - t0
                deadline = time.monotonic() + args.drain
                while time.monotonic() < deadline:
                    if all(
                        sum(1 for key in g if key >= first and key % n != i)
                        >= count - own(first, count, n, i)
                        for i, g in enumerate(got)
                    ):
                        break
                    await trio.sleep(0.02)
                cpu = cpu_seconds() - cpu0
                lats = [
                    v
                    for i, g in enumerate(got)
                    for key, v in g.items()
                    if first <= key < first + count and key % n != i
                ]
                res = {
                    "impl": "py-libp2p",
                    "hosts": n,
                    "rate": rate,
                    "achieved_rate": count / t_pub if t_pub > 0 else rate,
                    "messages": count,
                    "deliveries": len(lats),
                    "expected": count * (n - 1),
                    "delivery_pct": 100.0 * len(lats) / (count * (n - 1)),
                    "lat_median_ms": 1e3 * pct(lats, 50),
                    "lat_p99_ms": 1e3 * pct(lats, 99),
                    "cpu_s": cpu,
                    "wall_s": time.monotonic() - t0,
                    "cpu_per_hop_us": 1e6 * cpu / max(len(lats), 1),
                }
                first += count
                emit({**res, "warmup": True} if warmup else res)
                await trio.sleep(0.5)
            emit({"event": "done"})
            # py-libp2p 0.8.1 raises from its connection tasks while 10 hosts shut down; the results are out
            os._exit(0)
        nursery.cancel_scope.cancel()


def own(first: int, count: int, n: int, i: int) -> int:
    return sum(1 for key in range(first, first + count) if key % n == i)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hosts", type=int, default=10)
    p.add_argument("--rates", default="5,10,25,50")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--drain", type=float, default=3.0)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--warmup", action="store_true")
    trio.run(main, p.parse_args())
