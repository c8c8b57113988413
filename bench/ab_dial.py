"""A/B of dial latency and ping RTT between two source trees, side by side in one run.

Usage::

    git worktree add --detach /tmp/base main
    python bench/ab_dial.py --base /tmp/base/src --new src [--rounds 8] [--count 50] [--transport tcp]

Each side runs its own ``bench/peer_aiolibp2p.py`` server and clients with its own ``PYTHONPATH`` (client and
server from the same tree, so a change on either side of the handshake counts). Rounds alternate which side
goes first; each round records the median of ``--count`` fresh dials (dial + Noise + yamux + first ping, as
``bench/run.py --only dial``) and of 1000 pings on one stream, and the CPU time per dial of the client (``cpu_ms`` from the peer) and of
the server (from ``/proc/<pid>/stat`` around the dial run; closing included on both), and the CPU per dial with
both hosts in one process (``bench/dial_cpu.py``, the lowest of 5 batches: the steadiest of these measures). Prints the median of the round medians per side and the change, as a
Markdown table.

Know the noise before reading a change into it: on the shared 2-core machine this was written on, null A/Bs
(the same code on both sides, both trees under /tmp) differed by up to 13% in latency and 9% in CPU over 10
rounds, in either direction. Keep both trees on the same file system (a tree on a slower one pays for its
lazy imports inside the first round), and prove smaller changes with microbenchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

PEER = Path(__file__).resolve().parent / "peer_aiolibp2p.py"
DIAL_CPU = Path(__file__).resolve().parent / "dial_cpu.py"


def env_for(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(src).resolve())}


def start_server(src: str, transport: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(PEER), "server", "--transport", transport],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(src),
    )
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    return proc, line["addr"]


def stop_servers(servers: dict[str, tuple[subprocess.Popen[str], str]]) -> None:
    """End the servers ``start_server`` started (they exit on stdin EOF)."""
    for proc, _ in servers.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, in ms (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")


def client(src: str, cmd: str, addr: str, count: int, transport: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(PEER), cmd, addr, "--count", str(count), "--transport", transport],
        capture_output=True,
        text=True,
        env=env_for(src),
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def inprocess_cpu(src: str, count: int, transport: str) -> float:
    """``bench/dial_cpu.py`` under ``src``: the lowest of its batches' CPU per dial (both hosts), in ms."""
    out = subprocess.run(
        [sys.executable, str(DIAL_CPU), "--count", str(count), "--transport", transport],
        capture_output=True,
        text=True,
        env=env_for(src),
        timeout=300,
        check=True,
    )
    return float(min(json.loads(out.stdout.strip().splitlines()[-1])["cpu_ms"]))


def print_rows(heading: str, rows: list[tuple[str, dict[str, list[float]]]]) -> None:
    """``heading``, then a Markdown table with one row per metric: each side's median of the round values
    [min-max], and the change."""
    print(heading + "\n")
    print("| metric | base | new | change |")
    print("|---|---|---|---|")
    for title, data in rows:
        b, n = statistics.median(data["base"]), statistics.median(data["new"])
        cells = [
            f"{statistics.median(v):.3g} [{min(v):.3g}-{max(v):.3g}]" for v in (data["base"], data["new"])
        ]
        print(f"| {title} | {cells[0]} | {cells[1]} | {100 * (n - b) / b:+.1f}% |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="src/ folder of the base tree")
    p.add_argument("--new", required=True, help="src/ folder of the changed tree")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--count", type=int, default=50, help="fresh dials per round")
    p.add_argument("--transport", default="tcp")
    p.add_argument("--no-ping", action="store_true")
    args = p.parse_args()
    sides = {"base": args.base, "new": args.new}
    servers = {name: start_server(src, args.transport) for name, src in sides.items()}
    dial: dict[str, list[float]] = {n: [] for n in sides}
    ping: dict[str, list[float]] = {n: [] for n in sides}
    ccpu: dict[str, list[float]] = {n: [] for n in sides}
    scpu: dict[str, list[float]] = {n: [] for n in sides}
    inproc: dict[str, list[float]] = {n: [] for n in sides}
    try:
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                proc, addr = servers[name]
                s0 = proc_cpu_ms(proc.pid)
                res = client(sides[name], "dial", addr, args.count, args.transport)
                scpu[name].append((proc_cpu_ms(proc.pid) - s0) / args.count)
                ccpu[name].append(res["cpu_ms"])
                ms = res["ms"]
                dial[name].append(statistics.median(ms[1:] or ms))
                inproc[name].append(inprocess_cpu(sides[name], args.count, args.transport))
                if not args.no_ping:
                    us = client(sides[name], "ping", addr, 1000, args.transport)["us"]
                    ping[name].append(statistics.median(us))
            print(
                f"round {r + 1}: dial base {dial['base'][-1]:.2f} ms new {dial['new'][-1]:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        stop_servers(servers)
    rows = [
        (f"dial ({args.transport}) + first ping (ms)", dial),
        ("client CPU per dial (ms)", ccpu),
        ("server CPU per dial (ms)", scpu),
        ("CPU per dial, both hosts in one process (ms)", inproc),
    ]
    if not args.no_ping:
        rows.append(("ping RTT median (us)", ping))
    print_rows(f"{args.rounds} rounds, {args.transport}; median of round medians [min-max]", rows)


if __name__ == "__main__":
    main()
