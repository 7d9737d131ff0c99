"""The raw matrix-product floor of an R-NVP: the same matmuls with the same shapes, nothing else.

A coupling's conditioner is an MLP  d_A -> H -> H -> 2 d_B  (d_A = ceil(d/2), d_B = floor(d/2)).
The floor of a train step is, for each of the K couplings, the three forward `addmm`s and the
backward products: the weight gradients, and the input gradients (all but the first layer's
first product, whose input is the data). `log_prob` and `sample` run the forward products only.
No activations, no autograd, no flow logic: a flow's time divided by this is its overhead.

Every product writes into an output allocated once, when the closure is made. With fresh
outputs each call the floor measured what the C allocator did with them: glibc hands large
freed blocks back to the OS or keeps them depending on the heap's history, and re-touched pages
fault, so the same floor took 44 or 90 ms (d=2, batch 10,000) in two processes.
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
    outs = [torch.empty(batch, w.shape[0]) for w, _ in weights[0]]  # one per layer, reused by each conditioner

    def run() -> None:
        for mlp in weights:
            h = x
            for (w, bias), out in zip(mlp, outs):
                h = torch.addmm(bias, h, w.t(), out=out)

    return run


def train_products(d: int, layers: int, hidden: int, batch: int):
    """A closure running the forward and backward matmuls of a train step, by hand."""
    weights = _weights(d, layers, hidden)
    x = torch.randn(batch, (d + 1) // 2)
    acts = [[x] + [torch.empty(batch, w.shape[0]) for w, _ in mlp] for mlp in weights]  # kept for backward
    grads_w = [[torch.empty_like(w) for w, _ in mlp] for mlp in weights]
    grads_in = [torch.empty(batch, w.shape[1]) for w, _ in weights[0]]
    seed = torch.ones(batch, weights[0][-1][0].shape[0])

    def run() -> None:
        for mlp, hs in zip(weights, acts):
            for j, (w, bias) in enumerate(mlp):
                torch.addmm(bias, hs[j], w.t(), out=hs[j + 1])
        for k in reversed(range(layers)):
            hs, g = acts[k], seed
            for j in reversed(range(3)):
                w = weights[k][j][0]
                torch.mm(g.t(), hs[j], out=grads_w[k][j])  # weight gradient
                if j > 0 or k > 0:
                    g = torch.mm(g, w, out=grads_in[j])  # input gradient
    return run


def _fresh_forward_products(d: int, layers: int, hidden: int, batch: int):
    """The forward floor as it was before: every product allocates its output."""
    weights = _weights(d, layers, hidden)
    x = torch.randn(batch, (d + 1) // 2)

    def run() -> None:
        for mlp in weights:
            h = x
            for w, bias in mlp:
                h = torch.addmm(bias, h, w.t())

    return run


def main() -> None:
    """Time the forward floor with outputs allocated once and with fresh outputs, interleaved.
    Run it as is and with MALLOC_MMAP_THRESHOLD_=131072 (glibc returns every freed block)."""
    import argparse
    import sys
    from pathlib import Path

    argparse.ArgumentParser(description=main.__doc__.splitlines()[0]).parse_args()  # --help, and no stray arguments
    sys.path.insert(0, str(Path(__file__).parent))
    from measure import interleaved

    torch.set_num_threads(2)
    for d, hidden in ((2, 256), (64, 512)):
        fns = {"allocated once": forward_products(d, 8, hidden, 10_000), "fresh outputs": _fresh_forward_products(d, 8, hidden, 10_000)}
        times = interleaved(fns, rounds=7, reps=2)
        print(f"forward floor d={d},K=8,H={hidden},batch=10000: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()))


if __name__ == "__main__":
    main()
