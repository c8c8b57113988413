"""QUIC dial + first ping, A/B by critical-path replay in CPU time: steady on a machine too busy for wall clocks.

Usage::

    python bench/quic_replay.py [--rounds 10] [--count 30] [--hop-us 30] main=/work/main/src new=src [...]

Each round starts, for every tree at once, a ``bench/peer_aiolibp2p.py`` server and a ``dial`` client (the
``bench/run.py`` dial + first ping: fresh QUIC connection, ``/ipfs/ping/1.0.0`` stream, one 32-byte round trip)
with a tracer that records, in both processes, every datagram received and sent and the start and end of each
dial, each with the wall clock and the thread's CPU clock. The two traces of a tree are then replayed: each
process advances by its own CPU time between events; a received datagram (matched to its send in order: UDP on
loopback neither loses nor reorders) waits until the peer sent it plus ``--hop-us``. A dial's replayed time
is what it would take on two otherwise idle cores: scheduling delays, another process's CPU hogs and
preemption by the peer process drop out (the wall clock on the 2-core machine this was written on varied 2x
between runs); CPU speed still varies with the machine's load, hence the trees run side by side, at the same
moments, and each round is one sample per tree. Caveat: events keep the order they had in the real run, so a
datagram that arrived while its process was preempted is handled where it was, not where an idle machine
would have. Prints, per tree, the median and quartile of all replayed dials and the per-round medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


# --- in the traced peer processes -------------------------------------------------------------------------
def _traced_peer(out: str, argv: list[str]) -> None:
    """Run ``peer_aiolibp2p.py argv`` with the QUIC datagram and dial hooks; dump the events at exit."""
    import atexit

    sys.path.insert(0, str(BENCH))
    import peer_aiolibp2p as peer

    from aiolibp2p.host.host import Host
    from aiolibp2p.transports.quic.endpoint import QuicEndpoint

    log: list[tuple[int, int, str, int]] = []
    wall, cpu = time.monotonic_ns, time.thread_time_ns

    def ev(name: str, n: int = 0) -> None:
        log.append((wall(), cpu(), name, n))

    def dump() -> None:
        Path(out).write_text("\n".join(json.dumps(e) for e in log))

    atexit.register(dump)
    received, send_many, send_one = (
        QuicEndpoint.datagram_received,
        QuicEndpoint.send_datagrams,
        QuicEndpoint._send,
    )

    def datagram_received(self: QuicEndpoint, data: bytes, addr: tuple[Any, ...]) -> None:
        ev("rx")
        received(self, data, addr)

    def send_datagrams(self: QuicEndpoint, datagrams: list[tuple[bytes, Any]]) -> None:
        if datagrams:
            ev("tx", len(datagrams))
        send_many(self, datagrams)

    def send(self: QuicEndpoint, data: bytes, addr: tuple[Any, ...]) -> None:
        ev("tx", 1)
        send_one(self, data, addr)

    QuicEndpoint.datagram_received = datagram_received  # type: ignore[method-assign]
    QuicEndpoint.send_datagrams = send_datagrams  # type: ignore[method-assign]
    QuicEndpoint._send = send  # type: ignore[method-assign]
    connect, roundtrip = Host.connect, peer.ping_roundtrip

    async def traced_connect(self: Host, *a: Any, **kw: Any) -> Any:
        ev("start")
        return await connect(self, *a, **kw)

    async def traced_roundtrip(stream: Any) -> None:
        await roundtrip(stream)
        ev("end")

    Host.connect = traced_connect  # type: ignore[method-assign]
    peer.ping_roundtrip = traced_roundtrip
    sys.argv = [str(BENCH / "peer_aiolibp2p.py"), *argv]
    peer.main()


# --- the replay ------------------------------------------------------------------------------------------
def replay(client: list[list[Any]], server: list[list[Any]], hop_ns: float) -> list[float]:
    """Replayed dial + first ping durations (ms) from the two processes' event lists."""
    events = {"C": client, "S": server}
    other = {"C": "S", "S": "C"}
    pos = {"C": 0, "S": 0}
    clock = {"C": 0.0, "S": 0.0}
    last_cpu: dict[str, int | None] = {"C": None, "S": None}
    inbox: dict[str, list[float]] = {"C": [], "S": []}  # arrival times of the datagrams sent to each side
    taken = {"C": 0, "S": 0}
    out: list[float] = []
    start: float | None = None
    while pos["C"] < len(client) or pos["S"] < len(server):
        moved = False
        for side in ("C", "S"):
            evs = events[side]
            while pos[side] < len(evs):
                _wall, cpu, name, n = evs[pos[side]]
                if name == "rx" and taken[side] >= len(inbox[side]):
                    break  # its datagram is not sent yet in the replay: let the other side run
                prev = last_cpu[side]
                t = clock[side] + (0 if prev is None else cpu - prev)
                if name == "rx":
                    t = max(t, inbox[side][taken[side]])
                    taken[side] += 1
                elif name == "tx":
                    inbox[other[side]].extend([t + hop_ns] * n)
                elif side == "C" and name == "start":
                    start = t
                elif side == "C" and name == "end" and start is not None:
                    out.append((t - start) / 1e6)
                    start = None
                clock[side], last_cpu[side], pos[side] = t, cpu, pos[side] + 1
                moved = True
        if not moved:
            raise RuntimeError("trace replay stuck: a datagram received that was never sent")
    return out


