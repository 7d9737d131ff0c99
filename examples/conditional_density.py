"""Conditional density estimation: learn p(x | theta) of a simulator, then sample it at two thetas.

The simulator draws a noisy ring whose radius is the parameter theta ~ U(0.5, 2):

    phi ~ U(0, 2 pi),   r ~ N(theta, 0.1^2),   x = r (cos phi, sin phi)

A conditional flow (NSF by default; any registered model works) is fitted to (x, theta) pairs
with `flowforge.fit(flow, x, context=theta)`, then sampled at theta = 0.75 and 1.75 with
`flow.sample(n, context=torch.tensor([theta]))`. Writes one plot per theta (simulator against
model) and summary.json (the mean sample radius per theta, and the test NLL).

    python examples/conditional_density.py                           # a minute or two on a laptop CPU
    python examples/conditional_density.py --steps 30 --out /tmp/x   # the CI smoke run
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import flowforge
from flowforge.viz import plot_samples


def simulate(theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One x (2,) per row of theta (N, 1): a point on a ring of radius ~ N(theta, 0.1^2)."""
    phi = 2 * math.pi * torch.rand(len(theta), generator=generator)
    r = theta[:, 0] + 0.1 * torch.randn(len(theta), generator=generator)
    return torch.stack([r * phi.cos(), r * phi.sin()], dim=1)


def prior(n: int, generator: torch.Generator) -> torch.Tensor:
    """theta ~ U(0.5, 2), shape (n, 1)."""
    return 0.5 + 1.5 * torch.rand(n, 1, generator=generator)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nsf", choices=sorted(flowforge.MODELS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--thetas", type=float, nargs=2, default=[0.75, 1.75])
    parser.add_argument("--out", default="runs/conditional_density")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 1 is fastest for small models on a busy machine")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    theta = prior(20_000, generator)
    x = simulate(theta, generator)
    flow = flowforge.build_model(args.model, features=2, layers=4, hidden=[64, 64], context_features=1)
    flowforge.fit(flow, x, context=theta, steps=args.steps, batch_size=args.batch_size, lr=3e-3, seed=args.seed)

    test_theta = prior(5_000, generator)
    summary = {"model": args.model, "steps": args.steps,
               "test_nll": flowforge.mean_nll(flow, simulate(test_theta, generator), test_theta), "thetas": {}}
    out = Path(args.out)
    for value in args.thetas:
        condition = torch.tensor([value])
        samples = flow.sample(2000, context=condition)
        truth = simulate(condition.expand(2000, 1), generator)
        plot_samples(truth.numpy(), samples.numpy(), out / f"samples_theta_{value:g}.png")
        summary["thetas"][f"{value:g}"] = {"mean_radius": samples.norm(dim=1).mean().item()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
