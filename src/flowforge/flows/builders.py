"""Model builders for vectors: RealNVP, NICE, Glow. Each returns a Flow."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..distributions import ConditionalDiagNormal, DiagNormal, StandardNormal
from ..distributions.mixture import MixtureOfGaussians
from ..errors import FlowforgeError, check_int
from ..nn import MLP
from ..transforms import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNorm,
    Compose,
    DiagonalScale,
    LULinear,
    Reverse,
    Standardize,
    Transform,
    Whiten,
    alternating_mask,
    half_mask,
    reversed_complement,
)
from ..transforms.recompute import InvertibleCompose
from .flow import Flow
from .registry import MODELS, register

NORMS = {None: None, "none": None, "actnorm": ActNorm, "batchnorm": BatchNorm}
BASES = {"standard": StandardNormal, "diag": DiagNormal, "conditional": ConditionalDiagNormal}
MASKS = {"half": half_mask, "alternating": alternating_mask}
# "invertible": training memory constant in depth, each layer's input recomputed by its inverse
MEMORY = {"standard": Compose, "invertible": InvertibleCompose}
# the first layer, fitted by `fit` to the training data: per-column scaling, or that plus decorrelation
STANDARDIZE = {True: Standardize, False: None, "whiten": Whiten}


def check_sizes(features: int, layers: int, hidden: Sequence[int], context_features: int = 0, model: str = "") -> None:
    """Named errors for impossible sizes, before any torch call sees them."""
    if isinstance(features, int) and not isinstance(features, bool) and features == 1 and model:
        raise FlowforgeError(f"{model} needs features >= 2 (a coupling keeps some features and transforms the rest); "
                             "for one feature use maf or nsf-ar")
    check_int("features", features, 2)  # a coupling needs a part to keep and a part to transform
    check_int("layers", layers, 1)
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise FlowforgeError(f"hidden must be positive integers, got {list(hidden)!r}")
    check_int("context_features", context_features, 0)


def choose(table: dict, key: Any, what: str) -> Any:
    if key not in table:
        raise FlowforgeError(f"unknown {what} {key!r}; choose from {', '.join(str(k) for k in table if k)}")
    return table[key]


def mlp_factory(hidden: Sequence[int], context_features: int, activation: str):
    return lambda i, o: MLP(i, o, tuple(hidden), context_features, activation)


def mixture_base(base: str, features: int) -> MixtureOfGaussians:
    """base="mog:K": a trainable mixture of K diagonal Gaussians."""
    count = base.removeprefix("mog:")
    if not count.isdigit() or int(count) < 1:
        raise FlowforgeError(f"base {base!r}: write mog:K with K a whole number >= 1, e.g. 'mog:8'")
    return MixtureOfGaussians(features, int(count))


def interleave(layers: int, step: Callable[[int], list[Transform]], mixer: Callable[[int], Transform]) -> list[Transform]:
    """step(0), mixer(1), step(1), ..., step(layers - 1): each layer's transforms, a mixer between layers."""
    out: list[Transform] = []
    for i in range(layers):
        out += ([mixer(i)] if i > 0 else []) + step(i)
    return out


def layer_mask(make_mask: Callable[[int], Tensor], features: int, i: int) -> Tensor:
    """The mask of coupling i in a stack with a Reverse between layers: make_mask's on even
    layers, its reversed complement on odd ones, so every feature is transformed (with an odd
    number of features, the same mask each time would leave one feature or a half untouched)."""
    mask = make_mask(features)
    return mask if i % 2 == 0 else reversed_complement(mask)


def assemble(
    features: int, steps: list[Transform], base: str, standardize: bool | str, context_features: int, memory: str = "standard"
) -> Flow:
    if not isinstance(standardize, (bool, str)) or standardize not in STANDARDIZE:
        raise FlowforgeError(f"unknown standardize {standardize!r}; choose from True, False or 'whiten'")
    first = STANDARDIZE[standardize]
    layers: list[Transform] = [first(features)] if first is not None else []
    compose = choose(MEMORY, memory, "memory")
    if isinstance(base, str) and base.startswith("mog:"):
        base_distribution = mixture_base(base, features)
    else:
        make_base = choose(BASES, base, "base")
        # "conditional": mean and scale computed from the context
        base_distribution = make_base(features, context_features) if base == "conditional" else make_base(features)
    return Flow(compose(layers + steps), base_distribution, (features,), context_features, standardize_context=first is not None)


