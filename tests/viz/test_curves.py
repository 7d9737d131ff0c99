import numpy as np
import pytest
from matplotlib.image import imread

from flowforge.viz import plot_training_curve
from flowforge.viz.curves import moving_average


def test_moving_average_is_a_trailing_mean() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(moving_average(values, 2), [1.0, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(moving_average(values, 1), values)
    np.testing.assert_allclose(moving_average(values, 10), np.cumsum(values) / np.arange(1, 6))


@pytest.mark.parametrize("with_val", [True, False])
def test_training_curve_writes_a_png(tmp_path, with_val: bool) -> None:
    steps = np.arange(1, 201)
    train = 3.0 / np.sqrt(steps) + 0.05 * np.random.default_rng(0).normal(size=200)
    val = (steps[9::10], train[9::10] + 0.1) if with_val else ((), ())
    path = plot_training_curve(steps, train, tmp_path / "plots" / "curve.png", *val)
    image = imread(path)
    assert path.exists() and image.ndim == 3 and image.shape[0] > 100


def test_training_curve_survives_a_single_step(tmp_path) -> None:
    assert plot_training_curve([1], [2.0], tmp_path / "one.png", [1], [2.0]).exists()
