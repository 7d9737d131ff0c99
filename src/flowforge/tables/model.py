"""TableFlow: a mixed table's exact likelihood, on the original scale of every column.

    log p(row) = log[ (1 - w) P(c) q(y | onehot(c))  +  w F(c) N(y) ]  +  sum_j log|dy_j/dx_j|

c are the categorical cells (CategoricalAR, exact), y the continuous cells after their support
maps (support.py; integers and dates dequantised, latent.py), q a conditional flow (flowforge's
builders with context_features). F(c) N(y) is GaussianBaseline fitted to the same rows, mixed in
with weight w = TAIL_WEIGHT (baseline.py): no row can score more than -log w nats worse than under
it (a flow's tails and the gaps between its clusters can be far thinner than the data's), and the
mixture costs at most -log(1 - w) ~ w nats on any row. Identifier and constant columns are left out.
"""
from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import FlowforgeError
from ..flows import MODELS, build_model
from ..flows.flow import Flow
from ..train import fit
from ..train.history import History
from . import notices, small
from .baseline import TAIL_WEIGHT, GaussianBaseline
from .checkpoint import FORMAT, TableCheckpoint, continued, read_table_checkpoint, rows_fingerprint
from .discrete import CategoricalAR, fit_categorical, one_hot, smoothed_log_frequencies
from .encode import decode, encode
from .infer import infer_schema
from .latent import from_latents
from .schema import Schema
from .scoring import score
from .support import at_precision, decimals_of, is_dequantised
from .training import (
    DEFAULT_STEPS,
    MISSING,
    SMALL_TABLE_ROWS,
    copies_for,
    default_lr,
    flow_data,
    rows_to_keep,
    split,
    with_blank_levels,
)

# The flow's size, measured on the tables benchmark's six tables below 2,000 training rows, seeds 0-2
# (benchmarks/RESULTS.md, "Tables: TableFlow's size"): 2 layers did worse on every table where the flow
# moves, 6 were mixed (9 of 15 seed pairs better than 4) at 1.5x the time; 128x128 beat 64x64 in 11 of 15
# (Boston 28.27 -> 27.79 nats, iris 2.68 -> 2.48, every seed; within 0.02 elsewhere). Larger tables had 128x128 already.
DEFAULT_LAYERS = 4
DEFAULT_HIDDEN = (128, 128)

OPTIONS = ("model", "seed", "steps", "missing", "layers", "hidden", "lr", "batch_size", "val_fraction", "patience", "samples")


