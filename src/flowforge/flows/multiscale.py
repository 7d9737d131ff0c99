"""The multi-scale architecture of Real NVP and Glow, as one transform from image to latent image.

    level(C, H, W) = [before] -> Squeeze -> [after] -> Split(level(2C, H/2, W/2), keep 2C) -> Unsqueeze
    last level     = [last]

Each level factors out half of its squeezed channels; the Unsqueeze puts every level's latents
back at their pixels, so the whole map is (B, C, H, W) -> (B, C, H, W) and a standard normal
over that shape is the prior of every level. `Flow` needs nothing more: sampling inverts the
levels innermost (coarsest) first, and a temperature scales all latents.
"""
from __future__ import annotations

from collections.abc import Callable

from ..transforms import Compose, Inverse, Transform
from ..transforms.reshape import Split, Squeeze

Shape = tuple[int, int, int]


def multi_scale(
    shape: Shape,
    levels: int,
    middle: Callable[[Shape, int], tuple[list[Transform], list[Transform]]],
    last: Callable[[Shape, int], list[Transform]],
    level: int = 0,
) -> Transform:
    """Build `levels` scales for images of `shape` (C, H, W).

    Args:
        middle: (shape, level) -> (layers before the squeeze on `shape`, layers after it on
            (4C, H/2, W/2)) for every level but the last.
        last: (shape, level) -> the layers of the last level.
    """
    if levels == 1:
        return Compose(last(shape, level))
    c, h, w = shape
    before, after = middle(shape, level)
    inner = multi_scale((2 * c, h // 2, w // 2), levels - 1, middle, last, level + 1)
    return Compose([*before, Squeeze(), *after, Split(inner, 2 * c), Inverse(Squeeze())])
