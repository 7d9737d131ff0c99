"""fit_target: reverse KL and alpha-divergence training against a target density."""
import math

import pytest
import torch

import flowforge
from flowforge import FlowforgeError, Target, TargetHistory, TargetOptions, fit_target, importance_sample
from flowforge.targets import as_target
from flowforge.train.target_step import objective_loss


def gaussian(x: torch.Tensor) -> torch.Tensor:
    """N((1, -1), diag(0.5^2, 2^2)), unnormalised."""
    return -0.5 * (((x - torch.tensor([1.0, -1.0])) / torch.tensor([0.5, 2.0])) ** 2).sum(1)


@pytest.mark.parametrize("objective", ["reverse_kl", "alpha"])
def test_fit_target_learns_a_gaussian_and_reports_importance_sampling(objective) -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
    history = fit_target(flow, gaussian, steps=160, batch_size=128, lr=5e-3, objective=objective, progress=False)
    result = importance_sample(flow, gaussian, n=4000)
    assert result.ess > 0.8
    assert result.log_z == pytest.approx(math.log(2 * math.pi * 0.5 * 2.0), abs=5 * result.log_z_stderr + 0.01)
    assert len(history.val_ess) == len(history.val_log_z) == len(history.val_nll) == 20
    assert history.target_evaluations >= 160 * 128 and not flow.training


def test_nan_and_inf_target_values_are_dropped_and_counted_never_a_nan_step() -> None:
    """sqrt(1 - x0) is NaN past x0 = 1, with a NaN gradient there; +inf below x0 = -2."""
    def log_density(x: torch.Tensor) -> torch.Tensor:
        value = -0.5 * (x ** 2).sum(1) + torch.sqrt(1 - x[:, 0])
        return torch.where(x[:, 0] < -2, torch.inf, value)

    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    history = fit_target(flow, log_density, steps=30, batch_size=64, progress=False)
    assert history.dropped_samples > 0 and history.skipped_steps == 0
    assert all(math.isfinite(v) for v in history.train_nll)
    assert all(bool(torch.isfinite(p).all()) for p in flow.parameters())


def test_wrong_output_shape_is_a_named_error() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    with pytest.raises(FlowforgeError, match=r"log_density must return shape \(32,\), one value per row, got \(32, 2\)"):
        fit_target(flow, lambda x: -0.5 * x ** 2, steps=2, batch_size=32, progress=False)


def test_options_and_inputs_are_checked_with_named_errors() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    with pytest.raises(FlowforgeError, match="unknown objective 'forward'"):
        fit_target(flow, gaussian, objective="forward", progress=False)
    with pytest.raises(FlowforgeError, match="unknown option 'step'"):
        fit_target(flow, gaussian, step=3)
    with pytest.raises(FlowforgeError, match="target 'banana' has 2 features, the flow 3"):
        fit_target(flowforge.RealNVP(3, layers=2, hidden=(8,)), "banana", steps=2, progress=False)
    with pytest.raises(FlowforgeError, match=r"samples must have shape \(rows, 2\)"):
        fit_target(flow, gaussian, samples=torch.zeros(5, 3), steps=2, progress=False)


def test_a_conditional_flow_fits_a_conditional_target() -> None:
    target = Target(lambda x, c: -0.5 * ((x - c) ** 2).sum(1) / 0.25, 2, context_features=1)
    flow = flowforge.MAF(2, layers=2, hidden=(16,), context_features=1)
    fit_target(flow, target, context=torch.linspace(-2, 2, 64)[:, None], steps=200, batch_size=128, lr=5e-3, progress=False)
    result = importance_sample(flow, target, n=2000, context=torch.tensor([1.5]))
    assert result.ess > 0.7
    assert torch.allclose(result.expectation(), torch.tensor([1.5, 1.5]), atol=0.1)


def test_forward_kl_samples_and_annealing_are_accepted() -> None:
    flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
    draws = torch.tensor([1.0, -1.0]) + torch.randn(500, 2) * torch.tensor([0.5, 2.0])
    history = fit_target(flow, gaussian, samples=draws, sample_weights=torch.ones(500), anneal_steps=50,
                         steps=100, batch_size=128, lr=5e-3, progress=False)
    assert importance_sample(flow, gaussian, n=2000).ess > 0.7 and history.val_ess


@pytest.mark.parametrize("ema", [None, 0.9])
def test_a_stopped_run_resumes_to_the_same_weights(ema) -> None:
    def run(stop_at: int | None, resume=None):
        torch.manual_seed(0)
        flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
        saved = {}
        steps = {"n": 0}

        def should_stop() -> bool:
            return stop_at is not None and steps["n"] >= stop_at

        def count(step, flow, history) -> None:
            steps["n"] = step

        fit_target(flow, gaussian, steps=40, batch_size=32, eval_every=10, progress=False, resume=resume,
                   callback=count, should_stop=should_stop, on_checkpoint=saved.update, ema=ema)
        return flow, saved

    whole, _ = run(None)
    _, half = run(20)
    resumed, _ = run(None, resume=half)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("keep_best", ["elbo", "last"])
def test_ema_keeps_the_moving_average_of_the_live_weights(keep_best) -> None:
    """With ema the flow ends with the average of the weights after each step at the kept
    evaluation (or the last step), computed here by hand from what the callback sees: training
    continues from the live weights, the evaluations score the averaged ones."""
    torch.manual_seed(0)
    flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
    average = {name: p.detach().clone() for name, p in flow.named_parameters()}
    at_step = {}

    def follow(step, flow, history) -> None:
        decay = min(0.8, (1 + step) / (10 + step))
        for name, p in flow.named_parameters():
            average[name] = decay * average[name] + (1 - decay) * p.detach()
        at_step[step] = dict(average)

    history = fit_target(flow, gaussian, steps=30, batch_size=32, lr=5e-3, eval_every=10, ema=0.8, keep_best=keep_best,
                         callback=follow, progress=False)
    kept = at_step[30 if keep_best == "last" else history.best_step]
    for name, p in flow.named_parameters():
        assert torch.allclose(p, kept[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(FlowforgeError, match=r"ema must be a decay in \[0, 1\) or None, got 1.0"):
        fit_target(flow, gaussian, ema=1.0, progress=False)


def _gradient(flow, target, path_gradient: bool, n: int) -> torch.Tensor:
    torch.manual_seed(1)
    flow.zero_grad()
    options = TargetOptions(batch_size=n, path_gradient=path_gradient)
    loss, _ = objective_loss(flow, as_target(target, features=2), options, 1.0, None, TargetHistory())
    loss.backward()
    return torch.cat([p.grad.flatten() for p in flow.parameters()])


def test_the_path_gradient_vanishes_at_the_target_and_has_the_reparameterised_mean() -> None:
    """At q = p (an untrained Real NVP is the identity, so q = N(0, I)) the path gradient of each
    sample is zero, while the reparameterised gradient still carries the score term's noise; away
    from it, on 20,000 samples, the two estimate the same gradient."""
    torch.manual_seed(0)
    flow = flowforge.RealNVP(2, layers=2, hidden=(16,))

    def normal(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x ** 2).sum(1)

    assert _gradient(flow, normal, True, 256).abs().max() < 1e-5
    assert _gradient(flow, normal, False, 256).norm() > 1e-2
    path, reparameterised = _gradient(flow, gaussian, True, 20_000), _gradient(flow, gaussian, False, 20_000)
    assert torch.nn.functional.cosine_similarity(path, reparameterised, dim=0) > 0.95
