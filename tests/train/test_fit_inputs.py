"""fit and mean_nll on awkward inputs: mismatched contexts, tiny or offset scales, overflow,
float64 data a float32 flow cannot resolve, a data-dependent set-up before fit."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.transforms import ActNorm, Standardize

from ..transforms.cases import randomized


def quiet_fit(flow: flowforge.Flow, *args, **kwargs) -> flowforge.History:
    return flowforge.fit(flow, *args, progress=False, **{"batch_size": 64, **kwargs})


def conditional_flow() -> flowforge.Flow:
    return flowforge.RealNVP(2, layers=2, hidden=(8,), context_features=1)


@pytest.mark.parametrize("rows", [200, 1000])
def test_a_context_with_another_row_count_is_named(rows: int) -> None:
    """Fewer rows used to fail deep inside indexing; more rows trained on mispaired contexts."""
    with pytest.raises(FlowforgeError, match=f"context has {rows} rows but train has 300"):
        quiet_fit(conditional_flow(), torch.randn(300, 2), context=torch.randn(rows, 1), steps=2)


def test_a_val_context_must_match_val_and_needs_val() -> None:
    x, c = torch.randn(300, 2), torch.randn(300, 1)
    with pytest.raises(FlowforgeError, match="val_context has 80 rows but val has 50"):
        quiet_fit(conditional_flow(), x, torch.randn(50, 2), context=c, val_context=torch.randn(80, 1), steps=2)
    with pytest.raises(FlowforgeError, match="val_context was given without val"):
        quiet_fit(conditional_flow(), x, context=c, val_context=torch.randn(30, 1), steps=2)


def test_values_that_overflow_the_flow_are_named_as_such() -> None:
    x = torch.randn(100, 2, dtype=torch.float64)
    x[7, 1] = 1e300
    with pytest.raises(FlowforgeError, match="train: values too large for this flow's float32"):
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), x, steps=2)


def test_standardize_keeps_a_small_real_spread_and_a_large_offset() -> None:
    """A column of 1e-7 +- 1e-9 is not constant (it was left at scale 1); a mean of 1.7e9 does
    not swallow a spread of 30 (E[x^2] - E[x]^2 gave 45); a truly constant column gets scale 1."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(5000, 3, generator=generator, dtype=torch.float64)
    x = torch.stack([1e-7 + 1e-9 * noise[:, 0], 1.7e9 + 30 * noise[:, 1], torch.full((5000,), 0.1, dtype=torch.float64)], 1)
    layer = Standardize(3).double()
    layer.fit_(x, chunk=777)  # several chunks, merged
    expected = torch.stack([x[:, 0].std(unbiased=False), x[:, 1].std(unbiased=False), torch.tensor(1.0, dtype=torch.float64)])
    torch.testing.assert_close(layer.scale, expected, rtol=1e-9, atol=0)
    torch.testing.assert_close(layer.mean, x.mean(0), rtol=1e-12, atol=0)


def test_small_scale_data_trains_better_than_a_gaussian_on_the_raw_scale() -> None:
    torch.manual_seed(0)
    x = 1e-7 + 1e-9 * (torch.randn(600, 2) @ torch.tensor([[1.0, 0.8], [0.0, 0.6]]))
    train, test = x[:500], x[500:]
    flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
    quiet_fit(flow, train, steps=100)
    gaussian = torch.distributions.MultivariateNormal(train.double().mean(0), torch.cov(train.double().T))
    assert flowforge.mean_nll(flow, test) < -gaussian.log_prob(test.double()).mean().item() + 1.0  # it was 29 nats worse


def test_an_actnorm_set_up_before_fit_is_redone_on_standardised_data() -> None:
    """A log_prob call in training mode before fit sets ActNorm up on raw data (mean 5e4);
    fit's Standardize then changes what ActNorm sees, so fit sets it up again."""
    torch.manual_seed(0)
    x = 5e4 + 1e3 * torch.randn(400, 2)
    flow = flowforge.Glow(2, layers=2, hidden=(8,))
    flow.log_prob(x[:4])  # a sanity check by the user
    quiet_fit(flow, x, steps=1, lr=1e-6)
    first = next(t for t in flow.transform if isinstance(t, ActNorm))
    assert first.log_sigma.abs().max() < 1.0  # the raw data's log-std is ~6.9


def test_float64_data_a_float32_flow_cannot_resolve_warns() -> None:
    timestamps = 1.7e9 + 600 * torch.randn(200, 1, dtype=torch.float64)
    x = torch.cat([timestamps, torch.randn(200, 1, dtype=torch.float64)], 1)
    with pytest.warns(UserWarning, match=r"column 0 varies by .*\(flow.double\(\)\)"):
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), x, steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)).double(), x, steps=2)  # float64 flow: fine
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), torch.randn(200, 2, dtype=torch.float64), steps=2)


def test_mean_nll_takes_arrays_and_names_bad_data() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    x = np.zeros((10, 2))
    assert flowforge.mean_nll(flow, x) == pytest.approx(np.log(2 * np.pi), rel=1e-6)
    with pytest.raises(FlowforgeError, match="data is empty"):
        flowforge.mean_nll(flow, torch.zeros(0, 2))
    with pytest.raises(FlowforgeError, match="context has 3 rows but data has 10"):
        flowforge.mean_nll(conditional_flow(), x, torch.zeros(3, 1))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_wide_integers_reach_a_float64_flow_exactly(kind: str) -> None:
    """Integer timestamps went through float32 (200 distinct values became 3) before the flow's dtype."""
    ints = (1_700_000_000 + np.arange(200, dtype=np.int64))[:, None] * np.array([[1, 2]])
    data = ints if kind == "numpy" else torch.from_numpy(ints)
    flow = flowforge.RealNVP(2, layers=1, hidden=(8,)).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "column takes only 3 distinct values"
        quiet_fit(flow, data, steps=1, val_fraction=0)
    assert flow.transform[0].scale.tolist() == pytest.approx(ints.std(0).tolist(), rel=1e-12)
    assert flowforge.mean_nll(flow, data) == pytest.approx(flowforge.mean_nll(flow, ints.astype(np.float64)), rel=1e-12)


