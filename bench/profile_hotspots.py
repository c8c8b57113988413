"""Where aiolibp2p spends its time in the throughput, dial and ping scenarios of ``bench/run.py``.

Usage: ``python bench/profile_hotspots.py [--only throughput,dial,ping] [--top N] [--no-uvloop]``.

Runs ``bench/peer_aiolibp2p.py`` server and client under cProfile (``--profile``), one pair per scenario, and
prints the top functions by own time (tottime) for each side, plus the share of the process's profiled time.
With uvloop the loop's C code (libuv, the socket syscalls it makes itself, and idle waiting) shows as the own
time of ``asyncio/runners.py run``; a transport ``write`` that sends at once carries its ``send()`` syscall.
cProfile inflates the cost of many small Python calls, so read the ranking, not the absolute numbers; for a
sampling view use ``py-spy record --native -- python bench/peer_aiolibp2p.py server`` on the same commands.
Writes ``bench/results/profile.md``.
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import RESULTS, ROOT, read_json_line, stop

PEER = [sys.executable, str(Path(__file__).resolve().parent / "peer_aiolibp2p.py")]
SCENARIOS = {
    "throughput": [
        ["perf", "--upload", str(200 * 1024 * 1024)],
        ["perf", "--download", str(200 * 1024 * 1024)],
    ],
    "dial": [["dial", "--count", "300"]],
    "ping": [["ping", "--count", "10000"]],
}


def top(path: Path, n: int) -> str:
    st = pstats.Stats(str(path))
    total = st.total_tt  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    out = io.StringIO()
    out.write("| own time s | share | calls | cumulative s | function |\n|---|---|---|---|---|\n")
    for (file, line, func), (_cc, nc, tt, ct, _callers) in rows[:n]:
        short = file.replace(str(ROOT) + "/", "")
        for marker in ("site-packages/", "lib/python3.11/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        out.write(f"| {tt:.3f} | {tt / total:.1%} | {nc:,} | {ct:.3f} | `{short}:{line} {func}` |\n")
    return f"total profiled time {total:.2f} s\n\n" + out.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SCENARIOS))
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args()
    loop = ["--no-uvloop"] if args.no_uvloop else []
    report = [
        f"# aiolibp2p hot spots (cProfile, {'asyncio' if args.no_uvloop else 'uvloop'} loop), "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for scen in args.only.split(","):
            srv_prof, cli_prof = Path(tmp, f"{scen}-server.prof"), Path(tmp, f"{scen}-client.prof")
            server = subprocess.Popen(
                [*PEER, *loop, "--profile", str(srv_prof), "server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                addr = read_json_line(server, 60)["addr"]
                for i, cmd in enumerate(SCENARIOS[scen]):
                    prof = cli_prof.with_suffix(f".{i}.prof")
                    r = subprocess.run(
                        [*PEER, *loop, "--profile", str(prof), cmd[0], addr, *cmd[1:]],
                        capture_output=True,
                        text=True,
                        timeout=600,
                    )
                    print(f"{scen} {' '.join(cmd)}: {r.stdout.strip()[:120]}", file=sys.stderr)
                    report.append(f"\n## {scen}: client `{' '.join(cmd)}`\n\n{top(prof, args.top)}")
            finally:
                stop(server)
            report.append(f"\n## {scen}: server\n\n{top(srv_prof, args.top)}")
    text = "".join(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
