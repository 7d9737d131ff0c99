"""memory="invertible" for ImageGlow and ImageRealNVP: ordinary gradients, memory constant in depth."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

import flowforge
from flowforge import Flow
from flowforge.transforms import ActNorm2d, Compose, Conv1x1, Dequantize, Logit, MaskedAffineCoupling, Split, Squeeze
from flowforge.transforms.recompute import InvertibleCompose, is_recomputable

from ..transforms.test_recompute import KAPPA, assert_same_gradients, depth, saved_bytes, unit_roundoff

LEVELS = 16  # pixel levels of the test images
SIZES = {"levels": 2, "hidden_channels": 8, "pixel_levels": LEVELS}
FLOWS = {
    "glow": (flowforge.Glow, {"steps_per_level": 2}),
    "glow_plain_variational_context": (flowforge.Glow, {"steps_per_level": 2, "lu": False, "dequantize": "variational",
                                                        "logit": None, "context_features": 2}),
    "realnvp": (flowforge.RealNVP, {"steps_per_level": 1, "blocks": 1}),
}
SHAPES = [(1, 4, 4), (3, 8, 8)]


def build(name: str, shape: tuple[int, int, int], **options) -> Flow:
    builder, kwargs = FLOWS[name]
    return builder(shape, **{**SIZES, **kwargs, **options})


def pixels(n: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randint(0, LEVELS, (n, *shape)).float()


def contexts(flow: Flow, n: int, dtype: torch.dtype) -> torch.Tensor | None:
    return torch.randn(n, flow.context_features, dtype=dtype) if flow.context_features else None


def trained(name: str, shape: tuple[int, int, int], dtype: torch.dtype, steps: int) -> Flow:
    """A standard-memory flow with its ActNorm2d set from a first batch, after `steps` Adam steps."""
    torch.manual_seed(0)
    flow = build(name, shape).to(dtype)
    data = pixels(256, shape).to(dtype)
    context = contexts(flow, 256, dtype)
    with torch.no_grad():  # data-dependent init on a batch other than the one the gradients see
        flow.log_prob(data[:64], None if context is None else context[:64])
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for step in range(steps):
        rows = slice(32 * (step % 8), 32 * (step % 8 + 1))
        optimizer.zero_grad()
        (-flow.log_prob(data[rows], None if context is None else context[rows]).mean()).backward()
        optimizer.step()
    return flow


def nll_gradients(flow: Flow, x: torch.Tensor, context: torch.Tensor | None) -> list[torch.Tensor]:
    """dNLL/dparams (and dNLL/dcontext) with the dequantisation noise drawn from one seed."""
    flow.zero_grad()
    c = None if context is None else context.clone().requires_grad_()
    torch.manual_seed(1)
    (-flow.log_prob(x, c).mean()).backward()
    return [p.grad for p in flow.parameters()] + ([c.grad] if c is not None else [])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("steps", [0, 20])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", FLOWS)
def test_gradients_equal_ordinary_autograd(name: str, shape: tuple[int, int, int], steps: int, dtype: torch.dtype) -> None:
    standard = trained(name, shape, dtype, steps)
    invertible = build(name, shape, memory="invertible").to(dtype)
    invertible.load_state_dict(standard.state_dict())
    x, context = pixels(32, shape).to(dtype), contexts(standard, 32, dtype)
    reference = nll_gradients(standard, x, context)
    assert_same_gradients(nll_gradients(invertible, x, context), reference, dtype, depth(standard.transform))


@pytest.mark.parametrize("name", FLOWS)
def test_actnorm2d_initialises_from_the_first_batch(name: str) -> None:
    flows = [build(name, (3, 8, 8), memory=memory).double() for memory in ("standard", "invertible")]
    flows[1].load_state_dict(flows[0].state_dict())
    x, context = pixels(32, (3, 8, 8)).double(), contexts(flows[0], 32, torch.float64)
    grads = [nll_gradients(flow, x, context) for flow in flows]
    norms = [[m for m in flow.modules() if isinstance(m, ActNorm2d)] for flow in flows]
    assert norms[1] and all(bool(m.is_initialized) for m in norms[1])
    layers = depth(flows[0].transform)
    tolerance = layers * KAPPA * unit_roundoff(torch.float64)  # their inputs come from two code paths: see test_recompute
    for ours, reference in zip(norms[1], norms[0]):
        assert_close(ours.log_sigma, reference.log_sigma, rtol=tolerance, atol=tolerance)
        assert_close(ours.bias, reference.bias, rtol=tolerance, atol=tolerance)
    assert_same_gradients(grads[1], grads[0], torch.float64, layers)


@pytest.mark.parametrize("name", FLOWS)
def test_saved_activations_do_not_grow_with_depth(name: str) -> None:
    """Fails if a layer silently falls back to ordinary autograd: its activations would grow with depth."""
    x = pixels(32, (3, 8, 8))

    def saved(steps_per_level: int, memory: str) -> int:
        flow = build(name, (3, 8, 8), steps_per_level=steps_per_level, memory=memory)
        context = contexts(flow, 32, torch.float32)
        return saved_bytes(SimpleNamespace(log_prob=lambda v: flow.log_prob(v, context)), x)

    deep, shallow = saved(6, "invertible"), saved(2, "invertible")
    assert deep == shallow
    standard_deep, standard_shallow = saved(6, "standard"), saved(2, "standard")
    assert standard_deep > 1.1 * standard_shallow  # ordinary autograd keeps every step's activations
    if "variational" not in name:  # (whose noise flow keeps its activations under either option)
        assert standard_deep > 10 * deep


def test_every_image_layer_is_recomputed_but_dequantize_logit_and_split() -> None:
    flow = flowforge.Glow((3, 8, 8), levels=2, steps_per_level=1, hidden_channels=8, memory="invertible")
    kinds = (ActNorm2d, Conv1x1, MaskedAffineCoupling, Squeeze)
    layers = [m for m in flow.modules() if isinstance(m, kinds)]
    assert {type(m) for m in layers} == set(kinds) and all(is_recomputable(m) for m in layers)
    assert all(is_recomputable(m) for m in (Conv1x1(4, lu=False), Conv1x1(4, lu=True)))
    assert not any(is_recomputable(m) for m in flow.modules() if isinstance(m, (Dequantize, Logit, Split)))
    assert not is_recomputable(Dequantize(4)) and not is_recomputable(Logit())
    composes = [m for m in flow.transform[-1].modules() if isinstance(m, Compose)]
    assert len(composes) == 2 and all(isinstance(m, InvertibleCompose) for m in composes)  # one per level
    standard = flowforge.Glow((3, 8, 8), levels=2, steps_per_level=1, hidden_channels=8)
    assert all(type(m) is Compose for m in standard.modules() if isinstance(m, Compose))


@pytest.mark.parametrize("name", ["glow", "realnvp"])
def test_checkpoints_keep_the_memory_option(name: str, tmp_path) -> None:
    flow = build(name, (1, 4, 4), memory="invertible")
    x = pixels(5, (1, 4, 4))
    with torch.no_grad():
        flow.log_prob(x)  # ActNorm2d set from a first batch
    assert flow.spec["model"] == f"image-{name}" and flow.spec["kwargs"]["memory"] == "invertible"
    loaded = flowforge.load(flowforge.save(flow, tmp_path / "flow.pt")).train()
    assert isinstance(loaded.transform[-1], InvertibleCompose)
    results = []
    for f in (flow, loaded):
        torch.manual_seed(2)
        results.append(f.log_prob(x))
    assert_close(results[1], results[0])
    assert loaded.sample(3).shape == (3, 1, 4, 4)
    assert type(build(name, (1, 4, 4)).transform[-1]) is Compose  # the default stays "standard"


@pytest.mark.parametrize("builder", [flowforge.Glow, flowforge.RealNVP, flowforge.ImageGlow, flowforge.ImageRealNVP])
def test_unknown_memory_option_is_named_as_for_realnvp(builder) -> None:
    with pytest.raises(flowforge.FlowforgeError) as expected:
        flowforge.RealNVP(2, memory="checkpoint")
    with pytest.raises(flowforge.FlowforgeError) as error:
        builder((1, 4, 4), levels=2, memory="checkpoint")
    assert str(error.value) == str(expected.value)
