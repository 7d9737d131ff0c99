"""Fuzz the data readers: any file contents give a FlowforgeError or a finite float32 (rows, features) array."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowforge import FlowforgeError
from flowforge.data import read_array

from .strategies import FUZZ, arrays, csv_texts

FUZZ = FUZZ.__class__(FUZZ, max_examples=100)  # readers are fast: look harder


def _read_or_error(path: Path) -> np.ndarray | None:
    try:
        x = read_array(path)
    except FlowforgeError as error:
        assert str(error).strip(), "an error names its problem"
        return None
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1
    assert np.isfinite(x).all()
    return x


@FUZZ
@given(text=csv_texts(), suffix=st.sampled_from([".csv", ".txt", ".tsv"]))
def test_random_table_text(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_text(text, encoding="utf-8")
        _read_or_error(path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_with_a_csv_name(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        path.write_bytes(raw)
        _read_or_error(path)


@FUZZ
@given(x=arrays(), container=st.sampled_from(["npy", "npz", "npz-named", "npz-two"]))
def test_random_numpy_arrays(x: np.ndarray, container: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x.{container[:3]}"
        if container == "npy":
            np.save(path, x)
        elif container == "npz":
            np.savez(path, x)
        else:
            np.savez(path, x=x, **({"y": x} if container == "npz-two" else {}))
        read = _read_or_error(path)
        if read is not None:  # a correct answer: the same numbers, as float32
            np.testing.assert_array_equal(read, x.astype(np.float32))


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".npy", ".npz"]))
def test_random_bytes_with_a_numpy_name(raw: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(b"\x93NUMPY" + raw if raw[:1] == b"\x01" else raw)
        _read_or_error(path)


def test_a_file_that_starts_like_an_npz_but_is_not_one_is_named(tmp_path) -> None:
    """Found by test_random_bytes_with_a_numpy_name: zipfile's BadZipFile escaped unnamed."""
    path = tmp_path / "x.npy"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(FlowforgeError, match="x.npy is not a valid NumPy file"):
        read_array(path)
