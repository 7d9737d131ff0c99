"""Every transform, registered once; tests/transforms/test_contract.py runs the contract on each.

A case is a zero-argument function returning `Case(transform, x, context)`: a ready-to-use
transform, a batch of data for it (any event shape) and, for conditional transforms, a matching
context (None otherwise). Plain 2- or 3-tuples are accepted too. The transform may sit at its
identity init: the tests call `randomized` themselves. Put anything `randomized` cannot reach
(buffers such as running statistics, data-dependent initialisation) in the case itself.

To add a transform, add one line (or a small function) to CASES.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from flowforge.nn import MLP
from flowforge.transforms import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNorm,
    Compose,
    DiagonalScale,
    Inverse,
    LULinear,
    Permutation,
    Reverse,
    Standardize,
    Transform,
    Whiten,
    alternating_mask,
    half_mask,
)


class Case(NamedTuple):
    transform: Transform
    x: Tensor
    context: Tensor | None = None


def mlp(hidden: tuple[int, ...] = (16, 16), context_features: int = 0) -> Callable[[int, int], MLP]:
    """A small conditioner factory for couplings."""
    return lambda i, o: MLP(i, o, hidden, context_features)


def random_mask(features: int, seed: int) -> Tensor:
    """A fixed random 0/1 mask with both kinds (seed 0, 6 features: 1,0,0,1,1,0)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randperm(features, generator=generator) < features // 2).float()


def data(batch: int, features: int) -> Tensor:
    """Off-centre, unequally scaled rows, so a mean or scale bug cannot hide at 0 / 1."""
    return torch.randn(batch, features) * torch.linspace(0.5, 2.0, features) + 0.7


def actnorm() -> Case:
    layer = ActNorm(4)
    layer.initialize(data(64, 4) * 3 - 1)
    return Case(layer, data(7, 4))


def batchnorm() -> Case:
    layer = BatchNorm(4)
    layer.running_mean.copy_(torch.randn(4))
    layer.running_var.copy_(torch.rand(4) * 2 + 0.3)
    return Case(layer.eval(), data(7, 4))


def standardize() -> Case:
    layer = Standardize(3)
    layer.fit_(data(200, 3) * torch.tensor([3.0, 0.2, 1.0]) + torch.tensor([5.0, -1.0, 0.0]))
    return Case(layer, data(7, 3))


def whiten() -> Case:
    layer = Whiten(4)
    mixed = data(200, 4) @ torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.5, 0.3, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).T
    layer.fit_(mixed + torch.tensor([5.0, -1.0, 0.0, 2.0]))  # correlated columns and a constant one
    return Case(layer, data(7, 4))


def compose() -> Case:
    first = ActNorm(5)
    first.initialize(data(32, 5))
    layers = [first, AffineCoupling(half_mask(5), mlp()), Reverse(), LULinear(5, seed=1),
              AffineCoupling(alternating_mask(5), mlp()), Permutation(5, seed=2), DiagonalScale(5)]
    return Case(Compose(layers), data(6, 5))


def affine_coupling_context() -> Case:
    layer = AffineCoupling(alternating_mask(4), mlp(context_features=3))
    return Case(layer, data(6, 4), torch.randn(6, 3))


CASES: dict[str, Callable[[], Case | tuple]] = {
    "affine_coupling_half": lambda: Case(AffineCoupling(half_mask(5), mlp()), data(7, 5)),
    "affine_coupling_half_last": lambda: Case(AffineCoupling(half_mask(5, first=False), mlp()), data(7, 5)),
    "affine_coupling_alternating": lambda: Case(AffineCoupling(alternating_mask(6), mlp()), data(7, 6)),
    "affine_coupling_random_mask": lambda: Case(AffineCoupling(random_mask(6, seed=0), mlp(), bound=2.0), data(7, 6)),
    "affine_coupling_context": affine_coupling_context,
    "affine_coupling_half_context": lambda: Case(AffineCoupling(half_mask(4), mlp(context_features=3)), data(6, 4), torch.randn(6, 3)),
    "additive_coupling": lambda: Case(AdditiveCoupling(alternating_mask(5), mlp()), data(7, 5)),
    "diagonal_scale": lambda: Case(DiagonalScale(4), data(7, 4)),
    "reverse": lambda: Case(Reverse(), data(7, 4)),
    "permutation": lambda: Case(Permutation(5, seed=0), data(7, 5)),
    "actnorm": actnorm,
    "batchnorm": batchnorm,
    "lu_linear": lambda: Case(LULinear(4, seed=0), data(7, 4)),
    "standardize": standardize,
    "whiten": whiten,
    "compose": compose,
    "inverse": lambda: Case(Inverse(AffineCoupling(alternating_mask(4), mlp())), data(7, 4)),
}


