"""`train --circular COLS`: which of a table's x columns hold angles (radians), for nsf and nsf-ar."""
from __future__ import annotations

from ..errors import FlowforgeError

CIRCULAR_MODELS = ("nsf", "nsf-ar")


def circular_positions(spec: str, names: list[str] | None, width: int, context: list[int], model: str) -> list[int]:
    """Positions among x's columns (the file's columns less the context ones) of the comma-separated
    header names or 0-based file indices in `spec`."""
    if model not in CIRCULAR_MODELS:
        raise FlowforgeError(f"--circular is for {' and '.join(CIRCULAR_MODELS)} (circular splines); --model {model} has none")
    tokens = [token.strip() for token in spec.split(",")]
    if not all(tokens):
        raise FlowforgeError(f"--circular {spec!r}: an empty name; separate names or indices with single commas")
    columns = []
    for token in tokens:
        if names and token in names:
            columns.append(names.index(token))
        elif token.isdigit() and int(token) < width:
            columns.append(int(token))
        else:
            known = f"; the columns are {', '.join(names)}" if names else ""
            raise FlowforgeError(f"--circular: {token!r} is neither a column name nor an index below {width}{known}")
    if len(set(columns)) != len(columns):
        raise FlowforgeError(f"--circular {spec!r}: a column is named twice")
    overlap = sorted(set(columns) & set(context))
    if overlap:
        raise FlowforgeError(f"--circular: column {overlap[0]} is a context column; angles of the context need no circular layer")
    x_columns = [j for j in range(width) if j not in set(context)]
    return [x_columns.index(c) for c in columns]
