"""sbi's neural posterior estimation with flowforge's estimators beside sbi's default, at equal simulation budgets.

The linear Gaussian task of examples/sbi_posterior.py (10-D, true posterior known), NPE trained by
sbi's own loop for each estimator on the same simulations, C2ST against the true posterior at 3
observations per seed (0.5 is ideal). Needs sbi (`pip install 'flowforge[sbi]'`).

    python benchmarks/sbi_c2st.py [--simulations 2000,10000] [--seeds 0,1,2] [--out bench-results/sbi-c2st.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
from pathlib import Path

import numpy as np
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sbi_posterior.py"


def load_example():
    spec = importlib.util.spec_from_file_location("sbi_posterior", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", default="2000,10000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--estimators", default="maf,flowforge-maf,flowforge-nsf")
    parser.add_argument("--out", default="bench-results/sbi-c2st.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    example, rows = load_example(), []
    for simulations in (int(s) for s in args.simulations.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in args.estimators.split(","):  # interleaved: machine load drifts alike for all
                result = example.posterior_c2st(name, simulations, seed, log_dir=Path(args.out).parent / "sbi-logs")
                result.pop("last_samples")
                rows.append(result)
                print(f"{name:>15} {simulations:>6} sims seed {seed}: C2ST {result['c2st_mean']:.3f} "
                      f"({result['epochs']} epochs, {result['train_seconds']:.0f} s)", flush=True)
    print(f"\n{'estimator':>15} {'simulations':>11} {'C2ST mean':>9} {'sd':>6}  (seeds x observations)")
    for simulations in sorted({r["simulations"] for r in rows}):
        for name in args.estimators.split(","):
            scores = [s for r in rows if r["estimator"] == name and r["simulations"] == simulations for s in r["c2st"]]
            print(f"{name:>15} {simulations:>11} {np.mean(scores):>9.3f} {np.std(scores):>6.3f}  ({len(scores)})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "machine": platform.machine()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