def make(name: str) -> Case:
    """Build the case `name` (accepts cases written as plain tuples)."""
    return Case(*CASES[name]())


def conditional_cases() -> list[str]:
    return [name for name in CASES if make(name).context is not None]


def randomized(t: Transform, scale: float = 0.3) -> Transform:
    """Move parameters off their init: at an identity init every log-det check passes.

    A module that stores its parameters divided by a `parameter_rate` (BNAF's) gets the move
    divided by it too, so every layer moves by `scale` in the units it computes with."""
    with torch.no_grad():
        for module in t.modules():
            rate = getattr(module, "parameter_rate", 1.0)
            for p in module.parameters(recurse=False):
                p.add_(scale / rate * torch.randn_like(p))
    return t


def autograd_logabsdet(f: Callable[..., Tensor], x: Tensor, context: Tensor | None = None) -> Tensor:
    """Per-sample log|det df/dx| from the dense autograd Jacobian (tests only).

    f maps a batch to a batch of the same shape: f(x), or f(x, context) when a context is given
    (each sample then gets its own row of the context).
    """

    def one(i: int) -> Tensor:
        if context is None:
            g = lambda v: f(v[None])[0]
        else:
            g = lambda v: f(v[None], context[i : i + 1])[0]
        J = torch.autograd.functional.jacobian(g, x[i])
        return torch.linalg.slogdet(J.reshape(x[i].numel(), x[i].numel())).logabsdet

    return torch.stack([one(i) for i in range(x.shape[0])])


# -- autoregressive and spline layers: one map per family, shared by Coupling and MaskedAutoregressive
from flowforge.transforms import AffineMap, Coupling, MaskedAutoregressive, SplineMap

SPLINE = SplineMap(bins=4, bound=2.0)  # data() reaches past +-2, so the identity tails are exercised too


def made(map_fn, features: int = 5, context_features: int = 0, residual: bool = False) -> MaskedAutoregressive:
    return MaskedAutoregressive(features, map_fn, (16, 16), context_features, residual=residual)


CASES.update({
    "maf_layer": lambda: Case(made(AffineMap()), data(7, 5)),
    "maf_layer_residual": lambda: Case(made(AffineMap(), residual=True), data(7, 5)),
    "maf_layer_context": lambda: Case(made(AffineMap(), 4, 3), data(6, 4), torch.randn(6, 3)),
    "maf_layer_one_feature_context": lambda: Case(made(AffineMap(), 1, 2), data(6, 1), torch.randn(6, 2)),
    "iaf_layer": lambda: Case(Inverse(made(AffineMap(bound=2.0))), data(7, 5)),
    "iaf_layer_context": lambda: Case(Inverse(made(AffineMap(), 4, 3)), data(6, 4), torch.randn(6, 3)),
    "spline_autoregressive": lambda: Case(made(SPLINE), data(7, 5)),
    "spline_autoregressive_residual_context": lambda: Case(made(SPLINE, 4, 3, residual=True), data(6, 4), torch.randn(6, 3)),
    "spline_coupling": lambda: Case(Coupling(half_mask(5), mlp(), SPLINE), data(7, 5)),
    "spline_coupling_context": lambda: Case(Coupling(alternating_mask(4), mlp(context_features=3), SPLINE), data(6, 4), torch.randn(6, 3)),
})


# -- image layers on (B, C, H, W); Squeeze changes the shape, so it enters wrapped in its inverse
from flowforge.flows import ImageGlow, ImageRealNVP
from flowforge.nn import ConvNet
from flowforge.transforms import ActNorm2d, Conv1x1, Logit, MaskedAffineCoupling, Split, Squeeze, channel_mask, checkerboard_mask


def images(batch: int, channels: int, size: int = 4) -> Tensor:
    return data(batch, channels * size * size).reshape(batch, channels, size, size)


def conv_coupling(mask: Tensor, channels: int, context_features: int = 0) -> MaskedAffineCoupling:
    return MaskedAffineCoupling(mask, ConvNet(channels, 2 * channels, hidden=8, blocks=1, context_features=context_features))


def actnorm2d() -> Case:
    layer = ActNorm2d(3)
    layer.initialize(images(16, 3) * 3 - 1)
    return Case(layer, images(5, 3))


def squeezed(*layers: Transform) -> Compose:
    return Compose([Squeeze(), *layers, Inverse(Squeeze())])


