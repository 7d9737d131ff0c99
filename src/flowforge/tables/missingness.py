"""missing="model": which continuous cells of a row are blank, as part of the row's probability.

A row is (c, m, y_obs): its categories c (blank categories are a level of their own, as with
missing="level"), its blank pattern m (which of the `blankable` continuous columns, those with a
blank cell in training, are blank) and its observed continuous values. The model is

    P(c) P(m | c) q(y | c)    with the blank cells of y summed (integrated) out,

so blanks depend on the categories (airquality's Ozone is blank in 21 of 30 June days, in 1 of
30 September days) but not on the values once the categories are known. P(m | c) is a
multinomial logistic regression on the categories' one-hots, fitted by maximum a posteriori on
every training row (PatternModel). Held-out pattern NLL, nats a row, seeds 0/1/2 (80/20 splits):

    model of P(m | c)                           airquality           cars
    smoothed pattern frequencies, no c          0.73 0.89 0.96       0.189 0.184 0.184
    a one-hidden-layer net, early-stopped       0.66 0.70 0.79       0.174 0.234 0.165
    logistic regression, prior sd 1 (chosen)    0.64 0.72 0.71       0.184 0.205 0.169

The patterns are every subset of the blankable columns when there are at most
ENUMERATED of them, else the patterns seen in training; a blank in a column never blank in
training, or an unseen pattern among many, has probability 0.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .discrete import one_hot
from .schema import Schema

PRIOR_SD = 1.0  # the Gaussian prior on PatternModel's log-odds (sd 2 measured the same)
MARGINAL_COMBINATIONS = 4096  # at most this many level combinations: P(m) summed over all of them, exactly
MARGINAL_DRAWS = 65_536  # else P(m) is the mean of P(m | c) over this many draws of c
ENUMERATED = 6  # at most this many blankable columns: every pattern (2**6 = 64) is a level


@dataclass(frozen=True)
class Patterns:
    """The blank patterns a model knows: `columns` (continuous columns that can be blank) and
    `levels` (per pattern, which of those columns are blank)."""

    columns: tuple[str, ...]
    levels: tuple[tuple[bool, ...], ...]

    @classmethod
    def of(cls, schema: Schema, df: pd.DataFrame) -> Patterns:
        """The patterns of df's continuous columns (every subset when few columns can be blank)."""
        columns = tuple(c.name for c in schema.continuous if df[c.name].isna().any())
        if len(columns) <= ENUMERATED:
            levels = tuple(itertools.product((False, True), repeat=len(columns)))
        else:
            seen = df[list(columns)].isna().drop_duplicates().itertuples(index=False, name=None)
            levels = tuple(sorted({tuple(bool(v) for v in row) for row in seen} | {(False,) * len(columns)}))
        return cls(columns, levels)

    def codes(self, schema: Schema, blank: np.ndarray) -> np.ndarray:
        """(n, D) blank continuous cells (the schema's continuous order) -> (n,) pattern index, -1
        where the row's pattern has probability 0 (a blank outside `columns`, or unseen)."""
        where = [i for i, c in enumerate(schema.continuous) if c.name in self.columns]
        index = {level: k for k, level in enumerate(self.levels)}
        elsewhere = np.delete(blank, where, axis=1).any(1) if blank.shape[1] else np.zeros(len(blank), bool)
        codes = np.array([index.get(tuple(bool(v) for v in row), -1) for row in blank[:, where]], dtype=np.int64)
        codes[elsewhere] = -1
        return codes

    def blank_cells(self, schema: Schema, codes: np.ndarray) -> np.ndarray:
        """(n,) pattern indices -> (n, D) bool: the continuous cells to blank."""
        out = np.zeros((len(codes), len(schema.continuous)), bool)
        if not self.columns:
            return out
        where = [i for i, c in enumerate(schema.continuous) if c.name in self.columns]
        out[:, where] = np.array(self.levels, dtype=bool).reshape(-1, len(self.columns))[codes]
        return out

    def to_json(self) -> dict:
        return {"columns": list(self.columns), "levels": [list(level) for level in self.levels]}

    @classmethod
    def from_json(cls, record: dict) -> Patterns:
        return cls(tuple(record["columns"]), tuple(tuple(bool(v) for v in level) for level in record["levels"]))


