"""The raw matrix-product floor of an R-NVP: the same matmuls with the same shapes, nothing else.

A coupling's conditioner is an MLP  d_A -> H -> H -> 2 d_B  (d_A = ceil(d/2), d_B = floor(d/2)).
The floor of a train step is, for each of the K couplings, the three forward `addmm`s and the
backward products: the weight gradients, and the input gradients (all but the first layer's
first product, whose input is the data). `log_prob` and `sample` run the forward products only.
No activations, no autograd, no flow logic: a flow's time divided by this is its overhead.
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor


def _weights(d: int, layers: int, hidden: int) -> list[list[tuple[Tensor, Tensor]]]:
    a, b = (d + 1) // 2, d // 2
    sizes = [a, hidden, hidden, 2 * b]
    return [[(torch.randn(o, i) / i**0.5, torch.zeros(o)) for i, o in itertools.pairwise(sizes)] for _ in range(layers)]


def forward_products(d: int, layers: int, hidden: int, batch: int):
    """A closure running the forward matmuls of `layers` conditioners on a batch (no grad)."""
    weights = _weights(d, layers, hidden)
    x = torch.randn(batch, (d + 1) // 2)

    def run() -> None:
        for mlp in weights:
            h = x
            for w, bias in mlp:
                h = torch.addmm(bias, h, w.t())

    return run


def train_products(d: int, layers: int, hidden: int, batch: int):
    """A closure running the forward and backward matmuls of a train step, by hand."""
    weights = _weights(d, layers, hidden)
    x = torch.randn(batch, (d + 1) // 2)

    def run() -> None:
        saved = []
        for mlp in weights:
            hs = [x]
            for w, bias in mlp:
                hs.append(torch.addmm(bias, hs[-1], w.t()))
            saved.append(hs)
        for k in reversed(range(layers)):
            hs, g = saved[k], torch.ones_like(saved[k][-1])
            for j in reversed(range(3)):
                w = weights[k][j][0]
                torch.mm(g.t(), hs[j])  # weight gradient
                if j > 0 or k > 0:
                    g = torch.mm(g, w)  # input gradient
    return run
