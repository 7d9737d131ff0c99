"""Context columns: the condition of a conditional flow, picked out of a table by name or index."""
from __future__ import annotations

import numpy as np

from ..errors import FlowforgeError


def find_columns(spec: str, names: list[str] | None, width: int, source: str) -> list[int]:
    """0-based indices of the comma-separated header names or 0-based indices in `spec`.

    A token that is a header name means that column; otherwise it must be an index below `width`.
    At least one column must be left over for the data x.
    """
    tokens = [token.strip() for token in spec.split(",")]
    if not all(tokens):
        raise FlowforgeError(f"context columns {spec!r}: an empty name; separate names or indices with single commas")
    columns = [_find(token, names, width, source) for token in tokens]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise FlowforgeError(f"context columns {spec!r}: column {_label(repeated[0], names)} is named twice")
    if len(columns) >= width:
        raise FlowforgeError(f"context columns {spec!r}: all {width} columns of {source} would be context, none left for x")
    return columns


def _find(token: str, names: list[str] | None, width: int, source: str) -> int:
    if names and token in names:
        if names.count(token) > 1:
            raise FlowforgeError(f"{source} has {names.count(token)} columns named {token!r}; rename them, or give the 0-based index")
        return names.index(token)
    try:
        index = int(token)
    except ValueError:
        known = f"its columns are {', '.join(names)}" if names else "it has no header row; give 0-based column indices"
        raise FlowforgeError(f"{source} has no column named {token!r}; {known}") from None
    if not 0 <= index < width:
        raise FlowforgeError(f"{source} has {width} columns, so column index {index} is out of range (0-based, 0 to {width - 1})")
    return index


def _label(index: int, names: list[str] | None) -> str:
    return repr(names[index]) if names else str(index)


def recorded_columns(indices: list[int], recorded_names: list[str] | None, names: list[str] | None, width: int, source: str) -> list[int]:
    """Where a run's context columns sit in another table: by name when both tables have a
    header, else at the recorded indices."""
    if recorded_names and names:
        missing = [name for name in recorded_names if name not in names]
        if missing:
            raise FlowforgeError(f"{source} has no column named {missing[0]!r}, a context column of the model; its columns are {', '.join(names)}")
        return [_recorded(name, index, names, source) for name, index in zip(recorded_names, indices)]
    if max(indices) >= width:
        raise FlowforgeError(f"{source} has {width} columns; the model's context is column(s) {', '.join(map(str, indices))} (0-based)")
    return list(indices)


def _recorded(name: str, index: int, names: list[str], source: str) -> int:
    """A recorded context column's place in a header: where the name is, or at the recorded
    index when the name is repeated and that is one of its places; else an error, never a guess."""
    places = [j for j, n in enumerate(names) if n == name]
    if len(places) == 1:
        return places[0]
    if index in places:
        return index
    raise FlowforgeError(f"{source} has {len(places)} columns named {name!r}, a context column of the model; rename them so one is left")


def split_columns(x: np.ndarray, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(data, context): the columns not in `columns`, in order, and the `columns` themselves."""
    rest = [j for j in range(x.shape[1]) if j not in set(columns)]
    return x[:, rest], x[:, columns]