@dataclass
class TableFlow:
    """Fit, sample and score a pandas DataFrame (the model: this module's docstring).

    Args:
        schema: the columns' kinds; None infers them from the table given to fit (infer_schema).
        model: the flowforge builder of the continuous part (flowforge.MODELS), with
            context_features = the categories' one-hots.
        seed: the validation split, initial weights, dequantisation noise and training order.
        steps: training steps of each part (None: DEFAULT_STEPS, 3000), early-stopped on held-out rows.
        missing: "drop" rows with blank cells (their counts, per column, in a warning), or
            "level": blank categorical cells are a level of their own (blank numbers still drop).
        layers, hidden, lr: the flow's size and learning rate (None: DEFAULT_LAYERS spline
            couplings of DEFAULT_HIDDEN, lr from training.default_lr).
        batch_size, val_fraction, patience: as in flowforge.fit.
        samples: dequantisation draws per row when scoring integer and date columns.

    After fit, `metrics` says whether log_prob is exact or a lower bound (dequantised columns),
    whether the flow moved from its starting Gaussian (and why not), rows used and dropped, time.
    Sampled real-valued cells are written at the precision of the column's training values
    (`decimals`: e.g. depth 61.5, carat 0.23; kept inside the column's support), as the data is.
    """

    schema: Schema | None = None
    model: str = "nsf"
    seed: int = 0
    steps: int | None = None
    missing: str = "drop"
    layers: int | None = None
    hidden: tuple[int, ...] | None = None
    lr: float | None = None
    batch_size: int = 256
    val_fraction: float = 0.15
    patience: int = 20
    samples: int = 16
    metrics: dict[str, Any] = field(default_factory=dict)
    decimals: dict[str, int] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The constructor's arguments but the schema, as JSON stores them."""
        options = {k: getattr(self, k) for k in OPTIONS}
        options["hidden"] = list(options["hidden"]) if options["hidden"] else None
        return options

    def fit(self, df: pd.DataFrame, *, checkpoint: str | os.PathLike | None = None, save_every: int | None = None,
            resume: bool = False, should_stop: Callable[[], bool] | None = None) -> TableFlow:
        """Fit the table's model to the rows of `df`.

        Args:
            checkpoint: a file for the training state (tables/checkpoint.py; no pickle), written
                every `save_every` steps of the flow, at the end, and when `should_stop` asks.
            resume: continue from `checkpoint` (the same rows, schema and options; `steps` may
                grow): on the CPU the result equals a fit that never stopped.
            should_stop: polled at each flow step; True ends training after that step with the
                checkpoint written, and this TableFlow stays unfitted (`metrics["interrupted_at_step"]`)
                until a fit with resume=True finishes it.
        """
        started = time.perf_counter()
        if self.missing not in MISSING:
            raise FlowforgeError(f"missing={self.missing!r}: choose from {', '.join(MISSING)}")
        if (resume or save_every or should_stop) and checkpoint is None:
            raise FlowforgeError("fit: resume, save_every and should_stop need checkpoint=PATH (the file the training state goes to)")
        self.schema = self.schema or infer_schema(df)
        if self.missing == "level":
            self.schema = with_blank_levels(self.schema, df)
        left_out = notices.left_out(self.schema)
        if left_out:
            warnings.warn(left_out, stacklevel=2)
        encoded = encode(self.schema, df)
        keep = rows_to_keep(self.schema, df, encoded, self.missing)
        codes, x = torch.from_numpy(encoded.codes[keep]), encoded.continuous[keep]
        train, val = split(len(x), self.val_fraction, self.seed)
        few = notices.few_values(self.schema, x[train])
        if few:
            warnings.warn(few, stacklevel=2)
        record = self._checkpoint_record(x, encoded.codes[keep])
        saved = read_table_checkpoint(checkpoint, record) if resume else None
        self.metrics.pop("interrupted_at_step", None)
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(self.seed)
            self._fit_discrete(codes, train, val, saved)
            saving = None if checkpoint is None else {"path": checkpoint, "record": {**record, "categorical": self.metrics["categorical"]},
                                                      "save_every": save_every, "should_stop": should_stop}
            self._fit_continuous(x, codes, train, val, saved, saving)
        if "interrupted_at_step" in self.metrics:
            return self
        self.baseline = GaussianBaseline(self.schema, seed=self.seed, samples=self.samples).fit(df)
        self.decimals = {c.name: d for c in self.schema.continuous if not is_dequantised(c) or c.kind == "nonnegative"
                         if (d := decimals_of(df[c.name].dropna().to_numpy(float))) is not None}
        self.metrics.update(self._likelihood_kind(), rows_used=int(keep.sum()), rows_dropped=int((~keep).sum()),
                            blank_cells=notices.blank_cells(self.schema, df), blank_levels=notices.blank_levels(self.schema, df),
                            fit_seconds=round(time.perf_counter() - started, 2))
        return self

    def _checkpoint_record(self, x: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
        """What a checkpoint was fitted to: a resumed fit must match it (steps may change)."""
        return {"format": FORMAT, "schema": self.schema.to_json(), "options": self.options,
                "steps": self.steps or DEFAULT_STEPS, "rows": rows_fingerprint(x, codes)}

    def _fit_discrete(self, codes: torch.Tensor, train: np.ndarray, val: np.ndarray, saved: dict[str, Any] | None = None) -> None:
        sizes = [len(c.levels) for c in self.schema.discrete]
        priors = [smoothed_log_frequencies(codes[train, k].numpy(), s) for k, s in enumerate(sizes)]
        self.discrete = CategoricalAR(sizes, priors)  # built when resuming too: the flow's initial weights follow in torch's stream
        if saved is not None:
            self.discrete.load_state_dict(saved["categorical"])
            self.metrics["categorical"] = saved["record"]["categorical"]
            return
        result = fit_categorical(self.discrete, codes[train], codes[val], self.steps or DEFAULT_STEPS, self.seed)
        self.metrics["categorical"] = result

    def _build_flow(self, features: int, rows: int) -> Flow:
        small = rows < SMALL_TABLE_ROWS
        kwargs = {"layers": self.layers or DEFAULT_LAYERS, "hidden": tuple(self.hidden or DEFAULT_HIDDEN),
                  "context_features": sum(len(c.levels) for c in self.schema.discrete),
                  "standardize": "whiten" if small else True, "seed": self.seed}
        if self.model == "nsf" and features == 1:
            kwargs["autoregressive"] = True  # a coupling needs two features
        builder = MODELS.get(self.model.lower())
        if builder is not None and "seed" not in inspect.signature(builder).parameters:
            del kwargs["seed"]  # realnvp and nice have no random choices to seed (torch's seed sets their weights)
        return build_model(self.model, features=features, **kwargs)

    def _fit_continuous(self, x: np.ndarray, codes: torch.Tensor, train: np.ndarray, val: np.ndarray, saved: dict[str, Any] | None = None,
                        saving: dict[str, Any] | None = None) -> None:
        """Fit the flow; `saved`: a checkpoint to resume (read_table_checkpoint), `saving`: where and
        when to write one (path, record, save_every, should_stop)."""
        self.flow, self.history = None, History()
        if not self.schema.continuous:
            return
        hot = one_hot(codes, self.discrete.sizes)
        generator = torch.Generator().manual_seed(self.seed)
        copies = copies_for(len(train))
        y_train, c_train = flow_data(self.schema, x[train], hot[train], copies, generator)
        y_val, c_val = flow_data(self.schema, x[val], hot[val], copies, generator)
        self.flow = self._build_flow(x.shape[1], len(train))
        initial = small.start_state(self.flow)
        context = {"context": c_train, "val_context": c_val} if c_train.shape[1] else {}
        if saving is not None:
            context.update(on_checkpoint=TableCheckpoint(saving["path"], self.flow, saving["record"], self.discrete.state_dict()),
                           checkpoint_every=saving["save_every"], should_stop=saving["should_stop"])
        if saved is not None:
            self.flow.load_state_dict(saved["weights"])
            context["resume"] = continued(saved["train_state"], saved["record"]["steps"], self.steps or DEFAULT_STEPS)
        lr = self.lr or default_lr(len(train))
        with warnings.catch_warnings():
            # the dequantised copies of a row repeat its other cells by design (a nonnegative column's
            # positive values, every column that is not dequantised): not the repeats fit warns about
            warnings.filterwarnings("ignore", message=".*repeat another row exactly", category=UserWarning)
            # fit's advice for numeric arrays (column indices, dequantise): notices.few_values says it by name
            warnings.filterwarnings("ignore", message=".*(takes only .* distinct values|is constant \\()", category=UserWarning)
            history = fit(self.flow, y_train, y_val, steps=self.steps or DEFAULT_STEPS, batch_size=self.batch_size, lr=lr,
                          seed=self.seed, patience=self.patience, progress=False, **context)
        self.history = history
        if history.interrupted:  # the checkpoint holds the live weights; resume=True goes on from them
            self.metrics["interrupted_at_step"] = len(history.step) + history.skipped_steps
            return
        self.flow.eval()
        stayed = history.best_step == 0
        test = small.keep_trained(self.flow, initial, y_val, c_val, len(val)) if len(train) < SMALL_TABLE_ROWS and not stayed else None
        self.metrics["flow"] = {"best_step": history.best_step, "best_val_nll": history.best_val_nll,
                                "start_val_nll": history.val_nll[0] if history.val_nll else None,
                                "stayed_at_gaussian": stayed, "dequantised_copies": copies, "lr": lr,
                                "model": self.flow.spec}
        if stayed:
            start = "full-covariance" if len(train) < SMALL_TABLE_ROWS else "per-column"
            self.metrics["flow"]["why"] = (f"the held-out NLL of {len(val)} rows never improved on the flow's start, "
                                           f"the {start} Gaussian fitted to the rows, so the flow kept it")
        if test is not None:
            self.metrics["flow"].update(validation_gain=test["gain"], validation_gain_error=test["gain_error"])
        if test is not None and not test["kept"]:
            self.metrics["flow"].update(stayed_at_gaussian=True, why=(
                f"on its {len(val)} validation rows the trained flow (best at step {history.best_step}) was not clearly better "
                f"than its start, the full-covariance Gaussian of the {len(train)} training rows (mean gain "
                f"{test['gain']:.2f} +- {test['gain_error']:.2f} nats per row; kept above {test['margin']:.2f} standard errors): "
                "too few rows to tell a flow's extra shape from chance, so the flow was reset to that Gaussian"))

    def _likelihood_kind(self) -> dict[str, Any]:
        dequantised = [c.name for c in self.schema.continuous if is_dequantised(c)]
        kind = "lower bound" if dequantised else "exact"
        return {"likelihood": kind, "dequantised": dequantised, "dequantisation_samples": self.samples if dequantised else 0}

    def _check_fitted(self) -> None:
        if "interrupted_at_step" in self.metrics:
            raise FlowforgeError(f"this TableFlow's fit stopped at step {self.metrics['interrupted_at_step']}: "
                                 "finish it with fit(df, checkpoint=..., resume=True)")
        if not hasattr(self, "discrete") or not hasattr(self, "baseline"):
            raise FlowforgeError("this TableFlow is not fitted: call fit(df) or TableFlow.load(folder)")

    @torch.no_grad()
    def log_prob(self, df: pd.DataFrame) -> np.ndarray:
        """(n,) float64 log p(row) in nats on the original scale (scoring.py): -inf for unseen levels
        or values outside a support, the exact marginal over blank categorical cells, NaN for blank
        continuous cells, each with a warning naming the rows. Dequantised columns make it a lower
        bound in expectation (metrics["likelihood"])."""
        self._check_fitted()
        return score(self, df)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """n synthetic rows: the original columns, order and dtypes, every cell in its column's support."""
        self._check_fitted()
        generator = torch.Generator().manual_seed(seed)
        codes = self.discrete.sample(n, generator)
        x = np.zeros((n, 0))
        if self.flow is not None:
            hot = one_hot(codes, self.discrete.sizes)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                x = self._sample_continuous(hot)
        baseline = getattr(self, "baseline", None)
        if baseline is not None:  # the mixture's w share of rows comes from the baseline
            tail = torch.rand(n, generator=generator) < TAIL_WEIGHT
            y, tail_codes = baseline.sample_parts(int(tail.sum()), generator)
            codes[tail] = tail_codes
            x[tail.numpy()] = from_latents(self.schema, y)
        out = decode(self.schema, x, codes.numpy())
        for c in self.schema.continuous:
            if c.name in self.decimals:
                out[c.name] = at_precision(c, out[c.name].to_numpy(float), self.decimals[c.name])
        return out

    def _sample_continuous(self, hot: torch.Tensor) -> np.ndarray:
        """Raw values for each row's context; rows the flow maps to non-finite values are drawn again."""
        context = hot if hot.shape[1] else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = from_latents(self.schema, self.flow.sample(len(hot), context=context).double())
            for _ in range(20):
                bad = ~np.isfinite(x).all(1)
                if not bad.any():
                    return x
                again = self.flow.sample(int(bad.sum()), context=context[bad] if context is not None else None)
                x[bad] = from_latents(self.schema, again.double())
        raise FlowforgeError("sample: the flow keeps producing non-finite values; refit with more steps or a smaller lr")

    def save(self, folder: str) -> None:
        from .storage import save_table

        save_table(self, folder)

    @classmethod
    def load(cls, folder: str) -> TableFlow:
        from .storage import load_table

        return load_table(folder)
