"""The main demo: a local network of hosts on loopback that connect, ping and identify each other."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from .host.host import Host, new_host
from .network import events as ev

Emit = Callable[[dict[str, Any], str], None]


async def run_demo(n: int, emit: Emit) -> None:
    n = max(2, n)
    async with contextlib.AsyncExitStack() as stack:
        hosts: list[Host] = []
        for i in range(n):
            h = await stack.enter_async_context(new_host(listen=["/ip4/127.0.0.1/tcp/0"]))
            hosts.append(h)
            emit(
                {
                    "event": "host_started",
                    "host": i,
                    "peerId": str(h.peer_id),
                    "addrs": [str(a) for a in h.full_addrs()],
                },
                f"host {i}: {h.peer_id} on {h.listen_addrs[0]}",
            )
        t0 = time.perf_counter()
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]

        async def link(i: int, j: int) -> None:
            a, b = hosts[i], hosts[j]
            t = time.perf_counter()
            peer = await a.connect(b.full_addrs()[0])
            connect_ms = (time.perf_counter() - t) * 1000
            rtt = await a.ping(peer)
            info = await a.identify(peer)
            emit(
                {
                    "event": "linked",
                    "from": i,
                    "to": j,
                    "connectMs": round(connect_ms, 3),
                    "rttMs": round(rtt * 1000, 3),
                    "agentVersion": info.agent_version,
                    "protocols": info.protocols,
                    "signedPeerRecord": info.signed_record_valid,
                },
                f"host {i} -> host {j}: connected in {connect_ms:.2f} ms, ping {rtt * 1000:.3f} ms, "
                f"identify: {info.agent_version}, {len(info.protocols)} protocols, "
                f"signed record {'valid' if info.signed_record_valid else 'missing'}",
            )

        await asyncio.gather(*(link(i, j) for i, j in pairs))
        total = (time.perf_counter() - t0) * 1000
        counts = [len(h.connected_peers()) for h in hosts]
        emit(
            {
                "event": "summary",
                "hosts": n,
                "links": len(pairs),
                "ms": round(total, 1),
                "peersPerHost": counts,
            },
            f"{n} hosts, {len(pairs)} links connected, pinged and identified in {total:.1f} ms; "
            f"peers per host: {counts}",
        )
        closed: list[ev.ConnectionClosed] = []
        hosts[0].on(ev.ConnectionClosed, closed.append)
    emit(
        {"event": "stopped", "connectionsClosedAtHost0": len(closed)},
        f"all hosts closed; host 0 saw {len(closed)} connections close",
    )
