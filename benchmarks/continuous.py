"""Continuous flows at equal wall-clock budgets: flowforge's CNF (flow matching and maximum
likelihood) against zuko's CNF (maximum likelihood, FFJORD) and torchcfm (flow matching), with
flowforge's NSF beside them, on checkerboard, 8gaussians and 2spirals.

Each method trains on the same 16,000 training points (20,000 drawn, seed 0, 20% held out) for the
same `--budget` seconds of CPU time on one thread (Adam, constant lr, batch 512, no validation),
the clock paused while the curve's test NLL is measured at 1/4, 1/2 and all of the budget. The
clock is CPU time, not wall time, because the machine these numbers come from is shared: wall
time there measures the other jobs. Every CNF's
network is the same size: 3 hidden layers of 256. Test NLL (nats) is exact everywhere:
flowforge's and torchcfm's by flowforge's ODETransform (dopri5, atol = rtol = 1e-5, the exact
divergence), zuko's by its own exact-trace solver (atol 1e-6, rtol 1e-5). torchcfm's field runs
from noise (t = 0) to data (t = 1): it is evaluated as w(s, x) = -v(1 - s, x), the same ODE
read the other way. zuko and torchcfm train on standardised data (flowforge's models standardise
inside), and their NLL is moved back to the data's scale by the log-Jacobian of the scaling.
Methods run one after another per data set, once. flowforge's flow matching adds two options of
its `fit` at the same lr and batch (FM_OPTIONS): times t = u^2 and a moving average of the weights,
which its curve measures (fit stops at each point, leaving the average in the flow, and resumes).

    PYTHONPATH=src /work/venv-peers/bin/python benchmarks/continuous.py [--budget 60] [--data checkerboard,8gaussians,2spirals]

`--long-steps N` adds a run by steps, not by budget, "flowforge cnf flow-matching (long)", for
checkerboard's target (test NLL <= 3.52 nats, entropy 3.466): flow matching for N steps of batch
LONG_BATCH, lr LONG_LR with cosine decay, times t = u^2, a field with Fourier features of x
(`space_frequencies=4`), then `--long-finetune M` steps of maximum likelihood (batch
FINETUNE_BATCH, lr FINETUNE_LR, solves at FINETUNE_TOL), which sharpens the edges; its CPU seconds
are reported beside the test NLL after each phase. `--methods ""` runs it alone:

    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/continuous.py --data checkerboard --methods "" --long-steps 20000 --long-finetune 150
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import flowforge
from flowforge.data import load_dataset, split
from flowforge.distributions import StandardNormal
from flowforge.flows.continuous import ContinuousFlow
from flowforge.transforms import Compose, ODETransform

HIDDEN = (256, 256, 256)
BATCH, LR = 512, 1e-3
CURVE = (0.25, 0.5, 1.0)
LONG_BATCH, LONG_LR, LONG_SPACE_FREQUENCIES, LONG_TIME_POWER = 2048, 3e-3, 4, 2.0
FINETUNE_BATCH, FINETUNE_LR, FINETUNE_TOL = 512, 5e-4, 1e-4
# flowforge's flow matching at the shared lr and batch: times t = u^2, a moving average of the weights
FM_OPTIONS = {"time_power": 2.0, "ema": 0.99}


class Budget:
    """Training time spent, from the end of the first step (set-up excluded), the clock paused
    while the curve is measured. The clock is this process's CPU time (one thread): on a machine
    other jobs keep busy, wall time measures the load more than the method.

    `pause_at_points`: tick() returns True at each point of the curve instead of measuring there;
    the caller measures with `record()` and resumes training (flowforge's runs: `fit` stops and
    leaves its moving average of the weights in the flow, then resumes from the live ones)."""

    def __init__(self, seconds: float, measure: Callable[[], float], pause_at_points: bool = False) -> None:
        self.seconds, self.measure, self.pause_at_points = seconds, measure, pause_at_points
        self.spent, self.curve, self.started, self.next = 0.0, [], None, 0

    def tick(self) -> bool:
        """Call after each step; True when the budget (or, pausing at points, the next point) is spent."""
        if self.started is not None:
            self.spent += time.process_time() - self.started
        self.started = time.process_time()
        if self.pause_at_points:
            return self.spent >= CURVE[self.next] * self.seconds
        while self.next < len(CURVE) and self.spent >= CURVE[self.next] * self.seconds:
            self.record()
        return self.spent >= self.seconds

    def record(self) -> None:
        """Measure the next point of the curve; the clock restarts after it (the resumed run's
        set-up counts as training time)."""
        self.curve.append((round(self.spent, 2), self.measure()))
        self.next += 1
        self.started = time.process_time()

    @property
    def is_done(self) -> bool:
        return self.next >= len(CURVE)


def _nfe_hook(module: nn.Module) -> list[int]:
    """Count calls of `module` (a field's first layer: one per field evaluation)."""
    count = [0]
    module.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def run_flowforge(train: Tensor, test: Tensor, budget: float, objective: str, model: str = "cnf", **fit_options: Any) -> dict:
    """flowforge's `model` trained by `objective` for `budget` CPU seconds; `fit_options` (e.g.
    FM_OPTIONS) replace the shared settings (batch BATCH, constant lr LR)."""
    torch.manual_seed(0)
    if model == "cnf":
        # ML trains at a looser tolerance (fewer steps per solve); every test NLL is at 1e-5
        flow = flowforge.CNF(2, hidden=HIDDEN, atol=1e-4 if objective == "likelihood" else 1e-5,
                             rtol=1e-4 if objective == "likelihood" else 1e-5,
                             space_frequencies=fit_options.pop("space_frequencies", 0))
    else:
        flow = flowforge.NSF(2)

    def measure() -> float:
        odes = flow.odes() if isinstance(flow, ContinuousFlow) else []
        saved = [(o.atol, o.rtol) for o in odes]
        for o in odes:
            o.atol = o.rtol = 1e-5
        nll = flowforge.mean_nll(flow, test)
        for o, (a, r) in zip(odes, saved, strict=True):
            o.atol, o.rtol = a, r
        flow.train()
        return nll

    clock, state = Budget(budget, measure, pause_at_points=True), {}
    options = {"batch_size": BATCH, "lr": LR, **fit_options}
    while not clock.is_done:
        flowforge.fit(flow, train, steps=10**7, schedule="constant", warmup=0, val_fraction=0, objective=objective,
                      progress=False, should_stop=clock.tick, on_checkpoint=lambda saved: (state.clear(), state.update(saved)),
                      resume=dict(state) or None,
                      **options)
        clock.record()
    flow.eval()
    return _finish(clock, lambda n: flow.sample(n), lambda: flow.nfe if isinstance(flow, ContinuousFlow) else 1)


def run_long(train: Tensor, test: Tensor, steps: int, finetune: int = 0) -> dict:
    """Flow matching for `steps` steps at the long settings (module docstring), then `finetune`
    steps of maximum likelihood (solves at FINETUNE_TOL); exact test NLL after each."""
    torch.manual_seed(0)
    flow = flowforge.CNF(2, hidden=HIDDEN, space_frequencies=LONG_SPACE_FREQUENCIES)
    start = time.process_time()
    flowforge.fit(flow, train, steps=steps, batch_size=LONG_BATCH, lr=LONG_LR, schedule="cosine", val_fraction=0,
                  objective="flow-matching", time_power=LONG_TIME_POWER, progress=False)
    spent = time.process_time() - start
    curve = [(round(spent, 1), flowforge.mean_nll(flow, test))]
    row = {"flow_matching_test_nll": curve[0][1], "log_prob_nfe": flow.nfe, "steps": steps, "finetune_steps": finetune}
    print(f"  flow matching, {steps} steps: test NLL {curve[0][1]:.3f} after {spent:.0f} CPU s", flush=True)
    if finetune:
        ode = flow.odes()[0]
        ode.atol = ode.rtol = FINETUNE_TOL
        start = time.process_time()
        flowforge.fit(flow, train, steps=finetune, batch_size=FINETUNE_BATCH, lr=FINETUNE_LR, schedule="cosine",
                      val_fraction=0, objective="likelihood", progress=False)
        spent += time.process_time() - start
        ode.atol = ode.rtol = 1e-5
        curve.append((round(spent, 1), flowforge.mean_nll(flow, test)))
        row["log_prob_nfe"] = flow.nfe
    start = time.process_time()
    with torch.no_grad():
        flow.sample(2000)
    return {**row, "test_nll": curve[-1][1], "curve": curve, "train_seconds": round(spent, 1),
            "sample_cpu_seconds_2000": round(time.process_time() - start, 3), "sample_nfe": flow.nfe}


def run_zuko(train: Tensor, test: Tensor, budget: float) -> dict:
    import zuko

    torch.manual_seed(0)
    mean, std = train.mean(0), train.std(0)
    flow = zuko.flows.CNF(2, hidden_features=HIDDEN)
    nfe = _nfe_hook(flow.transform.ode)
    optimizer = torch.optim.Adam(flow.parameters(), lr=LR)
    log_scale = float(std.log().sum())

    def measure() -> float:
        with torch.no_grad():
            return float(-flow().log_prob((test - mean) / std).mean()) + log_scale

    clock, generator = Budget(budget, measure), torch.Generator().manual_seed(0)
    while True:
        x = (train[torch.randint(len(train), (BATCH,), generator=generator)] - mean) / std
        loss = -flow().log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if clock.tick():
            break
    return _finish(clock, lambda n: flow().sample((n,)) * std + mean, lambda: nfe[0], reset=nfe)


class _Reversed(nn.Module):
    """torchcfm's field v(t, x) (noise at t = 0) read from data to noise: w(s, x) = -v(1 - s, x)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, s: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        t = (1 - s).to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        return -self.net(torch.cat([x, t], 1))


def run_torchcfm(train: Tensor, test: Tensor, budget: float, ot: bool = False) -> dict:
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher
    from torchcfm.models import MLP

    torch.manual_seed(0)
    mean, std = train.mean(0), train.std(0)
    net = MLP(2, w=HIDDEN[0], time_varying=True)
    matcher = ExactOptimalTransportConditionalFlowMatcher(0.0) if ot else ConditionalFlowMatcher(0.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    ode = ODETransform(_Reversed(net), atol=1e-5, rtol=1e-5)
    flow = ContinuousFlow(Compose([ode]), StandardNormal(2), (2,))
    log_scale = float(std.log().sum())

    def measure() -> float:
        return flowforge.mean_nll(flow, (test - mean) / std) + log_scale

    clock, generator = Budget(budget, measure), torch.Generator().manual_seed(0)
    while True:
        x1 = (train[torch.randint(len(train), (BATCH,), generator=generator)] - mean) / std
        t, xt, ut = matcher.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        loss = (net(torch.cat([xt, t[:, None]], 1)) - ut).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if clock.tick():
            break
    flow.eval()
    return _finish(clock, lambda n: flow.sample(n) * std + mean, lambda: ode.nfe)


def _finish(clock: Budget, sample: Callable[[int], Tensor], nfe: Callable[[], int], reset: list[int] | None = None) -> dict:
    if reset is not None:
        reset[0] = 0
    start = time.process_time()
    with torch.no_grad():
        sample(2000)
    seconds = time.process_time() - start
    return {"test_nll": clock.curve[-1][1], "curve": clock.curve, "train_seconds": round(clock.spent, 1),
            "sample_cpu_seconds_2000": round(seconds, 3), "sample_nfe": nfe()}


METHODS = {
    "flowforge cnf flow-matching": lambda tr, te, b: run_flowforge(tr, te, b, "flow-matching", **FM_OPTIONS),
    "flowforge cnf likelihood": lambda tr, te, b: run_flowforge(tr, te, b, "likelihood"),
    "zuko CNF (likelihood)": run_zuko,
    "torchcfm (flow matching)": run_torchcfm,
    "flowforge nsf": lambda tr, te, b: run_flowforge(tr, te, b, "likelihood", model="nsf"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per method and data set")
    parser.add_argument("--data", default="checkerboard,8gaussians,2spirals")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--test-rows", type=int, default=2000, help="held-out rows the test NLL is measured on")
    parser.add_argument("--long-steps", type=int, default=0, help="also the long flow-matching run, this many steps (0: none)")
    parser.add_argument("--long-finetune", type=int, default=0, help="maximum-likelihood steps after the long run's flow matching")
    parser.add_argument("--out", default="bench-results/continuous.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"budget_seconds": args.budget, "threads": args.threads, "rows": {}}
    for name in args.data.split(","):
        train, test = (torch.from_numpy(a) for a in split(load_dataset(name, n=20000, seed=0)))
        test = test[: args.test_rows]
        methods = [m for m in args.methods.split(",") if m] + (["flowforge cnf flow-matching (long)"] if args.long_steps else [])
        for method in methods:
            row = (run_long(train, test, args.long_steps, args.long_finetune) if method.endswith("(long)")
                   else METHODS[method](train, test, args.budget))
            results["rows"].setdefault(name, {})[method] = row
            print(f"{name:13s} {method:30s} test NLL {row['test_nll']:.3f}  curve "
                  + " ".join(f"{s:.0f}s:{v:.3f}" for s, v in row["curve"])
                  + f"  sample NFE {row['sample_nfe']}  sample 2000: {row['sample_cpu_seconds_2000']:.2f}s", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
