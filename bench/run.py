"""Side-by-side benchmark suite: aiolibp2p vs py-libp2p (PyPI ``libp2p==0.8.1``) vs js-libp2p 3.x, on loopback.

Usage::

    python bench/run.py [--quick] [--only NAME[,NAME...]] [--impls aiolibp2p,py-libp2p,js-libp2p] [--reps N]

Scenarios (NAME): ``throughput``, ``dial``, ``ping``, ``memory`` (also gives the accept rate), ``streams``,
``transports`` (single-stream throughput and dial + first ping per stack: QUIC-v1, WebSocket, TCP + TLS + yamux
and TCP + Noise + yamux, each peer started with ``--transport``), ``gossipsub`` (10 hosts of one implementation in
one process, full mesh, publish rates swept: delivery, latency, CPU per message hop; ``bench/pubsub_bench.py``,
``bench/pubsub_pylibp2p.py``, ``interop/js/gossip_bench.mjs``; plus 50 aiolibp2p hosts in 5 processes; also
written to ``bench/results/gossipsub.md`` and ``.json``).
Every implementation runs as its own server process (``bench/peer_aiolibp2p.py``, ``bench/peer_pylibp2p.py``
in its own venv ``bench/.venv-py-libp2p`` made here on first use, ``interop/js/bench_peer.mjs``), and its own
client process talks to it over TCP + Noise + yamux on 127.0.0.1. Repetitions are interleaved across the
implementations (the order rotates each round) since the machine is shared and noisy; the tables give the
median and [min-max] over the repetitions. The ``memory`` scenario uses one client for every listener (the
aiolibp2p ``conns`` client: N connections from N distinct identities) and reads the listener's RSS from /proc.

Output: a Markdown table on stdout, ``bench/results/latest.json`` and ``latest.md``, and PNG charts in
``bench/results/`` when matplotlib is installed (``pip install -e .[bench]``). ``--out DIR/NAME`` moves every
output file (NAME.json, NAME.md, the charts, gossipsub.md/.json/_rates.png, the stderr log) to DIR. Timings are
reported, never asserted. Every wait is bounded: a client that fails or hangs is reported as such with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
JS_DIR = ROOT / "interop" / "js"
PY_VENV = BENCH / ".venv-py-libp2p"
PY_LIBP2P_REQ = "libp2p==0.8.1"
MIB = 1024 * 1024

IMPLS = ("aiolibp2p", "py-libp2p", "js-libp2p", "tcp-floor")
SCENARIOS = ("throughput", "dial", "ping", "memory", "streams", "transports", "gossipsub")
# scenarios that start their own processes (no shared bench server)
OWN_PROCESSES = ("memory", "transports", "gossipsub")
# --transport of every bench peer -> what the stack is
TRANSPORT_STACKS = {
    "quic": "QUIC-v1",
    "webrtc-direct": "WebRTC-direct",
    "ws": "WebSocket + Noise + yamux",
    "tcp-tls": "TCP + TLS + yamux",
    "tcp": "TCP + Noise + yamux",
}
TARGETS = {
    "throughput": ">= js-libp2p and >= 4x py-libp2p",
    "dial": "<= 3 ms",
    "ping": "median <= 100 us",
    "memory": "<= 40 KiB per idle connection; 1,000 inbound held",
    "accept": "(no target)",
    "streams": ">= js-libp2p and >= 4x py-libp2p",
    "transports": "QUIC >= js-libp2p's QUIC, byte-exact every run; WebSocket >= js-libp2p's ws; TCP+TLS+yamux "
    ">= 60% of TCP+Noise+yamux; QUIC dial + first ping <= 5 ms",
    "gossipsub": ">= 600 msg/s with 100% delivery and median latency <= 20 ms; CPU per hop <= 150 µs",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the reports name files), else absolute."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path.resolve())


# -- setting up the implementations ---------------------------------------------------------------------------------
def ensure_py_libp2p() -> tuple[str | None, str]:
    """The venv's python with py-libp2p importable (created on first use), or None and why not."""
    py = PY_VENV / "bin" / "python"
    probe = [
        str(py),
        "-c",
        "import libp2p, trio; from importlib.metadata import version; print(version('libp2p'))",
    ]
    if py.exists():
        r = subprocess.run(probe, capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return str(py), r.stdout.strip()
    log(f"creating {PY_VENV.relative_to(ROOT)} with {PY_LIBP2P_REQ} (first run only)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PY_VENV)], check=True, timeout=300)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", PY_LIBP2P_REQ],
            check=True,
            timeout=1200,
            capture_output=True,
        )
        r = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=True)
        return str(py), r.stdout.strip()
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"py-libp2p venv could not be made: {e}"


