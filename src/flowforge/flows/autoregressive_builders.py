"""Model builders MAF, IAF and NSF (coupling or autoregressive). Each returns a Flow."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..errors import FlowforgeError
from ..transforms import Inverse, LULinear, Permutation, Reverse, Transform, half_mask
from ..transforms.autoregressive import MaskedAutoregressive
from ..transforms.coupling import Coupling
from ..transforms.maps import AffineMap, ElementwiseMap, SplineMap
from .builders import assemble, check_sizes, interleave, layer_mask, mlp_factory
from .flow import Flow
from .registry import register
from .torus import torus_flow

PERMUTES = ("reverse", "random", "lu")


def check_autoregressive(features: int, layers: int, hidden: Sequence[int], context_features: int, permute: str) -> None:
    """Named errors for an autoregressive builder's sizes and permute (also the zoo's, flows/neural_builders.py)."""
    if not isinstance(features, int) or isinstance(features, bool) or features < 1:
        raise FlowforgeError(f"features must be a positive integer, got {features!r}")
    check_sizes(max(features, 2), layers, hidden, context_features)  # one feature suits autoregressive layers
    if permute not in PERMUTES:
        raise FlowforgeError(f"unknown permute {permute!r}; choose from {', '.join(PERMUTES)}")


def _mixer(permute: str, features: int, seed: int) -> Transform:
    """What sits between layers so every feature gets conditioned on every other one."""
    if permute == "random":
        return Permutation(features, seed=seed)
    return LULinear(features, seed=seed) if permute == "lu" else Reverse()


def autoregressive_steps(
    features: int, layers: int, map_fn: ElementwiseMap, hidden: Sequence[int], context_features: int,
    activation: str, residual: bool, permute: str, seed: int, invert: bool = False,
) -> list[Transform]:
    def step(i: int) -> list[Transform]:
        layer = MaskedAutoregressive(features, map_fn, tuple(hidden), context_features, activation, residual)
        return [Inverse(layer) if invert else layer]

    return interleave(layers, step, lambda i: _mixer(permute, features, seed + i))


@register("maf")
def MAF(
    features: int,
    layers: int = 5,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    activation: str = "relu",
    residual: bool = False,
    bound: float = 3.0,
    permute: str = "reverse",
    base: str = "standard",
    standardize: bool | str = True,
    seed: int = 0,
    memory: str = "standard",
) -> Flow:
    """MAF: `layers` masked affine autoregressive layers, reversed (or permuted) between them.

    Density in one pass per layer, sampling in `features` passes per layer. `permute` is
    "reverse" (the paper), "random" or "lu" (a learnt LULinear); `bound` soft-clamps the
    log-scales; `base="conditional"` learns the base's mean and scale from the context.
    `memory="invertible"` (transforms/recompute.py) is accepted, but the masked layers keep their
    activations: rebuilding their input would take `features` passes each.

    Reference: Papamakarios et al., Masked Autoregressive Flow for Density Estimation, 2017
    (arXiv:1705.07057).

    Example:
        >>> import flowforge
        >>> flow = flowforge.MAF(3, layers=2, hidden=(16,))
        >>> flow.sample(4).shape
        torch.Size([4, 3])
    """
    check_autoregressive(features, layers, hidden, context_features, permute)
    steps = autoregressive_steps(features, layers, AffineMap(bound), hidden, context_features, activation, residual, permute, seed)
    return assemble(features, steps, base, standardize, context_features, memory)


@register("iaf")
def IAF(
    features: int,
    layers: int = 5,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    activation: str = "relu",
    residual: bool = False,
    bound: float = 3.0,
    permute: str = "reverse",
    base: str = "standard",
    standardize: bool | str = True,
    seed: int = 0,
    memory: str = "standard",
) -> Flow:
    """IAF: MAF's layers inverted, so sampling (and rsample) takes one pass, density `features` passes.

    The natural choice for a variational posterior (sample, then score those samples with
    `sample_and_log_prob` in the same single pass); slow to fit to data by maximum likelihood.
    `memory="invertible"` trains in memory constant in depth: each layer's input is rebuilt in
    one pass (MAF's direction), and only the layer being differentiated holds its `features` passes.

    Reference: Kingma et al., Improved Variational Inference with Inverse Autoregressive Flow,
    2016 (arXiv:1606.04934).
    """
    check_autoregressive(features, layers, hidden, context_features, permute)
    map_fn = AffineMap(bound)
    steps = autoregressive_steps(features, layers, map_fn, hidden, context_features, activation, residual, permute, seed, invert=True)
    return assemble(features, steps, base, standardize, context_features, memory)


@register("nsf")
def NSF(
    features: int,
    layers: int = 5,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    autoregressive: bool = False,
    bins: int = 8,
    bound: float = 4.0,
    activation: str = "relu",
    residual: bool = False,
    permute: str = "lu",
    base: str = "standard",
    standardize: bool | str = True,
    seed: int = 0,
    memory: str = "standard",
    circular: Sequence[int] = (),
) -> Flow:
    """Neural spline flow: rational-quadratic spline layers (`bins` bins on [-bound, bound],
    identity tails), as couplings (half/half split) or, with `autoregressive=True`, masked
    autoregressive layers; an LULinear (`permute="lu"`, the paper's choice) between layers.

    `bound` is 4 rather than the paper's 3: the layer next to the base sees z ~ N(0, I), and the
    0.3% of samples beyond +-3 would pass through the identity tails unshaped, inflating the
    spread of samples (by ~15% on a 1-D conditional test); beyond 4 lies only 0.006%. Inputs
    are standardised first (`standardize`). `residual` uses residual MADE blocks (autoregressive).
    `memory="invertible"` trains the coupling NSF in memory constant in depth (transforms/recompute.py);
    the autoregressive layers keep their activations, as in MAF.

    Reference: Durkan et al., Neural Spline Flows, 2019 (arXiv:1906.04032).

    Example:
        >>> import flowforge
        >>> flow = flowforge.NSF(2, layers=2, hidden=(16,), bins=4)
        >>> flow.log_prob(flow.sample(3)).shape
        torch.Size([3])
    """
    check_autoregressive(features, layers, hidden, context_features, permute)
    if circular:  # angle columns: circular splines, a torus base, no linear mixing (flows/torus.py)
        return torus_flow(features, circular, layers, hidden, context_features, autoregressive, bins, bound, activation,
                          residual, base, standardize)
    if not autoregressive and features < 2:
        raise FlowforgeError("a coupling NSF needs features >= 2; use autoregressive=True (nsf-ar) for one feature")
    map_fn = SplineMap(bins, bound)
    if autoregressive:
        steps = autoregressive_steps(features, layers, map_fn, hidden, context_features, activation, residual, permute, seed)
        return assemble(features, steps, base, standardize, context_features, memory)
    factory = mlp_factory(hidden, context_features, activation)
    def mask(i: int) -> Tensor:  # after a Reverse, the reversed complement (builders.layer_mask)
        return layer_mask(half_mask, features, i) if permute == "reverse" else half_mask(features)

    steps = interleave(layers, lambda i: [Coupling(mask(i), factory, map_fn)], lambda i: _mixer(permute, features, seed + i))
    return assemble(features, steps, base, standardize, context_features, memory)


@register("nsf-ar")
def NSF_AR(
    features: int,
    layers: int = 5,
    hidden: Sequence[int] = (256, 256),
    *,
    context_features: int = 0,
    bins: int = 8,
    bound: float = 4.0,
    activation: str = "relu",
    residual: bool = False,
    permute: str = "lu",
    base: str = "standard",
    standardize: bool | str = True,
    seed: int = 0,
    memory: str = "standard",
    circular: Sequence[int] = (),
) -> Flow:
    """Autoregressive neural spline flow: NSF(..., autoregressive=True)."""
    return NSF(
        features, layers, hidden, context_features=context_features, autoregressive=True, bins=bins, bound=bound,
        activation=activation, residual=residual, permute=permute, base=base, standardize=standardize, seed=seed,
        memory=memory, circular=circular,
    )

