"""A/B of ping RTT and CPU per ping between two source trees, side by side in one run.

Usage::

    git worktree add --detach /tmp/base main
    python bench/ab_ping.py --base /tmp/base/src --new src [--rounds 20] [--count 2000] [--transport tcp]

Each side runs its own ``bench/peer_aiolibp2p.py`` server and ping clients with its own ``PYTHONPATH`` (client
and server from the same tree, so a change on either side counts). Rounds alternate which side goes first;
each round records the median RTT of ``--count`` pings of 32 bytes on one ``/ipfs/ping/1.0.0`` stream between
the two processes (as ``bench/run.py --only ping``) and, every round too, the CPU per ping with both hosts in
one process (``bench/ping_cpu.py``, the lowest of its batches). Prints the median of the round values per side
[min-max] and the change, as a Markdown table.

The RTT between two processes depends on the machine's state more than on the stack (on an idle VM whose
vCPUs halt, each of the two wakes per round trip costs tens of microseconds): compare only within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from ab_dial import PEER, env_for, print_rows, start_server, stop_servers  # bench/ is the script's folder

PING_CPU = Path(__file__).resolve().parent / "ping_cpu.py"


def run_json(cmd: list[str], src: str) -> dict[str, list[float]]:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env_for(src), timeout=300, check=True)
    result: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="src/ folder of the base tree")
    p.add_argument("--new", required=True, help="src/ folder of the changed tree")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--count", type=int, default=2000, help="pings per round between the two processes")
    p.add_argument("--transport", default="tcp")
    p.add_argument("--no-cpu", action="store_true", help="skip the in-process CPU measure")
    args = p.parse_args()
    sides = {"base": args.base, "new": args.new}
    servers = {name: start_server(src, args.transport) for name, src in sides.items()}
    rtt: dict[str, list[float]] = {n: [] for n in sides}
    cpu: dict[str, list[float]] = {n: [] for n in sides}
    try:
        for r in range(args.rounds):
            for name in list(sides) if r % 2 == 0 else list(reversed(sides)):
                cmd = [str(PEER), "ping", servers[name][1], "--count", str(args.count)]
                us = run_json([sys.executable, *cmd, "--transport", args.transport], sides[name])["us"]
                rtt[name].append(statistics.median(us))
                if not args.no_cpu:
                    cmd = [str(PING_CPU), "--transport", args.transport]
                    cpu[name].append(min(run_json([sys.executable, *cmd], sides[name])["cpu_us"]))
            print(
                f"round {r + 1}: rtt base {rtt['base'][-1]:.1f} us new {rtt['new'][-1]:.1f} us",
                file=sys.stderr,
                flush=True,
            )
    finally:
        stop_servers(servers)
    rows = [(f"ping RTT, median of {args.count} (us)", rtt)]
    if not args.no_cpu:
        rows.append(("CPU per ping, both hosts in one process (us)", cpu))
    print_rows(f"{args.rounds} rounds, {args.transport}; median of the round values [min-max]", rows)


if __name__ == "__main__":
    main()
