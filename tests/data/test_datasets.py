from pathlib import Path

import numpy as np
import pytest

from flowforge.data import DATASETS, TOYS, load_dataset, make_toy, split
from flowforge.errors import FlowforgeError


def test_datasets_are_the_toys_and_digits() -> None:
    assert DATASETS == (*TOYS, "digits")


def test_toy_by_name_defaults_to_20000_points() -> None:
    x = load_dataset("2spirals", seed=5)
    assert x.shape == (20_000, 2)
    np.testing.assert_array_equal(load_dataset("2spirals", n=300, seed=5), make_toy("2spirals", 300, seed=5))


def test_digits_by_name_and_subset() -> None:
    assert load_dataset("digits").shape == (1797, 64)
    subset = load_dataset("digits", n=100, seed=1)
    assert subset.shape == (100, 64)
    np.testing.assert_array_equal(subset, load_dataset("digits", n=100, seed=1))
    with pytest.raises(FlowforgeError, match="digits has 1797 rows, fewer than n=5000"):
        load_dataset("digits", n=5000)


def test_file_by_path(tmp_path: Path) -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_dataset(str(tmp_path / "x.npy")), x)
    subset = load_dataset(tmp_path / "x.npy", n=4, seed=2)
    assert subset.shape == (4, 2) and len({tuple(r) for r in subset}) == 4
    assert {tuple(r) for r in subset} <= {tuple(r) for r in x}


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(FlowforgeError) as e:
        load_dataset("foo")
    assert str(e.value) == (
        "unknown dataset 'foo'; choose from moons, circles, 8gaussians, checkerboard, 2spirals, pinwheel, "
        "swissroll, rings, digits, or give a .npy/.npz/.csv file"
    )


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FlowforgeError, match="no such file: .*nope.csv"):
        load_dataset(str(tmp_path / "nope.csv"))


def test_split_partitions_the_rows_reproducibly() -> None:
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    train, test = split(x, test_fraction=0.2, seed=3)
    assert train.shape == (40, 2) and test.shape == (10, 2)
    assert sorted(np.concatenate([train, test])[:, 0]) == sorted(x[:, 0])
    np.testing.assert_array_equal(split(x, 0.2, seed=3)[1], test)
    assert not np.array_equal(split(x, 0.2, seed=4)[1], test)
    assert not np.array_equal(test, x[:10])  # shuffled, not the first rows


def test_split_keeps_a_row_on_each_side() -> None:
    train, test = split(np.zeros((3, 1)), test_fraction=0.01)
    assert len(train) == 2 and len(test) == 1
    train, test = split(np.zeros((3, 1)), test_fraction=0.99)
    assert len(train) == 1 and len(test) == 2


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan")])
def test_split_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(FlowforgeError, match=r"test_fraction must lie in \[0, 1\)"):
        split(np.zeros((10, 2)), fraction)


def test_a_test_fraction_of_0_keeps_every_row_for_training() -> None:
    train, test = split(np.arange(10.0)[:, None], 0.0)
    assert len(test) == 0 and sorted(train[:, 0]) == list(range(10))


def test_split_needs_two_rows() -> None:
    with pytest.raises(FlowforgeError, match="cannot split 1 row"):
        split(np.zeros((1, 2)))