def ensure_js() -> tuple[str | None, str]:
    node = os.environ.get("AIOLIBP2P_NODE") or shutil.which("node")
    if node is None:
        return None, "node not found"
    if not (JS_DIR / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            return None, "interop/js/node_modules missing and npm not found"
        log("running npm ci in interop/js (first run only)")
        r = subprocess.run([npm, "ci"], cwd=JS_DIR, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            return None, f"npm ci failed: {r.stderr[-300:]}"
    v = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    pkg = json.loads((JS_DIR / "package.json").read_text())
    return node, f"node {v}, libp2p {pkg['dependencies'].get('libp2p', '?')}"


@dataclass
class Impl:
    name: str
    peer: list[str]  # the command up to the subcommand
    version: str
    cwd: Path = ROOT
    clients: tuple[str, ...] = ("perf", "dial", "ping")


def make_impls(wanted: list[str]) -> tuple[list[Impl], dict[str, str]]:
    impls: list[Impl] = []
    missing: dict[str, str] = {}
    for name in wanted:
        if name == "aiolibp2p":
            from importlib.metadata import version

            try:
                import uvloop  # noqa: F401

                loop = "uvloop"
            except ImportError:
                loop = "asyncio"
            impls.append(
                Impl(
                    name,
                    [sys.executable, str(BENCH / "peer_aiolibp2p.py")],
                    f"{version('aiolibp2p')} (Python {platform.python_version()}, {loop})",
                )
            )
        elif name == "py-libp2p":
            py, info = ensure_py_libp2p()
            if py is None:
                missing[name] = info
            else:
                impls.append(Impl(name, [py, str(BENCH / "peer_pylibp2p.py")], f"{info} (trio)"))
        elif name == "js-libp2p":
            node, info = ensure_js()
            if node is None:
                missing[name] = info
            else:
                impls.append(Impl(name, [node, "bench_peer.mjs"], info, cwd=JS_DIR))
        elif name == "tcp-floor":
            impls.append(
                Impl(
                    name,
                    [sys.executable, str(BENCH / "peer_rawtcp.py")],
                    "plain TCP, asyncio + uvloop, no libp2p",
                )
            )
        else:
            raise SystemExit(f"unknown implementation {name!r}; choose from {', '.join(IMPLS)}")
    return impls, missing


# -- processes --------------------------------------------------------------------------------------------------------
def _raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, 65536)), hard))


def read_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON object the process prints on stdout, within ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no JSON line within {timeout:.0f} s")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
        if not ready:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before printing a result")
            continue
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise RuntimeError(f"exited with {proc.returncode} before printing a result")
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)


def stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Server:
    def __init__(self, impl: Impl, stderr_path: Path, args: tuple[str, ...] = ()) -> None:
        self.impl = impl
        self._err = stderr_path.open("a")
        self.proc = subprocess.Popen(
            [*impl.peer, "server", *args],
            cwd=impl.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            preexec_fn=_raise_nofile,
        )
        try:
            hello = read_json_line(self.proc, 60)
        except BaseException:
            self.close()
            raise
        self.addr: str = hello["addr"]
        self.pid: int = hello["pid"]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def sockets(self) -> int:
        n = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith("socket:"):
                    n += 1
        return n

    def close(self) -> None:
        stop(self.proc)
        self._err.close()


def run_client(impl: Impl, args: list[str], timeout: float, stderr_path: Path) -> dict[str, Any]:
    """Run one client to completion; its last JSON line, or ``{"error": ...}``."""
    with stderr_path.open("a") as err:
        try:
            r = subprocess.run(
                [*impl.peer, *args, "--timeout", str(timeout)],
                cwd=impl.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=timeout + 30,
                preexec_fn=_raise_nofile,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout + 30:.0f} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"exit {r.returncode}, no result (see {shown(stderr_path)})"}
    out = json.loads(lines[-1])
    if r.returncode != 0 and "error" not in out:
        out["error"] = f"exit {r.returncode}"
    return out


# -- statistics -------------------------------------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(xs: list[float]) -> dict[str, Any]:
    return (
        {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "runs": xs}
        if xs
        else {}
    )


@dataclass
class Metric:
    scenario: str
    label: str
    unit: str
    higher_is_better: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, impl: str, value: float) -> None:
        self.values.setdefault(impl, []).append(value)

    def fail(self, impl: str, why: str) -> None:
        self.errors.setdefault(impl, []).append(why)


# -- scenarios --------------------------------------------------------------------------------------------------------
def rounds(impls: list[Impl], reps: int):  # type: ignore[no-untyped-def]
    """(rep, impl) pairs, interleaved, with the order rotating every round."""
    for rep in range(reps):
        k = rep % len(impls)
        for impl in impls[k:] + impls[:k]:
            yield rep, impl


