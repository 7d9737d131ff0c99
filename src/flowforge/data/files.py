"""User files -> float32 (rows, features) arrays: .npy, .npz, .csv, .txt, .tsv."""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import FlowforgeError
from .text import parse_table

TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
SUFFIXES = (".npy", ".npz", *TEXT_SUFFIXES)
_NPZ_KEYS = ("x", "data", "arr_0")  # which array of a several-array .npz holds the data
# The last text table parsed, by its text's digest: `train` reads a file twice (is it numeric? then
# its split), and parsing, not reading, is the slow part. Tables above this size are not kept.
_PARSED: dict[bytes, tuple[np.ndarray, list[str] | None]] = {}
KEEP_PARSED_BYTES = 256 * 2**20


def _pick(npz: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    keys = list(npz.files)
    if not keys:
        raise FlowforgeError(f"{name} holds no arrays")
    key = keys[0] if len(keys) == 1 else next((k for k in _NPZ_KEYS if k in keys), None)
    if key is None:
        raise FlowforgeError(f"{name} holds several arrays ({', '.join(keys)}); store the data as 'x', 'data' or 'arr_0'")
    return npz[key]


def _load_numpy(path: Path, name: str) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle: a pickle can run code
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return _pick(loaded, name)
    except FlowforgeError:  # _pick's own message (a ValueError too): already names the problem
        raise
    except ValueError as e:
        if "Object arrays" in str(e):
            raise FlowforgeError(f"{name} holds pickled Python objects, which flowforge does not load; save a numeric array") from e
        if "allow_pickle" in str(e):  # numpy's guess for any file without the NumPy header: not advice to follow
            raise FlowforgeError(f"{name} is not a NumPy file (no .npy header): save it with numpy.save, or name a text table .csv") from e
        raise FlowforgeError(f"{name} is not a valid NumPy file: {e}") from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:  # BadZipFile: starts like an .npz, is not one
        raise FlowforgeError(f"{name} is not a valid NumPy file: {e}") from e


def _parse_text(path: Path, name: str) -> tuple[np.ndarray, list[str] | None]:
    """parse_table of a text file, parsed once while its text stays the same (a copy each call)."""
    text = _read_text(path, name)
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    if key not in _PARSED:
        x, names = parse_table(text, name)
        _PARSED.clear()
        if x.nbytes > KEEP_PARSED_BYTES:
            return x, names
        _PARSED[key] = (x, names)
    x, names = _PARSED[key]
    return x.copy(), (list(names) if names is not None else None)


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: drop the byte-order mark some spreadsheets write
    except UnicodeDecodeError as e:
        raise FlowforgeError(f"{name} is not UTF-8 text (a binary file with a text extension?)") from e


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise FlowforgeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = "; for a single feature save x.reshape(-1, 1)" if x.ndim == 1 else ""
        raise FlowforgeError(f"{name}: expected a 2-D (rows, features) array, got shape {x.shape}{hint}")
    if x.size == 0:
        raise FlowforgeError(f"{name} is empty: shape {x.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become Inf and are reported below
        x32 = np.asarray(x, dtype=np.float32)
    bad = np.argwhere(~np.isfinite(x32))
    if len(bad):
        i, j = bad[0]
        what = "NaN/Inf" if not np.isfinite(x[i, j]) else f"{x[i, j]}, too large for float32"
        raise FlowforgeError(f"{name}: entry [{i}, {j}] is {what}")
    coarse = coarse_float32_column(x)
    if coarse is not None:
        warnings.warn(f"{name}: {coarse}; subtract an offset from that column first", stacklevel=4)
    return x32


def coarse_float32_column(x: np.ndarray) -> str | None:
    """Says which column of float64 data float32 leaves fewer than ~1,000 distinct values per
    standard deviation (e.g. Unix timestamps, 1.7e9 +- 600 s), or None if none does."""
    if x.dtype != np.float64 or x.ndim != 2 or len(x) < 2:
        return None
    spacing = np.abs(x).max(0) * np.finfo(np.float32).eps  # float32's step near the column's largest value
    with np.errstate(over="ignore", invalid="ignore"):  # values near float64's limit: not coarse, just huge
        std = x.std(0)
    coarse = (np.ptp(x, 0) > 0) & (std > 0) & (std < 1000 * spacing)  # a constant column is not coarse: its std is rounding
    if not coarse.any():
        return None
    j = int(np.argmax(coarse))
    return (f"column {j} varies by {std[j]:.3g} around {x[:, j].mean():.6g}, where float32 keeps about "
            f"{std[j] / spacing[j]:.0f} distinct values per standard deviation")


def read_csv_with_header(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """Like `read_array`, plus the column names of a text file's header row (None without one, and for .npy/.npz)."""
    path, name = Path(path), os.fspath(path)
    if not path.exists():
        raise FlowforgeError(f"no such file: {name}")
    if path.is_dir():
        raise FlowforgeError(f"{name} is a folder, not a table; a folder of PNG/JPEG images needs an image model (--model glow or realnvp)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FlowforgeError(f"{name}: unsupported file type {suffix or '(no extension)'}; use {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FlowforgeError(f"{name} is not a file")
    if path.stat().st_size == 0:
        raise FlowforgeError(f"{name} is empty")
    if suffix in TEXT_SUFFIXES:
        x, names = _parse_text(path, name)
    else:
        x, names = _load_numpy(path, name), None
    return _as_matrix(x, name), names


def read_array(path: str | os.PathLike) -> np.ndarray:
    """A float32 (rows, features) array from a .npy, .npz (one array, or 'x'/'data'/'arr_0'), .csv, .txt or .tsv file.

    Text files: the delimiter (tab, ';', ',' or whitespace) and a header row are detected. Errors name
    the file and the problem: for text, the row (line in the file) and column of the bad value.
    """
    return read_csv_with_header(path)[0]
