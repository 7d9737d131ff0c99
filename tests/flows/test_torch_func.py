"""torch.func transforms and double backward work through a flow (no once-differentiable kernels on the autograd path)."""
from __future__ import annotations

import torch
from torch.func import jacrev, vmap

import flowforge


def perturbed(flow: flowforge.Flow) -> flowforge.Flow:
    """The flow with its weights moved off their initialisation (zeroed last layers make identities)."""
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_vmap_jacrev_log_det_matches_log_prob() -> None:
    torch.manual_seed(0)
    flow = perturbed(flowforge.RealNVP(2, layers=4, hidden=(16, 16)).double())
    x = torch.randn(8, 2, dtype=torch.float64)
    jacobians = vmap(jacrev(lambda v: flow.transform(v[None])[0][0]))(x)
    expected = flow.base.log_prob(flow.encode(x)) + torch.linalg.slogdet(jacobians).logabsdet
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-10)


def test_double_backward_gives_a_finite_hessian_term() -> None:
    torch.manual_seed(0)
    flow = perturbed(flowforge.RealNVP(2, layers=2, hidden=(8,)))
    x = torch.randn(5, 2, requires_grad=True)
    (score,) = torch.autograd.grad(flow.log_prob(x).sum(), x, create_graph=True)
    (score * score).sum().backward()  # a score-matching style penalty needs the second derivative
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters() if p.requires_grad)


def test_vmap_without_gradients_takes_the_plain_ops() -> None:
    """No-grad passes normally run hand-written in-place kernels, whose out= ops vmap cannot batch."""
    torch.manual_seed(0)
    flow = perturbed(flowforge.RealNVP(4, layers=4, hidden=(16, 16)).double())
    with torch.no_grad():
        x = torch.randn(5, 3, 4, dtype=torch.float64)
        z = vmap(lambda v: flow.transform(v)[0])(x)
        x_back = vmap(lambda v: flow.transform.inverse(v)[0])(z)
        expected = torch.stack([flow.transform(v)[0] for v in x])
    torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)
