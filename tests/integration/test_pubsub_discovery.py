"""go-libp2p-pubsub's ``TestSimpleDiscovery`` ported (GO-LIBP2P-NOTES §2), with every wait bounded.

20 hosts over TCP, each listening on 127.0.0.1 and 127.0.0.2 (so simultaneous dials produce duplicate
connections), one shared in-process discovery server; hosts 1..19 join and subscribe (19 advertisements of
``floodsub:foobar``); host 0 subscribes and publishes once its topic has 19 peers, which it can only reach
through discovery; all 20 subscriptions get the message; then 100 rounds with a random publisher, each
message received by all 20. Per router (FloodSub as in go, and GossipSub). The whole scenario is bounded
at 20 s (SCENARIO_TIMEOUT); a run takes a few seconds on an idle machine. Variants: a rendezvous point or mDNS
(on 127.0.0.1) as the discovery service, and WebRTC-direct instead of TCP (the transport of the founding bug).

The ``stress`` variant runs the scenario 200 times in a row per router (``AIOLIBP2P_STRESS_RUNS``
overrides) and writes bench/results/pubsub_discovery_stress.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiolibp2p
from aiolibp2p.discovery import Discovery, MemoryDiscovery, MemoryDiscoveryServer
from aiolibp2p.discovery.mdns import MdnsDiscovery
from aiolibp2p.discovery.rendezvous import RendezvousClient, RendezvousLimits, RendezvousServer
from aiolibp2p.exceptions import Libp2pError
from aiolibp2p.pubsub import PubSub, floodsub, gossipsub

NUM_HOSTS = 20
TOPIC = "foobar"
NAMESPACE = "floodsub:" + TOPIC
# The bound: the whole scenario (20 hosts, ~360 dials, duplicate connections by design, 101 messages)
# in 20 s; on an idle 2-core machine a run takes a few seconds. It is CPU-bound in ONE process: with two CPU
# hogs beside it (measured 2026-12-04) it took 2-3x its idle time (over TCP, ready 1.2-6.5 s, up to 19 s in
# all), so a heavily loaded machine can exceed it; that is the requirement failing, not a flaky check.
SCENARIO_TIMEOUT = 20.0
READY_TIMEOUT = 10.0
"""Seconds for the 19 advertisements, and again for host 0 to have its 19 topic peers (both inside
SCENARIO_TIMEOUT)."""
TEARDOWN_ALLOWANCE = 20.0
"""Closing 20 hosts (and mDNS's own start-up probing) happens outside SCENARIO_TIMEOUT."""
WEBRTC_HOSTS = NUM_HOSTS
"""Hosts of the WebRTC-direct variant: the issue's 20. Its ~700 WebRTC handshakes (each address of a peer
raced, both sides in this one process) cost 8-13 s of CPU; under two CPU hogs they ran into their 10 s
handshake timeout by the hundred (10 hosts were ready in 5-7 s under the same load), a known limit. On an
idle machine: 8.4-9.5 s median, 11.2-11.6 s max over 20 runs (bench/results/webrtc_stress.md)."""
ROUNDS = 100


@dataclass
class ScenarioResult:
    router: str
    ok: bool
    seconds: float
    ready_seconds: float = 0.0  # from host 0's publish call until its topic had 19 peers and it published
    duplicate_peers: int = 0  # (host, peer) pairs that had more than one connection at the end
    error: str = ""


async def _wait_until(pred: object, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # type: ignore[operator]
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def run_discovery_scenario(
    router: str,
    *,
    seed: int | None = None,
    via: str = "memory",
    transport: str = "tcp",
    num_hosts: int = NUM_HOSTS,
) -> ScenarioResult:
    """``via``: "memory" (go's mock discovery server), "rendezvous" (a rendezvous point host) or "mdns"
    (multicast DNS on 127.0.0.1: every host announces itself, and pubsub finds its peers among those seen).
    ``transport``: "tcp" or "webrtc-direct" (the transport of the founding bug)."""
    rng = random.Random(seed)
    make = floodsub if router == "floodsub" else gossipsub
    server = MemoryDiscoveryServer(rng=random.Random(rng.random()))
    t0 = time.monotonic()
    result = ScenarioResult(router, False, 0.0)
    async with contextlib.AsyncExitStack() as stack:
        rendezvous: RendezvousServer | None = None
        if via == "rendezvous":
            point = await stack.enter_async_context(
                aiolibp2p.new_host(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"])
            )
            rendezvous = RendezvousServer(point, RendezvousLimits(min_ttl=60))
            rendezvous.start()

        mdns: list[MdnsDiscovery] = []

        def discovery_for(h: aiolibp2p.Host) -> Discovery:
            if via == "mdns":
                d = MdnsDiscovery(h, interfaces=["127.0.0.1"])
                mdns.append(d)
                return d
            if rendezvous is None:
                return MemoryDiscovery(h, server)
            return RendezvousClient(h, rendezvous.host.peer_id, addrs=rendezvous.host.listen_addrs)

        def advertised() -> int:
            if via == "mdns":  # the hosts 1..19 that host 0 has seen announce themselves
                seen = {p.peer_id for p in mdns[0].peers()}
                return sum(1 for h in hosts[1:] if h.peer_id in seen)
            if rendezvous is None:
                return server.count(NAMESPACE)
            return len(rendezvous.registry.registrations(NAMESPACE))

        tpl = "/ip4/{}/tcp/0" if transport == "tcp" else "/ip4/{}/udp/0/webrtc-direct"
        hosts = [
            aiolibp2p.new_host(
                listen=[tpl.format("127.0.0.1"), tpl.format("127.0.0.2")], transports=[transport]
            )
            for _ in range(num_hosts)
        ]

        async def close_all() -> None:
            await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)

        stack.push_async_callback(close_all)
        await asyncio.gather(*(h.start() for h in hosts))
        pubsubs: list[PubSub] = [await make(h, discovery=discovery_for(h)) for h in hosts]
        for ps in pubsubs:
            stack.push_async_callback(ps.close)
        for d in mdns:
            stack.push_async_callback(d.close)
        await asyncio.gather(*(d.start() for d in mdns))  # each probes its name (~1 s), concurrently
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            topics = [await ps.join(TOPIC) for ps in pubsubs]
            subs = {i: await topics[i].subscribe() for i in range(1, num_hosts)}
            await _wait_until(
                lambda: advertised() == num_hosts - 1, READY_TIMEOUT, f"{num_hosts - 1} advertisements"
            )
            if via == "memory":
                for h in hosts[1:]:
                    assert server.has_peer_record(NAMESPACE, h.peer_id)
            subs[0] = await topics[0].subscribe()
            t_ready = time.monotonic()
            await topics[0].publish(b"first message", min_peers=num_hosts - 1, timeout=READY_TIMEOUT)
            result.ready_seconds = time.monotonic() - t_ready
            for i in range(num_hosts):
                msg = await subs[i].next(timeout=5)
                assert msg.data == b"first message", (i, msg.data)
            for i in range(ROUNDS):
                owner = rng.randrange(num_hosts)
                data = f"{i} the flooooooood {i}".encode()
                await topics[owner].publish(data, min_peers=1, timeout=5)
                for j in range(num_hosts):
                    msg = await subs[j].next(timeout=5)
                    assert msg.data == data, (i, owner, j, msg.data)
            assert all(s.dropped == 0 for s in subs.values())
        result.duplicate_peers = sum(
            1 for h in hosts for p in h.connected_peers() if len(h.connections(p)) > 1
        )
        result.ok = True
    result.seconds = time.monotonic() - t0
    return result


@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_simple_discovery(router: str) -> None:
    result = await run_discovery_scenario(router)
    assert result.ok
    assert result.seconds < SCENARIO_TIMEOUT + TEARDOWN_ALLOWANCE


async def test_simple_discovery_over_webrtc_direct() -> None:
    """The founding scenario's own transport: the same scenario with WEBRTC_HOSTS hosts over WebRTC-direct."""
    result = await run_discovery_scenario("gossipsub", transport="webrtc-direct", num_hosts=WEBRTC_HOSTS)
    assert result.ok
    assert result.seconds < SCENARIO_TIMEOUT + TEARDOWN_ALLOWANCE


async def test_simple_discovery_via_mdns() -> None:
    """The same scenario with mDNS (on 127.0.0.1) as the discovery service."""
    pytest.importorskip("zeroconf", reason="zeroconf is not installed (pip install aiolibp2p[mdns])")
    from test_mdns_hosts import _loopback_multicast_works

    reason = _loopback_multicast_works()
    if reason:
        pytest.skip(reason)
    result = await run_discovery_scenario("gossipsub", via="mdns")
    assert result.ok
    assert result.seconds < SCENARIO_TIMEOUT + TEARDOWN_ALLOWANCE


async def test_simple_discovery_via_rendezvous() -> None:
    """The same scenario with a rendezvous point (``/rendezvous/1.0.0``) as the discovery service."""
    result = await run_discovery_scenario("gossipsub", via="rendezvous")
    assert result.ok
    assert result.seconds < SCENARIO_TIMEOUT + TEARDOWN_ALLOWANCE


@pytest.mark.stress
@pytest.mark.timeout(0)
async def test_simple_discovery_stress() -> None:
    runs = int(os.environ.get("AIOLIBP2P_STRESS_RUNS", "200"))
    rows: list[ScenarioResult] = []
    for router in ("floodsub", "gossipsub"):
        for i in range(runs):
            try:
                rows.append(await run_discovery_scenario(router, seed=i))
            except (AssertionError, TimeoutError, Libp2pError) as exc:
                rows.append(ScenarioResult(router, False, 0.0, error=f"{type(exc).__name__}: {exc}"[:200]))
    _write_table(rows, runs)
    failed = [r for r in rows if not r.ok]
    assert not failed, failed[:5]


def _write_table(rows: list[ScenarioResult], runs: int) -> None:
    lines = [
        "# pubsub discovery scenario, stress run",
        "",
        "`pytest -m stress tests/integration/test_pubsub_discovery.py` (go's TestSimpleDiscovery ported: 20 hosts",
        "on 127.0.0.1 + 127.0.0.2 over TCP, in-process discovery, first publish at 19 topic peers, 100 random",
        f"rounds, each delivered to all 20). {runs} runs per router in a row, one process.",
        f"Python {platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| router | runs | passed | median s | p95 s | max s | median ready s | max ready s"
        " | runs with duplicate conns |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for router in ("floodsub", "gossipsub"):
        mine = [r for r in rows if r.router == router]
        ok = [r for r in mine if r.ok]
        secs = sorted(r.seconds for r in ok) or [0.0]
        ready = [r.ready_seconds for r in ok] or [0.0]
        p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
        dup = sum(1 for r in ok if r.duplicate_peers)
        lines.append(
            f"| {router} | {len(mine)} | {len(ok)} | {statistics.median(secs):.2f} | {p95:.2f}"
            f" | {max(secs):.2f} | {statistics.median(ready):.2f} | {max(ready):.2f} | {dup} |"
        )
    errors = [r for r in rows if not r.ok]
    if errors:
        lines += ["", "Failures:", ""] + [f"- {r.router}: {r.error}" for r in errors[:20]]
    out = Path(__file__).resolve().parents[2] / "bench" / "results" / "pubsub_discovery_stress.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
