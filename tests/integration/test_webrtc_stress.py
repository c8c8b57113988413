"""Stress runs of WebRTC-direct's founding-scenario guarantees (marked ``stress``: not in the default run).

``pytest -m stress tests/integration/test_webrtc_stress.py`` runs the founding scenario over WebRTC-direct
(``AIOLIBP2P_STRESS_RUNS``, default 100, times in a row: two connections, the dialer closes one, the listener is
down to one within 1 s, 100/100 streams both ways) and the 20-host pubsub discovery scenario over
WebRTC-direct (a fifth as many runs), and writes bench/results/webrtc_stress.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import pytest
from test_founding_scenario import test_dialer_closes_one_of_two_connections as founding
from test_pubsub_discovery import run_discovery_scenario

from aiolibp2p.exceptions import Libp2pError

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "webrtc_stress.md"


@pytest.mark.stress
@pytest.mark.timeout(0)
async def test_webrtc_direct_stress() -> None:
    runs = int(os.environ.get("AIOLIBP2P_STRESS_RUNS", "100"))
    rows: list[tuple[str, bool, float, str]] = []
    for _ in range(runs):
        t0 = time.monotonic()
        try:
            await founding("webrtc-direct")
            rows.append(("founding scenario", True, time.monotonic() - t0, ""))
        except (AssertionError, TimeoutError, Libp2pError) as e:
            rows.append(("founding scenario", False, time.monotonic() - t0, f"{type(e).__name__}: {e}"[:200]))
    for i in range(max(1, runs // 5)):
        t0 = time.monotonic()
        try:
            r = await run_discovery_scenario("gossipsub", seed=i, transport="webrtc-direct")
            rows.append(("pubsub discovery, 20 hosts", r.ok, r.seconds, r.error))
        except (AssertionError, TimeoutError, Libp2pError) as e:
            rows.append(
                ("pubsub discovery, 20 hosts", False, time.monotonic() - t0, f"{type(e).__name__}: {e}"[:200])
            )
    _write(rows)
    failed = [r for r in rows if not r[1]]
    assert not failed, failed[:5]


def _write(rows: list[tuple[str, bool, float, str]]) -> None:
    lines = [
        "# WebRTC-direct stress run",
        "",
        "`pytest -m stress tests/integration/test_webrtc_stress.py`: the founding scenario over WebRTC-direct",
        "(listener on 127.0.0.1 and 127.0.0.2, the dialer connected on both closes one; within 1 s the listener",
        "has exactly one connection; 100/100 new streams both ways) and the 20-host GossipSub discovery scenario",
        f"over WebRTC-direct only, in a row in one process. Python {platform.python_version()},",
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| scenario | runs | passed | median s | max s |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        secs = [r[2] for r in mine]
        lines.append(
            f"| {name} | {len(mine)} | {sum(r[1] for r in mine)} | {statistics.median(secs):.2f} | {max(secs):.2f} |"
        )
    errors = [r[3] for r in rows if not r[1]]
    if errors:
        lines += ["", "Failures:", *[f"- {e}" for e in errors[:20]]]
    RESULTS.write_text("\n".join(lines) + "\n")
