import numpy as np
from matplotlib.image import imread

from flowforge.viz import plot_density


def test_density_heat_map(tmp_path) -> None:
    xs, ys = np.linspace(-3, 3, 60), np.linspace(-2, 2, 40)
    grid_x, grid_y = np.meshgrid(xs, ys)
    log_prob = -0.5 * (grid_x**2 + grid_y**2) - np.log(2 * np.pi)
    path = plot_density(xs, ys, log_prob, tmp_path / "density.png")
    assert imread(path).shape[0] > 100
