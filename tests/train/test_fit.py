"""fit: it learns, it is reproducible, it reports, it stops early, it survives NaNs, it checks input."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from torch import Tensor, nn

import flowforge
from flowforge import Flow, FlowforgeError, StandardNormal
from flowforge.nn import MLP
from flowforge.transforms import AffineCoupling, Compose, Standardize, Transform, alternating_mask


def moons(n: int, seed: int, noise: float = 0.1) -> Tensor:
    """Two moons, shifted and scaled to roughly zero mean and unit variance per feature."""
    x, _ = make_moons(n, noise=noise, random_state=seed)
    return torch.tensor((x - [0.5, 0.25]) / [0.87, 0.5], dtype=torch.float32)


def small_flow(**kwargs) -> Flow:
    return flowforge.RealNVP(2, layers=2, hidden=(16,), **kwargs)


def test_fit_learns_two_moons() -> None:
    train, val = moons(2000, seed=0, noise=0.05), moons(500, seed=1, noise=0.05)
    mean, std = train.mean(0), train.std(0)
    train, val = (train - mean) / std, (val - mean) / std
    flow = flowforge.RealNVP(2, layers=4, hidden=(64, 64))
    start = flowforge.mean_nll(flow, val)
    history = flowforge.fit(flow, train, val, steps=300, batch_size=128, lr=3e-3, progress=False)
    assert start > 2.6  # a standard normal on standardised data: about log(2 pi e) = 2.84
    assert history.best_val_nll < 2.0
    assert history.val_nll[-1] < history.val_nll[0] - 0.5
    assert np.mean(history.train_nll[-20:]) < np.mean(history.train_nll[:20]) - 0.5
    # the best weights are the ones left in the flow
    assert flowforge.mean_nll(flow, val) == pytest.approx(history.best_val_nll, abs=1e-12)
    assert not flow.training


def fitted_state(seed: int, construction_seed: int = 0) -> tuple[dict[str, Tensor], flowforge.History]:
    torch.manual_seed(construction_seed)
    flow = small_flow()
    torch.manual_seed(12345 + seed)  # fit must not depend on the global RNG it was handed
    history = flowforge.fit(flow, moons(300, seed=0), steps=30, batch_size=32, seed=seed, eval_every=10, progress=False)
    return flow.state_dict(), history


def test_same_seed_gives_bit_identical_weights() -> None:
    (first, history), (second, again) = fitted_state(seed=3), fitted_state(seed=3)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert history.train_nll == again.train_nll and history.val_nll == again.val_nll
    other, _ = fitted_state(seed=4)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_history_records_every_step_and_evaluation() -> None:
    train, val = moons(400, seed=0), moons(200, seed=1)
    flow = small_flow()
    calls: list[int] = []
    history = flowforge.fit(
        flow, train, val, steps=40, batch_size=32, lr=2e-3, warmup=4, eval_every=10,
        callback=lambda step, f, h: calls.append(step), progress=False,
    )
    assert history.step == list(range(40)) and calls == list(range(1, 41))
    assert len(history.train_nll) == len(history.lr) == 40 and all(map(math.isfinite, history.train_nll))
    assert history.lr[:4] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3])  # linear warm-up
    assert all(a >= b for a, b in zip(history.lr[3:], history.lr[4:])) and history.lr[-1] < 1e-4  # cosine decay
    assert history.val_step == [0, 10, 20, 30, 40] and len(history.val_nll) == 5  # 0: the starting weights
    assert history.best_val_nll == min(history.val_nll)
    assert history.best_step == history.val_step[history.val_nll.index(history.best_val_nll)]
    assert not history.stopped_early and history.skipped_steps == history.restores == 0
    assert history.seconds > 0
    assert json.loads(json.dumps(history.to_dict()))["val_step"] == [0, 10, 20, 30, 40]


def test_epochs_and_the_validation_split() -> None:
    train = moons(200, seed=0)
    history = flowforge.fit(small_flow(), train, epochs=3, batch_size=20, val_fraction=0.1, progress=False)
    assert len(history.step) == 3 * (180 // 20)
    assert history.val_nll, "10% of the rows are held out for validation"
    history = flowforge.fit(small_flow(), train, steps=5, batch_size=20, val_fraction=0, progress=False)
    assert history.val_nll == [] and history.best_step == 5


def test_standardize_is_fitted_on_the_training_rows() -> None:
    train = moons(300, seed=0) * torch.tensor([4.0, 0.5]) + torch.tensor([10.0, -3.0])
    flow = small_flow()
    flowforge.fit(flow, train, train[:50], steps=2, batch_size=32, progress=False)
    standardize = flow.transform[0]
    assert isinstance(standardize, Standardize) and bool(standardize.is_fitted)
    torch.testing.assert_close(standardize.mean, train.double().mean(0).float())
    torch.testing.assert_close(standardize.scale, train.double().std(0, unbiased=False).float())


def _years(offset: float) -> tuple[Tensor, Tensor]:
    """x ~ N((year - 2010) / 5, 0.3^2) given the year, 2000-2020, written as `offset + year - 2010`."""
    gen = torch.Generator().manual_seed(0)
    year = torch.randint(2000, 2021, (600, 1), generator=gen).float()
    x = torch.cat([(year - 2010) / 5 + 0.3 * torch.randn(600, 1, generator=gen), torch.randn(600, 1, generator=gen)], 1)
    return x, year - 2010 + offset


def test_a_raw_scale_context_is_standardised_like_the_data() -> None:
    """A context of years (2000-2020) reached the networks raw: test NLL 3.1 against 1.8 for the
    same years written as -10..10. Both now train on a unit-scale context, to the same model."""
    nll = {}
    for offset, standardize in ((2010.0, True), (0.0, True), (2010.0, False)):
        x, year = _years(offset)
        flow = flowforge.MAF(2, layers=2, hidden=(16,), context_features=1, standardize=standardize)
        flowforge.fit(flow, x[:500], context=year[:500], steps=400, batch_size=100, progress=False, patience=None)
        nll[offset, standardize] = flowforge.mean_nll(flow, x[500:], context=year[500:])
        if standardize:
            scaled = flow._scaled(year)
            assert abs(float(scaled.mean())) < 0.1 and abs(float(scaled.std()) - 1) < 0.1
            sampled, log_p = flow.sample_and_log_prob(50, context=year[:50])
            torch.testing.assert_close(log_p, flow.log_prob(sampled, year[:50]), rtol=0, atol=1e-4)
    assert nll[2010.0, True] == pytest.approx(nll[0.0, True], abs=0.1)  # measured 1.65 and 1.62
    assert nll[2010.0, True] < nll[2010.0, False] - 1  # raw years: 3.02


def test_a_conditional_model_saved_before_context_standardisation_loads_unchanged(tmp_path) -> None:
    flow = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    old = {k: v for k, v in flow.state_dict().items() if not k.startswith("context_standardize.")}
    fresh = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1)
    fresh.load_state_dict(old)  # strict: the missing entries are filled in, not refused
    assert bool(fresh.context_standardize.is_fitted)  # fit will not refit it under a trained model
    x, year = _years(2010.0)
    torch.testing.assert_close(fresh.log_prob(x[:20], year[:20]), flow.log_prob(x[:20], year[:20]))
    fitted = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1)
    fitted.context_standardize.fit_(year)  # a fitted flow given the old weights takes the identity too
    fitted.load_state_dict(old)
    torch.testing.assert_close(fitted.log_prob(x[:20], year[:20]), flow.log_prob(x[:20], year[:20]))


def test_early_stopping_on_a_tiny_training_set() -> None:
    tiny, val = moons(16, seed=1), moons(256, seed=2)
    flow = flowforge.RealNVP(2, layers=4, hidden=(64, 64))
    history = flowforge.fit(
        flow, tiny, val, steps=3000, batch_size=16, lr=1e-2, schedule="constant", eval_every=10, patience=3, progress=False,
    )
    assert history.stopped_early
    assert len(history.step) < 3000
    assert history.val_step[-1] - history.best_step == 3 * 10
    assert history.val_nll[-1] > history.best_val_nll
    assert flowforge.mean_nll(flow, val) == pytest.approx(history.best_val_nll, abs=1e-12)


class Faulty(Transform):
    """Identity whose output goes bad on chosen training calls (counted from 0; eval calls not counted).

    kind "value": the log-det is NaN (non-finite loss). kind "gradient": the loss stays finite but
    the gradient of `weight` is NaN (0 * d sqrt(w - w) at 0).
    """

    def __init__(self, bad_calls: set[int], kind: str = "value") -> None:
        super().__init__()
        self.bad_calls, self.kind, self.calls = bad_calls, kind, 0
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logabsdet = x.new_zeros(x.shape[0]) + 0 * self.weight
        if self.training:
            if self.calls in self.bad_calls:
                poison = float("nan") if self.kind == "value" else 0 * torch.sqrt(self.weight - self.weight)
                logabsdet = logabsdet + poison
            self.calls += 1
        return x, logabsdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z, z.new_zeros(z.shape[0])


def faulty_flow(bad_calls: set[int], kind: str = "value") -> Flow:
    coupling = AffineCoupling(alternating_mask(2), lambda i, o: MLP(i, o, (16,)))
    return Flow(Compose([Faulty(bad_calls, kind), coupling]), StandardNormal(2))


@pytest.mark.parametrize("kind", ["value", "gradient"])
def test_non_finite_steps_are_skipped_and_counted(kind: str) -> None:
    flow = faulty_flow({3, 7, 8}, kind)
    history = flowforge.fit(flow, moons(300, seed=0), steps=20, batch_size=32, eval_every=5, progress=False)
    assert history.skipped_steps == 3 and history.restores == 0
    assert history.step == [s for s in range(20) if s not in {3, 7, 8}]
    assert all(math.isfinite(v) for v in history.train_nll)
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_three_bad_steps_in_a_row_restore_and_halve_the_learning_rate() -> None:
    flow = faulty_flow({12, 13, 14})
    history = flowforge.fit(
        flow, moons(300, seed=0), steps=20, batch_size=32, lr=1e-3, schedule="constant", warmup=0, eval_every=5, progress=False,
    )
    assert history.skipped_steps == 3 and history.restores == 1
    lr = dict(zip(history.step, history.lr))
    assert lr[11] == pytest.approx(1e-3) and lr[15] == pytest.approx(5e-4) and lr[19] == pytest.approx(5e-4)


def test_divergence_before_any_good_state_raises() -> None:
    with pytest.raises(FlowforgeError, match="diverged"):
        flowforge.fit(faulty_flow({0, 1, 2}), moons(300, seed=0), steps=20, batch_size=32, eval_every=5, progress=False)


@pytest.mark.parametrize(
    "options",
    [
        {"steps": 0}, {"steps": -5}, {"epochs": 0}, {"batch_size": -1}, {"batch_size": 0},
        {"lr": 0}, {"lr": -1e-3}, {"lr": float("nan")}, {"lr": float("inf")}, {"lr": "0.001"},
        {"grad_clip": 0}, {"eval_every": 0}, {"patience": 0}, {"steps": True},
        {"val_fraction": 1.0}, {"val_fraction": -0.1}, {"schedule": "exponential"},
    ],
    ids=str,
)
def test_bad_hyper_parameters_raise(options: dict) -> None:
    with pytest.raises(FlowforgeError):
        flowforge.fit(small_flow(), moons(100, seed=0), **{"steps": 3, **options}, progress=False)


def test_data_with_nan_raises_naming_the_row() -> None:
    train = moons(100, seed=0)
    train[37, 1] = float("nan")
    with pytest.raises(FlowforgeError, match="row 37"):
        flowforge.fit(small_flow(), train, steps=3, progress=False)
    val = moons(50, seed=1)
    val[4, 0] = float("inf")
    with pytest.raises(FlowforgeError, match=r"val .*row 4"):
        flowforge.fit(small_flow(), moons(100, seed=0), val, steps=3, progress=False)


@pytest.mark.parametrize(
    "data",
    [
        torch.randn(100, 3),  # wrong feature count
        torch.randn(100),  # 1-D
        torch.randn(0, 2),  # empty
        np.array([["a", "b"]] * 10),  # not numbers
        torch.ones(10, 2, dtype=torch.bool),
        [[0.0, 1.0]] * 10,  # a list, not an array
    ],
    ids=["features", "1d", "empty", "strings", "bool", "list"],
)
def test_unusable_data_raises(data) -> None:
    with pytest.raises(FlowforgeError):
        flowforge.fit(small_flow(), data, steps=3, progress=False)


def test_numpy_and_integer_data_are_accepted() -> None:
    x = moons(100, seed=0)
    flow = small_flow()
    flowforge.fit(flow, x.numpy().astype(np.float64), steps=3, batch_size=16, progress=False)
    flowforge.fit(copy.deepcopy(flow), (x * 10).round().to(torch.int64), steps=3, batch_size=16, progress=False)
    assert all(torch.isfinite(p).all() for p in flow.parameters())
