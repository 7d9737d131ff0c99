"""memory="invertible" for MAF, IAF, NSF and nsf-ar: ordinary gradients, the right layers recomputed."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import flowforge
from flowforge.transforms import Compose, Coupling, Inverse, Reverse
from flowforge.transforms.autoregressive import MaskedAutoregressive
from flowforge.transforms.recompute import InvertibleCompose, is_recomputable

from ..transforms.test_recompute import assert_same_gradients, depth, saved_bytes, trained

BUILDERS = {
    "maf": flowforge.MAF,
    "iaf": flowforge.IAF,
    "nsf": flowforge.NSF,
    "nsf-ar": flowforge.MODELS["nsf-ar"],
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("steps", [0, 30])
@pytest.mark.parametrize("context_features", [0, 3])
@pytest.mark.parametrize("name", BUILDERS)
def test_gradients_equal_ordinary_autograd(name: str, context_features: int, steps: int, dtype: torch.dtype) -> None:
    """dNLL/dparams and dNLL/dcontext, at init and after Adam steps (weights off their init)."""
    kwargs = {"context_features": context_features} if context_features else {}
    standard = trained(BUILDERS[name], dtype, steps=steps, **kwargs)
    invertible = BUILDERS[name](4, 4, (32, 32), memory="invertible", **kwargs).to(dtype)
    invertible.load_state_dict(standard.state_dict())
    assert isinstance(invertible.transform, InvertibleCompose)
    x = torch.randn(128, 4, dtype=dtype) * 2 + 1
    context = torch.randn(128, 3, dtype=dtype) if context_features else None
    results = []
    for flow in (standard, invertible):
        flow.zero_grad()
        c = None if context is None else context.clone().requires_grad_()
        flow.log_prob(x, c).mean().backward()
        results.append([p.grad for p in flow.parameters()] + ([c.grad] if c is not None else []))
    assert_same_gradients(results[1], results[0], dtype, depth(standard.transform))


@pytest.mark.parametrize("name", BUILDERS)
def test_spline_couplings_and_iaf_layers_are_recomputed_masked_layers_are_not(name: str) -> None:
    flow = BUILDERS[name](4, 2, (16,), memory="invertible")
    layers = [t for t in flow.transform if isinstance(t, (Coupling, MaskedAutoregressive, Inverse))]
    assert len(layers) == 2
    is_recomputed = name in ("iaf", "nsf")
    assert all(is_recomputable(t) == is_recomputed for t in layers)
    x = torch.randn(256, 4)
    deep, shallow = (saved_bytes(BUILDERS[name](4, k, (64, 64), memory="invertible"), x) for k in (8, 2))
    standard = saved_bytes(BUILDERS[name](4, 8, (64, 64)), x)
    if is_recomputed:  # one recomputed stretch: its output is all that is kept, whatever the depth
        assert deep == shallow and standard > 8 * deep
    else:  # the masked layers keep their activations, like ordinary autograd
        assert deep > 3 * shallow and deep > standard / 2


def test_inverse_flips_which_direction_rebuilds_the_input() -> None:
    made = MaskedAutoregressive(3, hidden=(8,))
    assert not is_recomputable(made)
    assert is_recomputable(Inverse(made))
    assert not is_recomputable(Inverse(Inverse(made)))
    assert is_recomputable(Inverse(Compose([Reverse(), made])))
    assert not is_recomputable(Compose([Reverse(), made]))


@pytest.mark.parametrize("name", BUILDERS)
def test_checkpoints_keep_the_memory_option(name: str, tmp_path) -> None:
    flow = BUILDERS[name](4, 2, (16,), context_features=2, memory="invertible")
    assert flow.spec["model"] == name and flow.spec["kwargs"]["memory"] == "invertible"
    loaded = flowforge.load(flowforge.save(flow, tmp_path / "flow.pt"))
    assert isinstance(loaded.transform, InvertibleCompose)
    x, context = torch.randn(5, 4), torch.randn(5, 2)
    assert_close(loaded.log_prob(x, context), flow.log_prob(x, context))
    assert type(BUILDERS[name](4, 2, (16,)).transform) is Compose  # the default stays "standard"


@pytest.mark.parametrize("name", BUILDERS)
def test_unknown_memory_option_is_named_as_for_realnvp(name: str) -> None:
    with pytest.raises(flowforge.FlowforgeError) as expected:
        flowforge.RealNVP(2, memory="checkpoint")
    with pytest.raises(flowforge.FlowforgeError) as error:
        BUILDERS[name](2, memory="checkpoint")
    assert str(error.value) == str(expected.value)
