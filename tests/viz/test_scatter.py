import numpy as np
import pytest
from matplotlib.image import imread

from flowforge.viz import plot_samples


@pytest.mark.parametrize("features", [1, 2, 3, 6])
def test_samples_plot_for_any_dimension(tmp_path, features: int) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, features)) * np.arange(1, features + 1)
    samples = rng.normal(size=(300, features))
    path = plot_samples(data, samples, tmp_path / f"samples{features}.png")
    assert imread(path).shape[0] > 100


def test_samples_plot_subsamples_large_inputs(tmp_path) -> None:
    data = np.random.default_rng(0).normal(size=(20_000, 2))
    assert plot_samples(data, data[::-1], tmp_path / "big.png", max_points=500).exists()


def test_samples_plot_ignores_outlying_samples(tmp_path) -> None:
    data = np.random.default_rng(0).normal(size=(200, 4))
    samples = np.concatenate([data[:100], np.full((1, 4), 1e6)])
    assert plot_samples(data, samples, tmp_path / "outlier.png").exists()


def drawn(monkeypatch, call) -> list:
    """The figure a plot function saves, as its list of axes."""
    from flowforge.viz import scatter

    figures = []
    save = scatter.save
    monkeypatch.setattr(scatter, "save", lambda figure, path: figures.append(figure) or save(figure, path))
    call()
    return figures[0].axes


def test_axes_carry_column_names_and_each_columns_own_scale(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)  # faithful-like: eruptions of a few minutes, waits of about 70
    faithful = np.c_[rng.uniform(1.5, 5, 300), rng.uniform(40, 100, 300)]
    axes = drawn(monkeypatch, lambda: plot_samples(faithful, faithful, tmp_path / "f.png", names=["eruptions", "waiting"]))
    assert (axes[0].get_xlabel(), axes[0].get_ylabel()) == ("eruptions", "waiting")
    assert axes[0].get_aspect() == "auto"  # equal axes would draw it as a sliver
    assert axes[0].get_ylim()[0] < 45 and axes[0].get_ylim()[1] > 95
    alike = rng.normal(size=(300, 2))
    assert drawn(monkeypatch, lambda: plot_samples(alike, alike, tmp_path / "a.png"))[0].get_aspect() == 1.0
    wide = rng.normal(size=(300, 22))
    axes = drawn(monkeypatch, lambda: plot_samples(wide, wide, tmp_path / "w.png", names=[f"col{j}" for j in range(22)]))
    assert axes[-1].get_xlabel() == "col3" and axes[0].figure.get_suptitle() == "the first 4 of 22 columns"
