"""Image CNF: exact log_prob of integer pixels against a brute-force change of variables, round
trips, and sampling/encoding/decoding by a plain ODE solve (no divergence)."""
from __future__ import annotations

import math

import pytest
import torch

import flowforge
from flowforge.errors import FlowforgeError
from flowforge.flows.continuous import ContinuousFlow
from flowforge.nn import FlatTimeMLP, TimeUNet
from flowforge.transforms import ode as ode_module
from flowforge.transforms.dequantize import MARGIN

torchdiffeq = pytest.importorskip("torchdiffeq")

TIGHT = 1e-9  # solver tolerance of the checks: float64, errors far below the comparisons' 1e-6
LEVELS = 5


def _image_cnf(field: str, seed: int) -> ContinuousFlow:
    """A 1x2x2 image CNF with a non-zero field, in float64 at tight tolerances."""
    torch.manual_seed(seed)
    flow = flowforge.CNF((1, 2, 2), hidden=(8, 8) if field == "mlp" else (4,), pixel_levels=LEVELS, field=field)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the last layer starts at zero (the identity map): make the field non-zero
        for p in flow.odes()[0].field.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    flow.double().eval()
    for ode in flow.odes():
        ode.atol = ode.rtol = TIGHT
    return flow


def _brute_force_log_prob(flow: ContinuousFlow, y: torch.Tensor) -> torch.Tensor:
    """log density of dequantised images y in (0, 1): log N(f(y)) + log|det df/dy| for f the
    Logit and the ODE's time-1 map, its Jacobian by autograd through a fixed-step RK4 solve of
    dx/dt = v alone (no divergence integrated)."""
    logit, ode = flow.transform[1], flow.odes()[0]

    def f(row: torch.Tensor) -> torch.Tensor:
        x = logit(row)[0]
        rhs = lambda t, s: ode.field(t, s)
        return torchdiffeq.odeint(rhs, x, torch.tensor([0.0, 1.0], dtype=x.dtype), method="rk4", options={"step_size": 1 / 100})[-1]

    out = []
    for i in range(y.shape[0]):
        row = y[i : i + 1]
        jacobian = torch.autograd.functional.jacobian(f, row).reshape(row.numel(), row.numel())
        z = f(row).flatten()
        out.append(-0.5 * (z.pow(2).sum() + z.numel() * math.log(2 * math.pi)) + torch.linalg.slogdet(jacobian)[1])
    return torch.stack(out)


@pytest.mark.parametrize("field", ["mlp", "unet"])
def test_pixel_log_prob_is_the_exact_change_of_variables_of_the_dequantised_image(field):
    """log_prob(x) = log p(y) - D log K - log q(u), y = (x + u) / K, with log p(y) the exact
    density of the continuous model: the uniform dequantisation bound Glow's bits/dim also is."""
    flow = _image_cnf(field, seed=1)
    assert isinstance(flow.odes()[0].field, FlatTimeMLP if field == "mlp" else TimeUNet)
    x = torch.randint(0, LEVELS, (3, 1, 2, 2)).double()
    torch.manual_seed(7)
    log_prob = flow.log_prob(x).detach()
    torch.manual_seed(7)  # the same dequantisation noise, as Dequantize draws it
    u = MARGIN + (1 - 2 * MARGIN) * torch.rand_like(x)
    dims = x[0].numel()
    expected = _brute_force_log_prob(flow, (x + u) / LEVELS) - dims * math.log(LEVELS) + dims * math.log(1 - 2 * MARGIN)
    torch.testing.assert_close(log_prob, expected, rtol=0, atol=1e-6)


def test_round_trip_recovers_the_pixels_and_the_latents():
    flow = _image_cnf("mlp", seed=2)
    x = torch.randint(0, LEVELS, (6, 1, 2, 2)).double()
    z = flow.encode(x)
    assert z.shape == x.shape
    torch.testing.assert_close(flow.decode(z), x, rtol=0, atol=0)  # whole pixel levels back
    y = torch.rand(4, 1, 2, 2, dtype=torch.float64)  # the ODE alone, both ways
    ode = flow.odes()[0]
    torch.testing.assert_close(ode.inverse(ode(y)[0])[0], y, rtol=0, atol=1e-7)


def test_sample_encode_decode_solve_without_the_divergence(monkeypatch):
    """Sampling is a plain ODE solve: the divergence (a backward pass per pixel) is never computed."""
    flow = _image_cnf("unet", seed=3)
    x = torch.randint(0, LEVELS, (2, 1, 2, 2)).double()
    flow.log_prob(x)
    nfe_with_divergence = flow.nfe

    def fail(*args, **kwargs):
        raise AssertionError("divergence computed")

    monkeypatch.setattr(ode_module, "divergence", fail)
    samples = flow.sample(5)
    assert samples.shape == (5, 1, 2, 2) and torch.equal(samples, samples.floor()) and samples.max() < LEVELS
    assert flow.nfe > 0 and flow.odes()[0].with_logabsdet  # counted, and the flag restored
    flow.decode(flow.encode(x))
    with pytest.raises(AssertionError, match="divergence"):
        flow.log_prob(x)
    assert nfe_with_divergence > 0


def test_flow_matching_trains_an_image_cnf_and_save_load_keeps_its_log_prob(tmp_path):
    torch.manual_seed(4)
    x = torch.randint(0, LEVELS, (64, 1, 2, 2)).float()
    flow = flowforge.CNF((1, 2, 2), hidden=(16, 16), pixel_levels=LEVELS, field="mlp")
    history = flowforge.fit(flow, x, steps=20, batch_size=32, objective="flow-matching", progress=False, val_fraction=0)
    assert len(history.step) == 20 and all(math.isfinite(v) for v in history.train_nll)
    flowforge.save(flow, tmp_path / "cnf.pt")
    loaded = flowforge.load(tmp_path / "cnf.pt")
    assert isinstance(loaded.odes()[0].field, FlatTimeMLP)
    torch.manual_seed(5)
    expected = flow.log_prob(x[:4])
    torch.manual_seed(5)
    torch.testing.assert_close(loaded.log_prob(x[:4]), expected)


def test_named_errors():
    with pytest.raises(FlowforgeError, match="field"):
        flowforge.CNF((1, 2, 2), field="transformer")
    with pytest.raises(FlowforgeError, match="space_frequencies"):
        flowforge.CNF((1, 2, 2), field="unet", space_frequencies=2)
