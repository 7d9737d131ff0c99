"""InvertibleCompose: gradients equal ordinary autograd's, memory constant in depth."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

import flowforge
from flowforge.transforms import BatchNorm, Compose, CouplingTransform, Reverse, Transform, fused
from flowforge.transforms.recompute import InvertibleCompose, is_recomputable

from .cases import CASES, make, randomized

# How far the recomputed gradients may lie from ordinary autograd's, from the error analysis:
# - Both paths round every operation (unit roundoff u = finfo(dtype).eps / 2). The recompute path
#   also starts each layer's backward from a rebuilt input, off by the inverse's round-trip
#   error: about u times the layer's condition number kappa, and these add up over the L layers
#   of a stretch. So the two gradients differ by about L * kappa * u in relative terms.
# - Relative to what: a gradient is a sum of many per-sample terms, and its rounding error is u
#   times the size of those terms, not of their (possibly cancelled) sum. The last BatchNorm's
#   beta gets -mean(z), terms of size 1 that cancel to ~1e-3 (measured: 6e-13 relative in float64,
#   1.6e-4 in float32, from rounding alone). The terms are no larger than the whole gradient, so
#   each tensor's error is measured against the norm of all the gradients together.
# - kappa: the small trained layers here round-trip to within 45 u in all (Glow, float32, after 60 steps
#   at lr 1e-2); KAPPA = 64 leaves room, and `assert_well_conditioned` checks that premise on the flow.
# A real defect (a missing or doubled term) gives errors of order 1, far above L * KAPPA * u.
KAPPA = 64


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def gradients(t: Transform, x: Tensor, context: Tensor | None, weights: tuple[Tensor, Tensor]) -> list[Tensor]:
    """dL/dparams, dL/dx and dL/dcontext for L = sum(w * z) + sum(v * logabsdet)."""
    x = x.clone().requires_grad_()
    context = context.clone().requires_grad_() if context is not None else None
    z, logabsdet = t(x, context)
    loss = (weights[0] * z).sum() + (weights[1] * logabsdet).sum()
    inputs = [*t.parameters(), x] + ([context] if context is not None else [])
    return list(torch.autograd.grad(loss, inputs, allow_unused=True))


def assert_same_gradients(ours: list[Tensor], reference: list[Tensor], dtype: torch.dtype, layers: int = 1) -> None:
    """Each gradient within layers * KAPPA * u of the reference, relative to the whole gradient's norm."""
    assert len(ours) == len(reference)
    scale = torch.stack([b.double().norm() for b in reference if b is not None]).norm().clamp_min(1e-300)
    tolerance = layers * KAPPA * unit_roundoff(dtype)
    for i, (a, b) in enumerate(zip(ours, reference)):
        if b is None:
            assert a is None or not a.any(), f"gradient {i}: expected none"
            continue
        error = float((a.double() - b.double()).norm() / scale)
        assert error <= tolerance, f"gradient {i}: error {error:.2e} of the gradient's norm (tolerance {tolerance:.2e})"


def depth(t: Transform) -> int:
    """The number of elementary layers: transforms holding no other transform."""
    return sum(1 for m in t.modules() if isinstance(m, Transform) and not any(isinstance(c, Transform) for c in m.modules() if c is not m))


def assert_well_conditioned(flow: flowforge.Flow, x: Tensor, context: Tensor | None, layers: int) -> None:
    """The premise of the tolerance: the flow's inverse rebuilds x to within layers * KAPPA * u."""
    flow.eval()  # BatchNorm by its running averages: a fixed bijection
    with torch.no_grad():
        z = flow.transform(x, context)[0]
        x_back = flow.transform.inverse(z, context)[0]
    flow.train()
    error = float((x_back - x).norm() / x.norm())
    assert error <= layers * KAPPA * unit_roundoff(x.dtype), f"round trip {error:.2e}: too ill-conditioned for this test"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", CASES)
