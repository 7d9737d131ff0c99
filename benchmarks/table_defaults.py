"""TableFlow's defaults set beside other settings, from saved runs of benchmarks/tables.py.

Each run is `python benchmarks/tables.py --methods flowforge [--options JSON] --out FILE` (a stopped
run leaves FILE.partial, which is read too; FILE1+FILE2 joins the runs of one setting). Prints, per table, each setting's mean over the seeds it
finished of held-out NLL (nats a row), SDMetrics quality and classifier AUC, and fit seconds.

    python benchmarks/table_defaults.py nsf=bench-results/ff1.json maf=bench-results/ff-maf.json ...
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def rows_of(path: str) -> list[dict]:
    files = [f for f in (Path(path), Path(path + ".partial")) if f.exists()]
    file = max(files, key=lambda f: f.stat().st_mtime)  # a stopped rerun's .partial is newer than an old result
    return [r for r in json.loads(file.read_text())["rows"] if r["method"] == "flowforge" and "error" not in r]


def main() -> None:
    runs = {label: [r for path in paths.split("+") for r in rows_of(path)] for label, paths in (a.split("=", 1) for a in sys.argv[1:])}
    tables = list(dict.fromkeys(r["table"] for rows in runs.values() for r in rows))
    print("| table | setting | seeds | NLL | quality | C2ST AUC | fit s |\n|---|---|---|---|---|---|---|")
    wins = dict.fromkeys(runs, 0)
    for table in tables:
        means = {}
        for label, rows in runs.items():
            mine = [r for r in rows if r["table"] == table]
            if not mine:
                continue
            means[label] = {k: float(np.mean([r[k] for r in mine])) for k in ("nll", "quality", "c2st_auc", "fit_s")}
            m = means[label]
            print(f"| {table} | {label} | {len(mine)} | {m['nll']:.3f} | {m['quality']:.3f} | {m['c2st_auc']:.3f} | {m['fit_s']:.1f} |")
        if len(means) == len(runs):
            wins[min(means, key=lambda k: means[k]["nll"])] += 1
    print("\nlowest mean NLL on the tables every setting finished: " + ", ".join(f"{k} {v}" for k, v in wins.items()))


if __name__ == "__main__":
    main()
