"""bench/run.py writes every output file (tables, JSON, charts, gossipsub report) where ``--out`` points, and
leaves bench/results/ alone then (it used to overwrite bench/results/*.png whatever --out said)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def _snapshot(folder: Path) -> dict[str, str]:
    """Name -> content hash of every result file in ``folder`` (bench/results/ must not change)."""
    files = [p for p in sorted(folder.glob("*")) if p.is_file() and p.suffix != ".tmp"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


GOSSIP_ROW = {
    "impl": "aiolibp2p",
    "rate": 100.0,
    "achieved_rate": 99.0,
    "delivery_pct": 100.0,
    "lat_median_ms": 1.5,
    "lat_p99_ms": 4.0,
    "cpu_per_hop_us": 90.0,
}
CFG = {"gossip_seconds": 2.0, "gossip_drain": 3.0}


def test_charts_and_gossip_report_go_to_the_given_folder(bench_run: ModuleType, tmp_path: Path) -> None:
    before = _snapshot(bench_run.RESULTS)
    m = bench_run.Metric("transports", "QUIC-v1 upload", "MB/s", True)
    m.add("aiolibp2p", 100.0)
    m.add("js-libp2p", 50.0)
    pngs = bench_run.charts([m], ["aiolibp2p", "js-libp2p"], tmp_path)
    bench_run.write_gossip_report([GOSSIP_ROW], [], {}, CFG, tmp_path)
    assert (tmp_path / "gossipsub.md").read_text().startswith("# GossipSub benchmark")
    assert json.loads((tmp_path / "gossipsub.json").read_text())["mesh"] == [GOSSIP_ROW]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert pngs == []
    else:
        assert pngs == [str(tmp_path / "transports.png")]
        assert (tmp_path / "transports.png").stat().st_size > 0
        assert (tmp_path / "gossipsub_rates.png").stat().st_size > 0
    assert _snapshot(bench_run.RESULTS) == before


def test_gossipsub_chart_redraw_reads_and_writes_the_out_folder(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    before = _snapshot(RUN_PY.parent / "results")
    data = {"date": "x", "mesh": [GOSSIP_ROW], "network": [], "errors": {}}
    (tmp_path / "gossipsub.json").write_text(json.dumps(data))
    r = subprocess.run(
        [sys.executable, str(RUN_PY), "--gossipsub-chart", "--out", str(tmp_path / "latest")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gossipsub_rates.png").stat().st_size > 0
    assert _snapshot(RUN_PY.parent / "results") == before
