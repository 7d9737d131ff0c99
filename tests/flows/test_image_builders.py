"""Image Glow and multi-scale Real NVP: exact bijections, level-by-level sampling, dispatch, checkpoints."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.testing import assert_close

import flowforge
from flowforge import Flow, FlowforgeError
from flowforge.transforms import Compose, Split

from ..transforms.cases import autograd_logabsdet, randomized

BUILDERS: dict[str, Callable[[tuple[int, int, int]], Flow]] = {
    "glow": lambda s: flowforge.Glow(s, levels=2, steps_per_level=2, hidden_channels=8, pixel_levels=4),
    "glow_plain_conv1x1": lambda s: flowforge.Glow(s, levels=2, steps_per_level=1, hidden_channels=8, pixel_levels=4, lu=False),
    "glow_variational": lambda s: flowforge.Glow(s, levels=1, steps_per_level=1, hidden_channels=8, pixel_levels=4,
                                                 dequantize="variational", logit=None),
    "realnvp": lambda s: flowforge.RealNVP(s, levels=2, steps_per_level=1, hidden_channels=8, pixel_levels=4, blocks=1),
}
SHAPES = [(1, 4, 4), (3, 4, 4)]


def pixels(n: int, shape: tuple[int, ...], levels: int = 4) -> torch.Tensor:
    return torch.randint(0, levels, (n, *shape)).float()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", BUILDERS)
def test_continuous_part_is_exact_against_autograd(name: str, shape: tuple[int, int, int]) -> None:
    flow = randomized(BUILDERS[name](shape), 0.1).double().eval()
    body = Compose(list(flow.transform)[1:])  # all but Dequantize, which is not a bijection
    x = torch.rand(2, *shape, dtype=torch.float64) * 0.9 + 0.05
    z, logabsdet = body(x)
    assert z.shape == x.shape
    assert_close(logabsdet, autograd_logabsdet(lambda v: body(v)[0], x))
    x_back, inverse_logabsdet = body.inverse(z)
    assert_close(x_back, x)
    assert_close(inverse_logabsdet, -logabsdet)


@pytest.mark.parametrize("name", BUILDERS)
def test_pixels_survive_encode_decode_and_samples_are_pixels(name: str) -> None:
    flow = randomized(BUILDERS[name]((3, 4, 4)), 0.1).eval()
    x = pixels(5, (3, 4, 4))
    assert torch.equal(flow.decode(flow.encode(x)), x)
    lp = flow.log_prob(x)
    assert lp.shape == (5,) and torch.isfinite(lp).all()
    samples = flow.sample(6, temperature=0.7)
    assert samples.shape == (6, 3, 4, 4)
    assert torch.equal(samples, samples.floor()) and samples.min() >= 0 and samples.max() <= 3


@pytest.mark.parametrize(("shape", "levels"), [((1, 8, 8), 3), ((3, 8, 4), 2), ((2, 16, 16), 4)])
def test_sampling_runs_level_by_level_on_the_factored_shapes(shape: tuple[int, int, int], levels: int) -> None:
    flow = flowforge.Glow(shape, levels=levels, steps_per_level=1, hidden_channels=4, pixel_levels=4)
    seen: list[tuple[int, ...]] = []
    for module in flow.modules():
        if isinstance(module, Split):
            module.inner.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[1:])))
            module.inner.inverse = _recording(module.inner.inverse, seen)
    assert flow.sample(3).shape == (3, *shape)
    c, h, w = shape
    expected = [(c * 2 ** (i + 1), h >> (i + 1), w >> (i + 1)) for i in range(levels - 1)]
    assert seen == expected  # each level hands half its squeezed channels to the next
    seen.clear()
    flow.log_prob(pixels(2, shape))
    assert seen == expected


def _recording(inverse: Callable, seen: list) -> Callable:
    def run(z: torch.Tensor, context: torch.Tensor | None = None):
        seen.append(tuple(z.shape[1:]))
        return inverse(z, context)
    return run


def test_temperature_scales_every_latent() -> None:
    flow = randomized(BUILDERS["glow"]((1, 4, 4)), 0.1).eval()
    torch.manual_seed(3)
    cold = flow.sample(4, temperature=0.5)
    torch.manual_seed(3)
    assert torch.equal(cold, flow.decode(0.5 * torch.randn(4, 1, 4, 4)))


def test_one_name_for_vectors_and_images_and_checkpoints_round_trip(tmp_path) -> None:
    assert flowforge.Glow(4, layers=1, hidden=(8,)).spec["model"] == "glow"
    assert flowforge.RealNVP(4, layers=1, hidden=(8,)).spec["model"] == "realnvp"
    image = flowforge.build_model("glow", features=[1, 4, 4], levels=2, steps_per_level=1, hidden_channels=4, pixel_levels=4)
    assert image.spec["model"] == "image-glow" and image.event_shape == (1, 4, 4)
    realnvp = flowforge.build_model("realnvp", features=(1, 4, 4), levels=2, steps_per_level=1, hidden_channels=4)
    assert realnvp.spec["model"] == "image-realnvp"
    flow = randomized(BUILDERS["realnvp"]((1, 4, 4)), 0.1)
    loaded = flowforge.load(flowforge.save(flow, tmp_path / "flow.pt"))
    x = pixels(3, (1, 4, 4))
    torch.manual_seed(1)
    expected = flow.eval().log_prob(x)
    torch.manual_seed(1)
    assert_close(loaded.log_prob(x), expected)


def test_bad_shapes_and_pixels_are_named() -> None:
    with pytest.raises(FlowforgeError, match="divisible by 4"):
        flowforge.Glow((1, 6, 6), levels=2)
    with pytest.raises(FlowforgeError, match="last level"):
        flowforge.RealNVP((1, 4, 4), levels=3)
    with pytest.raises(FlowforgeError, match="image_shape"):
        flowforge.ImageGlow((1, 4))
    with pytest.raises(FlowforgeError, match="dequantize"):
        flowforge.ImageGlow((1, 4, 4), levels=1, dequantize="gaussian")
    flow = BUILDERS["glow"]((1, 4, 4))
    with pytest.raises(FlowforgeError, match=r"0\.\.3"):
        flow.log_prob(pixels(2, (1, 4, 4)) / 3)


def test_fit_initialises_actnorm_and_lowers_the_nll() -> None:
    flow = BUILDERS["glow"]((1, 4, 4))
    columns = torch.zeros(1, 4, 4)
    columns[..., ::2] = 3.0
    stripes = torch.where(torch.rand(256, 1, 1, 1) < 0.5, columns, 3.0 - columns)  # two images, 2-bit pixels
    before = flowforge.mean_nll(flow, stripes)
    flowforge.fit(flow, stripes, steps=40, batch_size=32, lr=3e-3, val_fraction=0, progress=False)
    assert all(bool(m.is_initialized) for m in flow.modules() if hasattr(m, "is_initialized"))
    assert flowforge.mean_nll(flow, stripes) < before - 5
