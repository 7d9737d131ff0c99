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
from .copula import CopulaMarginals
from .discrete import CategoricalAR, fit_categorical, one_hot, smoothed_log_frequencies
from .encode import decode, encode
from .infer import infer_schema
from .latent import from_latents
from .missingness import PatternModel, Patterns, pattern_prior
from .observed import estimate
from .schema import Schema
from .scoring import joint_log_prob, score
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

KEEP_TEST_SAMPLES = 256  # importance draws per incomplete row in small.keep_trained's test
# The flow's size (benchmarks/RESULTS.md, "Tables: TableFlow's size" and the note after it): 2 layers did
# worse on every small table where the flow moves, 6 were mixed at 1.5x the time. 128x128 beat 64x64 on the
# six small tables with blank rows dropped (Boston 28.27 -> 27.79 nats, iris 2.68 -> 2.48), but with the
# blank-pattern model (missing="model") it lost airquality seed 2 to the Gaussian baseline (22.007 against
# 21.970; 21.613 at 64x64), so small tables keep 64x64.
DEFAULT_LAYERS = 4
DEFAULT_HIDDEN = (128, 128)
SMALL_HIDDEN = (64, 64)  # below SMALL_TABLE_ROWS training rows

OPTIONS = ("model", "seed", "steps", "missing", "layers", "hidden", "lr", "batch_size", "val_fraction", "patience", "samples",
           "marginals")
MARGINALS = ("support", "copula")


