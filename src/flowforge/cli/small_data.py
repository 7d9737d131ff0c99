"""The command line's defaults for small tables (fewer than SMALL_DATA_ROWS training rows): a
smaller model, and a first layer that whitens, so training starts from the fitted Gaussian."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .config import TrainConfig

if TYPE_CHECKING:
    from .resume import Resume

SMALL_DATA_ROWS = 2000  # fewer training rows than this get SMALL_DATA_MODEL unless --layers/--hidden are given
SMALL_DATA_MODEL = {"layers": 4, "hidden": (64, 64)}


def with_small_data_defaults(config: TrainConfig, train_rows: int) -> TrainConfig:
    """A smaller default model for a few hundred rows, where 8 couplings of 256x256 overfit
    within the first checks (benchmarks/small_tables.py measures it on sklearn's tables)."""
    if train_rows >= SMALL_DATA_ROWS or not all(config.left_at_default(k) for k in SMALL_DATA_MODEL):
        return config
    return replace(config, **SMALL_DATA_MODEL)


WHITEN_MAX_FEATURES = 1000  # the Whiten layer holds a D x D matrix


def first_layer(train_rows: int, features: int) -> bool | str:
    """The `standardize` of a table's model: "whiten" below SMALL_DATA_ROWS training rows (and
    at most WHITEN_MAX_FEATURES columns), so training starts from the Gaussian fitted to the
    data; Standardize's per-column scaling otherwise (benchmarks/small_tables.py compares them)."""
    return "whiten" if train_rows < SMALL_DATA_ROWS and features <= WHITEN_MAX_FEATURES else True


def first_layer_of(train_rows: int, features: int, resume: Resume | None) -> bool | str:
    """first_layer for a new run; a resumed run keeps the one it started with (it may predate Whiten)."""
    if resume is not None:
        return resume.resolved.get("model", {}).get("kwargs", {}).get("standardize", True)
    return first_layer(train_rows, features)
