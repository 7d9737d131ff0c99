"""Schema: what each column of a table is (its kind, levels or bounds), as JSON and as a printed table."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import FlowforgeError
from .dates import CALENDARS

# modelled by the flow (continuous after a support map), by the categorical model, or left out
CONTINUOUS = ("real", "positive", "nonnegative", "bounded", "integer", "datetime")
DISCRETE = ("categorical",)
LEFT_OUT = ("identifier", "constant", "ignored")
KINDS = CONTINUOUS + DISCRETE + LEFT_OUT


@dataclass(frozen=True)
class Column:
    """One column: its kind and what the kind needs.

    Args:
        kind: real, positive (x > 0), nonnegative (x >= 0 with exact zeros: P(x = 0) and a density
            above; zeros are dequantised over (0, `resolution`)), bounded (low < x < high), integer (whole numbers, dequantised;
            low=0 when all are >= 0), categorical (`levels`, strings, booleans or numbers), datetime
            (a whole number of `resolution` seconds after the earliest, `low` such units after 1970,
            dequantised), identifier or constant
            (left out; a constant's value is `levels[0]`; a whole-number identifier's largest
            training value is `high`), ignored (left out: every cell blank, or declared so).
        missing: blank cells seen when the schema was inferred.
        dtype: the pandas dtype written back by sampling.
        format: a datetime column's text format (strftime codes, or "ISO8601"), the one that read
            every training cell; None for a datetime dtype.
        calendar: a datetime column of yearly or monthly dates ("year", "month", "month-end",
            tables/dates.py): counted in years or months (`resolution` 1), sampled as such dates.
        note: why a column was left out (an identifier inferred from near-unique text, an ignored
            column's blank cells), shown in the schema table and fit's notice.
    """

    name: str
    kind: str
    levels: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    resolution: float | None = None
    missing: int = 0
    dtype: str = "float64"
    format: str | None = None
    note: str = ""
    calendar: str | None = None

    @property
    def details(self) -> str:
        """Levels, bounds or resolution in a few words (the schema table's last column)."""
        if self.kind == "categorical":
            text = f"{len(self.levels)} levels: " + ", ".join(map(str, self.levels[:6])) + (" ..." if len(self.levels) > 6 else "")
        elif self.kind == "bounded":
            text = f"({self.low:g}, {self.high:g})"
        elif self.kind == "integer":
            text = ">= 0" if self.low == 0 else "any sign"
        elif self.kind == "nonnegative":
            text = "exact zeros, and a density above 0"
        elif self.kind == "datetime":
            text = (CALENDARS[self.calendar] if self.calendar else f"resolution {self.resolution:g} s") + (f", read as {self.format}" if self.format and self.format != "ISO8601" else "")
        elif self.kind == "constant":
            text = f"always {self.levels[0]!r}"
        else:
            text = ""
        if self.kind in ("identifier", "ignored"):
            text = "left out" + (f": {self.note}" if self.note else "")
        return "; ".join(part for part in (text, f"{self.missing} missing" if self.missing and self.kind != "ignored" else "") if part)


@dataclass
class Schema:
    """The columns of a table, in the table's order (see infer_schema)."""

    columns: list[Column] = field(default_factory=list)

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise FlowforgeError(f"no column {name!r} in the schema; it has {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def of_kinds(self, kinds: tuple[str, ...]) -> list[Column]:
        return [c for c in self.columns if c.kind in kinds]

    @property
    def continuous(self) -> list[Column]:
        return self.of_kinds(CONTINUOUS)

    @property
    def discrete(self) -> list[Column]:
        return self.of_kinds(DISCRETE)

    def __str__(self) -> str:
        rows = [("column", "kind", "details")] + [(c.name, c.kind, c.details) for c in self.columns]
        widths = [max(len(str(r[i])) for r in rows) for i in range(2)]
        return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows)

    def to_json(self) -> dict[str, Any]:
        return {"format": 1, "columns": [{**asdict(c), "levels": list(c.levels)} for c in self.columns]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schema:
        try:
            columns = [Column(**{**c, "levels": tuple(c.get("levels", ()))}) for c in data["columns"]]
        except (KeyError, TypeError) as error:
            raise FlowforgeError(f"not a table schema: {error}") from None
        bad = [f"{c.name!r}: unknown kind {c.kind!r}" for c in columns if c.kind not in KINDS]
        if bad:
            raise FlowforgeError("schema: " + "; ".join(bad) + f" (kinds: {', '.join(KINDS)})")
        return cls(columns)