@dataclass
class TableFlow:
    """Fit, sample and score a pandas DataFrame (the model: this module's docstring).

    Args:
        schema: the columns' kinds; None infers them from the table given to fit (infer_schema).
        model: the flowforge builder of the continuous part (flowforge.MODELS), with
            context_features = the categories' one-hots.
        seed: the validation split, initial weights, dequantisation noise and training order.
        steps: training steps of each part (None: DEFAULT_STEPS, 3000), early-stopped on held-out rows.
        missing: "model" (the default): blank categories are a level and which numeric cells are
            blank is modelled, P(pattern | categories) (missingness.py), on every row; the flow
            learns from the complete rows; samples have blank cells, and log_prob of a row with
            blank numbers is an importance-sampling estimate of its observed cells' density
            (observed.py). "drop": rows with blank cells are left out (their counts, per column,
            in a warning). "level": blank categorical cells are a level of their own (blank numbers
            still drop the row).
        layers, hidden, lr: the flow's size and learning rate (None: DEFAULT_LAYERS spline
            couplings of SMALL_HIDDEN below SMALL_TABLE_ROWS training rows and DEFAULT_HIDDEN
            above, lr from training.default_lr).
        batch_size, val_fraction, patience: as in flowforge.fit.
        samples: dequantisation draws per row when scoring integer and date columns.
        marginals: "support" (the default): the flow sees the continuous cells after their support
            maps; "copula": then also through each column's kernel-smoothed empirical CDF and the
            normal quantile (copula.py), so the flow starts as a Gaussian copula with those marginals.

    After fit, `metrics` says whether log_prob is exact or a lower bound (dequantised columns),
    whether the flow moved from its starting Gaussian (and why not), rows used and dropped, time.
    Sampled real-valued cells are written at the precision of the column's training values
    (`decimals`: e.g. depth 61.5, carat 0.23; kept inside the column's support), as the data is.
    """

    schema: Schema | None = None
    model: str = "nsf"
    seed: int = 0
    steps: int | None = None
    missing: str = "model"
    layers: int | None = None
    hidden: tuple[int, ...] | None = None
    lr: float | None = None
    batch_size: int = 256
    val_fraction: float = 0.15
    patience: int = 20
    samples: int = 16
    marginals: str = "support"
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
        if self.marginals not in MARGINALS:
            raise FlowforgeError(f"marginals={self.marginals!r}: choose from {', '.join(MARGINALS)}")
        if (resume or save_every or should_stop) and checkpoint is None:
            raise FlowforgeError("fit: resume, save_every and should_stop need checkpoint=PATH (the file the training state goes to)")
        self.schema = self.schema or infer_schema(df)
        if self.missing in ("level", "model"):
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
        # missing="model": the categories and the blank pattern are learned from every row, the flow from the complete ones
        modelled = self._fit_patterns(df, encoded) if self.missing == "model" else keep
        all_codes = torch.from_numpy(encoded.codes[modelled])
        all_train, all_val = split(len(all_codes), self.val_fraction, self.seed)
        # the tail mixture's Gaussian (fitted to the complete rows; no random draws but its own generator's)
        self.baseline = GaussianBaseline(self.schema, seed=self.seed, samples=self.samples).fit(df)
        incomplete = modelled & ~keep  # missing="model": rows the flow never sees, evidence in small.keep_trained
        self._held_out = (encoded.codes[incomplete], encoded.continuous[incomplete])
        record = self._checkpoint_record(x, encoded.codes[modelled])
        saved = read_table_checkpoint(checkpoint, record) if resume else None
        self.metrics.pop("interrupted_at_step", None)
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(self.seed)
            self._fit_discrete(all_codes, all_train, all_val, saved)
            if getattr(self, "pattern_model", None) is not None:
                self.metrics["patterns"]["marginal"] = self.pattern_model.set_marginal(self.discrete, self.seed)
            saving = None if checkpoint is None else {"path": checkpoint, "record": {**record, "categorical": self.metrics["categorical"]},
                                                      "save_every": save_every, "should_stop": should_stop}
            self._fit_continuous(x, codes, train, val, saved, saving)
        del self._held_out
        if "interrupted_at_step" in self.metrics:
            return self
        self.decimals = {c.name: d for c in self.schema.continuous if not is_dequantised(c) or c.kind == "nonnegative"
                         if (d := decimals_of(df[c.name].dropna().to_numpy(float))) is not None}
        blank = notices.blank_cells(self.schema, df)
        self.metrics.update(self._likelihood_kind(), rows_used=int(modelled.sum()), rows_dropped=int((~modelled).sum()),
                            blank_cells={} if self.missing == "model" else blank, blank_levels=notices.blank_levels(self.schema, df),
                            fit_seconds=round(time.perf_counter() - started, 2))
        if self.missing == "model":
            self.metrics.update(flow_rows=int(keep.sum()), blank_cells_modelled=blank)
        return self

    def _fit_patterns(self, df: pd.DataFrame, encoded) -> np.ndarray:
        """missing="model": fit P(blank pattern | categories) on every row (missingness.py); the rows modelled."""
        self.patterns = Patterns.of(self.schema, df)
        pattern = self.patterns.codes(self.schema, np.isnan(encoded.continuous))
        modelled = (encoded.codes >= 0).all(1) & (pattern >= 0)
        self.pattern_model = None
        if self.patterns.columns:
            sizes, levels = [len(c.levels) for c in self.schema.discrete], len(self.patterns.levels)
            self.pattern_model = PatternModel(sizes, levels, pattern_prior(pattern[modelled], levels))
            self.pattern_model.fit(torch.from_numpy(encoded.codes[modelled]), torch.from_numpy(pattern[modelled]))
            self.metrics["patterns"] = {"columns": list(self.patterns.columns),
                                        "training_rows": {"".join("B" if b else "." for b in level): int((pattern[modelled] == k).sum())
                                                          for k, level in enumerate(self.patterns.levels)}}
        return modelled

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
        kwargs = {"layers": self.layers or DEFAULT_LAYERS, "hidden": tuple(self.hidden or (SMALL_HIDDEN if small else DEFAULT_HIDDEN)),
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
        self.copula = CopulaMarginals.fit(y_train, rows=len(train)) if self.marginals == "copula" else None
        if self.copula is not None:  # the flow models z = Phi^-1(F_h(y)); the map's log-det is the same for every flow
            y_train, y_val = self.copula(y_train)[0].float(), self.copula(y_val)[0].float()
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
        extra = self._incomplete_log_prob if len(self._held_out[0]) else None
        test = small.keep_trained(self.flow, initial, y_val, c_val, len(val), extra) if len(train) < SMALL_TABLE_ROWS and not stayed else None
        self.metrics["flow"] = {"best_step": history.best_step, "best_val_nll": history.best_val_nll,
                                "start_val_nll": history.val_nll[0] if history.val_nll else None,
                                "stayed_at_gaussian": stayed, "dequantised_copies": copies, "lr": lr,
                                "model": self.flow.spec}
        if stayed:
            start = "full-covariance" if len(train) < SMALL_TABLE_ROWS else "per-column"
            start += " Gaussian copula (kernel-smoothed marginals)" if self.copula is not None else " Gaussian"
            self.metrics["flow"]["why"] = (f"the held-out NLL of {len(val)} rows never improved on the flow's start, "
                                           f"the {start} fitted to the rows, so the flow kept it")
        if test is not None:
            self.metrics["flow"].update(validation_gain=test["gain"], validation_gain_error=test["gain_error"])
        if test is not None and extra is not None:
            self.metrics["flow"]["incomplete_rows_tested"] = test["rows"] - len(val)
        incomplete = f" and the {test['rows'] - len(val)} training rows with blank numbers" if test is not None and extra is not None else ""
        if test is not None and not test["kept"]:
            self.metrics["flow"].update(stayed_at_gaussian=True, why=(
                f"on its {len(val)} validation rows{incomplete} the trained flow (best at step {history.best_step}) was not clearly better "
                f"than its start, the full-covariance {'Gaussian copula' if self.copula is not None else 'Gaussian'} of the {len(train)} training rows ({small.describe_gain(test)}): "
                "too few rows to tell a flow's extra shape from chance, so the flow was reset to that Gaussian"))

    def _incomplete_log_prob(self) -> np.ndarray:
        """log p of the observed cells of the training rows with blank numbers under the flow as it is now
        (importance sampling with fixed draws, so two states of the flow are compared on the same draws)."""
        codes, x = self._held_out
        return estimate(self, codes, x, joint_log_prob, samples=KEEP_TEST_SAMPLES, seed=self.seed + 3)[0]

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
        continuous cells (missing="model": an importance-sampling estimate of the density of the
        row's other cells given which are blank; log_prob_details has its standard error), each with
        a warning naming the rows. Dequantised columns make it a lower
        bound in expectation (metrics["likelihood"])."""
        self._check_fitted()
        return score(self, df)[0]

    @torch.no_grad()
    def log_prob_pattern(self, df: pd.DataFrame) -> np.ndarray:
        """(n,) log P(m) of each row's blank pattern m, which numeric cells are blank (missing="model";
        P(m) = sum over the categories c of P(c) P(m | c)). log_prob(df), the density of a row's cells
        given m, plus log_prob_pattern(df) is the log-probability of the row as it is, blanks included.
        0 for the complete rows of a model whose training rows had no blank numeric cell; -inf for a
        blank where training had none."""
        self._check_fitted()
        if self.missing != "model":
            raise FlowforgeError(f"log_prob_pattern: this TableFlow was fitted with missing={self.missing!r}; "
                                 "only missing='model' models which cells are blank")
        encoded = encode(self.schema, df)
        pattern = self.patterns.codes(self.schema, np.isnan(encoded.continuous))
        out = np.full(len(df), -np.inf)
        if self.pattern_model is None:
            out[pattern >= 0] = 0.0
        else:
            out[pattern >= 0] = self.pattern_model.log_marginal.numpy()[pattern[pattern >= 0]]
        return out

    @torch.no_grad()
    def log_prob_details(self, df: pd.DataFrame) -> pd.DataFrame:
        """log_prob with what kind of number each is: a DataFrame (df's index) of `log_prob`,
        `estimated` (True where it is an importance-sampling estimate: blank numeric cells, missing=
        "model"), `standard_error` (of those estimates; NaN elsewhere) and, with missing="model",
        `log_prob_pattern`."""
        self._check_fitted()
        log_prob, error = score(self, df)
        out = pd.DataFrame({"log_prob": log_prob, "estimated": ~np.isnan(error), "standard_error": error}, index=df.index)
        if self.missing == "model":
            out["log_prob_pattern"] = self.log_prob_pattern(df)
        return out

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
        if getattr(self, "pattern_model", None) is not None:  # missing="model": blank the cells each row's pattern says
            blank = self.patterns.blank_cells(self.schema, self.pattern_model.sample(codes, generator).numpy())
            for j, c in enumerate(self.schema.continuous):
                if blank[:, j].any():
                    out[c.name] = out[c.name].where(~blank[:, j])  # whole numbers become float64 with NaN, dates NaT
        return out

    def _sample_continuous(self, hot: torch.Tensor) -> np.ndarray:
        """Raw values for each row's context; rows the flow maps to non-finite values are drawn again."""
        context = hot if hot.shape[1] else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = from_latents(self.schema, self._latents(self.flow.sample(len(hot), context=context)))
            for _ in range(20):
                bad = ~np.isfinite(x).all(1)
                if not bad.any():
                    return x
                again = self.flow.sample(int(bad.sum()), context=context[bad] if context is not None else None)
                x[bad] = from_latents(self.schema, self._latents(again))
        raise FlowforgeError("sample: the flow keeps producing non-finite values; refit with more steps or a smaller lr")

    def _latents(self, z: torch.Tensor) -> torch.Tensor:
        """The flow's samples as latents y, float64 (through the copula's inverse with marginals="copula")."""
        copula = getattr(self, "copula", None)
        return copula.inverse(z) if copula is not None else z.double()

    def save(self, folder: str) -> None:
        from .storage import save_table

        save_table(self, folder)

    @classmethod
    def load(cls, folder: str) -> TableFlow:
        from .storage import load_table

        return load_table(folder)
