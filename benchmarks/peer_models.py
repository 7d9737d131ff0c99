"""The same Real NVP in each library: K affine couplings, MLP conditioners (two hidden layers of
width H, ReLU), a flip between couplings, a standard normal base, float32.

Each builder takes (features, layers, hidden) and returns a `Model`: the module holding the
parameters, `log_prob(x) -> (B,)` and `sample(n) -> (n, D)`. Where a library has no flip, the
nearest fixed reordering is used (normflows: swap the halves; zuko: alternate which half is
transformed, which needs no reordering op at all). Scale maps follow each library's own affine
coupling (flowforge: tanh soft clamp; nflows: sigmoid; normflows: exp; zuko: its monotonic
affine; FrEIA: atan soft clamp; torchflows: its default affine).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Model:
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]


def _mlp(i: int, o: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, o))


def _normal_log_prob(z: Tensor) -> Tensor:
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def flowforge_model(d: int, k: int, h: int, memory: str = "standard") -> Model:
    import flowforge

    flow = flowforge.RealNVP(d, k, (h, h), memory=memory) if memory != "standard" else flowforge.RealNVP(d, k, (h, h))
    return Model(flow, flow.log_prob, flow.sample)


def flowforge_invertible_model(d: int, k: int, h: int) -> Model:
    return flowforge_model(d, k, h, memory="invertible")


def flowforge_compiled_model(d: int, k: int, h: int) -> Model:
    """flowforge.compile (inductor); static shapes; the first calls pay the compile time."""
    import flowforge

    flow = flowforge.compile(flowforge.RealNVP(d, k, (h, h)), dynamic=False)
    return Model(flow, flow.log_prob, torch.compile(flow.sample, dynamic=False))


class _NoContext(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def nflows_model(d: int, k: int, h: int) -> Model:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import AffineCouplingTransform, CompositeTransform, ReversePermutation

    mask = torch.ones(d)
    mask[: (d + 1) // 2] = 0  # nflows transforms the features where mask > 0
    layers = []
    for i in range(k):
        if i > 0:
            layers.append(ReversePermutation(d))
        layers.append(AffineCouplingTransform(mask, lambda a, b: _NoContext(_mlp(a, b, h))))
    flow = Flow(CompositeTransform(layers), StandardNormal([d]))
    return Model(flow, flow.log_prob, flow.sample)


def normflows_model(d: int, k: int, h: int) -> Model:
    import normflows as nf

    layers = []
    for i in range(k):
        if i > 0:
            layers.append(nf.flows.Permute(d, mode="swap"))
        layers.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([(d + 1) // 2, h, h, 2 * (d // 2)], init_zeros=True)))
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(d, trainable=False), layers)
    return Model(flow, flow.log_prob, lambda n: flow.sample(n)[0])


def zuko_model(d: int, k: int, h: int) -> Model:
    import zuko

    first = torch.arange(d) < (d + 1) // 2
    layers = [
        zuko.flows.GeneralCouplingTransform(d, mask=first if i % 2 == 0 else ~first, hidden_features=(h, h), activation=nn.ReLU)
        for i in range(k)
    ]
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(d), torch.ones(d), buffer=True
    )
    flow = zuko.flows.Flow(layers, base)
    return Model(flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)))


def freia_model(d: int, k: int, h: int) -> Model:
    import FrEIA.framework as ff
    import FrEIA.modules as fm

    inn = ff.SequenceINN(d)
    flip = torch.arange(d - 1, -1, -1)
    for i in range(k):
        if i > 0:
            inn.append(fm.PermuteRandom, seed=i)
            permute = inn.module_list[-1]
            permute.perm.data.copy_(flip)
            permute.perm_inv.data.copy_(flip)
        inn.append(fm.AffineCouplingOneSided, subnet_constructor=lambda a, b: _mlp(a, b, h))

    def log_prob(x: Tensor) -> Tensor:
        z, logabsdet = inn(x)
        return _normal_log_prob(z) + logabsdet

    return Model(inn, log_prob, lambda n: inn(torch.randn(n, d), rev=True)[0])


def torchflows_model(d: int, k: int, h: int) -> Model:
    from torchflows.bijections.base import BijectiveComposition
    from torchflows.bijections.finite.autoregressive.layers import AffineCoupling
    from torchflows.bijections.finite.matrix.permutation import ReversePermutationMatrix
    from torchflows.flows import Flow

    layers = []
    for i in range(k):
        if i > 0:
            layers.append(ReversePermutationMatrix(event_shape=(d,)))
        layers.append(AffineCoupling(event_shape=(d,), conditioner_kwargs={"n_hidden": h, "n_layers": 3, "nonlinearity": nn.ReLU}))
    flow = Flow(BijectiveComposition(layers))
    return Model(flow, flow.log_prob, lambda n: flow.sample((n,)))


LIBRARIES: dict[str, Callable[[int, int, int], Model]] = {
    "flowforge": flowforge_model,
    "flowforge-compiled": flowforge_compiled_model,
    "flowforge-invertible": flowforge_invertible_model,
    "nflows": nflows_model,
    "normflows": normflows_model,
    "zuko": zuko_model,
    "FrEIA": freia_model,
    "torchflows": torchflows_model,
}
