"""examples/conditional_density.py runs end to end on a tiny budget (as CI runs it)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "conditional_density.py"


def load_example():
    spec = importlib.util.spec_from_file_location("conditional_density", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conditional_density_example_writes_plots_and_summary(tmp_path) -> None:
    summary = load_example().main(["--steps", "30", "--model", "maf", "--out", str(tmp_path)])
    assert (tmp_path / "samples_theta_0.75.png").is_file() and (tmp_path / "samples_theta_1.75.png").is_file()
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert math.isfinite(summary["test_nll"]) and set(summary["thetas"]) == {"0.75", "1.75"}
