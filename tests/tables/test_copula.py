"""TableFlow(marginals="copula"): the kernel-CDF map's exactness, inverse and tails, and the table model
that uses it (likelihood on the original scale, samples in support, save/load without pickle)."""
from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flowforge.errors import FlowforgeError
from flowforge.tables import TableFlow
from flowforge.tables.copula import TOLERANCE, CopulaMarginals, ndtri_log, silverman

TINY = {"steps": 20, "layers": 1, "hidden": (8,)}


def fitted(seed: int = 0) -> CopulaMarginals:
    """Two columns unlike a Gaussian: log-normal and uniform, 80 rows."""
    g = torch.Generator().manual_seed(seed)
    y = torch.stack([torch.randn(80, generator=g, dtype=torch.float64).exp(), 30 * torch.rand(80, generator=g, dtype=torch.float64)], 1)
    return CopulaMarginals.fit(y)


# inside the range, near its ends and far outside it (tens and hundreds of bandwidths)
VALUES = torch.tensor([[0.5, 10.0], [3.0, 20.0], [0.05, -1.0], [8.0, 31.0], [-50.0, -1e3], [100.0, 1e4]], dtype=torch.float64)


def test_log_det_matches_autograd_jacobian_in_float64() -> None:
    marginals = fitted()
    _, log_det = marginals(VALUES)
    for row, expected in zip(VALUES, log_det):
        jacobian = torch.autograd.functional.jacobian(lambda v: marginals(v[None])[0][0], row)
        assert torch.allclose(torch.logdet(jacobian), expected, rtol=1e-9, atol=1e-9)


def test_round_trip_and_monotone() -> None:
    marginals = fitted()
    z, _ = marginals(VALUES)
    assert torch.allclose(marginals.inverse(z), VALUES, rtol=100 * TOLERANCE, atol=100 * TOLERANCE)
    grid = torch.linspace(-100, 1000, 2001, dtype=torch.float64)[:, None].expand(-1, 2)
    z_grid, _ = marginals(grid)
    assert (z_grid.diff(dim=0) > 0).all()
    normal = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(marginals(marginals.inverse(normal))[0], normal, atol=1e-8)


def test_tails_are_finite_outside_the_training_range() -> None:
    marginals = fitted()
    far = torch.tensor([[-1e4, -1e5], [1e4, 1e5]], dtype=torch.float64)
    z, log_det = marginals(far)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    assert (z[0] < -30).all() and (z[1] > 30).all()
    assert torch.isfinite(marginals.inverse(torch.tensor([[-60.0, 60.0]], dtype=torch.float64))).all()


def test_standard_normal_z_gives_the_kernel_density() -> None:
    """The map's point: N(0, 1) on z is exactly f_h on y (so its density integrates to 1)."""
    marginals = fitted()
    y = torch.linspace(-20, 60, 40001, dtype=torch.float64)[:, None].expand(-1, 2)
    z, _ = marginals(y)
    for j in range(2):
        single = CopulaMarginals(*(t[..., j:j + 1] for t in (marginals.points, marginals.bandwidth, marginals.mean, marginals.scale)))
        density = torch.exp(-0.5 * z[:, j] ** 2 - 0.5 * math.log(2 * math.pi) + single(y[:, j:j + 1])[1])
        assert float(torch.trapezoid(density, y[:, 0])) == pytest.approx(1.0, abs=1e-3)


def test_ndtri_log_deep_tail_and_silverman() -> None:
    log_p = torch.tensor([-1.0, -50.0, -61.0, -500.0, -5000.0], dtype=torch.float64)
    z = ndtri_log(log_p)
    assert torch.allclose(torch.special.log_ndtr(z), log_p, rtol=1e-10)
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert silverman(x) == pytest.approx(0.9 * min(float(x.std()), float((x.quantile(0.75) - x.quantile(0.25)) / 1.34)) * 1000 ** -0.2)
    assert silverman(torch.ones(10, dtype=torch.float64)) > 0


def skewed(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    solar = np.clip(np.round(330 - rng.gamma(2.0, 60.0, n)), 1, None).astype(int)  # left-skewed counts
    day = rng.integers(1, 32, n)  # uniform whole numbers
    temp = rng.normal(78, 9, n) + 0.03 * solar
    return pd.DataFrame({"solar": solar, "day": day, "temp": temp.round(1), "month": rng.choice(["may", "june"], n)})


def test_table_flow_with_copula_marginals(tmp_path: Path) -> None:
    df = skewed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TableFlow(marginals="copula", **TINY).fit(df)
        log_p = model.log_prob(df)
        sample = model.sample(300, seed=1)
    assert np.isfinite(log_p).all()
    assert (sample["solar"] > 0).all() and (sample["day"] >= 0).all()
    assert model.metrics["flow"]["stayed_at_gaussian"] in (True, False)
    model.save(tmp_path)
    assert (tmp_path / "copula.pt").is_file() and not zipfile.is_zipfile(tmp_path / "table.json")
    torch.load(tmp_path / "copula.pt", weights_only=True)  # tensors only, no pickle of objects
    loaded = TableFlow.load(tmp_path)
    assert loaded.marginals == "copula"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.allclose(loaded.log_prob(df), log_p, rtol=1e-6, atol=1e-6)


def test_unknown_marginals_is_a_named_error() -> None:
    with pytest.raises(FlowforgeError, match="marginals='kde'"):
        TableFlow(marginals="kde").fit(skewed(20))
