"""Spline flows on rows that hold angles: the torus flow behind NSF(..., circular=[...])."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..distributions.circular import TorusBase
from ..errors import FlowforgeError
from ..transforms import Compose, Reverse, Transform, half_mask
from ..transforms.autoregressive import MaskedAutoregressive
from ..transforms.circular import AngleFeatures, CircularStandardize, MixedSplineMap, WrapAngles, circular_flags
from ..transforms.coupling import Coupling
from .builders import interleave, mlp_factory
from .flow import Flow


def _coupling_step(flags: tuple[bool, ...], bins: int, bound: float, factory: Callable, first: bool) -> Transform:
    """A spline coupling; the kept half read as (cos, sin) where it holds angles."""
    mask = half_mask(len(flags), first=first)
    kept = [f for f, m in zip(flags, mask.tolist()) if m]
    changed = tuple(f for f, m in zip(flags, mask.tolist()) if not m)
    return Coupling(mask, lambda i, o: AngleFeatures(kept, o, factory), MixedSplineMap(changed, bins, bound))


def torus_flow(
    features: int, circular: Sequence[int], layers: int, hidden: Sequence[int], context_features: int, autoregressive: bool,
    bins: int, bound: float, activation: str, residual: bool, base: str, standardize: bool | str,
) -> Flow:
    """NSF with angle columns: WrapAngles onto [-pi, pi), a Standardize of the real columns,
    then spline layers whose maps are circular on angles (MixedSplineMap), and a base uniform on
    the angles (TorusBase). No linear mixing between layers, which would not respect the circle:
    couplings alternate which half they keep; autoregressive layers reverse the order between them.
    """
    flags = circular_flags(features, circular)
    if base not in ("standard", "torus"):
        raise FlowforgeError(f"circular columns take the torus base (uniform on the angles); base {base!r} is not available with them")
    factory = mlp_factory(hidden, context_features, activation)
    if autoregressive:
        def step(i: int) -> list[Transform]:
            order = flags if i % 2 == 0 else flags[::-1]
            return [MaskedAutoregressive(features, MixedSplineMap(order, bins, bound), tuple(hidden), context_features, activation, residual)]

        steps = interleave(layers, step, lambda i: Reverse())
        if layers % 2 == 0:
            steps.append(Reverse())  # back to the data's column order, which the base's angle flags follow
    else:
        if features < 2:
            raise FlowforgeError("a coupling NSF needs features >= 2; use autoregressive=True (nsf-ar) for one feature")
        steps = [_coupling_step(flags, bins, bound, factory, first=i % 2 == 0) for i in range(layers)]
    # first a Standardize (fit looks for it there), of the real columns only: "whiten" would mix
    # angles with the other columns
    first: list[Transform] = [CircularStandardize(flags)] if standardize is not False else []
    first.append(WrapAngles(flags))
    return Flow(Compose(first + steps), TorusBase(flags), (features,), context_features, standardize_context=standardize is not False)
