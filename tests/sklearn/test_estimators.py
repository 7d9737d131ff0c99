"""flowforge.sklearn: scikit-learn's own estimator checks, pipelines, grid search, sampling and files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_moons
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from flowforge import FlowforgeError, save
from flowforge.flows import MAF
from flowforge.sklearn import ConditionalFlowDensity, FlowDensity, load_estimator

SMALL = {"layers": 1, "hidden": (8,), "steps": 10, "random_state": 0}
# the checks a conditional density cannot pass, with the reason (docs/ecosystem.md lists them too)
CONDITIONAL_FAILS = {
    "check_methods_sample_order_invariance": "score_samples(X, y) needs y: the check calls score_samples(X)",
    "check_methods_subset_invariance": "score_samples(X, y) needs y: the check calls score_samples(X)",
}


def _expected_failures(estimator: object) -> dict[str, str]:
    return CONDITIONAL_FAILS if isinstance(estimator, ConditionalFlowDensity) else {}


@parametrize_with_checks([FlowDensity(**SMALL), ConditionalFlowDensity(**SMALL)], expected_failed_checks=_expected_failures)
@pytest.mark.filterwarnings("ignore::UserWarning")  # the checks fit class labels: flowforge warns of repeated values
def test_scikit_learn_checks(estimator: object, check: object) -> None:
    check(estimator)


def test_clone_keeps_parameters_and_drops_the_fit() -> None:
    density = FlowDensity(model="nsf", layers=2, hidden=(16,), model_options={"bins": 4}, random_state=3)
    density.set_params(layers=3)
    twin = clone(density.fit(np.random.default_rng(0).normal(size=(100, 2))))
    assert twin.get_params() == density.get_params()
    assert not hasattr(twin, "flow_")
    assert density.flow_.spec["kwargs"]["bins"] == 4 and density.flow_.spec["kwargs"]["layers"] == 3


def test_grid_search_over_layers_picks_the_best_held_out_log_likelihood() -> None:
    X, _ = make_moons(600, noise=0.05, random_state=0)
    search = GridSearchCV(FlowDensity(hidden=(32, 32), steps=120, random_state=0), {"layers": [1, 5]}, cv=KFold(3))
    search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"layers": [1, 5][int(np.argmax(scores))]}
    assert search.best_params_ == {"layers": 5}  # one MAF layer is a Gaussian conditional: moons need more
    # the score is the total held-out log-likelihood of the fold, refitted here by hand
    train, test = next(KFold(3).split(X))
    by_hand = FlowDensity(hidden=(32, 32), steps=120, random_state=0, layers=5).fit(X[train]).score(X[test])
    np.testing.assert_allclose(search.cv_results_["split0_test_score"][1], by_hand, rtol=1e-6)


def test_pipeline_after_a_column_transformer_scores_a_data_frame() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(5, 2, 300), "b": rng.normal(size=300), "income": rng.lognormal(10, 1, 300),
                          "id": np.arange(300)})
    columns = ColumnTransformer([("scale", StandardScaler(), ["a", "b"]), ("log", FunctionTransformer(np.log), ["income"])])
    pipeline = make_pipeline(columns, FlowDensity(layers=2, hidden=(16,), steps=50, random_state=0)).fit(table)
    scores = pipeline.score_samples(table)
    assert scores.shape == (300,) and np.isfinite(scores).all()
    assert pipeline[-1].n_features_in_ == 3  # the id column is dropped by the transformer
    assert pipeline.score(table) == pytest.approx(scores.sum())


def test_sample_is_reproducible_and_leaves_torch_random_state_alone() -> None:
    density = FlowDensity(layers=2, hidden=(16,), steps=30, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 3)))
    before = torch.get_rng_state()
    a, b = density.sample(50, random_state=7), density.sample(50, random_state=7)
    assert a.shape == (50, 3) and a.dtype == np.float64 and np.array_equal(a, b)
    assert not np.array_equal(a, density.sample(50, random_state=8))
    assert torch.equal(torch.get_rng_state(), before)


def test_a_coupling_model_on_one_column_names_the_models_that_take_it() -> None:
    with pytest.raises(ValueError, match="1 feature.*maf"):
        FlowDensity(model="realnvp", steps=5).fit(np.zeros((20, 1)) + np.arange(20)[:, None])


def test_model_options_cannot_override_the_estimators_own_parameters() -> None:
    with pytest.raises(FlowforgeError, match="'layers'"):
        FlowDensity(model_options={"layers": 2}, steps=5).fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_conditional_density_follows_its_context() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(2000, 1))
    y = X[:, 0] + 0.3 * rng.normal(size=2000)
    model = ConditionalFlowDensity(layers=2, hidden=(32,), steps=300, random_state=0).fit(X, y)
    draws = model.sample(np.array([[-1.5], [1.5]]), 400, random_state=0)
    assert draws.shape == (2, 400)
    np.testing.assert_allclose(draws.mean(1), [-1.5, 1.5], atol=0.15)
    np.testing.assert_allclose(draws.std(1), [0.3, 0.3], atol=0.1)
    # the right y is more likely than a wrong one; the score is the sum of the per-row scores
    assert (model.score_samples(X[:100], y[:100]) > model.score_samples(X[:100], -y[:100] + 1)).mean() > 0.8
    assert model.score(X[:100], y[:100]) == pytest.approx(model.score_samples(X[:100], y[:100]).sum())


@pytest.mark.parametrize("estimator", [FlowDensity(**SMALL), ConditionalFlowDensity(**SMALL)], ids=lambda e: type(e).__name__)
def test_save_and_load_give_the_same_scores_without_pickle(estimator: FlowDensity, tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["u", "v"])
    y = rng.normal(size=(100, 2))
    fitted = estimator.fit(X, y) if isinstance(estimator, ConditionalFlowDensity) else estimator.fit(X)
    again = load_estimator(fitted.save(tmp_path / "estimator.pt"))
    assert type(again) is type(fitted) and again.get_params() == fitted.get_params()
    assert list(again.feature_names_in_) == ["u", "v"]
    args = (X, y) if isinstance(estimator, ConditionalFlowDensity) else (X,)
    assert np.array_equal(again.score_samples(*args), fitted.score_samples(*args))


def test_loading_a_plain_flow_as_an_estimator_is_a_named_error(tmp_path) -> None:
    path = save(MAF(2, layers=1, hidden=(4,)), tmp_path / "flow.pt")
    with pytest.raises(FlowforgeError, match="not a scikit-learn estimator"):
        load_estimator(path)
