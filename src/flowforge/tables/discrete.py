"""An exact model of the categorical columns: autoregressive, one small network per column.

    log P(c_1, ..., c_K) = sum_k log softmax(b_k + net_k(onehot(c_1), ..., onehot(c_{k-1})))[c_k]

b_k are the log smoothed frequencies of column k ((count + 1/2) / (n + K_k/2)), and each net's
last layer starts at zero, so training starts from independent columns (the baseline's model)
and early stopping on held-out rows keeps it from doing worse.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn


def smoothed_log_frequencies(codes: np.ndarray, levels: int) -> Tensor:
    """log((count + 1/2) / (n + levels/2)) of each level: add-half (Jeffreys) smoothing."""
    counts = np.bincount(codes, minlength=levels).astype(float) + 0.5
    return torch.from_numpy(np.log(counts / counts.sum()))


def one_hot(codes: Tensor, sizes: list[int]) -> Tensor:
    """(n, K) codes -> (n, sum(sizes)) float one-hots, column after column."""
    if not sizes:
        return torch.zeros(len(codes), 0)
    return torch.cat([nn.functional.one_hot(codes[:, k], s).float() for k, s in enumerate(sizes)], dim=1)


class CategoricalAR(nn.Module):
    """P(c) over K categorical columns of `sizes` levels (see module docstring).

    Args:
        sizes: levels per column.
        priors: per column, (sizes[k],) log smoothed frequencies (the starting b_k).
        hidden: width of each column's one-hidden-layer network.
    """

    def __init__(self, sizes: list[int], priors: list[Tensor] | None = None, hidden: int = 64) -> None:
        super().__init__()
        self.sizes = list(sizes)
        priors = priors or [torch.zeros(s) for s in sizes]
        self.bias = nn.ParameterList([nn.Parameter(p.float().clone()) for p in priors])
        self.nets = nn.ModuleList([self._net(sum(sizes[:k]), s, hidden) for k, s in enumerate(sizes)])

    @staticmethod
    def _net(inputs: int, outputs: int, hidden: int) -> nn.Module:
        if inputs == 0:
            return nn.Identity()
        net = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))
        nn.init.zeros_(net[2].weight)
        nn.init.zeros_(net[2].bias)
        return net

    def _logits(self, k: int, previous: Tensor) -> Tensor:
        b = self.bias[k].expand(len(previous), -1)
        return b if k == 0 else b + self.nets[k](previous)

    def log_prob(self, codes: Tensor) -> Tensor:
        """(n, K) codes in [0, sizes[k]) -> (n,) log P, in nats."""
        hot = one_hot(codes, self.sizes)
        total, start = torch.zeros(len(codes)), 0
        for k, s in enumerate(self.sizes):
            logits = self._logits(k, hot[:, :start])
            total = total + logits.log_softmax(1).gather(1, codes[:, k : k + 1]).squeeze(1)
            start += s
        return total

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, K) codes, column by column."""
        codes = torch.zeros(n, len(self.sizes), dtype=torch.long)
        for k, s in enumerate(self.sizes):
            previous = one_hot(codes[:, :k], self.sizes[:k])
            codes[:, k] = torch.multinomial(self._logits(k, previous).softmax(1), 1, generator=generator).squeeze(1)
        return codes


def fit_categorical(
    model: CategoricalAR, train: Tensor, val: Tensor, steps: int, seed: int, batch_size: int = 512, patience: int = 20
) -> dict[str, float]:
    """Adam on the mean NLL, evaluated on `val` every 10 steps; keeps the best weights and stops
    after `patience` evaluations without improvement. Returns {val_nll, start_val_nll, best_step}."""
    if not model.sizes or len(train) == 0:
        return {"val_nll": 0.0, "start_val_nll": 0.0, "best_step": 0}
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)

    def val_nll() -> float:
        with torch.no_grad():
            return -float(model.log_prob(val).mean()) if len(val) else math.nan

    best, best_state, best_step, waited = val_nll(), copy.deepcopy(model.state_dict()), 0, 0
    start = best
    for step in range(1, steps + 1):
        index = torch.randint(len(train), (min(batch_size, len(train)),), generator=generator)
        loss = -model.log_prob(train[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            current = val_nll()
            if current < best - 1e-4:
                best, best_state, best_step, waited = current, copy.deepcopy(model.state_dict()), step, 0
            elif (waited := waited + 1) >= patience:
                break
    model.load_state_dict(best_state)
    return {"val_nll": best, "start_val_nll": start, "best_step": best_step}
