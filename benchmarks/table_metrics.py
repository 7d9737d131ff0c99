"""How close synthetic rows are to held-out real rows, and an independent-columns likelihood.

Pure functions on DataFrames; scikit-learn and scipy only (SDMetrics' quality report is imported
where it is used). Column kinds are "categorical" (modelled by frequencies), "integer" or
"continuous"; `column_kinds` guesses them the way flowforge's schema does when that is absent.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CODED_LEVELS = 10  # an integer-valued column with at most this many distinct values is a code (flowforge's threshold too)


def column_kinds(train: pd.DataFrame) -> dict[str, str]:
    """categorical: non-numeric, or integer-valued with <= CODED_LEVELS distinct values; integer; continuous."""
    kinds = {}
    for name, column in train.items():
        values = column.dropna()
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            kinds[name] = "categorical"
        elif np.all(values == np.round(values)):
            kinds[name] = "categorical" if values.nunique() <= CODED_LEVELS else "integer"
        else:
            kinds[name] = "continuous"
    return kinds


def atoms(df: pd.DataFrame, share: float = 0.2) -> dict[str, tuple[float, float]]:
    """Continuous columns (column_kinds; integers get masses, not densities) where one value holds >= `share` of
    the cells: {column: (value, its share)}. A continuous density can put unbounded mass density there,
    so a held-out NLL on such a column says little (and no sample from a density hits the value)."""
    kinds, out = column_kinds(df), {}
    for name, kind in kinds.items():
        counts = df[name].value_counts(normalize=True)
        if kind == "continuous" and len(counts) and counts.iloc[0] >= share:
            out[name] = (float(counts.index[0]), float(counts.iloc[0]))
    return out


def _outside(train: pd.Series, sample: pd.Series, kind: str) -> dict[str, np.ndarray]:
    """Per cell of `sample`, which support rule of the training column it breaks."""
    missing = sample.isna().to_numpy()
    rules = {"missing": missing & (not train.isna().any())}
    if kind == "categorical":
        seen = set(train.dropna().tolist())
        rules["unseen category"] = ~missing & ~sample.isin(seen).to_numpy()
        return rules
    x, low, high = pd.to_numeric(sample, errors="coerce").to_numpy(float), train.min(), train.max()
    rules["non-integer"] = ~missing & (x != np.round(x)) if kind == "integer" else np.zeros(len(x), bool)
    rules["negative"] = ~missing & (x < 0) if low >= 0 else np.zeros(len(x), bool)
    rules["above 1 (proportion)"] = ~missing & (x > 1) if low >= 0 and high <= 1 else np.zeros(len(x), bool)
    return rules


def support_violations(train: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    """Share of synthetic cells outside the training column's support, overall ("any") and by rule.

    Rules: missing where training has no missing cell; a category (or code) never seen in training;
    a non-integer in an integer column; negative where training is >= 0; above 1 where training
    lies in [0, 1]. A cell breaking several rules counts once in "any"; "columns" has each offending
    column's share of its own cells."""
    cells = len(synthetic) * len(train.columns)
    totals: dict[str, float] = {}
    broken = np.zeros((len(synthetic), len(train.columns)), bool)
    for j, name in enumerate(train.columns):
        for rule, mask in _outside(train[name], synthetic[name], kinds[name]).items():
            totals[rule] = totals.get(rule, 0) + int(mask.sum())
            broken[:, j] |= mask
    by_column = {name: float(broken[:, j].mean()) for j, name in enumerate(train.columns) if broken[:, j].any()}
    return {"any": broken.sum() / cells, **{rule: n / cells for rule, n in totals.items()}, "columns": by_column}