def _load(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_round(trees: dict[str, str], count: int, tmp: Path, r: int) -> None:
    env = {name: {**os.environ, "PYTHONPATH": str(Path(src).resolve())} for name, src in trees.items()}
    me = str(Path(__file__).resolve())
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    for name in trees:
        proc = subprocess.Popen(
            [sys.executable, me, "--trace", str(tmp / f"{name}-{r}.srv"), "server", "--transport", "quic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env[name],
        )
        assert proc.stdout is not None
        servers[name] = (proc, json.loads(proc.stdout.readline())["addr"])
    try:
        dial = ["--count", str(count), "--transport", "quic"]
        clients = [
            subprocess.Popen(
                [sys.executable, me, "--trace", str(tmp / f"{name}-{r}.cli"), "dial", addr, *dial],
                stdout=subprocess.DEVNULL,
                env=env[name],
            )
            for name, (_, addr) in servers.items()
        ]
        for c in clients:
            if c.wait(timeout=300) != 0:
                raise RuntimeError("a dial client failed")
    finally:
        for proc, _ in servers.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--trace":
        _traced_peer(sys.argv[2], sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", metavar="NAME=SRC", help="src/ folders; the first is the base")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--count", type=int, default=30, help="dials per tree and round (the first is dropped)")
    p.add_argument("--hop-us", type=float, default=30.0, help="one-way latency added per datagram")
    args = p.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees)
    per_round: dict[str, list[float]] = {n: [] for n in trees}
    pooled: dict[str, list[float]] = {n: [] for n in trees}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.rounds):
            run_round(trees, args.count, tmp, r)
            for name in trees:
                ms = replay(_load(tmp / f"{name}-{r}.cli"), _load(tmp / f"{name}-{r}.srv"), args.hop_us * 1e3)
                ms = ms[1:]  # the first dial pays for imports and the first socket
                per_round[name].append(statistics.median(ms))
                pooled[name] += ms
            line = " ".join(f"{n} {v[-1]:.2f}" for n, v in per_round.items())
            print(f"round {r + 1}: {line}", file=sys.stderr, flush=True)
    base = next(iter(trees))
    b = statistics.median(pooled[base])
    print(f"{args.rounds} rounds x {args.count} dials, trees side by side; replayed dial + first ping (ms)\n")
    print("| tree | median | p25 | change | rounds below the base |")
    print("|---|---|---|---|---|")
    for name in trees:
        m = statistics.median(pooled[name])
        below = sum(x < y for x, y in zip(per_round[name], per_round[base], strict=True))
        q1 = statistics.quantiles(pooled[name], n=4)[0]
        cell = "-" if name == base else f"{below}/{args.rounds}"
        print(f"| {name} | {m:.2f} | {q1:.2f} | {100 * (m - b) / b:+.1f}% | {cell} |")


if __name__ == "__main__":
    main()
