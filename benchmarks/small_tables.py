"""`flowforge train` on scikit-learn's small tables against Gaussians fitted to the same rows.

For each table (iris, wine, breast_cancer, diabetes: 150-569 rows, 4-30 columns), model and
seed, the CLI trains at its defaults twice: with the first layer it picks for a small table
(Whiten) and with per-column Standardize, on the same split. Each test NLL is set beside the
test NLL of a full-covariance and of a diagonal Gaussian fitted (maximum likelihood) to the
training rows. Prints a table and writes JSON.

    python benchmarks/small_tables.py [--models realnvp,maf] [--seeds 0,1,2] [--out bench-results/small-tables.json]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from flowforge.cli import main, small_data
from flowforge.cli.config import TrainConfig
from flowforge.data.datasets import split_indices


def tables() -> dict[str, np.ndarray]:
    from sklearn import datasets  # the `data` extra; the dev requirements have it

    return {"iris": datasets.load_iris().data, "wine": datasets.load_wine().data,
            "breast_cancer": datasets.load_breast_cancer().data, "diabetes": datasets.load_diabetes().data}


def gaussian_nll(train: np.ndarray, test: np.ndarray, diagonal: bool) -> float:
    """Mean test NLL (nats) of the maximum-likelihood Gaussian of the training rows."""
    mean, cov = train.mean(0), np.cov(train, rowvar=False, bias=True)
    cov = np.diag(np.diag(cov)) if diagonal else cov
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (test - mean).T)
    return float(0.5 * (z**2).sum(0).mean() + np.log(np.diag(chol)).sum() + 0.5 * train.shape[1] * np.log(2 * np.pi))


def flow_nll(path: Path, model: str, seed: int, whiten: bool, folder: Path) -> float:
    original = small_data.first_layer
    if not whiten:
        small_data.first_layer = lambda rows, features: True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["train", "--data", str(path), "--model", model, "--seed", str(seed), "--no-progress", "--out", str(folder)]) == 0
    finally:
        small_data.first_layer = original
    return json.loads((folder / "metrics.json").read_text())["test_nll"]


def run(models: list[str], seeds: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in tables().items():
            path = Path(tmp) / f"{name}.npy"
            np.save(path, x.astype(np.float64))
            for seed in seeds:
                train, test = split_indices(len(x), TrainConfig().test_fraction, seed)
                full, diag = gaussian_nll(x[train], x[test], False), gaussian_nll(x[train], x[test], True)
                for model in models:
                    runs = {k: flow_nll(path, model, seed, k == "whiten", Path(tmp) / f"{name}-{model}-{seed}-{k}") for k in ("whiten", "standardize")}
                    rows.append({"table": name, "rows": len(x), "features": x.shape[1], "model": model, "seed": seed,
                                 "whiten": runs["whiten"], "standardize": runs["standardize"], "full_gaussian": full, "diag_gaussian": diag})
                    r = rows[-1]
                    print(f"| {name} | {model} | {seed} | {r['whiten']:.3f} | {r['standardize']:.3f} | {full:.3f} | {diag:.3f} |", flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    better = sum(r["whiten"] <= r["standardize"] for r in rows)
    beats = {k: sum(r[k] <= r["full_gaussian"] for r in rows) for k in ("whiten", "standardize")}
    return (f"Whiten at least as good as Standardize in {better} of {len(rows)} runs; at least as good as the full Gaussian: "
            f"Whiten {beats['whiten']}, Standardize {beats['standardize']} of {len(rows)}")


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="realnvp,maf")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="bench-results/small-tables.json")
    args = parser.parse_args()
    print("| table | model | seed | flow, Whiten | flow, Standardize | full Gaussian | diagonal Gaussian |")
    print("|---|---|---|---|---|---|---|")
    rows = run(args.models.split(","), [int(s) for s in args.seeds.split(",")])
    print(summary(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "summary": summary(rows)}, indent=1) + "\n")


if __name__ == "__main__":
    main_cli()
