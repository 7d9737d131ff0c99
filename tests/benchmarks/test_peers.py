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


def test_a_rerun_keeps_the_commentary_above_the_tables(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import peers

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nWhat the numbers say.\n\n## Peers benchmark, an old run\n\n| stale |\n")
    peers.write_results(results, "## Peers benchmark, today\n\n| new |")
    assert results.read_text() == "# Benchmark results\n\nWhat the numbers say.\n\n## Peers benchmark, today\n\n| new |\n"
    peers.write_results(tmp_path / "fresh.md", "## Peers benchmark, today")
    assert (tmp_path / "fresh.md").read_text() == "## Peers benchmark, today\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md", "fresh.md"]  # no temporaries left
