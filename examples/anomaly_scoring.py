"""Anomaly scoring: fit a flow to normal data, flag the rows it finds unlikely, measure how well.

The score of a row is its negative log-likelihood, -flow.log_prob(x): high means unlikely. The
rows are split three ways: the flow trains on the first (with its own validation split), the
alarm threshold is the (1 - --false-alarm-rate) quantile of the scores of the second, so about
that share of normal rows is flagged, and the third is the test set, to which --anomalies
outliers are added, drawn uniformly from the data's bounding box widened by a quarter on each
side (a few land on the data and cannot be told apart; most do not).

Reports precision and recall at the threshold and the ROC-AUC (the chance that an anomaly
scores above a normal row), the same for a Gaussian fitted to the training rows, and writes
OUT/scores.png (a histogram of test scores with the threshold; for 2-D data also the test rows
coloured by flag) and OUT/summary.json.

    python examples/anomaly_scoring.py                                # under 2 minutes on 2 CPU cores
    python examples/anomaly_scoring.py --data table.csv --out runs/table-anomalies
    python examples/anomaly_scoring.py --steps 30 --n 1000 --layers 2 --hidden 16 --out /tmp/x   # seconds

From the command line, `flowforge score RUN --data FILE --out scores.csv` writes the log_prob
of each row; its negative is this score.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import flowforge
from flowforge.data import TOYS, load_dataset, split
from flowforge.viz.figure import new_figure, save


def roc_auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """P(score of an anomaly > score of a normal row), ties counting half: the area under the ROC curve."""
    normal = np.sort(normal)
    below = np.searchsorted(normal, anomalous, side="left")
    ties = np.searchsorted(normal, anomalous, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(normal) * len(anomalous)))


def detection(normal: np.ndarray, anomalous: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and false-alarm rate of flagging scores above `threshold`, and the ROC-AUC."""
    true_alarms, false_alarms = int((anomalous > threshold).sum()), int((normal > threshold).sum())
    return {"precision": true_alarms / max(true_alarms + false_alarms, 1), "recall": true_alarms / len(anomalous),
            "false_alarm_rate": false_alarms / len(normal), "roc_auc": roc_auc(normal, anomalous)}


def inject(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows uniform in the bounding box of x, widened by a quarter of its size on each side."""
    low, high = x.min(0), x.max(0)
    pad = 0.25 * (high - low)
    return rng.uniform(low - pad, high + pad, size=(n, x.shape[1])).astype(np.float32)


def flow_scorer(flow: flowforge.Flow):
    """-flow.log_prob(x) (eval mode, no gradients), as a function of (N, D) arrays."""
    flow.eval()
    return lambda rows: -torch.cat([flow.log_prob(part).detach() for part in torch.from_numpy(rows).split(8192)]).numpy()


def gaussian_scorer(train: np.ndarray):
    """-log N(x; mean, covariance) of the training rows, as a function of (N, D) arrays."""
    x = torch.from_numpy(train).double()
    gaussian = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T, correction=0).reshape(x.shape[1], -1))
    return lambda rows: -gaussian.log_prob(torch.from_numpy(rows).double()).numpy()


def plot_scores(normal: np.ndarray, anomalous: np.ndarray, threshold: float, rows: np.ndarray, is_anomaly: np.ndarray,
                path: Path) -> Path:
    """Histogram of the two groups' scores (clipped at the 99th percentile) and, for 2-D rows, a scatter."""
    is_2d = rows.shape[1] == 2
    figure = new_figure(10.0 if is_2d else 6.0, 4.0)
    axes = figure.add_subplot(1, 2 if is_2d else 1, 1)
    top = float(np.quantile(np.r_[normal, anomalous], 0.99))
    bins = np.linspace(min(normal.min(), anomalous.min()), top, 50)
    axes.hist(np.minimum(normal, top), bins, alpha=0.6, label="normal (test)", density=True)
    axes.hist(np.minimum(anomalous, top), bins, alpha=0.6, label="injected anomalies", density=True)
    axes.axvline(threshold, color="black", linestyle="--", label="threshold")
    axes.set(xlabel="score = -log p(x)  (last bin: everything above)", ylabel="density", title="test scores")
    axes.legend()
    if is_2d:
        scatter = figure.add_subplot(1, 2, 2)
        flagged = np.r_[normal, anomalous] > threshold
        for mask, label, color in [(~flagged, "passed", "tab:blue"), (flagged, "flagged", "tab:red")]:
            scatter.scatter(rows[mask, 0], rows[mask, 1], s=3, color=color, label=label, linewidths=0)
        scatter.scatter(rows[is_anomaly, 0], rows[is_anomaly, 1], s=14, facecolors="none", edgecolors="black",
                        linewidths=0.5, label="injected")
        scatter.set(title="test rows", xlabel="x0", ylabel="x1")
        scatter.legend(markerscale=2)
    return save(figure, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="moons", help=f"normal rows: a toy ({', '.join(TOYS)}) or a .csv/.npy file")
    parser.add_argument("--n", type=int, help="toy points (default 20,000); files: a random subset of n rows")
    parser.add_argument("--model", default="nsf", choices=sorted(m for m in flowforge.MODELS if not m.startswith("image")))
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--false-alarm-rate", type=float, default=0.01, help="share of normal rows the threshold flags")
    parser.add_argument("--anomalies", type=float, default=0.05, help="injected outliers, as a share of the test rows")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 1 is fastest for small models on a busy machine")
    parser.add_argument("--out", default="runs/anomaly_scoring")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = load_dataset(args.data, n=args.n, seed=args.seed)
    train, rest = split(x, 0.4, seed=args.seed)
    calibration, test = split(rest, 0.5, seed=args.seed + 1)
    anomalies = inject(train, max(1, round(args.anomalies * len(test))), np.random.default_rng(args.seed))

    flow = flowforge.build_model(args.model, features=x.shape[1], layers=args.layers, hidden=args.hidden)
    history = flowforge.fit(flow, train, steps=args.steps, batch_size=args.batch_size, lr=1e-3, seed=args.seed)
    scorers = {"flow": flow_scorer(flow), "gaussian": gaussian_scorer(train)}
    summary = {"data": args.data, "rows": {"train": len(train), "calibration": len(calibration), "test": len(test),
               "anomalies": len(anomalies)}, "steps_run": history.step[-1] + 1 if history.step else 0,
               "false_alarm_rate_target": args.false_alarm_rate}
    for name, score in scorers.items():
        threshold = float(np.quantile(score(calibration), 1 - args.false_alarm_rate))
        summary[name] = {"threshold": threshold, **detection(score(test), score(anomalies), threshold)}

    flow_scores = scorers["flow"]
    plot_scores(flow_scores(test), flow_scores(anomalies), summary["flow"]["threshold"], np.r_[test, anomalies],
                np.r_[np.zeros(len(test), bool), np.ones(len(anomalies), bool)], Path(args.out) / "scores.png")
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
