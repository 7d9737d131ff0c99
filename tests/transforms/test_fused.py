"""fused.py's no-grad kernel: blocked rows give the same values as the plain ops, on any batch size."""
from __future__ import annotations

import pytest
import torch

import flowforge
from flowforge.transforms import fused


def test_block_rows_keeps_the_widest_activation_near_the_budget() -> None:
    params = (torch.zeros(512, 32), torch.zeros(512), torch.zeros(256, 512), torch.zeros(256), torch.zeros(64, 256), torch.zeros(64))
    assert fused.block_rows(params, 4) == fused.BLOCK_BYTES // (512 * 4)
    assert fused.block_rows((torch.zeros(1 << 20, 2), torch.zeros(1 << 20)), 4) == 256  # never tiny blocks
    assert fused.block_rows((torch.zeros(64, 2), torch.zeros(64)), 4) == fused.BLOCK_ROWS  # nor huge ones


@pytest.mark.parametrize("rows", [1, 7, 3 * 256 + 5, 2 * 2048 + 1, 10_000])
def test_no_grad_log_prob_and_sample_equal_the_plain_ops(rows: int, monkeypatch) -> None:
    """Blocked (several blocks and a ragged last one) and unblocked runs against autograd's plain ops."""
    monkeypatch.setattr(fused, "BLOCK_BYTES", 256 * 64 * 8)  # 256-row blocks at H=64 in float64
    torch.manual_seed(0)
    flow = flowforge.RealNVP(6, layers=3, hidden=(64, 64)).double()
    for p in flow.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(rows, 6, dtype=torch.float64)
    with torch.no_grad():
        fast, latents = flow.log_prob(x), flow.transform(x)[0]
        decoded = flow.transform.inverse(latents)[0]
    x.requires_grad_()  # gradients on: the plain autograd ops, whole batch
    plain, plain_decoded = flow.log_prob(x), flow.transform.inverse(latents.requires_grad_())[0]
    torch.testing.assert_close(fast, plain.detach(), rtol=1e-12, atol=1e-12)
    # The blocked kernel folds each hidden bias into the next layer, so its rounding differs: the
    # latents reach ~1e3 here and the plain decode is itself ~3e-11 from x (the blocked one 2e-12).
    torch.testing.assert_close(decoded, plain_decoded.detach(), rtol=1e-9, atol=1e-9)
    assert not torch.equal(fast, torch.zeros_like(fast))


@pytest.mark.parametrize(
    ("build", "context"),
    [
        (lambda: flowforge.NICE(6, layers=2, hidden=(64,)), None),  # additive: no scale
        (lambda: flowforge.RealNVP(6, layers=2, hidden=()), None),  # the conditioner is one Linear
        (lambda: flowforge.RealNVP(6, layers=2, hidden=(64, 32), context_features=3), torch.randn(700, 3, dtype=torch.float64)),
        (lambda: flowforge.RealNVP(2, layers=3, hidden=(64, 64)), None),  # one input feature: addcmul, not a GEMM
    ],
    ids=["nice", "no-hidden", "context", "one-input-feature"],
)
def test_blocked_kernel_covers_additive_linear_and_conditional_couplings(build, context, monkeypatch) -> None:
    monkeypatch.setattr(fused, "BLOCK_BYTES", 256 * 64 * 8)
    torch.manual_seed(1)
    flow = build().double()
    for p in flow.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(700, flow.event_shape[0], dtype=torch.float64)
    with torch.no_grad():
        fast, latents = flow.log_prob(x, context), flow.transform(x, context)[0]
        decoded = flow.transform.inverse(latents, context)[0]
    plain = flow.log_prob(x.requires_grad_(), context).detach()
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(decoded, x.detach(), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(latents, x.detach())  # the couplings did something


def test_the_kernel_is_chosen_for_affine_and_additive_maps_on_a_contiguous_split_with_a_relu_mlp() -> None:
    from flowforge.nn import MLP, ConvNet
    from flowforge.transforms import AdditiveMap, AffineMap, Coupling, SplineMap, alternating_mask, channel_mask, half_mask

    def relu(i: int, o: int) -> MLP:
        return MLP(i, o, (8,))

    assert Coupling(half_mask(4), relu, AffineMap(2.0)).fused_kernel() == fused.FusedKernel(2, True, 2.0)
    assert Coupling(half_mask(4), relu, AdditiveMap()).fused_kernel().scale is False
    assert Coupling(half_mask(4), relu, SplineMap(4)).fused_kernel() is None
    assert Coupling(alternating_mask(4), relu, AffineMap()).fused_kernel() is None  # not contiguous
    assert Coupling(half_mask(4), lambda i, o: MLP(i, o, (8,), activation="tanh")).fused_kernel() is None
    assert Coupling(channel_mask(2), ConvNet(2, 4, hidden=8)).fused_kernel() is None  # images
    flow = flowforge.RealNVP(4, layers=2, hidden=(8,))
    flowforge.nn.precision.set_precision(flow, "bf16")
    assert all(layer.fused_kernel() is None for layer in flow.transform if hasattr(layer, "fused_kernel"))
