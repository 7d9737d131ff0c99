"""Mixed tables as they come: text categories, counts, positive and bounded columns, dates, blank
cells, with an exact likelihood on the original scale of every column.

    log p(row) = log P(categories) + log q(continuous after support maps | categories) + log|Jacobian|

`infer_schema` names each column's kind (schema.py, infer.py), `TableFlow` fits, samples, scores,
saves and loads (model.py), `GaussianBaseline` is the yardstick (baseline.py).

Example:
    >>> import warnings, numpy as np, pandas as pd
    >>> from flowforge.tables import TableFlow, infer_schema
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"price": rng.lognormal(3, 1, 200), "cut": rng.choice(["fair", "good"], 200)})
    >>> print(infer_schema(df, overrides="price:positive"))
    column  kind         details
    price   positive
    cut     categorical  2 levels: fair, good
    >>> model = TableFlow(steps=20, layers=1, hidden=(8,)).fit(df)
    >>> sample = model.sample(5, seed=0)
    >>> bool((sample["price"] > 0).all()), set(sample["cut"]) <= {"fair", "good"}, model.metrics["likelihood"]
    (True, True, 'exact')
    >>> model.log_prob(df.head(3)).shape
    (3,)
"""
from .baseline import GaussianBaseline
from .files import read_table, write_table
from .infer import infer_schema
from .model import TableFlow
from .schema import Column, Schema

__all__ = ["Column", "GaussianBaseline", "Schema", "TableFlow", "infer_schema", "read_table", "write_table"]