def encode(frames: list[pd.DataFrame]) -> tuple[list[np.ndarray], np.ndarray]:
    """Float matrices with non-numeric columns as shared category codes (NaN stays NaN); the categorical mask."""
    columns = frames[0].columns
    is_categorical = np.array([not pd.api.types.is_numeric_dtype(frames[0][c]) for c in columns])
    out = []
    for frame in frames:
        x = np.empty((len(frame), len(columns)))
        for j, name in enumerate(columns):
            if is_categorical[j]:
                levels = sorted({str(v) for f in frames for v in f[name].dropna()})
                codes = pd.Categorical(frame[name].map(str, na_action="ignore"), categories=levels).codes
                x[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                x[:, j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
        out.append(x)
    return out, is_categorical


def c2st_auc(real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated ROC-AUC of a gradient-boosted classifier telling synthetic from real rows (0.5: indistinguishable)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    (x_real, x_synthetic), is_categorical = encode([real, synthetic[real.columns]])
    x = np.concatenate([x_real, x_synthetic])
    y = np.r_[np.zeros(len(x_real)), np.ones(len(x_synthetic))]
    classifier = HistGradientBoostingClassifier(categorical_features=is_categorical, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, x, y, cv=cv, scoring="roc_auc").mean())


def _column_log_prob(train: pd.Series, test: pd.Series, kind: str, sum_out_blanks: bool) -> np.ndarray:
    """Per test cell: log frequency (add-one, one slot for unseen), log KDE density (Scott's bandwidth) or,
    for integers, log KDE mass of [k - 1/2, k + 1/2) (a dequantised integer's likelihood is a mass too); for
    zero_inflated columns (exact zeros and positive values), log P(0) for a zero, else log P(> 0) + log KDE density."""
    from scipy.special import ndtr
    from scipy.stats import gaussian_kde

    seen, missing = train.dropna(), test.isna().to_numpy()
    out = np.zeros(len(test))
    if train.isna().any():  # missingness is part of the row: log P(missing) or log P(present)
        p_missing = (train.isna().sum() + 1) / (len(train) + 2)
        out += np.where(missing, np.log(p_missing), np.log1p(-p_missing))
    elif missing.any() and not sum_out_blanks:
        out[missing] = -np.inf
    present = test[~missing]
    if kind == "categorical":
        counts = seen.value_counts()
        total = len(seen) + len(counts) + 1
        out[~missing] += np.log((present.map(counts).fillna(0).to_numpy(float) + 1) / total)
    elif kind == "integer":
        centres = seen.to_numpy(float)
        h = np.sqrt(gaussian_kde(centres).covariance[0, 0])
        k = present.to_numpy(float)
        mass = [(ndtr((chunk[:, None] - centres + 0.5) / h) - ndtr((chunk[:, None] - centres - 0.5) / h)).mean(1)
                for chunk in np.array_split(k, max(1, len(k) // 256))]
        out[~missing] += np.log(np.concatenate(mass)) if len(k) else 0.0
    elif kind == "zero_inflated":
        x, zeros = present.to_numpy(float), (seen == 0).sum()
        p_zero = (zeros + 1) / (len(seen) + 2)
        positive = seen[seen > 0].to_numpy(float)
        density = gaussian_kde(positive).logpdf(np.where(x > 0, x, positive[0])) if len(positive) > 1 else np.zeros(len(x))
        out[~missing] += np.where(x == 0, np.log(p_zero), np.log1p(-p_zero) + density)
    else:
        out[~missing] += gaussian_kde(seen.to_numpy(float)).logpdf(present.to_numpy(float))
    return out


def independent_log_prob(train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str], sum_out_blanks: bool = False) -> np.ndarray:
    """(n,) log-likelihood of each test row when every column in `kinds` is modelled alone. A blank test
    cell in a column with no blank training cell is impossible (-inf), or summed out (0) with sum_out_blanks."""
    return sum(_column_log_prob(train[c], test[c], kinds[c], sum_out_blanks) for c in kinds)


def sdv_metadata(train: pd.DataFrame, kinds: dict[str, str], table: str = "table") -> dict:
    """SDV/SDMetrics metadata: object columns categorical, the rest numerical (codes stay numbers, as the data has them)."""
    columns = {c: {"sdtype": "categorical" if not pd.api.types.is_numeric_dtype(train[c]) else "numerical"} for c in train}
    return {"tables": {table: {"columns": columns}}, "METADATA_SPEC_VERSION": "V2"}


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: dict) -> float:
    """SDMetrics' quality report, overall score (column shapes and pair trends, 0-1); metadata as from sdv_metadata."""
    from sdmetrics.reports import QualityReport

    table = next(iter(metadata["tables"]))
    report = QualityReport()
    report.generate({table: real}, {table: synthetic[real.columns]}, metadata, verbose=False)
    return float(report.get_score())
