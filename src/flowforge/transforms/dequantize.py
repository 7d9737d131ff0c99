"""Pre-processing as model layers: Dequantize (uniform or variational) and Logit.

With Dequantize as a flow's first layer, `log_prob(x)` takes integer pixel levels and returns
a one-sample estimate of a lower bound on the discrete log-probability log P(x), so
bits/dim come out on the pixel scale and compare with published numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import FlowforgeError
from ..nn.convnet import ConvNet
from .base import Compose, Transform
from .image_coupling import MaskedAffineCoupling, checkerboard_mask

# noise lives in [MARGIN, 1 - MARGIN], so floor(z * levels) recovers x exactly in float32 even
# for 256 levels; the price is a bound looser by -log2(1 - 2 * MARGIN) ~ 0.0003 bits/dim
MARGIN = 1e-4


def check_pixels(x: Tensor, levels: int) -> None:
    """Raise FlowforgeError unless x holds whole numbers 0..levels-1."""
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > levels - 1 or not torch.equal(x, x.floor()):
        raise FlowforgeError(
            f"x: expected whole pixel levels 0..{levels - 1} (e.g. uint8 values for 256 levels), "
            f"got values in [{low:g}, {high:g}]{'' if torch.equal(x, x.floor()) else ' that are not whole numbers'}"
        )


def _events(x: Tensor) -> int:
    return x[0].numel()


class VariationalNoise(nn.Module):
    """q(u | x): dequantisation noise from a small conditional flow (Flow++).

        e ~ N(0, I),  y = g(e; x) (checkerboard couplings conditioned on x),
        u = m + (1 - 2m) * sigmoid(y),   log q(u | x) = log N(e) - log|det du/de|

    Args:
        shape: (C, H, W) of one image.
        levels: number of pixel levels (the conditioner sees x / (levels - 1)).
        hidden: channels of each coupling's ConvNet.
        steps: number of couplings, alternating checkerboard parity.

    Reference: Ho et al., Flow++, 2019, section 3.1 (arXiv:1902.00275).
    """

    def __init__(self, shape: tuple[int, int, int], levels: int, hidden: int = 32, steps: int = 4) -> None:
        super().__init__()
        c, h, w = shape
        self.levels, self.margin = levels, MARGIN
        self.flow = Compose(
            MaskedAffineCoupling(checkerboard_mask(h, w, even=i % 2 == 0), ConvNet(c, 2 * c, hidden, 1, context_features=c))
            for i in range(steps)
        )

    def _context(self, x: Tensor) -> Tensor:
        return x / (self.levels - 1) * 2 - 1

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Noise u ~ q(u | x) in (0, 1) and log q(u | x), shape (batch,)."""
        e = torch.randn_like(x)
        y, logabsdet = self.flow(e, self._context(x))
        u = self.margin + (1 - 2 * self.margin) * torch.sigmoid(y)
        log_normal = -0.5 * (e * e + math.log(2 * math.pi)).flatten(1).sum(1)
        log_sigmoid_grad = (F.logsigmoid(y) + F.logsigmoid(-y)).flatten(1).sum(1)
        return u, log_normal - logabsdet - log_sigmoid_grad - _events(x) * math.log(1 - 2 * self.margin)

    def log_prob(self, u: Tensor, x: Tensor) -> Tensor:
        """log q(u | x) of given noise, shape (batch,); u is clamped into q's support first."""
        eps = torch.finfo(u.dtype).eps  # keeps the logit finite; such extreme noise has q ~ 0 anyway
        r = ((u - self.margin) / (1 - 2 * self.margin)).clamp(eps, 1 - eps)
        y = torch.log(r) - torch.log1p(-r)
        e, logabsdet = self.flow.inverse(y, self._context(x))
        log_normal = -0.5 * (e * e + math.log(2 * math.pi)).flatten(1).sum(1)
        log_sigmoid_grad = (F.logsigmoid(y) + F.logsigmoid(-y)).flatten(1).sum(1)
        return log_normal + logabsdet - log_sigmoid_grad - _events(x) * math.log(1 - 2 * self.margin)


class Dequantize(Transform):
    """Integer pixels x in {0, ..., K-1} -> continuous z = (x + u) / K in (0, 1).

        u ~ U(m, 1 - m) (default) or u ~ q(u | x) (VariationalNoise);   m = margin
        log|det| reported = -D log K - log q(u | x)

    So a flow's log_prob(x) = log p(z) - D log K - log q(u | x), an unbiased one-sample
    estimate of a lower bound on log P(x) for the discrete x; its mean over data gives
    bits/dim on the pixel scale. Inverse: x = floor(K z), exact for any z in [0, 1); it
    reports D log K + log q(u | x) with u = K z - x, the negation of the forward's value.

    Inputs outside the support (negative, above K-1, or not whole numbers) raise a
    FlowforgeError naming the expected levels; they do not return -inf, since such data is
    almost always a scaling mistake (e.g. pixels divided by 255) rather than a query.

    Args:
        levels: K, the number of pixel levels (256 for 8-bit images, 17 for sklearn's digits).
        noise: a VariationalNoise, or None for uniform noise.
        margin: m for uniform noise; 0 makes the bound tight (a uniform model of 2-bit pixels
            then scores exactly 2 bits/dim), but z * K may then round onto the next level.

    Reference: Theis et al., A note on the evaluation of generative models, 2016 (arXiv:1511.01844).
    """

    # fresh noise on every call: a recomputed forward would not reproduce z (transforms/recompute.py)
    is_exactly_invertible = False

    def __init__(self, levels: int, noise: VariationalNoise | None = None, margin: float = MARGIN) -> None:
        super().__init__()
        if not isinstance(levels, int) or levels < 2:
            raise FlowforgeError(f"levels must be an integer >= 2, got {levels!r}")
        self.levels, self.noise, self.margin = levels, noise, margin

    def _uniform_log_q(self, x: Tensor) -> Tensor:
        return x.new_full((x.shape[0],), -_events(x) * math.log(1 - 2 * self.margin))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_pixels(x, self.levels)
        if self.noise is None:
            u, log_q = self.margin + (1 - 2 * self.margin) * torch.rand_like(x), self._uniform_log_q(x)
        else:
            u, log_q = self.noise.sample(x)
        return (x + u) / self.levels, -_events(x) * math.log(self.levels) - log_q

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.floor(z * self.levels).clamp(0, self.levels - 1)
        log_q = self._uniform_log_q(z) if self.noise is None else self.noise.log_prob(z * self.levels - x, x)
        return x, _events(z) * math.log(self.levels) + log_q


class Logit(Transform):
    """z = logit(a + (1 - 2a) x) for x in [0, 1]: maps the unit box onto the real line.

        log|det| = sum(log(1 - 2a) - log p - log(1 - p)),   p = a + (1 - 2a) x
        x = (sigmoid(z) - a) / (1 - 2a)

    a > 0 keeps the map finite at the edges 0 and 1 (Real NVP uses a = 0.05).

    Reference: Dinh et al., Density estimation using Real NVP, 2017, section 4.1.
    """

    # sigmoid(logit(p)) loses 1 - p near the edges for small alpha (relative error 3e-10 in
    # float64, 15% in float32, at 8-bit pixels with alpha 0): not recomputed (transforms/recompute.py)
    is_exactly_invertible = False

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise FlowforgeError(f"logit alpha must be in [0, 0.5), got {alpha!r}")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(p) - torch.log1p(-p)
        return z, (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        return x, (F.logsigmoid(z) + F.logsigmoid(-z) - math.log(1 - 2 * self.alpha)).flatten(1).sum(1)
