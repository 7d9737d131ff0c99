"""CNF: exact likelihood against a brute-force change of variables, both trainings, the Flow contract."""
from __future__ import annotations

import math
import sys

import pytest
import torch

import flowforge
from flowforge.errors import FlowforgeError
from flowforge.flows.continuous import ContinuousFlow
from flowforge.transforms.ode import divergence

torchdiffeq = pytest.importorskip("torchdiffeq")

TIGHT = 1e-9  # solver tolerance of the checks: float64, errors far below the comparisons' 1e-6


def _randomise(flow: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> None:
    """Non-zero fields (the last layer starts at zero, i.e. the identity map)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def _tight(flow: ContinuousFlow) -> ContinuousFlow:
    flow.double().eval()
    for ode in flow.odes():
        ode.atol = ode.rtol = TIGHT
    return flow


def _brute_force_log_prob(flow: ContinuousFlow, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """log N(f(x)) + log|det df/dx| of the flow's ODE map alone, its Jacobian by autograd through a
    fixed-step RK4 solve of dx/dt = v (no divergence integrated): the change of variables, by brute force."""
    (ode,) = flow.odes()
    scaled = flow.context_standardize(context)[0] if context is not None and flow.context_standardize is not None else context
    out = []
    for i in range(x.shape[0]):
        c = scaled[i : i + 1] if scaled is not None else None

        def f(row: torch.Tensor, c: torch.Tensor | None = c) -> torch.Tensor:
            rhs = lambda t, y: ode.field(t, y, c)
            return torchdiffeq.odeint(rhs, row, torch.tensor([0.0, 1.0], dtype=row.dtype), method="rk4",
                                      options={"step_size": 1 / 100})[-1]

        row = x[i : i + 1]
        jacobian = torch.autograd.functional.jacobian(f, row).reshape(row.numel(), row.numel())
        z = f(row).flatten()
        log_normal = -0.5 * (z.pow(2).sum() + z.numel() * math.log(2 * math.pi))
        out.append(log_normal + torch.linalg.slogdet(jacobian)[1])
    return torch.stack(out)


def _gaussians(n: int = 512) -> torch.Tensor:
    return torch.from_numpy(flowforge.data.load_dataset("8gaussians", n=n, seed=0))


def test_log_prob_matches_brute_force_change_of_variables():
    torch.manual_seed(0)
    flow = flowforge.CNF(3, hidden=(16, 16), standardize=False)
    _randomise(flow)
    flow = _tight(flow)
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x).detach(), _brute_force_log_prob(flow, x), rtol=0, atol=1e-6)


def test_space_frequencies_field_is_exact_and_saved(tmp_path):
    torch.manual_seed(1)
    flow = flowforge.CNF(2, hidden=(16, 16), space_frequencies=3, standardize=False)
    assert flow.odes()[0].field.net.net[0].in_features == 2 * (1 + 2 * 3) + 1  # x, sin/cos of x, t
    _randomise(flow, seed=1)
    flowforge.save(flow, tmp_path / "cnf.pt")
    flow = _tight(flowforge.load(tmp_path / "cnf.pt"))
    x = torch.randn(4, 2, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x).detach(), _brute_force_log_prob(flow, x), rtol=0, atol=1e-6)
    with pytest.raises(FlowforgeError, match="space_frequencies"):
        flowforge.CNF(2, space_frequencies=-1)


@pytest.mark.parametrize("objective", ["likelihood", "flow-matching"])
def test_trained_log_prob_is_exact(objective):
    """After either training, the likelihood is still the exact change of variables."""
    torch.manual_seed(0)
    flow = flowforge.CNF(2, hidden=(16, 16), standardize=False, atol=1e-4, rtol=1e-4)
    history = flowforge.fit(flow, _gaussians(256) / 4, steps=8 if objective == "likelihood" else 40, batch_size=64, lr=1e-2,
                            objective=objective, progress=False, patience=None)
    assert len(history.step) > 0 and all(math.isfinite(v) for v in history.train_nll)
    assert flow.odes()[0].field.net.net[-1].weight.abs().sum() > 0  # trained away from the identity
    flow = _tight(flow)
    x = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x).detach(), _brute_force_log_prob(flow, x), rtol=0, atol=1e-6)


def test_conditional_log_prob_matches_brute_force():
    torch.manual_seed(1)
    flow = flowforge.CNF(2, hidden=(16,), context_features=2, standardize=False)
    _randomise(flow, seed=1)
    flow = _tight(flow)
    x, context = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    lp = flow.log_prob(x, context).detach()
    torch.testing.assert_close(lp, _brute_force_log_prob(flow, x, context), rtol=0, atol=1e-6)
    assert not torch.allclose(lp, flow.log_prob(x, context.flip(0)).detach())  # the context matters
    with pytest.raises(FlowforgeError, match="context"):
        flow.log_prob(x)


def test_image_cnf_log_prob_matches_brute_force():
    torch.manual_seed(2)
    flow = flowforge.CNF((1, 2, 2), hidden=(4,), dequantize=None, logit=None)
    _randomise(flow.odes()[0].field.head, seed=2, scale=0.1)  # a non-zero field; the body keeps its smooth init
    flow = _tight(flow)
    x = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x).detach(), _brute_force_log_prob(flow, x), rtol=0, atol=1e-6)


def test_round_trip_and_sample_log_prob_agree():
    torch.manual_seed(3)
    flow = flowforge.CNF(2, hidden=(16,))
    _randomise(flow, seed=3)
    flow = _tight(flow)
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(flow.decode(flow.encode(x)), x, rtol=0, atol=1e-7)  # two solves at 1e-9 per step
    samples, lp = flow.sample_and_log_prob(6)
    torch.testing.assert_close(lp.detach(), flow.log_prob(samples.detach()).detach(), rtol=0, atol=1e-7)
    z = flow.encode(x)
    _, forward_logdet = flow.transform(x)
    _, inverse_logdet = flow.transform.inverse(z)
    torch.testing.assert_close(forward_logdet + inverse_logdet, torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-7)


def test_hutchinson_is_unbiased_and_exact_divergence_is_the_trace():
    torch.manual_seed(4)
    field = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5)).double()
    x = torch.randn(1, 5, dtype=torch.float64, requires_grad=True)
    v = field(x)
    exact, frobenius = divergence(v, x, None, create_graph=False)
    jacobian = torch.autograd.functional.jacobian(field, x[0].detach())
    torch.testing.assert_close(exact[0], torch.trace(jacobian))
    torch.testing.assert_close(frobenius[0], jacobian.pow(2).sum())
    for kind in ("rademacher", "gaussian"):
        n = 4000
        xs = x.detach().expand(n, 5).clone().requires_grad_(True)
        noise = torch.randn(n, 5, dtype=torch.float64) if kind == "gaussian" else torch.randint(0, 2, (n, 5)).double() * 2 - 1
        estimate, _ = divergence(field(xs), xs, noise, create_graph=False)
        # the mean of n independent estimates lies within 5 standard errors of the trace
        assert abs(float(estimate.mean() - exact[0])) < 5 * float(estimate.std()) / math.sqrt(n)


def test_training_pass_uses_hutchinson_above_the_exact_limit_and_rnode_penalty():
    torch.manual_seed(5)
    flow = flowforge.CNF(20, hidden=(8,), divergence="auto", kinetic=0.1, jacobian=0.1, solver="rk4", steps=4)
    _randomise(flow, seed=5, scale=0.1)
    flow.train()
    x = torch.randn(8, 20)
    loss = -flow.log_prob(x).mean() + flow.penalty()
    assert flow.penalty() > 0 and flow.nfe == 16  # rk4: 4 evaluations a step
    loss.backward()
    assert all(p.grad is not None for p in flow.parameters() if p.requires_grad)
    flow.eval()
    with torch.no_grad():  # evaluation: the exact divergence, deterministic
        torch.testing.assert_close(flow.log_prob(x), flow.log_prob(x))


def test_save_load_and_distribution(tmp_path):
    torch.manual_seed(6)
    flow = flowforge.CNF(2, hidden=(8, 8), context_features=1, solver="rk4", steps=8)
    _randomise(flow, seed=6)
    flowforge.save(flow, tmp_path / "cnf.pt")
    loaded = flowforge.load(tmp_path / "cnf.pt")
    assert isinstance(loaded, ContinuousFlow) and loaded.spec == flow.spec
    x, c = torch.randn(4, 2), torch.randn(4, 1)
    torch.testing.assert_close(loaded.log_prob(x, c), flow.log_prob(x, c))
    dist = flow.distribution(c)
    assert dist.sample().shape == (4, 2) and dist.log_prob(x).shape == (4,)


def test_named_errors(monkeypatch):
    with pytest.raises(FlowforgeError, match="solver"):
        flowforge.CNF(2, solver="magic")
    with pytest.raises(FlowforgeError, match="divergence"):
        flowforge.CNF(2, divergence="approximate")
    with pytest.raises(FlowforgeError, match="hidden"):
        flowforge.CNF(2, hidden=(0,))
    with pytest.raises(FlowforgeError, match="flow-matching"):
        flowforge.fit(flowforge.RealNVP(2, layers=1, hidden=(4,)), torch.randn(64, 2), steps=1, objective="flow-matching",
                      progress=False)
    with pytest.raises(FlowforgeError, match="objective"):
        flowforge.fit(flowforge.CNF(2), torch.randn(64, 2), steps=1, objective="score", progress=False)
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)  # as if not installed
    with pytest.raises(FlowforgeError, match="pip install torchdiffeq"):
        flowforge.CNF(2).log_prob(torch.zeros(1, 2))