CASES.update({
    "actnorm2d": actnorm2d,
    "conv1x1_lu": lambda: Case(Conv1x1(3, lu=True, seed=0), images(5, 3)),
    "conv1x1_plain": lambda: Case(Conv1x1(3, lu=False, seed=0), images(5, 3)),
    "checkerboard_coupling": lambda: Case(conv_coupling(checkerboard_mask(4, 4), 1), images(5, 1)),
    "channel_coupling": lambda: Case(conv_coupling(channel_mask(3), 3), images(5, 3)),
    "checkerboard_coupling_context": lambda: Case(conv_coupling(checkerboard_mask(4, 4, even=False), 2, 3), images(5, 2), torch.randn(5, 3)),
    "squeeze": lambda: Case(squeezed(Conv1x1(4, seed=1)), images(5, 1)),
    "split": lambda: Case(squeezed(Conv1x1(4, seed=1), Split(conv_coupling(channel_mask(2), 2), 2)), images(5, 1)),
    "logit": lambda: Case(Logit(0.05), torch.rand(5, 1, 4, 4)),
    "image_glow_body": lambda: Case(ImageGlow((1, 4, 4), 2, 1, 8, dequantize=None, logit=None).transform, images(4, 1)),
    "image_realnvp_body_context": lambda: Case(
        ImageRealNVP((2, 4, 4), 2, 1, 4, dequantize=None, logit=None, blocks=1, context_features=3).transform, images(4, 2), torch.randn(4, 3)),
})


# -- the one Coupling class with each map and structure: what the thin constructors above do not build
from flowforge.transforms import AdditiveMap

CASES.update({
    "affine_map_coupling_fused": lambda: Case(Coupling(half_mask(5), mlp(), AffineMap(bound=2.0)), data(7, 5)),
    "additive_coupling_half_fused": lambda: Case(AdditiveCoupling(half_mask(5), mlp()), data(7, 5)),
    "additive_coupling_image": lambda: Case(Coupling(channel_mask(2), ConvNet(2, 2, hidden=8), AdditiveMap()), images(5, 2)),
})


# -- the zoo: neural autoregressive (NAF, UNAF, BNAF) and residual layers, with iterative inverses
from flowforge.transforms import BlockNeuralAutoregressive, DeepSigmoidMap, ResidualBlock, UnconstrainedMonotoneMap

CASES.update({
    "naf_layer": lambda: Case(made(DeepSigmoidMap(units=4), 3), data(6, 3)),
    "naf_layer_context": lambda: Case(made(DeepSigmoidMap(units=3), 3, 2), data(6, 3), torch.randn(6, 2)),
    "unaf_layer": lambda: Case(made(UnconstrainedMonotoneMap(units=4, nodes=64), 3), data(6, 3) * 0.5),
    "unaf_layer_context": lambda: Case(made(UnconstrainedMonotoneMap(units=3, nodes=64), 3, 2), data(6, 3) * 0.5, torch.randn(6, 2)),
    "bnaf": lambda: Case(BlockNeuralAutoregressive(3, (6, 6)), data(6, 3)),
    "bnaf_context": lambda: Case(BlockNeuralAutoregressive(3, (6,), context_features=2), data(6, 3), torch.randn(6, 2)),
    "residual_block": lambda: Case(ResidualBlock(3, (8, 8), logdet="exact"), data(6, 3)),
    "residual_block_context": lambda: Case(ResidualBlock(3, (8,), context_features=2, logdet="exact"), data(6, 3), torch.randn(6, 2)),
})


# -- angles: circular splines (on the lift to R, so every contract test applies), alone and mixed with real columns
from flowforge.transforms import AngleFeatures, MixedSplineMap


def angle_coupling(flags: tuple[bool, ...], context_features: int = 0) -> Coupling:
    mask = half_mask(len(flags))
    kept = [f for f, m in zip(flags, mask.tolist()) if m]
    changed = tuple(f for f, m in zip(flags, mask.tolist()) if not m)
    return Coupling(mask, lambda i, o: AngleFeatures(kept, o, mlp(context_features=context_features)), MixedSplineMap(changed, 4, 2.0))


CASES.update({
    "circular_spline_coupling": lambda: Case(angle_coupling((True, True, True, True)), data(7, 4)),
    "mixed_spline_coupling": lambda: Case(angle_coupling((True, False, False, True)), data(7, 4)),
    "mixed_spline_coupling_context": lambda: Case(angle_coupling((False, True, True, False), 3), data(6, 4), torch.randn(6, 3)),
    "circular_spline_autoregressive_context": lambda: Case(made(MixedSplineMap((True, False, True), 4, 2.0), 3, 2), data(6, 3), torch.randn(6, 2)),
})


# -- one-way layers (latent -> data only, no analytic inverse): tests/transforms/test_zoo.py runs the
# checks that apply to them on their `inverse`
from flowforge.transforms import Planar, Radial, Sylvester

ONE_WAY: dict[str, Callable[[], Case]] = {
    "planar": lambda: Case(Planar(3), data(6, 3)),
    "radial": lambda: Case(Radial(3), data(6, 3)),
    "sylvester": lambda: Case(Sylvester(3), data(6, 3)),
    "sylvester_two_reflections": lambda: Case(Sylvester(4, reflections=2), data(6, 4)),
}