class PatternModel(nn.Module):
    """P(m | c) = softmax(b + onehot(c) W)[m]: a multinomial logistic regression of the blank
    pattern on the categories' one-hot codes (module docstring).

    Args:
        sizes: levels per categorical column.
        patterns: how many patterns.
        prior: (patterns,) log smoothed pattern frequencies (pattern_prior): b starts there and is
            held near it, W near 0, by the Gaussian prior of `fit`.
    """

    def __init__(self, sizes: list[int], patterns: int, prior: Tensor | None = None) -> None:
        super().__init__()
        self.sizes = list(sizes)
        prior = prior if prior is not None else torch.zeros(patterns)
        self.register_buffer("prior", prior.double().clone())
        self.bias = nn.Parameter(self.prior.clone())
        self.weight = nn.Parameter(torch.zeros(sum(sizes), patterns, dtype=torch.float64))
        self.register_buffer("log_marginal", torch.full((patterns,), float("nan"), dtype=torch.float64))  # log P(m): set_marginal

    def logits(self, categories: Tensor) -> Tensor:
        return self.bias + one_hot(categories, self.sizes).double() @ self.weight

    def log_prob(self, categories: Tensor, patterns: Tensor) -> Tensor:
        """(n, C) category codes and (n,) pattern indices >= 0 -> (n,) float64 log P(m | c)."""
        return self.logits(categories).log_softmax(1).gather(1, patterns[:, None]).squeeze(1)

    def fit(self, categories: Tensor, patterns: Tensor, prior_sd: float = PRIOR_SD) -> PatternModel:
        """The maximum a posteriori b and W (L-BFGS): the training rows' log P(m | c) plus a
        Gaussian prior of sd `prior_sd` on W and on b - prior (every weight is a log-odds)."""
        if not len(patterns):
            return self
        optimizer = torch.optim.LBFGS([self.bias, self.weight], max_iter=500, line_search_fn="strong_wolfe")

        def loss() -> Tensor:
            optimizer.zero_grad()
            penalty = ((self.weight ** 2).sum() + ((self.bias - self.prior) ** 2).sum()) / (2 * prior_sd ** 2)
            value = -self.log_prob(categories, patterns).sum() + penalty
            value.backward()
            return value

        optimizer.step(loss)
        return self

    @torch.no_grad()
    def set_marginal(self, discrete, seed: int = 0) -> str:
        """log P(m) = log sum_c P(c) P(m | c) under the categorical model `discrete`: exact over every
        combination of levels when there are at most MARGINAL_COMBINATIONS, else the mean of P(m | c) over
        MARGINAL_DRAWS draws of c (an estimate). Returns which ("exact" or "estimate")."""
        total = int(np.prod(self.sizes)) if self.sizes else 1
        if total <= MARGINAL_COMBINATIONS:
            categories = torch.tensor(list(itertools.product(*[range(s) for s in self.sizes])), dtype=torch.long).reshape(total, len(self.sizes))
            weights = discrete.log_prob(categories).double() if self.sizes else torch.zeros(1, dtype=torch.float64)
            how = "exact"
        else:
            categories = discrete.sample(MARGINAL_DRAWS, torch.Generator().manual_seed(seed))
            weights = torch.full((len(categories),), -math.log(len(categories)), dtype=torch.float64)
            how = "estimate"
        self.log_marginal = torch.logsumexp(weights[:, None] + self.logits(categories).log_softmax(1), 0)
        return how

    @torch.no_grad()
    def sample(self, categories: Tensor, generator: torch.Generator) -> Tensor:
        """(n, C) category codes -> (n,) pattern indices drawn from P(m | c)."""
        if not len(categories):
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.logits(categories).softmax(1), 1, generator=generator).squeeze(1)


def pattern_prior(codes: np.ndarray, patterns: int) -> Tensor:
    """log((count + 1/P) / (n + 1)) of each of the P patterns: one row's worth of prior mass spread
    over them (add-half smoothing would give the 64 patterns of six blankable columns 32 rows' worth)."""
    counts = np.bincount(codes, minlength=patterns).astype(float) + 1.0 / patterns
    return torch.from_numpy(np.log(counts / counts.sum()))
