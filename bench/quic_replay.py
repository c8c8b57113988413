"""QUIC dial + first ping, A/B by critical-path replay in CPU time: steady on a machine too busy for wall clocks.

Usage::

    python bench/quic_replay.py [--rounds 10] [--count 30] [--hop-us 30] main=/work/main/src new=src [...]
    python bench/quic_replay.py --timeline [--count 30] main=src [...]

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
import itertools
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
def _traced_peer(out: str, argv: list[str], streams: bool = False) -> None:
    """Run ``peer_aiolibp2p.py argv`` with the QUIC datagram and dial hooks (``streams``: also each stream
    write, read, FIN and the TLS handshake's completion, for ``--timeline``); dump the events at exit."""
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
    if streams:
        _trace_streams(ev)
    sys.argv = [str(BENCH / "peer_aiolibp2p.py"), *argv]
    peer.main()


def _trace_streams(ev: Any) -> None:
    from aiolibp2p.transports.quic.connection import QuicConnection, QuicStream

    write, on_data, close_write, process = (
        QuicStream.write,
        QuicStream._on_data,
        QuicStream.close_write,
        QuicConnection._process_events,
    )

    async def traced_write(self: QuicStream, data: Any) -> None:
        ev(f"write s{self.stream_id} {bytes(data)[:40]!r}", len(data))
        await write(self, data)

    def traced_on_data(self: QuicStream, data: bytes, end: bool) -> None:
        ev(f"read s{self.stream_id} {data[:40]!r}{' +FIN' if end else ''}", len(data))
        on_data(self, data, end)

    async def traced_close_write(self: QuicStream) -> None:
        ev(f"FIN s{self.stream_id}")
        await close_write(self)

    def traced_process(self: QuicConnection) -> None:
        was = self.handshake.done()
        process(self)
        if not was and self.handshake.done():
            ev("TLS done")

    QuicStream.write = traced_write  # type: ignore[method-assign]
    QuicStream._on_data = traced_on_data  # type: ignore[method-assign]
    QuicStream.close_write = traced_close_write  # type: ignore[method-assign]
    QuicConnection._process_events = traced_process  # type: ignore[method-assign]


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


SEGMENTS = (
    ("start", "the dial starts"),
    ("initial", "dialer: first datagram sent"),
    ("dialer_tls", "dialer: TLS done"),
    ("listener_tls", "listener: TLS done"),
    ("answer", "listener: first write on the ping stream"),
    ("end", "dialer: ping echo read"),
)


def timeline(client: list[list[Any]], server: list[list[Any]]) -> None:
    """Print the wall-clock segment medians of the dials in the two traces (``--timeline``; the first dial is
    dropped) and the merged event list of the median dial: time since its start, the gap since the previous
    event, the side (C dialer, S listener), the event and the CPU the side spent since its previous event."""
    import statistics as st

    dials: list[tuple[int, int]] = []
    begin: int | None = None
    for w, _c, name, _n in client:
        if name == "start":
            begin = w
        elif name == "end" and begin is not None:
            dials.append((begin, w))
            begin = None
    dials = dials[1:]
    merged = sorted([("C", *e) for e in client] + [("S", *e) for e in server], key=lambda e: e[1])
    segs: dict[str, list[float]] = {}
    for a, b in dials:
        marks = {"start": a, "end": b}
        ping_sid: str | None = None
        for side, w, _c, name, _n in merged:
            if not a <= w <= b:
                continue
            if side == "C" and name == "tx":
                marks.setdefault("initial", w)
            elif name == "TLS done":
                marks.setdefault("dialer_tls" if side == "C" else "listener_tls", w)
            elif side == "C" and name.startswith("write s") and "/ipfs/ping/" in name:
                ping_sid = name.split()[1]
            elif side == "S" and ping_sid is not None and name.startswith(f"write {ping_sid} "):
                marks.setdefault("answer", w)
        keys = [k for k, _ in SEGMENTS]
        if all(k in marks for k in keys):
            for x, y in itertools.pairwise(keys):
                segs.setdefault(f"{x} -> {y}", []).append((marks[y] - marks[x]) / 1e3)
    total = [(b - a) / 1e6 for a, b in dials]
    print(f"{len(dials)} dials: median {st.median(total):.2f} ms, min {min(total):.2f} ms\n")
    print("| segment | median us |\n|---|---|")
    for k, v in segs.items():
        print(f"| {k} | {st.median(v):.0f} |")
    a, b = sorted(dials, key=lambda d: d[1] - d[0])[len(dials) // 2]
    print(f"\nmedian dial, {(b - a) / 1e3:.0f} us:\n")
    last_cpu: dict[str, int] = {}
    prev = a
    for side, w, c, name, n in merged:
        if not a <= w <= b:
            continue
        spent = f"cpu +{(c - last_cpu[side]) / 1e3:.0f}" if side in last_cpu else ""
        last_cpu[side] = c
        print(
            f"{(w - a) / 1e3:8.0f} us (+{(w - prev) / 1e3:5.0f})  {side} {name[:72]:72} {n or '':>5} {spent}"
        )
        prev = w
    print()


def _load(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_round(trees: dict[str, str], count: int, tmp: Path, r: int, streams: bool = False) -> None:
    env = {name: {**os.environ, "PYTHONPATH": str(Path(src).resolve())} for name, src in trees.items()}
    me = str(Path(__file__).resolve())
    trace = "--trace-streams" if streams else "--trace"
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    for name in trees:
        proc = subprocess.Popen(
            [sys.executable, me, trace, str(tmp / f"{name}-{r}.srv"), "server", "--transport", "quic"],
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
                [sys.executable, me, trace, str(tmp / f"{name}-{r}.cli"), "dial", addr, *dial],
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
    if len(sys.argv) > 2 and sys.argv[1] in ("--trace", "--trace-streams"):
        _traced_peer(sys.argv[2], sys.argv[3:], streams=sys.argv[1] == "--trace-streams")
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", metavar="NAME=SRC", help="src/ folders; the first is the base")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--count", type=int, default=30, help="dials per tree and round (the first is dropped)")
    p.add_argument("--hop-us", type=float, default=30.0, help="one-way latency added per datagram")
    p.add_argument(
        "--timeline",
        action="store_true",
        help="no replay: one round per tree (one after the other), wall-clock segment medians and the merged "
        "timeline of the median dial, with stream writes, reads and FINs",
    )
    args = p.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees)
    if args.timeline:
        with tempfile.TemporaryDirectory() as d:
            for name, src in trees.items():
                run_round({name: src}, args.count, Path(d), 0, streams=True)
                print(f"## {name} ({src})\n")
                timeline(_load(Path(d) / f"{name}-0.cli"), _load(Path(d) / f"{name}-0.srv"))
        return
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
