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
