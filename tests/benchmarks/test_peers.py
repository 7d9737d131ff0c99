"""Smoke test of benchmarks/peers.py: a --quick run with flowforge alone writes its table and JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "peers.py"


def test_quick_run_writes_table_and_json(tmp_path: Path) -> None:
    out, results = tmp_path / "peers.json", tmp_path / "RESULTS.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--libraries", "flowforge", "--threads", "1", "--out", str(out), "--results", str(results)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(out.read_text())
    assert set(data) >= {"train", "infer", "memory", "date", "machine", "verdicts"}
    for timings in [*data["train"].values(), *data["infer"].values()]:
        assert timings["floor"] > 0 and any(key.startswith("flowforge|") for key in timings)
    assert all("peak_mb" in per for per in data["memory"]["flowforge"].values())
    assert "| flowforge |" in run.stdout and results.read_text().startswith("## Peers benchmark")
