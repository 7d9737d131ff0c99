"""The tables benchmark's report: a progress line per run, the markdown tables, the verdicts, RESULTS.md's section."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPORT_HEADING = "## Tables benchmark, "


def _f(value, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def progress_line(r: dict) -> str:
    if "error" in r:
        return f"{r['table']} {r['method']} seed {r['seed']}: {r['error']}"
    nll = f", NLL {r['nll']:.3f} (independent {r['independent_nll']:.3f})" if "nll" in r else ""
    if "all_rows_nll" in r:
        nll += (f"; all {r['all_rows_scored']} rows with blanks and pattern {r['all_rows_nll']:.3f} +- {r['all_rows_nll_error']:.3f} "
                f"(independent {r['all_rows_independent_nll']:.3f})")
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
    lines = [("| table | seed | rows scored | flowforge NLL | independent NLL | GaussianBaseline NLL | worst row − independent | "
              "worst row − Gaussian |"), "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r["method"] == "flowforge" and "nll" in r:
            scored = f"{r['scored_rows']} of {r['test_rows']}" + (f" ({r['outside_rows']} outside)" if r["outside_rows"] else "")
            lines.append(f"| {r['table']} | {r['seed']} | {scored} | {r['nll']:.3f} | {r['independent_nll']:.3f} | "
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
    seeds = {m: ", ".join(map(str, sorted({r["seed"] for r in results["rows"] if (r["method"] == "flowforge") == m})))
             for m in (True, False)}
    method = (f"Seeded 80/20 splits (flowforge at seeds {seeds[True]}, SDV's methods at {seeds[False] or '—'}); every method at its "
              f"defaults, except CTGAN/TVAE at {args.epochs} epochs (SDV's default is 300). Synthetic rows: as many as the "
              "training rows (the C2ST uses as many as the held-out rows). Quality and C2ST compare with the held-out rows; "
              "outside support counts synthetic cells against the training column (benchmarks/table_metrics.py). "
              "TableFlow models which cells are blank (missing=\"model\", its default; runs before 2026-12-08 dropped rows with "
              "blank cells and sampled none); its NLL covers the complete held-out rows and is a lower bound where integers are dequantised. Rerun: `python benchmarks/tables.py --results "
              "benchmarks/RESULTS.md`." + (f" Subsampled: {notes}." if notes else ""))
    parts = [f"{REPORT_HEADING}{header}", "", method, "", sample_table(results)]
    if likelihood_table(results):
        parts += ["", "flowforge's held-out NLL (nats a row) against the baselines fitted to the same training rows:", "",
                  likelihood_table(results)]
    parts += ["", *(f"- {v}" for v in verdicts(results))]
    spikes = [f"{t} {c} ({100 * share:.0f}% {value:g})" for t, cs in results.get("atoms", {}).items() for c, (value, share) in cs.items()]
    if spikes:
        parts += ["", "Continuous columns with an atom (one value in at least 20% of the rows), where a continuous density's "
                  "held-out NLL can be arbitrarily low and its samples never hit the value: " + ", ".join(spikes) + "."]
    if results["missing"]:
        parts += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in results["missing"].items())]
    return "\n".join(parts)