def scenario_throughput(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    size = cfg["throughput_bytes"]
    up = Metric("throughput", f"upload {size // MIB} MiB, 1 stream", "MB/s", True)
    down = Metric("throughput", f"download {size // MIB} MiB, 1 stream", "MB/s", True)
    for _, impl in rounds(impls, cfg["reps"]):
        for metric, flag in ((up, "--upload"), (down, "--download")):
            res = run_client(impl, ["perf", servers[impl.name].addr, flag, str(size)], cfg["timeout"], errlog)
            if "error" in res:
                metric.fail(impl.name, res["error"])
            else:
                metric.add(impl.name, size / res["seconds"] / 1e6)
    return [up, down]


def scenario_streams(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    size, n = cfg["streams_bytes"], cfg["streams"]
    m = Metric("streams", f"download {size // MIB} MiB over {n} concurrent streams", "MB/s", True)
    for _, impl in rounds(impls, cfg["reps"]):
        args = ["perf", servers[impl.name].addr, "--download", str(size), "--streams", str(n)]
        res = run_client(impl, args, cfg["timeout"], errlog)
        if "error" in res:
            m.fail(impl.name, res["error"])
        else:
            m.add(impl.name, size / res["seconds"] / 1e6)
    return [m]


def scenario_dial(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    n = cfg["dials"]
    m = Metric("dial", f"dial + Noise + yamux + first ping, median of {n} fresh connections", "ms", False)
    for _, impl in rounds(impls, cfg["reps"]):
        res = run_client(impl, ["dial", servers[impl.name].addr, "--count", str(n)], cfg["timeout"], errlog)
        if "error" in res:
            m.fail(impl.name, res["error"])
        else:
            m.add(impl.name, statistics.median(res["ms"][1:] or res["ms"]))  # the first dial warms up
    return [m]


def scenario_ping(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    n = cfg["pings"]
    ms = [
        Metric("ping", f"ping RTT {q}, {n} pings on one stream", "µs", False)
        for q in ("median", "p90", "p99")
    ]
    for _, impl in rounds(impls, cfg["reps"]):
        res = run_client(impl, ["ping", servers[impl.name].addr, "--count", str(n)], cfg["timeout"], errlog)
        for m, p in zip(ms, (50, 90, 99), strict=True):
            if "error" in res:
                m.fail(impl.name, res["error"])
            else:
                m.add(impl.name, pct(res["us"], p))
    return ms


def scenario_memory(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    """Fresh listener per measurement; N idle inbound connections from the aiolibp2p ``conns`` client."""
    client = next((i for i in impls if i.name == "aiolibp2p"), None)
    if client is None:
        client, _ = make_impls(["aiolibp2p"])
        client = client[0]
    impls = [i for i in impls if i.name != "tcp-floor"]  # its listener speaks no libp2p
    metrics: list[Metric] = []
    accepts: list[Metric] = []
    for n in cfg["conns"]:
        per = Metric("memory", f"listener RSS per idle connection, N={n}", "KiB", False)
        held = Metric("memory", f"inbound connections held, N={n}", "conns", True)
        accept = Metric("accept", f"accept rate, N={n} connections, 32 dialling at once", "conn/s", True)
        accept.notes["all"] = "client: aiolibp2p (one process, N identities) for every listener"
        accepts.append(accept)
        for _, impl in rounds(impls, cfg["mem_reps"]):
            try:
                server = Server(impl, errlog)
            except (OSError, RuntimeError, TimeoutError) as e:
                per.fail(impl.name, f"server: {e}")
                continue
            proc = None
            try:
                time.sleep(1.0)
                rss0, sock0 = server.rss_kib(), server.sockets()
                proc = subprocess.Popen(
                    [*client.peer, "conns", server.addr, "--count", str(n), "--timeout", "60"],
                    cwd=client.cwd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errlog.open("a"),
                    text=True,
                    preexec_fn=_raise_nofile,
                )
                res = read_json_line(proc, 300)
                time.sleep(cfg["settle"])  # identify and friends finish on both sides
                rss1, sock1 = server.rss_kib(), server.sockets()
                ok, kept = res["ok"], sock1 - sock0  # dialled fine / still open on the listener
                held.add(impl.name, kept)
                if kept > 0:
                    per.add(impl.name, (rss1 - rss0) / kept)
                if ok < n or kept < n:
                    why = f"{n - ok} of {n} dials failed or were dropped, listener holds {kept}"
                    per.fail(impl.name, f"{why}: {res.get('errors')}")
                if ok:
                    accept.add(impl.name, ok / res["seconds"])
            except (OSError, RuntimeError, TimeoutError, KeyError) as e:
                per.fail(impl.name, repr(e))
            finally:
                if proc is not None:
                    stop(proc)
                server.close()
        metrics += [per, held]
    return [*metrics, *accepts]


def scenario_transports(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    """Per stack: a fresh server per implementation, then interleaved upload, download and dial rounds."""
    impls = [i for i in impls if i.name != "tcp-floor"]  # no libp2p stack to compare
    size, n = cfg["transport_bytes"], cfg["transport_dials"]
    metrics: list[Metric] = []
    for stack, title in TRANSPORT_STACKS.items():
        up = Metric("transports", f"{title}: upload {size // MIB} MiB, 1 stream", "MB/s", True)
        down = Metric("transports", f"{title}: download {size // MIB} MiB, 1 stream", "MB/s", True)
        dial = Metric("transports", f"{title}: dial + first ping, median of {n}", "ms", False)
        for m in (up, down, dial):
            m.notes["stack"] = stack
        metrics += [up, down, dial]
        started: dict[str, Server] = {}
        try:
            for impl in impls:
                try:
                    started[impl.name] = Server(impl, errlog, ("--transport", stack))
                except (OSError, RuntimeError, TimeoutError) as e:
                    for m in (up, down, dial):
                        m.fail(impl.name, f"server: {e}")
            ok = [i for i in impls if i.name in started]
            timeout = cfg["transport_timeout"]
            for _, impl in rounds(ok, cfg["reps"]):
                addr, t = started[impl.name].addr, ["--transport", stack]
                for metric, flag in ((up, "--upload"), (down, "--download")):
                    res = run_client(impl, ["perf", addr, flag, str(size), *t], timeout, errlog)
                    if "error" in res:
                        metric.fail(impl.name, res["error"])
                    else:
                        metric.add(impl.name, size / res["seconds"] / 1e6)
                res = run_client(impl, ["dial", addr, "--count", str(n), *t], timeout, errlog)
                if "error" in res:
                    dial.fail(impl.name, res["error"])
                else:
                    dial.add(impl.name, statistics.median(res["ms"][1:] or res["ms"]))
        finally:
            for srv in started.values():
                srv.close()
    _transport_verdicts(metrics)
    return metrics


def _transport_verdicts(metrics: list[Metric]) -> None:
    """The issue's per-transport targets, from the medians of one run (TLS is compared with Noise there)."""
    med = {
        (m.notes["stack"], m.label.split(": ", 1)[1]): {
            k: statistics.median(v) for k, v in m.values.items() if v
        }
        for m in metrics
    }
    for m in metrics:
        stack, what = m.notes["stack"], m.label.split(": ", 1)[1]
        mine = med[stack, what]
        a = mine.get("aiolibp2p")
        if a is None:
            continue
        if m.unit == "ms":
            if stack == "quic":
                m.notes["verdict"] = ("✅" if a <= 5 else "❌") + " target <= 5 ms"
            elif stack == "webrtc-direct":
                m.notes["verdict"] = ("✅" if a <= 150 else "❌") + " target <= 150 ms"
            continue
        if stack == "webrtc-direct":
            js = mine.get("js-libp2p")
            if js:
                m.notes["verdict"] = (
                    "✅ " if a >= 0.5 * js else "❌ "
                ) + f"{a / js:.0%} of js (target >= 50%)"
            continue
        parts = [
            f"{a / mine[k]:{f}}x {k.split('-')[0]}"
            for k, f in (("js-libp2p", ".2f"), ("py-libp2p", ".1f"))
            if k in mine
        ]
        if stack in ("quic", "ws"):
            ok = a >= mine.get("js-libp2p", 0) and not (stack == "quic" and m.errors.get("aiolibp2p"))
            m.notes["verdict"] = (
                ("✅ " if ok else "❌ ") + ", ".join(parts) + (" byte-exact" if stack == "quic" else "")
            )
        elif stack == "tcp-tls":
            noise = med.get(("tcp", what), {}).get("aiolibp2p")
            if noise:
                share = a / noise
                m.notes["verdict"] = (
                    ("✅ " if share >= 0.6 else "❌ ") + f"{share:.0%} of Noise; " + ", ".join(parts)
                )
        else:
            m.notes["verdict"] = ", ".join(parts)


def _gossip_cmd(impl: Impl, rates: str, cfg: dict[str, Any]) -> tuple[list[str], Path]:
    common = ["--hosts", "10", "--rates", rates, "--seconds", str(cfg["gossip_seconds"]), "--warmup"]
    common += ["--drain", str(cfg["gossip_drain"])]
    if impl.name == "aiolibp2p":
        return [sys.executable, str(BENCH / "pubsub_bench.py"), "mesh", *common], ROOT
    if impl.name == "js-libp2p":
        return [impl.peer[0], "gossip_bench.mjs", *common], JS_DIR
    return [impl.peer[0], str(BENCH / "pubsub_pylibp2p.py"), *common], ROOT


def run_lines(cmd: list[str], cwd: Path, timeout: float, errlog: Path) -> tuple[list[dict[str, Any]], str]:
    """Every JSON line a command prints (and an error, or "")."""
    with errlog.open("a") as err:
        try:
            r = subprocess.run(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return [
                json.loads(ln) for ln in out.splitlines() if ln.startswith("{")
            ], f"timed out after {timeout:.0f} s"
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    return lines, "" if r.returncode == 0 else f"exit {r.returncode}"


GOSSIP_FIELDS = (
    ("delivery_pct", "delivery", "%", True),
    ("lat_median_ms", "median latency", "ms", False),
    ("lat_p99_ms", "p99 latency", "ms", False),
    ("cpu_per_hop_us", "CPU per hop", "µs", False),
)


def scenario_gossipsub(impls, servers, cfg, errlog) -> list[Metric]:  # type: ignore[no-untyped-def]
    """10 hosts of one implementation in one process, full mesh, a swept publish rate (bench/pubsub_bench.py);
    then aiolibp2p's 50-host network in 5 processes. Writes gossipsub.md and .json into cfg["results"]."""
    impls = [i for i in impls if i.name != "tcp-floor"]
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for _, impl in rounds(impls, cfg["gossip_reps"]):
        rates = cfg["gossip_rates_py"] if impl.name == "py-libp2p" else cfg["gossip_rates"]
        cmd, cwd = _gossip_cmd(impl, rates, cfg)
        log(f"gossipsub: {impl.name} at {rates} msg/s")
        lines, err = run_lines(cmd, cwd, cfg["gossip_timeout"], errlog)
        for ln in lines:
            if "rate" in ln and not ln.get("warmup"):
                if not ln.get("deliveries"):  # nothing arrived in time: no latency, no CPU per hop
                    ln.update(lat_median_ms=None, lat_p99_ms=None, cpu_per_hop_us=None)
                rows.append(ln)
        if err:
            errors[impl.name] = err
    network: list[dict[str, Any]] = []
    if any(i.name == "aiolibp2p" for i in impls):
        for rate in cfg["gossip_network_rates"]:
            cmd = [sys.executable, str(BENCH / "pubsub_bench.py"), "network", "--rate", str(rate)]
            cmd += ["--procs", "5", "--hosts-per-proc", "10", "--seconds", str(cfg["gossip_seconds"])]
            log(f"gossipsub: aiolibp2p 50-host network at {rate} msg/s")
            lines, err = run_lines(cmd, ROOT, cfg["gossip_timeout"], errlog)
            network += [ln for ln in lines if ln.get("scenario") == "network"]
            if err:
                errors["aiolibp2p network"] = err
    metrics: list[Metric] = []
    for rate in sorted({r["rate"] for r in rows}):
        for key, what, unit, higher in GOSSIP_FIELDS:
            m = Metric("gossipsub", f"gossipsub 10 hosts, {rate:g} msg/s: {what}", unit, higher)
            m.notes["rate"] = str(rate)
            for r in rows:
                if r["rate"] == rate and r.get(key) is not None:
                    m.add(r["impl"], float(r[key]))
            metrics.append(m)
    for r in network:
        for key, what, unit, higher in GOSSIP_FIELDS[:3]:
            m = Metric(
                "gossipsub", f"gossipsub 50 hosts in 5 processes, {r['rate']:g} msg/s: {what}", unit, higher
            )
            m.add("aiolibp2p", float(r[key]))
            metrics.append(m)
    for name, why in errors.items():
        log(f"gossipsub: {name}: {why}")
    write_gossip_report(rows, network, errors, cfg, cfg["results"])
    return metrics


def gossip_verdict(r: dict[str, Any]) -> str:
    ok_rate = r["delivery_pct"] >= 100.0 and (r["lat_median_ms"] or 1e9) <= 20
    return (
        ("✅" if ok_rate else "❌")
        + " delivery/latency, "
        + ("✅" if r["cpu_per_hop_us"] <= 150 else "❌")
        + " CPU"
    )


def write_gossip_report(
    rows: list[dict[str, Any]],
    network: list[dict[str, Any]],
    errors: dict[str, str],
    cfg: dict[str, Any],
    results: Path = RESULTS,
) -> None:
    """gossipsub.md, gossipsub.json and gossipsub_rates.png in ``results``."""
    lines = [
        "# GossipSub benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {platform.machine()}, {os.cpu_count()} cores "
        "(shared machine: compare rows of one run only). `python bench/run.py --only gossipsub`.",
        "",
        "10 hosts of one implementation in ONE process, each connected to every other over TCP + Noise + yamux "
        "on 127.0.0.1, GossipSub with StrictSign and the implementation's defaults (py-libp2p: go's D=6/5/12 "
        "and a 1 s heartbeat), one topic, 1 KiB messages published by the hosts in turn at the given rate for "
        f"{cfg['gossip_seconds']} s, then up to {cfg['gossip_drain']} s for the last to arrive (one warm-up round "
        "first, not shown). delivery: share of (message, other host) pairs received (every message must reach "
        "all 9 other hosts); latency: publish() call to the subscriber getting it; CPU per hop: the process's "
        "CPU time over the window / deliveries (a hop = one host receiving, verifying, validating and "
        "forwarding one message; signing, duplicates and IDONTWANT included). Target (aiolibp2p): "
        + TARGETS["gossipsub"]
        + ".",
        "",
        "| implementation | rate msg/s | achieved msg/s | delivery % | median ms | p99 ms | CPU/hop µs | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(v: Any, spec: str) -> str:
        return "—" if v is None or v != v else format(v, spec)  # (v != v: NaN, nothing delivered)

    for r in sorted(rows, key=lambda r: (r["impl"], r["rate"])):
        lines.append(
            f"| {r['impl']} | {r['rate']:g} | {f(r.get('achieved_rate'), '.0f')} | {f(r['delivery_pct'], '.2f')} | "
            f"{f(r.get('lat_median_ms'), '.1f')} | {f(r.get('lat_p99_ms'), '.1f')} | "
            f"{f(r.get('cpu_per_hop_us'), '.0f')} | "
            + (gossip_verdict(r) if r["impl"] == "aiolibp2p" else "")
            + " |"
        )
    failed = [r for r in rows if r.get("publish_errors")]
    if failed:
        lines += ["", "publish() raised for some messages (not counted as sent):", ""] + [
            f"- {r['impl']} at {r['rate']:g} msg/s: {r['publish_errors']} of {r['messages']}" for r in failed
        ]
    if network:
        lines += [
            "",
            "## 50 aiolibp2p hosts in 5 processes",
            "",
            "5 processes × 10 hosts, a random connected graph (a ring plus random edges up to 8 per host), one "
            "topic, the given total publish rate spread over the 50 hosts, latency across processes from the "
            "shared CLOCK_MONOTONIC. The 5 processes share the machine's cores.",
            "",
            "| hosts | mean degree | rate msg/s | delivery % | median ms | p99 ms | max ms | CPU/hop µs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in network:
            lines.append(
                f"| {r['hosts']} | {r['mean_degree']:.1f} | {r['rate']:g} | {r['delivery_pct']:.2f} | "
                f"{r['lat_median_ms']:.1f} | {r['lat_p99_ms']:.1f} | {r['lat_max_ms']:.1f} | "
                f"{r['cpu_per_hop_us']:.0f} |"
            )
    if errors:
        lines += ["", "Errors:", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    results.mkdir(parents=True, exist_ok=True)
    (results / "gossipsub.md").write_text("\n".join(lines) + "\n")
    data = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "mesh": rows, "network": network, "errors": errors}
    (results / "gossipsub.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {shown(results / 'gossipsub.md')} and gossipsub.json")
    gossipsub_chart(data, results)


def gossipsub_chart(data: dict[str, Any], results: Path = RESULTS) -> str | None:
    """gossipsub_rates.png in ``results`` (bench/results by default): delivery, median latency and CPU per hop
    against the publish rate, one line per implementation (``python bench/run.py --gossipsub-chart`` redraws it
    from the JSON)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no gossipsub chart (pip install -e .[bench])")
        return None
    colours = {"aiolibp2p": "#2a7ab0", "py-libp2p": "#e0a030", "js-libp2p": "#50a050"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        ("delivery_pct", "delivery % (higher is better)", False),
        ("lat_median_ms", "median latency ms (lower is better)", True),
        ("cpu_per_hop_us", "CPU per hop µs (lower is better)", True),
    )
    for ax, (key, title, log_y) in zip(axes, panels, strict=True):
        for impl in dict.fromkeys(r["impl"] for r in data["mesh"]):
            pts = [
                (r["rate"], r.get(key)) for r in data["mesh"] if r["impl"] == impl and r.get(key) is not None
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=impl, color=colours.get(impl, "grey"))
        ax.set_xlabel("publish rate, msg/s (10 hosts, full mesh, 1 KiB, StrictSign)", fontsize=8)
        ax.set_title(title, fontsize=9)
        if log_y:
            ax.set_yscale("log")
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = results / "gossipsub_rates.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"wrote {shown(path)}")
    return shown(path)


SCENARIO_FUNCS = {
    "throughput": scenario_throughput,
    "dial": scenario_dial,
    "ping": scenario_ping,
    "memory": scenario_memory,
    "streams": scenario_streams,
    "transports": scenario_transports,
    "gossipsub": scenario_gossipsub,
}


# -- report -----------------------------------------------------------------------------------------------------------
def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def verdict(m: Metric) -> str:
    """aiolibp2p against the target, from the medians."""
    med = {k: statistics.median(v) for k, v in m.values.items() if v}
    a = med.get("aiolibp2p")
    if a is None:
        return "n/a"
    if m.scenario in ("throughput", "streams"):
        parts = []
        if "js-libp2p" in med:
            parts.append(f"{a / med['js-libp2p']:.2f}x js")
        if "py-libp2p" in med:
            parts.append(f"{a / med['py-libp2p']:.1f}x py")
        ok = a >= med.get("js-libp2p", 0) and a >= 4 * med.get("py-libp2p", 0)
        return ("✅ " if ok else "❌ ") + ", ".join(parts)
    if m.scenario == "dial":
        return ("✅" if a <= 3 else "❌") + " target <= 3 ms"
    if m.scenario == "ping":
        return (
            ("✅" if a <= 100 else "❌") + " target <= 100 µs"
            if m.label.startswith("ping RTT median")
            else ""
        )
    if m.scenario == "transports":
        return m.notes.get("verdict", "")
    if m.scenario == "gossipsub":
        if m.unit == "µs":
            return ("✅" if a <= 150 else "❌") + " target <= 150 µs"
        if m.label.startswith("gossipsub 10 hosts, 600 msg/s: "):
            if m.unit == "%":
                return ("✅" if a >= 100 else "❌") + " target 100%"
            if "median" in m.label:
                return ("✅" if a <= 20 else "❌") + " target <= 20 ms"
        return ""
    if m.scenario == "memory" and m.unit == "KiB" and "N=1000" in m.label:
        return ("✅" if a <= 40 else "❌") + " target <= 40 KiB"
    if m.scenario == "memory" and m.unit == "conns" and "N=1000" in m.label:
        return ("✅" if a >= 1000 else "❌") + " target 1,000 held"
    return ""


def markdown(metrics: list[Metric], impls: list[str], meta: dict[str, Any]) -> str:
    head = "| scenario | unit | " + " | ".join(impls) + " | aiolibp2p vs target |"
    lines = [head, "|" + "---|" * (len(impls) + 3)]
    for m in metrics:
        cells = []
        for i in impls:
            v = m.values.get(i)
            e = m.errors.get(i)
            if v:
                c = f"**{fmt(statistics.median(v))}**"
                if len(v) > 1:
                    c += f" [{fmt(min(v))}–{fmt(max(v))}]"
                if e:
                    c += f" ⚠ {len(e)} failed"
            elif e:
                c = "failed: " + e[0][:80].replace("|", "/")
            elif i in meta["missing"]:
                c = "not run"
            elif i == "tcp-floor" and m.scenario in ("memory", "accept", "transports", "gossipsub"):
                c = "n/a"
            else:
                c = "—"
            cells.append(c)
        lines.append(f"| {m.label} | {m.unit} | " + " | ".join(cells) + f" | {verdict(m)} |")
    return "\n".join(lines)


def charts(metrics: list[Metric], impls: list[str], results: Path = RESULTS) -> list[str]:
    """One PNG per scenario, ``results``/SCENARIO.png; returns the paths written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no charts (pip install -e .[bench])")
        return []
    colours = {"aiolibp2p": "#2a7ab0", "py-libp2p": "#e0a030", "js-libp2p": "#50a050", "tcp-floor": "#b0b0b0"}
    written = []
    for scen in dict.fromkeys(m.scenario for m in metrics):
        ms = [m for m in metrics if m.scenario == scen and m.values]
        if not ms:
            continue
        cols = len(ms) if len(ms) <= 6 else 3  # transports: one row per stack
        rows = -(-len(ms) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
        for ax, m in zip(axes.flat, ms, strict=False):
            names = [i for i in impls if m.values.get(i)]
            med = [statistics.median(m.values[i]) for i in names]
            lo = [x - min(m.values[i]) for x, i in zip(med, names, strict=True)]
            hi = [max(m.values[i]) - x for x, i in zip(med, names, strict=True)]
            ax.bar(names, med, yerr=[lo, hi], capsize=4, color=[colours.get(i, "grey") for i in names])
            ax.set_title(m.label, fontsize=8)
            ax.set_ylabel(
                m.unit + (" (higher is better)" if m.higher_is_better else " (lower is better)"), fontsize=8
            )
            ax.tick_params(labelsize=8)
            if m.scenario in ("dial", "ping") and len(med) > 1 and max(med) / max(min(med), 1e-9) > 20:
                ax.set_yscale("log")
        fig.tight_layout()
        path = results / f"{scen}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(shown(path))
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and fewer repetitions (a smoke run)")
    p.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated implementations")
    p.add_argument("--reps", type=int, help="repetitions per scenario (default 5, quick 2)")
    p.add_argument(
        "--stacks", help=f"comma-separated stacks of the transports scenario: {', '.join(TRANSPORT_STACKS)}"
    )
    p.add_argument(
        "--out",
        default=str(RESULTS / "latest"),
        help="results path prefix (.json and .md); the charts and gossipsub files go to its folder too",
    )
    p.add_argument(
        "--gossipsub-chart",
        action="store_true",
        help="redraw gossipsub_rates.png from gossipsub.json (both in the --out folder, bench/results by default)",
    )
    args = p.parse_args()
    out = Path(args.out)
    results = out.parent
    if args.gossipsub_chart:
        return 0 if gossipsub_chart(json.loads((results / "gossipsub.json").read_text()), results) else 1
    if args.stacks:
        for name in list(TRANSPORT_STACKS):
            if name not in args.stacks.split(","):
                del TRANSPORT_STACKS[name]
    only = args.only.split(",") if args.only else list(SCENARIOS)
    for s in only:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    q = args.quick
    cfg = {
        "reps": args.reps or (2 if q else 5),
        "mem_reps": 1 if q else 2,
        "throughput_bytes": (16 if q else 100) * MIB,
        "streams_bytes": (16 if q else 100) * MIB,
        "streams": 100,
        "transport_bytes": (8 if q else 32) * MIB,
        "transport_dials": 10 if q else 20,
        "transport_timeout": 30.0 if q else 60.0,  # py-libp2p's QUIC download never finishes: fail it early
        "dials": 10 if q else 50,
        "pings": 200 if q else 1000,
        "conns": [100] if q else [200, 1000],
        "settle": 1.0 if q else 3.0,
        "timeout": 60.0 if q else 180.0,
        "gossip_reps": 1,
        "gossip_rates": "100,600" if q else "50,100,200,400,600,800",
        "gossip_rates_py": "5,10" if q else "5,10,25,50",
        "gossip_network_rates": [50] if q else [50, 100],
        "gossip_seconds": 2.0 if q else 3.0,
        "gossip_drain": 3.0,
        "gossip_timeout": 600.0,
        "results": results,
    }
    results.mkdir(parents=True, exist_ok=True)
    errlog = results / "stderr.log.tmp"
    errlog.write_text("")
    impls, missing = make_impls(args.impls.split(","))
    for name, why in missing.items():
        log(f"{name}: not run — {why}")
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "versions": {i.name: i.version for i in impls},
        "missing": missing,
        "config": {k: v for k, v in cfg.items() if k != "results"},
        "stack": "TCP + Noise + yamux on 127.0.0.1; throughput: /perf/1.0.0 (perf spec), 256 KiB writes, "
        "timed by the client from opening the stream to the server's EOF",
        "quick": q,
        "floor": "tcp-floor is the machine's floor, not a libp2p: plain TCP on asyncio + uvloop, no Noise, no "
        "muxer, no negotiation (its 100-stream row uses 100 TCP connections)",
    }
    metrics: list[Metric] = []
    servers: dict[str, Server] = {}
    t0 = time.monotonic()
    try:
        if any(s not in OWN_PROCESSES for s in only):
            for impl in impls:
                try:
                    servers[impl.name] = Server(impl, errlog)
                except (OSError, RuntimeError, TimeoutError) as e:
                    log(f"{impl.name}: server did not start: {e}")
        ok = [i for i in impls if i.name in servers]
        for scen in only:
            log(f"scenario {scen} ({', '.join(i.name for i in impls)})")
            metrics += SCENARIO_FUNCS[scen](impls if scen in OWN_PROCESSES else ok, servers, cfg, errlog)
    finally:
        for s in servers.values():
            s.close()
    meta["seconds"] = round(time.monotonic() - t0, 1)
    names = [i.name for i in impls] + list(missing)
    table = markdown(metrics, names, meta)
    header = (
        f"Run {meta['date']} on {meta['machine']} ({'quick' if q else 'full'}, {cfg['reps']} interleaved "
        f"repetitions; **median** [min–max]).\n"
        + "".join(f"- {k}: {v}\n" for k, v in meta["versions"].items())
        + "".join(f"- {k}: not run — {v}\n" for k, v in missing.items())
        + f"- {meta['stack']}\n"
        + (
            "- transports: each row names its stack; every peer runs it with `--transport` (single stream: /perf/1.0.0 "
            "as above; dial: fresh connection + ping stream + one 32-byte round trip)\n"
            if "transports" in only
            else ""
        )
        + (f"- {meta['floor']}\n" if "tcp-floor" in meta["versions"] else "")
    )
    pngs = charts(metrics, names, results)
    md = header + "\n" + table + "\n"
    if pngs:
        md += "\nCharts: " + ", ".join(f"`{x}`" for x in pngs) + "\n"
    print(md)
    data = {
        "meta": meta,
        "targets": TARGETS,
        "metrics": [
            {
                "scenario": m.scenario,
                "label": m.label,
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "results": {k: summary(v) for k, v in m.values.items()},
                "errors": m.errors,
                "notes": m.notes,
                "verdict": verdict(m),
            }
            for m in metrics
        ],
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    out.with_suffix(".md").write_text(md)
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