def test_mean_nll_reads_a_npy_file_in_the_flows_dtype(tmp_path) -> None:
    rows = (1_700_000_000 + np.arange(200)).astype(np.float64)[:, None] * np.array([[1.0, 2.0]])
    np.save(tmp_path / "rows.npy", rows)
    flow = flowforge.RealNVP(2, layers=1, hidden=(8,)).double()
    flow.transform[0].fit_(torch.from_numpy(rows))
    assert flowforge.mean_nll(flow, str(tmp_path / "rows.npy")) == pytest.approx(flowforge.mean_nll(flow, rows), rel=1e-12)
    with pytest.raises(FlowforgeError, match="batch_size must be an integer >= 1"):
        flowforge.mean_nll(flow, rows, batch_size=0)


def test_data_that_requires_grad_trains_as_plain_rows() -> None:
    leaf = torch.randn(100, 2, requires_grad=True)
    quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), leaf, steps=3)
    quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), leaf * torch.ones(1, 2, requires_grad=True), steps=3, val_fraction=0)
    assert leaf.grad is None


def test_a_run_whose_validation_nll_is_never_finite_raises() -> None:
    """lr 1e30: one step wrecks the weights; their NaN validation NLL is no state to return to."""
    with pytest.raises(FlowforgeError, match="training diverged"):
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), torch.randn(300, 2), steps=30, lr=1e30)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_is_switched_off_when_fit_raises(precision: str) -> None:
    """A divergence (or Ctrl-C) left autocast on: every later log_prob ran in reduced precision."""
    from flowforge.nn.precision import set_precision

    flow = randomized(flowforge.RealNVP(2, layers=2, hidden=(8,)))  # off the identity: bf16 shows
    x = torch.randn(300, 2)
    calls = []

    def stop(step, flow, history):
        calls.append(step)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quiet_fit(flow, x, steps=20, precision=precision, callback=stop)
    reference = copy.deepcopy(flow)
    set_precision(reference, "fp32")
    assert calls and torch.equal(flow.log_prob(x), reference.log_prob(x))


def test_on_a_few_rows_the_kept_weights_are_never_worse_on_validation_than_the_start() -> None:
    """The starting weights are evaluated too, and validation comes at least every 8 passes over
    the data: 120 rows at batch 512 used to go 40 steps (170 passes) between checks, and the
    weights kept could be far worse than the untrained flow's standard-normal fit (iris: 27.7 nats
    against 4.8 for a diagonal Gaussian)."""
    torch.manual_seed(0)
    x = torch.randn(150, 4) @ torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.0, 0.4, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.5, 0.2]])
    train, val = x[:120], x[120:]
    flow = flowforge.RealNVP(4, layers=8, hidden=(256, 256))
    history = flowforge.fit(flow, train, val, steps=400, batch_size=512, lr=3e-3, progress=False)
    assert history.val_step[:2] == [0, 2]  # ceil(8 * 120 / 512) = 2 steps between checks
    assert flowforge.mean_nll(flow, val) == pytest.approx(history.best_val_nll, rel=1e-5)
    assert history.best_val_nll <= history.val_nll[0]


def test_a_column_of_few_distinct_values_is_warned_about() -> None:
    """Raw integer pixels scored a test NLL of ~1e10 without a word."""
    x = torch.cat([torch.randn(300, 1), torch.randint(0, 5, (300, 1)).float()], 1)
    with pytest.warns(UserWarning, match=r"column 1 takes only 5 distinct values in 270 rows.*dequantise"):
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), x, steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), torch.randn(300, 2), steps=2)


@pytest.mark.parametrize("kind", ["zero rows", "every row five times"])
def test_many_repeated_rows_are_warned_about(kind: str) -> None:
    """20% rows of zeros fell to -26 nats each, and rows repeated five times leaked into validation
    and test: both without a word (a column-by-column check sees neither)."""
    gen = torch.Generator().manual_seed(0)
    if kind == "zero rows":
        x = torch.randn(500, 3, generator=gen) + 3
        x[:100] = 0
    else:
        x = torch.randn(100, 3, generator=gen).repeat_interleave(5, 0)
    with pytest.warns(UserWarning, match=r"of \d+ rows repeat another row exactly"):
        quiet_fit(flowforge.RealNVP(3, layers=2, hidden=(8,)), x, steps=2)


def test_a_constant_column_is_warned_about_as_constant() -> None:
    """A constant column's density is a spike (all-zero data fell to NLL -10 in 2,000 steps, silently);
    float64 data also used to get a 'varies by 2e-14' warning from its rounding-level std."""
    x = torch.cat([torch.randn(300, 1, dtype=torch.float64), torch.full((300, 1), 3.3, dtype=torch.float64)], 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_fit(flowforge.RealNVP(2, layers=2, hidden=(8,)), x, steps=2)
    messages = [str(w.message) for w in caught]
    assert any("column 1 is constant (3.3) in 270 rows" in m for m in messages), messages
    assert not any("varies by" in m for m in messages), messages