def test_every_layer_type_gets_ordinary_gradients(name: str, dtype: torch.dtype) -> None:
    case = make(name)
    layer = randomized(case.transform).to(dtype)
    x = case.x.to(dtype)
    context = case.context.to(dtype) if case.context is not None else None
    z, logabsdet = layer(x, context)
    weights = (torch.randn_like(z), torch.randn_like(logabsdet))
    reference = gradients(layer, x, context, weights)
    ours = gradients(InvertibleCompose([copy.deepcopy(layer)]), x, context, weights)
    assert_same_gradients(ours, reference, dtype, depth(layer))


def trained(builder, dtype: torch.dtype, steps: int = 60, **kwargs) -> flowforge.Flow:
    """A small flow after some training at a high learning rate, where round-trip drift is largest."""
    torch.manual_seed(0)
    flow = builder(4, 4, (32, 32), **kwargs).to(dtype)
    data = torch.randn(512, 4, dtype=dtype) @ torch.randn(4, 4, dtype=dtype) + 1.0
    context = torch.randn(512, kwargs.get("context_features", 0), dtype=dtype) if "context_features" in kwargs else None
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for step in range(steps):
        rows = slice(64 * (step % 8), 64 * (step % 8 + 1))
        optimizer.zero_grad()
        (-flow.log_prob(data[rows], None if context is None else context[rows]).mean()).backward()
        optimizer.step()
    return flow


