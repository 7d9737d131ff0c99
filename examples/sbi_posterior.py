"""Neural posterior estimation with sbi, a flowforge flow as the density estimator.

The task is the linear Gaussian of the sbi benchmark (sbibm's gaussian_linear): theta ~ N(0, 0.1 I)
in `--dim` dimensions, x ~ N(theta, 0.1 I), so the true posterior is Gaussian and known. sbi's NPE
trains, at the same simulation budget and with the same training loop, its default estimator
(a MAF) and flowforge's MAF and NSF of the same size (5 layers of 50 hidden units), passed through
sbi's custom-estimator interface; each posterior
is compared with the true one at `--observations` observations by the classifier two-sample test
(C2ST: 0.5 means the classifier cannot tell the samples apart, 1.0 means it always can).

    pip install 'flowforge[sbi]'
    python examples/sbi_posterior.py --simulations 2000 --out runs/sbi_posterior

Prints a JSON summary and writes it, with a plot of both posteriors, to OUT/summary.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch


def task(dim: int) -> dict[str, Any]:
    """Prior, simulator and true posterior of the linear Gaussian task."""
    from sbi.simulators.linear_gaussian import linear_gaussian, true_posterior_linear_gaussian_mvn_prior
    from torch.distributions import MultivariateNormal

    mean, cov, shift, noise = torch.zeros(dim), 0.1 * torch.eye(dim), torch.zeros(dim), 0.1 * torch.eye(dim)
    return {"prior": MultivariateNormal(mean, cov), "simulate": lambda theta: linear_gaussian(theta, shift, noise),
            "posterior": lambda x_o: true_posterior_linear_gaussian_mvn_prior(x_o, shift, noise, mean, cov)}


def estimator(name: str, layers: int, hidden: int) -> Any:
    """sbi's own estimator by name ("maf", "nsf"), or a flowforge model ("flowforge-nsf", "flowforge-maf")."""
    if not name.startswith("flowforge-"):
        return name
    from flowforge.sbi import build_estimator

    return build_estimator(name.removeprefix("flowforge-"), layers=layers, hidden=(hidden, hidden))


def posterior_c2st(name: str, simulations: int, seed: int, dim: int = 10, observations: int = 3, samples: int = 1000,
                   max_epochs: int = 500, layers: int = 5, hidden: int = 50, log_dir: str | Path = "runs/sbi-logs") -> dict[str, Any]:
    """Train NPE with estimator `name` on `simulations` draws; its C2ST against the true posterior at each observation.
    sbi's training curves go to TensorBoard files under `log_dir` (sbi's default is ./sbi-logs)."""
    from sbi.inference import NPE
    from sbi.utils.metrics import c2st
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard import SummaryWriter

    problem = task(dim)
    generator = torch.Generator().manual_seed(1000 + seed)
    torch.manual_seed(seed)
    theta = problem["prior"].sample((simulations,))
    x = problem["simulate"](theta)
    start = time.perf_counter()
    tracker = TensorBoardTracker(SummaryWriter(str(Path(log_dir) / f"{name}-{simulations}-seed{seed}")))
    inference = NPE(problem["prior"], density_estimator=estimator(name, layers, hidden), show_progress_bars=False, tracker=tracker)
    inference.append_simulations(theta, x).train(max_num_epochs=max_epochs)
    posterior = inference.build_posterior()
    seconds = time.perf_counter() - start
    scores, drawn = [], {}
    for i in range(observations):
        torch.manual_seed(10_000 * seed + i)
        x_o = problem["simulate"](problem["prior"].sample((1,)))
        reference = problem["posterior"](x_o[0]).sample((samples,))
        estimate = posterior.sample((samples,), x=x_o, show_progress_bars=False)
        scores.append(float(c2st(estimate, reference, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))))
        drawn = {"estimate": estimate, "reference": reference}
    return {"estimator": name, "simulations": simulations, "seed": seed, "c2st": scores, "c2st_mean": sum(scores) / len(scores),
            "epochs": len(inference.summary["training_loss"]), "train_seconds": seconds, "last_samples": drawn}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results):
        reference, estimate = (result["last_samples"][k][:, :2].numpy() for k in ("reference", "estimate"))
        ax.scatter(*reference.T, s=2, alpha=0.4, label="true posterior")
        ax.scatter(*estimate.T, s=2, alpha=0.4, label=result["estimator"])
        ax.set(title=f"{result['estimator']}: C2ST {result['c2st'][-1]:.3f}", xlabel="theta 1", ylabel="theta 2")
        ax.legend(markerscale=5)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=2000, help="simulation budget, the same for each estimator")
    parser.add_argument("--estimators", default="maf,flowforge-maf,flowforge-nsf", help="comma-separated: sbi's names, or flowforge-<model>")
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--observations", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=500, help="sbi's training stops earlier on its validation loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/sbi_posterior")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    results = [posterior_c2st(name, args.simulations, args.seed, args.dim, args.observations, max_epochs=args.max_epochs,
                              log_dir=out / "sbi-logs") for name in args.estimators.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "posteriors.png")
    summary = {"task": f"gaussian_linear, {args.dim} dimensions", "simulations": args.simulations, "seed": args.seed,
               "results": [{k: v for k, v in r.items() if k != "last_samples"} for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
