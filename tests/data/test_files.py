import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from flowforge.data import read_array, read_csv_with_header
from flowforge.errors import FlowforgeError


def test_npy_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(7, 3))
    np.save(tmp_path / "x.npy", x)
    y = read_array(tmp_path / "x.npy")
    assert y.dtype == np.float32 and type(y) is np.ndarray
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert read_csv_with_header(str(tmp_path / "x.npy"))[1] is None


def test_integer_npy_becomes_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(6, dtype=np.uint8).reshape(3, 2))
    np.testing.assert_array_equal(read_array(tmp_path / "x.npy"), np.arange(6, dtype=np.float32).reshape(3, 2))


def test_npz_single_array_or_known_key(tmp_path: Path) -> None:
    x = np.ones((4, 2), dtype=np.float32)
    np.savez(tmp_path / "one.npz", anything=x)
    np.testing.assert_array_equal(read_array(tmp_path / "one.npz"), x)
    np.savez(tmp_path / "several.npz", labels=np.zeros((4, 1)), data=2 * x)
    np.testing.assert_array_equal(read_array(tmp_path / "several.npz"), 2 * x)
    np.savez(tmp_path / "positional.npz", 3 * x, np.zeros(4))
    np.testing.assert_array_equal(read_array(tmp_path / "positional.npz"), 3 * x)


def test_npz_with_unknown_keys_lists_them(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", train=np.ones((2, 2)), test=np.ones((2, 2)))
    with pytest.raises(FlowforgeError, match=r"a.npz holds several arrays \(train, test\); store the data as 'x'"):
        read_array(tmp_path / "a.npz")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(FlowforgeError, match="empty.npz holds no arrays"):
        read_array(tmp_path / "empty.npz")


def test_npz_errors_are_not_rewrapped(tmp_path: Path) -> None:
    np.savez(tmp_path / "multi.npz", train=np.ones((2, 2)), test=np.ones((2, 2)))
    with pytest.raises(FlowforgeError) as caught:
        read_array(tmp_path / "multi.npz")
    assert str(caught.value) == f"{tmp_path / 'multi.npz'} holds several arrays (train, test); store the data as 'x', 'data' or 'arr_0'"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlowforgeError, match=re.escape(f"no such file: {tmp_path / 'gone.npy'}")):
        read_array(tmp_path / "gone.npy")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(FlowforgeError, match="d.csv is a folder, not a table; a folder of PNG/JPEG images needs an image model"):
        read_array(tmp_path / "d.csv")
    (tmp_path / "pngs").mkdir()
    with pytest.raises(FlowforgeError, match="pngs is a folder"):
        read_array(tmp_path / "pngs")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".txt", ".tsv"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"e{suffix}").touch()
    with pytest.raises(FlowforgeError, match=f"e\\{suffix} is empty"):
        read_array(tmp_path / f"e{suffix}")


@pytest.mark.parametrize("name", ["x.json", "x.parquet", "x"])
def test_unsupported_extension_lists_the_supported(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("[1, 2]")
    with pytest.raises(FlowforgeError, match="unsupported file type .*; use .npy, .npz, .csv, .txt, .tsv"):
        read_array(tmp_path / name)


def test_one_dimensional_array_suggests_reshape(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.arange(5.0))
    with pytest.raises(FlowforgeError, match=r"expected a 2-D \(rows, features\) array, got shape \(5,\); .*reshape\(-1, 1\)"):
        read_array(tmp_path / "v.npy")


def test_three_dimensional_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "im.npy", np.zeros((2, 3, 4)))
    with pytest.raises(FlowforgeError, match=r"got shape \(2, 3, 4\)"):
        read_array(tmp_path / "im.npy")


def test_zero_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.zeros((0, 3)))
    with pytest.raises(FlowforgeError, match=r"z.npy is empty: shape \(0, 3\)"):
        read_array(tmp_path / "z.npy")


@pytest.mark.parametrize("array", [np.array([["a", "b"]]), np.ones((2, 2), dtype=complex), np.ones((2, 2), dtype=bool)])
def test_non_numeric_dtype(tmp_path: Path, array: np.ndarray) -> None:
    np.save(tmp_path / "s.npy", array)
    with pytest.raises(FlowforgeError, match=f"s.npy: expected real numbers, got dtype {array.dtype}"):
        read_array(tmp_path / "s.npy")


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(FlowforgeError, match="p.npy holds pickled Python objects"):
        read_array(tmp_path / "p.npy")


def test_not_a_numpy_file(tmp_path: Path) -> None:
    (tmp_path / "t.npy").write_text("1,2\n3,4\n")
    with pytest.raises(FlowforgeError, match=r"t.npy is not a NumPy file \(no .npy header\)"):
        read_array(tmp_path / "t.npy")


def test_non_finite_entry_is_located(tmp_path: Path) -> None:
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    np.save(tmp_path / "n.npy", x)
    with pytest.raises(FlowforgeError, match=r"n.npy: entry \[2, 1\] is NaN/Inf"):
        read_array(tmp_path / "n.npy")
    x[2, 1] = 1e300  # finite in float64, Inf in float32
    np.save(tmp_path / "big.npy", x)
    with pytest.raises(FlowforgeError, match=r"big.npy: entry \[2, 1\] is 1e\+300, too large for float32"):
        read_array(tmp_path / "big.npy")


def test_a_column_float32_cannot_resolve_is_warned_about(tmp_path: Path) -> None:
    """Unix timestamps (1.7e9 +- 600 s) keep ~3 float32 values per standard deviation."""
    t = 1.7e9 + 600 * np.random.default_rng(0).standard_normal(300)
    np.savetxt(tmp_path / "ts.csv", np.c_[np.arange(300) % 7, t], delimiter=",", fmt="%.3f")
    with pytest.warns(UserWarning, match=r"ts.csv: column 1 varies by .* about \d+ distinct values per standard deviation; subtract an offset"):
        read_array(tmp_path / "ts.csv")
    np.savetxt(tmp_path / "shifted.csv", np.c_[np.arange(300) % 7, t - 1.7e9], delimiter=",", fmt="%.3f")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_array(tmp_path / "shifted.csv")
