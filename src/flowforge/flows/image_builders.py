"""Model builders for images (B, C, H, W): ImageGlow and ImageRealNVP (multi-scale). Each returns a Flow.

Both put the pre-processing inside the model (Dequantize, then optionally Logit), so
`log_prob` takes integer pixel levels and bits/dim are on the pixel scale.
`flowforge.Glow` and `flowforge.RealNVP` dispatch here when given a (C, H, W) shape.
`memory="invertible"` builds every level of the multi-scale body as an InvertibleCompose
(transforms/recompute.py); the pre-processing in front of it runs under ordinary autograd.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from ..distributions import StandardNormal
from ..errors import FlowforgeError
from ..nn.convnet import ConvNet
from ..transforms import Compose, Inverse, Transform
from ..transforms.conv import ActNorm2d, Conv1x1
from ..transforms.dequantize import Dequantize, Logit, VariationalNoise
from ..transforms.image_coupling import MaskedAffineCoupling, channel_mask, checkerboard_mask
from ..transforms.reshape import Split, Squeeze
from .builders import MEMORY, choose
from .flow import Flow
from .multiscale import Shape, multi_scale
from .registry import register

DEQUANTIZERS = ("uniform", "variational", None)


def check_image_shape(image_shape: Sequence[int], levels: int, squeezes: int, min_pixels: int) -> Shape:
    """(C, H, W) as a tuple, with named errors for shapes the architecture cannot take."""
    if not (isinstance(image_shape, Sequence) and len(image_shape) == 3 and all(isinstance(s, int) and s > 0 for s in image_shape)):
        raise FlowforgeError(f"image_shape must be three positive integers (C, H, W), got {image_shape!r}")
    if not isinstance(levels, int) or levels < 1:
        raise FlowforgeError(f"levels must be a positive integer, got {levels!r}")
    c, h, w = image_shape
    if not _fits(h, w, squeezes, min_pixels):
        fewer = "use fewer levels or " if levels > 1 else ""
        raise FlowforgeError(
            f"{levels} level{'s' if levels > 1 else ''} need{'s' if levels == 1 else ''} height and width divisible by "
            f"{2**squeezes}{f' (and a last level of at least {min_pixels} pixels)' if min_pixels > 1 else ''}; "
            f"got {h}x{w}: {fewer}resize the images"
        )
    return (c, h, w)


def _fits(h: int, w: int, squeezes: int, min_pixels: int) -> bool:
    return not (h % 2**squeezes or w % 2**squeezes or (h >> squeezes) * (w >> squeezes) < min_pixels)


def most_levels(model: str, image_shape: Sequence[int], at_most: int) -> int:
    """The most levels, up to `at_most`, that Glow ("image-glow": a squeeze per level) or RealNVP
    ("image-realnvp": one fewer) can take for (C, H, W); 1 when none fits (its error names why)."""
    squeezes, min_pixels = (0, 1) if model == "image-glow" else (-1, 2)
    _, h, w = image_shape
    return next((n for n in range(at_most, 0, -1) if _fits(h, w, n + squeezes, min_pixels)), 1)


def _check_sizes(steps_per_level: int, hidden_channels: int, pixel_levels: int, dequantize: str | None) -> None:
    for name, value in {"steps_per_level": steps_per_level, "hidden_channels": hidden_channels}.items():
        if not isinstance(value, int) or value < 1:
            raise FlowforgeError(f"{name} must be a positive integer, got {value!r}")
    if dequantize not in DEQUANTIZERS:
        raise FlowforgeError(f"unknown dequantize {dequantize!r}; choose from 'uniform', 'variational' or None")
    if dequantize is not None and (not isinstance(pixel_levels, int) or pixel_levels < 2):
        raise FlowforgeError(f"pixel_levels must be an integer >= 2, got {pixel_levels!r}")


def _compose_levels(transform: Transform, compose: type[Compose]) -> Transform:
    """`transform` with every Compose, the coarser levels inside each Split included, built as `compose`."""
    if isinstance(transform, Split):
        transform.inner = _compose_levels(transform.inner, compose)
        return transform
    if isinstance(transform, Compose):
        return compose(_compose_levels(t, compose) for t in transform)
    return transform


def assemble(shape: Shape, body: Transform, pixel_levels: int, dequantize: str | None, logit: float | None,
              context_features: int, compose: type[Compose]) -> Flow:
    # Dequantize draws fresh noise on every call and Logit's sigmoid round trip is inexact near
    # the edges (both flagged), so only the body is recomputed; their activations are depth-free
    body = _compose_levels(body, compose)
    layers: list[Transform] = []
    if dequantize is not None:
        noise = VariationalNoise(shape, pixel_levels) if dequantize == "variational" else None
        layers.append(Dequantize(pixel_levels, noise))
    if logit is not None:
        layers.append(Logit(logit))
    return Flow(Compose([*layers, body]), StandardNormal(shape), shape, context_features, standardize_context=True)


@register("image-glow")
def ImageGlow(
    image_shape: Sequence[int],
    levels: int = 3,
    steps_per_level: int = 8,
    hidden_channels: int = 64,
    *,
    pixel_levels: int = 256,
    dequantize: str | None = "uniform",
    logit: float | None = 0.05,
    blocks: int = 1,
    lu: bool = True,
    bound: float = 3.0,
    context_features: int = 0,
    activation: str = "relu",
    seed: int = 0,
    memory: str = "standard",
) -> Flow:
    """Glow for images: `levels` scales of Squeeze, then `steps_per_level` steps of
    ActNorm2d -> Conv1x1 -> channel-wise affine coupling, then Split (half the channels out).

    Args:
        image_shape: (C, H, W); H and W divisible by 2**levels.
        hidden_channels, blocks: width and residual blocks of each coupling's ConvNet.
        pixel_levels: K, the number of integer pixel levels of the data (256: 8 bits).
        dequantize: "uniform", "variational" (a learned noise flow), or None for data
            already continuous in [0, 1].
        logit: alpha of a Logit layer after dequantisation (Real NVP's pre-processing, ~0.07
            bits/dim better on the digits), or None for Glow's own: the dequantised x / K only.
        lu: LU-decomposed 1x1 convolutions (else plain).
        context_features: size of a conditioning vector, broadcast over the pixels.
        memory: "invertible" trains in memory constant in steps_per_level, each layer's input
            recomputed by its inverse (transforms/recompute.py); "standard" keeps activations.

    Reference: Kingma & Dhariwal, Glow: Generative Flow with Invertible 1x1 Convolutions, 2018.

    Example:
        >>> import flowforge
        >>> flow = flowforge.Glow((1, 8, 8), levels=2, steps_per_level=2, hidden_channels=8, pixel_levels=17)
        >>> flow.sample(3).shape
        torch.Size([3, 1, 8, 8])
    """
    shape = check_image_shape(image_shape, levels, levels, 1)  # see most_levels
    _check_sizes(steps_per_level, hidden_channels, pixel_levels, dequantize)
    compose = choose(MEMORY, memory, "memory")

    def steps(shape: Shape, level: int) -> list[Transform]:
        c = shape[0] * 4  # Glow's steps act on the squeezed image
        out: list[Transform] = []
        for i in range(steps_per_level):
            net = ConvNet(c, 2 * c, hidden_channels, blocks, context_features, activation)
            out += [ActNorm2d(c), Conv1x1(c, lu=lu, seed=seed + 1000 * level + i), MaskedAffineCoupling(channel_mask(c), net, bound=bound)]
        return out

    def last(shape: Shape, level: int) -> list[Transform]:
        return [Squeeze(), *steps(shape, level), Inverse(Squeeze())]

    body = multi_scale(shape, levels, lambda s, level: ([], steps(s, level)), last)
    return assemble(shape, body, pixel_levels, dequantize, logit, context_features, compose)


@register("image-realnvp")
def ImageRealNVP(
    image_shape: Sequence[int],
    levels: int = 3,
    steps_per_level: int = 3,
    hidden_channels: int = 64,
    *,
    pixel_levels: int = 256,
    dequantize: str | None = "uniform",
    logit: float | None = 0.05,
    blocks: int = 2,
    norm: str | None = "actnorm",
    bound: float = 3.0,
    context_features: int = 0,
    activation: str = "relu",
    memory: str = "standard",
) -> Flow:
    """Real NVP's multi-scale architecture: each level is `steps_per_level` checkerboard
    couplings, Squeeze, `steps_per_level` channel-wise couplings, then Split (half the
    channels out); the last level is `steps_per_level + 1` checkerboard couplings. Masks
    alternate between couplings; `norm="actnorm"` follows each coupling with an ActNorm2d
    (the paper uses batch norm), None leaves it out.

    Args: as ImageGlow; H and W divisible by 2**(levels - 1) with at least 2 pixels left.
    Defaults are the paper's (3 + 3 couplings a level, logit with alpha 0.05), narrower.

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 3.6 (arXiv:1605.08803).

    Example:
        >>> import flowforge
        >>> flow = flowforge.RealNVP((1, 8, 8), levels=2, steps_per_level=1, hidden_channels=8, pixel_levels=17)
        >>> flow.sample(3).shape
        torch.Size([3, 1, 8, 8])
    """
    shape = check_image_shape(image_shape, levels, levels - 1, 2)
    _check_sizes(steps_per_level, hidden_channels, pixel_levels, dequantize)
    compose = choose(MEMORY, memory, "memory")
    if norm not in ("actnorm", None):
        raise FlowforgeError(f"unknown norm {norm!r}; choose from 'actnorm' or None")

    def couplings(channels: int, count: int, mask: Callable[[int], Tensor]) -> list[Transform]:
        out: list[Transform] = []
        for i in range(count):
            net = ConvNet(channels, 2 * channels, hidden_channels, blocks, context_features, activation)
            out.append(MaskedAffineCoupling(mask(i), net, bound=bound))
            out += [ActNorm2d(channels)] if norm else []
        return out

    def middle(shape: Shape, level: int) -> tuple[list[Transform], list[Transform]]:
        c, h, w = shape
        return (couplings(c, steps_per_level, lambda i: checkerboard_mask(h, w, even=i % 2 == 0)),
                couplings(4 * c, steps_per_level, lambda i: channel_mask(4 * c, first=i % 2 == 0)))

    def last(shape: Shape, level: int) -> list[Transform]:
        c, h, w = shape
        return couplings(c, steps_per_level + 1, lambda i: checkerboard_mask(h, w, even=i % 2 == 0))

    body = multi_scale(shape, levels, middle, last)
    return assemble(shape, body, pixel_levels, dequantize, logit, context_features, compose)