@register("realnvp")
def RealNVP(
    features: int,
    layers: int = 8,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    activation: str = "relu",
    mask: str = "half",
    norm: str | None = None,
    bound: float = 3.0,
    base: str = "standard",
    standardize: bool | str = True,
    memory: str = "standard",
) -> Flow:
    """Real NVP: `layers` affine couplings with a flip (Reverse) between them.

    Defaults are the original architecture: half/half split, MLP conditioners with ReLU,
    standard normal base. `norm="batchnorm"` or `"actnorm"` adds a normalisation layer after
    each coupling. `standardize` prepends a Standardize layer that `fit` sets from the
    training data (identity until then), so densities stay on the data's own scale;
    `standardize="whiten"` a Whiten layer, which also decorrelates the columns, so that training
    starts from the Gaussian fitted to the data (the CLI's choice for small tables).
    `memory="invertible"` trains in memory constant in depth (transforms/recompute.py).

    Reference: Dinh et al., Density estimation using Real NVP, 2017 (arXiv:1605.08803).

    Example:
        >>> import flowforge
        >>> flow = flowforge.RealNVP(2, layers=4, hidden=(64, 64))
        >>> flow.sample(3).shape
        torch.Size([3, 2])
    """
    check_sizes(features, layers, hidden, context_features, "realnvp")
    make_mask, norm_layer = choose(MASKS, mask, "mask"), choose(NORMS, norm, "norm")
    factory = mlp_factory(hidden, context_features, activation)

    def step(i: int) -> list[Transform]:
        coupling = AffineCoupling(layer_mask(make_mask, features, i), factory, bound=bound)
        return [coupling] if norm_layer is None else [coupling, norm_layer(features)]

    steps = interleave(layers, step, lambda i: Reverse())
    return assemble(features, steps, base, standardize, context_features, memory)


@register("nice")
def NICE(
    features: int,
    layers: int = 4,
    hidden: Sequence[int] = (256, 256, 256),
    *,
    context_features: int = 0,
    activation: str = "relu",
    mask: str = "alternating",
    base: str = "standard",
    standardize: bool | str = True,
    memory: str = "standard",
) -> Flow:
    """NICE: additive couplings with a flip between them, then a learnable diagonal scaling.

    Reference: Dinh et al., NICE: Non-linear Independent Components Estimation, 2015 (arXiv:1410.8516).
    """
    check_sizes(features, layers, hidden, context_features, "nice")
    make_mask = choose(MASKS, mask, "mask")
    factory = mlp_factory(hidden, context_features, activation)
    steps = interleave(layers, lambda i: [AdditiveCoupling(layer_mask(make_mask, features, i), factory)], lambda i: Reverse())
    steps.append(DiagonalScale(features))
    return assemble(features, steps, base, standardize, context_features, memory)


@register("glow")
def Glow(
    features: int,
    layers: int = 8,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    activation: str = "relu",
    bound: float = 3.0,
    base: str = "standard",
    standardize: bool | str = True,
    seed: int = 0,
    memory: str = "standard",
) -> Flow:
    """Glow for vectors: each step is ActNorm -> LULinear -> affine coupling.

    Reference: Kingma & Dhariwal, Glow: Generative Flow with Invertible 1x1 Convolutions, 2018.
    """
    check_sizes(features, layers, hidden, context_features, "glow")
    factory = mlp_factory(hidden, context_features, activation)
    steps: list[Transform] = []
    for i in range(layers):
        steps += [ActNorm(features), LULinear(features, seed=seed + i), AffineCoupling(half_mask(features), factory, bound=bound)]
    return assemble(features, steps, base, standardize, context_features, memory)


def _by_shape(vector_builder: Callable[..., Flow], image_model: str) -> Callable[..., Flow]:
    """One public name for vectors and images: a (C, H, W) first argument builds `image_model`."""

    @functools.wraps(vector_builder)
    def build(features: Any, *args: Any, **kwargs: Any) -> Flow:
        if isinstance(features, (tuple, list)):  # a list, too: kwargs come back from JSON that way
            return MODELS[image_model](features, *args, **kwargs)
        return vector_builder(features, *args, **kwargs)

    return build


# RealNVP((1, 8, 8), ...) and build_model("glow", features=[1, 8, 8], ...) build the image models
# of flows/image_builders.py, whose checkpoints then name "image-realnvp" / "image-glow"
RealNVP = MODELS["realnvp"] = _by_shape(RealNVP, "image-realnvp")
Glow = MODELS["glow"] = _by_shape(Glow, "image-glow")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
