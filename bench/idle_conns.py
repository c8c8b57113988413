"""Idle connections: accept rate and listener memory per idle connection at 1,000 and 10,000 connections.

    python bench/idle_conns.py [--counts 1000 10000] [--clients 4] [--out bench/results/idle_conns.md]

One aiolibp2p listener (TCP + Noise + yamux, its own process, limits raised so that nothing is refused: this
measures the cost of a connection, not the limits) and ``--clients`` client processes, each opening its share of
the connections from its own identities (one host per connection, as distinct peers would), 32 dialling at once
per process, then holding them idle. Client ``i`` dials the listener's address on 127.0.0.(i+1) (the listener
listens on all of them) so that no source/destination pair runs short of ephemeral ports. Every process raises
RLIMIT_NOFILE to its hard limit.

Accept rate: connections the listener registered (ConnectionOpened) divided by the time from the first to the
last. Memory: the listener's RSS once every connection is up and identify has settled, minus its RSS before,
divided by the connections it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import aiolibp2p  # noqa: E402
from aiolibp2p.exceptions import Libp2pError  # noqa: E402
from aiolibp2p.network import events as ev  # noqa: E402
from aiolibp2p.network.connmgr import ConnManagerConfig  # noqa: E402
from aiolibp2p.network.resources import ResourceLimits  # noqa: E402

STACK = {"transports": ["tcp"], "security": ["noise"], "muxers": ["/yamux/1.0.0"]}
NO_TRIM = ConnManagerConfig(low_water=1_000_000, high_water=1_000_000)
UNLIMITED = ResourceLimits(
    max_connections=1_000_000,
    max_inbound_connections=1_000_000,
    max_outbound_connections=1_000_000,
    max_connections_per_peer=1_000_000,
)
CONCURRENCY = 32
SETTLE = 3.0


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def serve(n_addrs: int) -> None:
    """Listen on 127.0.0.1..n; answer each stdin line with a JSON line of stats."""
    listen = [f"/ip4/127.0.0.{i + 1}/tcp/0" for i in range(n_addrs)]
    host = aiolibp2p.new_host(listen=listen, conn_manager=NO_TRIM, resource_limits=UNLIMITED, **STACK)
    times: list[float] = []
    host.on(ev.ConnectionOpened, lambda _e: times.append(time.monotonic()))
    async with host:
        print(json.dumps({"addrs": [str(a) for a in host.full_addrs()]}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while await reader.readline():
            stats = {"conns": len(host.connections()), "opened": len(times), "rss_kib": _rss_kib()}
            if times:
                stats["accept_seconds"] = times[-1] - times[0]
            print(json.dumps(stats), flush=True)


async def dial(addr: str, count: int) -> None:
    """Open ``count`` connections to ``addr`` from ``count`` identities; hold them until stdin closes."""
    hosts = [aiolibp2p.new_host(listen=[], conn_manager=NO_TRIM, **STACK) for _ in range(count)]
    sem = asyncio.Semaphore(CONCURRENCY)
    failed = 0

    async def one(h: aiolibp2p.Host) -> None:
        nonlocal failed
        async with sem:
            await h.start()
            try:
                await h.connect(addr, timeout=60)
            except (Libp2pError, OSError):
                failed += 1

    await asyncio.gather(*(one(h) for h in hosts))
    print(json.dumps({"ok": count - failed, "failed": failed}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_raise_nofile,
    )


def _ask(server: subprocess.Popen[str]) -> dict[str, float]:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("stats\n")
    server.stdin.flush()
    out: dict[str, float] = json.loads(server.stdout.readline())
    return out


def measure(n: int, clients: int) -> dict[str, float]:
    server = _spawn("serve", str(clients))
    procs: list[subprocess.Popen[str]] = []
    try:
        assert server.stdout is not None
        addrs = json.loads(server.stdout.readline())["addrs"]
        time.sleep(1.0)
        rss0 = _ask(server)["rss_kib"]
        t0 = time.monotonic()
        shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
        procs = [_spawn("dial", addrs[i], str(k)) for i, k in enumerate(shares)]
        ok = 0
        for p in procs:
            assert p.stdout is not None
            ok += json.loads(p.stdout.readline())["ok"]
        wall = time.monotonic() - t0
        time.sleep(SETTLE)
        st = _ask(server)
        held = st["conns"]
        return {
            "connections": n,
            "dialled_ok": ok,
            "held": held,
            "accept_per_s": st["opened"] / st["accept_seconds"] if st.get("accept_seconds") else 0.0,
            "wall_seconds": wall,
            "rss_before_mib": rss0 / 1024,
            "rss_after_mib": st["rss_kib"] / 1024,
            "kib_per_connection": (st["rss_kib"] - rss0) / held if held else float("nan"),
        }
    finally:
        for p in [*procs, server]:
            if p.stdin is not None:
                p.stdin.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "dial":
        asyncio.run(dial(sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "idle_conns.md")
    args = ap.parse_args()
    _raise_nofile()
    rows = []
    for n in args.counts:
        r = measure(n, args.clients)
        print(json.dumps(r), flush=True)
        rows.append(r)
    lines = [
        "# Idle connections: accept rate and listener memory (`bench/idle_conns.py`)",
        "",
        f"aiolibp2p listener, TCP + Noise + yamux, {args.clients} client processes (one identity per "
        f"connection, {CONCURRENCY} dialling at once each), loopback; measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on a shared {os.cpu_count()}-core machine.",
        "",
        "| connections | held by the listener | accept rate (conn/s) | listener RSS before → after (MiB) "
        "| RSS per idle connection (KiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['connections']:,} | {r['held']:,} | {r['accept_per_s']:.0f} | "
            f"{r['rss_before_mib']:.1f} → {r['rss_after_mib']:.1f} | {r['kib_per_connection']:.1f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