FLOWS = {
    "realnvp": (flowforge.RealNVP, {}),
    "realnvp_batchnorm": (flowforge.RealNVP, {"norm": "batchnorm"}),
    "realnvp_context": (flowforge.RealNVP, {"context_features": 3, "mask": "alternating"}),
    "nice": (flowforge.NICE, {}),
    "glow": (flowforge.Glow, {}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", FLOWS)
def test_whole_flows_after_training_get_ordinary_gradients(name: str, dtype: torch.dtype) -> None:
    builder, kwargs = FLOWS[name]
    standard = trained(builder, dtype, **kwargs)
    invertible = builder(4, 4, (32, 32), memory="invertible", **kwargs).to(dtype)
    invertible.load_state_dict(standard.state_dict())
    assert isinstance(invertible.transform, InvertibleCompose)
    x = torch.randn(128, 4, dtype=dtype) * 2 + 1
    context = torch.randn(128, 3, dtype=dtype) if "context_features" in kwargs else None
    layers = depth(standard.transform)
    assert_well_conditioned(standard, x, context, layers)
    running_mean = "transform.transforms.2.running_mean"
    before = standard.state_dict().get(running_mean, torch.zeros(())).clone()
    results = []
    for flow in (standard, invertible):
        flow.zero_grad()
        flow.log_prob(x, context).mean().backward()
        results.append([p.grad for p in flow.parameters()])
    assert_same_gradients(results[1], results[0], dtype, layers)
    if name == "realnvp_batchnorm":  # the fallback layer ran once per pass, like ordinary autograd
        # its input comes from the no-grad forward kernels in one flow and autograd's ops in the
        # other, so the averages agree to rounding; a second update would move them ~2x as far
        updates = [flow.state_dict()[running_mean] - before for flow in (standard, invertible)]
        torch.testing.assert_close(updates[1], updates[0], rtol=layers * KAPPA * unit_roundoff(dtype), atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["realnvp", "realnvp_batchnorm", "glow"])
def test_a_blocked_forward_pass_keeps_gradients_ordinary(name: str, dtype: torch.dtype, monkeypatch) -> None:
    """A batch above the CPU kernel's block size: the no-grad forward pass folds each hidden
    bias into the next layer (fused._mlp_blocks), whose rounding differs from autograd's ops."""
    builder, kwargs = FLOWS[name]
    standard = trained(builder, dtype, **kwargs)
    invertible = builder(4, 4, (32, 32), memory="invertible", **kwargs).to(dtype)
    invertible.load_state_dict(standard.state_dict())
    monkeypatch.setattr(fused, "BLOCK_BYTES", 256 * 32 * torch.finfo(dtype).bits // 8)  # 256-row blocks
    torch.manual_seed(3)
    x = torch.randn(1000, 4, dtype=dtype) * 2 + 1
    layers = depth(standard.transform)
    assert_well_conditioned(standard, x, None, layers)
    results = []
    for flow in (standard, invertible):
        flow.zero_grad()
        flow.log_prob(x).mean().backward()
        results.append([p.grad for p in flow.parameters()])
    assert_same_gradients(results[1], results[0], dtype, layers)


def test_actnorm_initialises_from_the_first_batch() -> None:
    x = torch.randn(256, 4) * 3 + 2
    flows = [flowforge.Glow(4, 2, (16, 16), memory=m, standardize=False) for m in ("standard", "invertible")]
    flows[1].load_state_dict(flows[0].state_dict())
    for flow in flows:
        flow.log_prob(x).mean().backward()
    first = [flow.transform[0] for flow in flows]
    assert bool(first[1].is_initialized)
    torch.testing.assert_close(first[1].bias, x.mean(0))
    torch.testing.assert_close(first[1].bias.grad, first[0].bias.grad, rtol=1e-4, atol=1e-6)


def saved_bytes(flow: flowforge.Flow, x: Tensor) -> int:
    """Bytes autograd saves for the backward pass of one log_prob."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flow.log_prob(x).mean()
    return total


def test_saved_activations_do_not_grow_with_depth() -> None:
    x = torch.randn(256, 8)
    deep, shallow = (saved_bytes(flowforge.RealNVP(8, k, (64, 64), memory="invertible"), x) for k in (16, 2))
    assert deep == shallow
    standard = saved_bytes(flowforge.RealNVP(8, 16, (64, 64)), x)
    assert standard > 8 * deep


def test_batchnorm_in_training_and_flagged_layers_fall_back() -> None:
    class Iterative(Reverse):
        is_exactly_invertible = False

    assert not is_recomputable(BatchNorm(3).train())
    assert is_recomputable(BatchNorm(3).eval())
    assert not is_recomputable(Iterative())
    assert not is_recomputable(Compose([Reverse(), Iterative()]))
    assert is_recomputable(Compose([Reverse(), Reverse()]))


def test_without_gradients_it_is_compose() -> None:
    flow = flowforge.RealNVP(3, 3, (16, 16), memory="invertible")
    reference = flowforge.RealNVP(3, 3, (16, 16))
    reference.load_state_dict(flow.state_dict())
    x = torch.randn(10, 3)
    with torch.no_grad():
        torch.testing.assert_close(flow.log_prob(x), reference.log_prob(x))
    assert flow.sample(4).shape == (4, 3)


def test_unknown_memory_option_is_named() -> None:
    with pytest.raises(flowforge.FlowforgeError, match="memory"):
        flowforge.RealNVP(2, memory="checkpoint")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_recomputes_under_the_same_autocast(precision: str) -> None:
    """The recomputed coupling runs its conditioner in bf16/fp16 like the forward pass did (the
    float32-only hand-written kernel stepped in here once and gave gradients ~1e-2 off)."""
    from flowforge.nn.precision import set_precision

    torch.manual_seed(0)
    standard = flowforge.RealNVP(4, layers=4, hidden=(32, 32))
    for p in standard.parameters():
        p.data.normal_(0, 0.2)
    invertible = flowforge.RealNVP(4, layers=4, hidden=(32, 32), memory="invertible")
    invertible.load_state_dict(standard.state_dict())
    x = torch.randn(64, 4)
    grads = []
    for flow in (standard, invertible):
        set_precision(flow, precision)
        grads.append(torch.autograd.grad(flow.log_prob(x).mean(), list(flow.parameters())))
    # The rebuilt inputs differ from the originals by ~L * KAPPA * u(float32); that moves a half-precision
    # rounding only for a value that close to a rounding boundary, rare and one entry at a time. A
    # float32 conditioner instead of the half one moves every entry by ~u(half): measured 4e-3 (bf16)
    # and 6e-4 (fp16) of the gradient's norm, 16x this tolerance.
    tolerance = torch.finfo(torch.bfloat16 if precision == "bf16" else torch.float16).eps / 2 / 16
    scale = torch.stack([g.norm() for g in grads[0]]).norm()
    for ours, reference in zip(grads[1], grads[0]):
        assert float((ours - reference).norm() / scale) <= tolerance


@pytest.mark.parametrize("name", ["affine_coupling_alternating", "affine_coupling_context", "additive_coupling",
                                  "spline_coupling", "checkerboard_coupling"])
def test_a_coupling_is_rebuilt_from_one_conditioner_pass(name: str) -> None:
    """Inverse and re-run share (s, t): the backward pass runs the conditioner once, not twice."""
    case = make(name)
    layer = randomized(case.transform).double()
    assert isinstance(layer, CouplingTransform)
    calls = []
    layer.net.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    x = case.x.double().requires_grad_()
    context = case.context.double() if case.context is not None else None
    z, logabsdet = InvertibleCompose([layer])(x, context)
    assert calls == [False]  # the forward pass keeps nothing
    (z.square().sum() + logabsdet.sum()).backward()
    assert calls == [False, True]
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_users_coupling_transform_is_rebuilt_from_one_pass_with_ordinary_gradients() -> None:
    class Shift(CouplingTransform):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

        def condition(self, x: Tensor, context: Tensor | None) -> Tensor:
            return self.net(x[:, :2])

        def couple(self, x: Tensor, t: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
            s = torch.tanh(t)
            b = (x[:, 2:] - t) * (-s).exp() if inverse else x[:, 2:] * s.exp() + t
            return torch.cat([x[:, :2], b], 1), (-1 if inverse else 1) * s.sum(1)

    torch.manual_seed(0)
    layers = Compose([Shift().double(), Reverse(), Shift().double()])
    x = torch.randn(9, 5, dtype=torch.float64)
    weights = (torch.randn(9, 5, dtype=torch.float64), torch.randn(9, dtype=torch.float64))
    reference = gradients(layers, x, None, weights)
    calls = []
    for layer in (layers[0], layers[2]):
        layer.net.register_forward_hook(lambda *_: calls.append(1))
    ours = gradients(InvertibleCompose(list(layers)), x, None, weights)
    assert_same_gradients(ours, reference, torch.float64)
    assert len(calls) == 2 + 2  # our forward pass, then one pass per coupling in the backward pass


@pytest.mark.parametrize("kind", ["fused", "plain", "lu"])
def test_a_parameter_shared_by_two_layers_gets_its_gradient_once(kind: str) -> None:
    """Weight tying: the same layer twice in one recomputed run. Its gradient is the sum over
    both uses, as in ordinary autograd, not counted once per use (it was 2x)."""
    from flowforge.nn import MLP
    from flowforge.transforms import AffineCoupling, LULinear, half_mask

    torch.manual_seed(0)
    if kind == "lu":
        layer: Transform = LULinear(4, seed=1).double()
    else:
        activation = "relu" if kind == "fused" else "tanh"  # relu on a contiguous split runs the fused kernel
        layer = AffineCoupling(half_mask(4), lambda i, o: MLP(i, o, (8,), activation=activation)).double()
    layer = randomized(layer)
    x = torch.randn(5, 4, dtype=torch.float64)
    weights = (torch.randn(5, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64))
    reference = gradients(Compose([layer, Reverse(), layer]), x, None, weights)
    ours = gradients(InvertibleCompose([layer, Reverse(), layer]), x, None, weights)
    assert_same_gradients(ours, reference, torch.float64)
