"""Exactness of the foundation builders: round trip and log-density against autograd.

For RealNVP, NICE and Glow (8 layers of (256, 256), d=2), at a random initialisation (every
parameter moved off its identity init) and after 300 training steps on moons: the float32 max
|decode(encode(x)) - x| over 2,000 points, and the float64 max |log_prob - (base + log|det J|)|
with J the autograd Jacobian (torch.func), over 200 points. Prints a table.

    python benchmarks/exactness.py
"""
from __future__ import annotations

import torch
from torch.func import jacrev, vmap

import flowforge


def autograd_logabsdet(flow: flowforge.Flow, x: torch.Tensor) -> torch.Tensor:
    jacobians = vmap(jacrev(lambda v: flow.transform(v[None])[0][0]))(x)
    return torch.linalg.slogdet(jacobians).logabsdet


def main() -> None:
    x = torch.tensor(flowforge.data.make_toy("moons", 4000, 0))
    print(f"{'model':8} {'state':8} {'float32 round trip':>19} {'float64 vs autograd':>20}")
    for name in ("realnvp", "nice", "glow"):
        for state in ("init", "trained"):
            torch.manual_seed(0)
            flow = flowforge.build_model(name, features=2, layers=8, hidden=[256, 256])
            if state == "init":
                with torch.no_grad():
                    for p in flow.parameters():
                        p.add_(0.05 * torch.randn_like(p))
            else:
                flowforge.fit(flow, x, steps=300, batch_size=256, progress=False)
            flow.eval()
            with torch.no_grad():
                round_trip = (flow.decode(flow.encode(x[:2000])) - x[:2000]).abs().max().item()
            flow = flow.double()
            xd = x[:200].double()
            reference = flow.base.log_prob(flow.encode(xd)) + autograd_logabsdet(flow, xd)
            gap = (flow.log_prob(xd) - reference).abs().max().item()
            print(f"{name:8} {state:8} {round_trip:19.2e} {gap:20.2e}")


if __name__ == "__main__":
    main()
