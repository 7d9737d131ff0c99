"""The transform contract: Transform, CouplingTransform, Compose, Inverse — nothing else."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .inplace import in_place_pass, run_in_place, runs_blocked


class Transform(nn.Module):
    """A bijection f from data x to latent z with a tractable log|det df/dx|.

        forward(x, context) -> (z, logabsdet)    data -> latent; used by log_prob
        inverse(z, context) -> (x, logabsdet)    latent -> data; used by sample

    logabsdet is (batch,) and belongs to the map applied: the two directions sum to zero.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class CouplingTransform(Transform):
    """A coupling: a conditioner reads the part of x that passes through unchanged, and its output
    theta sets an invertible map of the rest.

        theta = condition(x, context)      reads only the kept part (the same in x and z)
        forward:  couple(x, theta)         inverse:  couple(z, condition(z, context), inverse=True)

    Splitting the two lets memory="invertible" rebuild x and re-run the layer from one
    conditioner pass (recompute.py).
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.couple(x, self.condition(x, context))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.couple(z, self.condition(z, context), inverse=True)  # z's kept part is x's: the same theta

    def condition(self, x: Tensor, context: Tensor | None) -> object:
        raise NotImplementedError

    def couple(self, x: Tensor, theta: object, inverse: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Compose(Transform):
    """f = f_n o ... o f_1: runs layers in order, sums log-dets; inverts in reverse order.

    Without autograd, layers that can run in place do so on one copy of the input (inplace.py)."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]

    def __iter__(self):
        return iter(self.transforms)

    def runs_blocked(self, x: Tensor) -> bool:
        """A no-grad pass over x in which some layer runs its CPU kernel in blocks (inplace.py)."""
        return runs_blocked(self.transforms, x)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if in_place_pass(x):  # no autograd: one buffer, overwritten layer by layer (inplace.py)
            return run_in_place(self.transforms, x, context, inverse=False)
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, logabsdet = transform(x, context)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if in_place_pass(z):
            return run_in_place(reversed(self.transforms), z, context, inverse=True)
        total = z.new_zeros(z.shape[0])
        for transform in reversed(self.transforms):
            z, logabsdet = transform.inverse(z, context)
            total = total + logabsdet
        return z, total


class Inverse(Transform):
    """The inverse of a transform: swaps forward and inverse (e.g. IAF from MAF)."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.base_transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform(z, context)


def zero_logabsdet(x: Tensor) -> Tensor:
    """A (batch,) zero log-det in x's dtype and device (volume-preserving layers)."""
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)


def data_dependent_layers(module: nn.Module) -> tuple[nn.Module, ...]:
    """The layers in `module` set up from their first training batch (ActNorm: an
    `is_initialized` buffer). Found once and remembered (a copy's memo maps them to the copy's
    own layers)."""
    layers = module.__dict__.get("_setup_layers")
    if layers is None:
        layers = tuple(m for m in module.modules() if "is_initialized" in m._buffers)
        module.__dict__["_setup_layers"] = layers
    return layers


def sets_up_on_this_call(module: nn.Module) -> bool:
    """Whether a training-mode call of `module` sets up a data-dependent layer in it (ActNorm's
    first batch). Compiled code leaves that branch out, so such a call must run eagerly."""
    return module.training and any(not bool(layer.is_initialized) for layer in data_dependent_layers(module))
