"""Helpers shared by several test modules."""
from __future__ import annotations

from pathlib import Path


def one_line_error(capsys) -> str:
    """The CLI's stderr, asserted to be one `flowforge: error: ...` line with no traceback."""
    err = capsys.readouterr().err
    assert err.startswith("flowforge: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


class Malicious:
    """Unpickling this runs code: it writes the marker file named at pickling time."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


# the arguments of a quick `flowforge train`: 600 points of two moons, a two-layer model
TINY_TRAIN = ["--data", "moons", "--n", "600", "--layers", "2", "--hidden", "16", "--batch-size", "64", "--threads", "1", "--no-progress"]
