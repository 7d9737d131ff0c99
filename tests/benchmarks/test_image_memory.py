"""Smoke test of benchmarks/image_memory.py: a --quick run prints its table and writes its JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "image_memory.py"


def test_quick_run_writes_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "image_memory.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    cells = json.loads(out.read_text())["cells"]
    for per_depth in cells.values():
        assert set(per_depth) == {"standard", "invertible"}
        assert per_depth["invertible"]["saved_mb"] < per_depth["standard"]["saved_mb"]
        assert all(cell["step_s"] > 0 and "peak_mb" in cell for cell in per_depth.values())
    assert "| invertible |" in run.stdout
