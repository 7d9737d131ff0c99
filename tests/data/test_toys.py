import numpy as np
import pytest

from flowforge.data import TOYS, make_toy
from flowforge.errors import FlowforgeError


@pytest.mark.parametrize("name", TOYS)
def test_toy_is_finite_float32_and_reproducible(name: str) -> None:
    x = make_toy(name, 501, seed=3)
    assert x.shape == (501, 2) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert np.abs(x).max() < 10  # the scales stay within the usual [-4, 4]-ish box
    np.testing.assert_array_equal(x, make_toy(name, 501, seed=3))
    assert not np.array_equal(x, make_toy(name, 501, seed=4))


@pytest.mark.parametrize("name", TOYS)
def test_toy_is_shuffled(name: str) -> None:
    # generators emit groups (moon, ring, arm) one after another; a prefix must still cover the whole density
    x = make_toy(name, 4000)
    first, second = x[:2000], x[2000:]
    np.testing.assert_allclose(first.mean(0), second.mean(0), atol=0.15)


def test_moons_match_sklearn_make_moons() -> None:
    from sklearn.datasets import make_moons

    ours, theirs = make_toy("moons", 20_000), make_moons(20_000, noise=0.05, random_state=0)[0]
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.02)
    np.testing.assert_allclose(np.cov(ours.T), np.cov(theirs.T), atol=0.02)
    # the two moons sit in x2 > -0.5 - noise and x2 < 1 + noise
    assert ours[:, 1].min() > -0.8 and ours[:, 1].max() < 1.3


def test_eight_gaussians_sit_on_a_circle_of_radius_2_sqrt_2() -> None:
    x = make_toy("8gaussians", 8000).astype(np.float64)
    angle = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)) * np.pi / 4
    centers = 2 * np.sqrt(2) * np.stack([np.cos(angle), np.sin(angle)], 1)
    np.testing.assert_allclose((x - centers).std(0), 0.5 / np.sqrt(2), rtol=0.1)


def test_checkerboard_fills_alternate_squares() -> None:
    x = make_toy("checkerboard", 4000)
    cell = np.floor(x / 2).astype(int)  # squares of side 2
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    assert len({tuple(c) for c in cell}) == 8


def test_rings_have_four_radii() -> None:
    radius = np.linalg.norm(make_toy("rings", 4000), axis=1)
    nearest = np.round(radius / 0.75)
    assert set(np.unique(nearest)) == {1.0, 2.0, 3.0, 4.0}
    assert np.abs(radius - 0.75 * nearest).max() < 0.5


def test_unknown_toy_lists_the_names() -> None:
    with pytest.raises(FlowforgeError, match="unknown toy 'moon'; choose from moons, circles"):
        make_toy("moon", 10)


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "10"])
def test_bad_size_is_named(n: object) -> None:
    with pytest.raises(FlowforgeError, match="n must be a positive integer"):
        make_toy("moons", n)  # type: ignore[arg-type]


def test_size_one_and_numpy_integers_work() -> None:
    assert make_toy("pinwheel", 1).shape == (1, 2)
    assert make_toy("circles", np.int64(7)).shape == (7, 2)
