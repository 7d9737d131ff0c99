"""Model builders for the variational families: planar, radial and Sylvester flows. Each returns
a Flow whose sample and sample_and_log_prob work and whose log_prob and encode raise
FlowforgeError (the layers have no analytic inverse; transforms/planar.py)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import FlowforgeError, check_int
from ..transforms import Planar, Radial, Sylvester, Transform
from .builders import assemble
from .flow import Flow
from .registry import register


def _build(kind: str, layer: Callable[[int], Transform], features: int, layers: int, context_features: int, base: str,
           standardize: bool | str, memory: str) -> Flow:
    check_int("features", features, 1)
    check_int("layers", layers, 1)
    if context_features:
        raise FlowforgeError(f"{kind} flows here are unconditional (context_features=0); for an amortised posterior "
                             "use a conditional invertible model (maf, nsf, naf) with sample_and_log_prob")
    return assemble(features, [layer(features) for _ in range(layers)], base, standardize, context_features, memory)


@register("planar")
def PlanarFlow(
    features: int, layers: int = 16, hidden: Sequence[int] = (), *, context_features: int = 0, base: str = "standard",
    standardize: bool | str = False, memory: str = "standard",
) -> Flow:
    """`layers` planar layers (Planar), a variational family: sample_and_log_prob, no log_prob of
    data (no analytic inverse). `hidden` is unused (accepted so every model takes the CLI's options).

    Reference: Rezende & Mohamed, Variational Inference with Normalizing Flows, 2015 (arXiv:1505.05770).

    Example:
        >>> import flowforge
        >>> x, log_q = flowforge.PlanarFlow(2, layers=4).sample_and_log_prob(5)
        >>> x.shape, log_q.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """
    return _build("planar", Planar, features, layers, context_features, base, standardize, memory)


@register("radial")
def RadialFlow(
    features: int, layers: int = 16, hidden: Sequence[int] = (), *, context_features: int = 0, base: str = "standard",
    standardize: bool | str = False, memory: str = "standard",
) -> Flow:
    """`layers` radial layers (Radial), a variational family like PlanarFlow.

    Reference: Rezende & Mohamed, Variational Inference with Normalizing Flows, 2015 (arXiv:1505.05770).
    """
    return _build("radial", Radial, features, layers, context_features, base, standardize, memory)


@register("sylvester")
def SylvesterFlow(
    features: int, layers: int = 4, hidden: Sequence[int] = (), *, context_features: int = 0, base: str = "standard",
    standardize: bool | str = False, memory: str = "standard",
) -> Flow:
    """`layers` orthogonal Sylvester layers (Sylvester, Householder Q), a variational family like
    PlanarFlow; each layer is a rank-D update rather than planar's rank 1.

    Reference: van den Berg et al., Sylvester Normalizing Flows for Variational Inference, 2018 (arXiv:1803.05649).
    """
    return _build("sylvester", Sylvester, features, layers, context_features, base, standardize, memory)
