"""TrainConfig: everything `flowforge train` needs to reproduce a run, as one frozen dataclass."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import FlowforgeError, check_int
from ..flows.builders import MEMORY
from ..flows.registry import MODELS
from ..train.flow_matching import COUPLINGS
from ..train.objectives import OBJECTIVES


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, optimisation budget, held-out splits and the run folder.

    The defaults are the command line's defaults: RealNVP with 8 couplings of (256, 256) MLPs,
    2000 Adam steps of batch 512 at lr 1e-3, a 20% test split, 10% of the rest for validation.
    A table of fewer than 2,000 training rows gets 4 couplings of (64, 64) unless layers or
    hidden are set (cli/small_data.py), and an image run takes image defaults (cli/image_run.py).

    Args:
        data: a toy name, a packaged dataset name or a .npy/.npz/.csv path (see flowforge.data).
        model: a name in flowforge.MODELS.
        context_columns: comma-separated header names or 0-based indices of a table's columns that
            are the condition: the flow learns p(x | context) over the other columns (None: p(x)).
        circular: comma-separated header names or 0-based indices of columns holding angles in
            radians (nsf and nsf-ar: circular splines, samples in [-pi, pi); None: none).
        n: rows to generate for toy datasets (None: the dataset's default).
        layers, hidden: the model's depth and conditioner widths.
        steps, batch_size, lr, seed: the optimisation budget and its randomness.
        test_fraction: share of rows held out for the final test NLL, never trained on.
        val_fraction: share of the remaining rows used for validation (0: none).
        patience: evaluations without improvement before stopping (None: never stop early).
        threads: CPU threads for torch (None: torch's default, usually one per core).
        progress: show a progress bar.
        save_every: also write a resumable RUN/model.pt every this many steps (None: only at the
            end and when interrupted).
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N"; under torchrun each rank
            uses its LOCAL_RANK's GPU.
        precision: "fp32", or "bf16"/"fp16" autocast for the conditioner networks only.
        compile: torch.compile the flow (falls back to eager with a warning where unsupported).
        memory: "standard", or "invertible": training memory constant in depth, each layer's input
            recomputed from its output by the layer's inverse (about 1.3x the step time).
        objective: what training minimises: "likelihood", or "flow-matching" (a cnf's vector field
            by conditional flow matching; validation and test still use the exact likelihood).
        coupling: flow matching's pairing of data and noise: "independent" or "ot" (minibatch OT).
        ema: the decay of a moving average of the weights, which validation, the saved model and
            the test NLL use (None: none); fit's `ema`.
        time_power: flow matching's times t = u^time_power (1: uniform); fit's `time_power`.
        out: the run folder (None: runs/<data>-<model>-<timestamp>).
        log: also send the run to an experiment tracker, "tensorboard" (RUN/tensorboard/) or
            "mlflow" (MLflow's default store, MLFLOW_TRACKING_URI); None: neither.
        given: the options set explicitly (the command line records them): an image run keeps
            these even where they equal the vector defaults, and takes image defaults for the rest.
    """

    data: str = "moons"
    model: str = "realnvp"
    context_columns: str | None = None
    n: int | None = None
    layers: int = 8
    hidden: tuple[int, ...] = (256, 256)
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    patience: int | None = 20
    threads: int | None = None
    progress: bool = True
    save_every: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    memory: str = "standard"
    objective: str = "likelihood"
    coupling: str = "independent"
    out: str | None = None
    given: tuple[str, ...] = ()
    log: str | None = None
    circular: str | None = None
    ema: float | None = None
    time_power: float = 1.0

    def __post_init__(self) -> None:
        # lists come from JSON and argparse; a frozen dataclass normalises through object.__setattr__
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "given", tuple(self.given))
        for name in ("layers", "steps", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("seed", self.seed, minimum=0)
        if self.n is not None:
            check_int("n", self.n, minimum=2)
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1)
        if self.patience is not None:
            check_int("patience", self.patience, minimum=1)
        if self.save_every is not None:
            check_int("save_every", self.save_every, minimum=1)
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise FlowforgeError(f"unknown device {self.device!r}; choose from auto, cpu, cuda (or cuda:N)")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise FlowforgeError(f"unknown precision {self.precision!r}; choose from fp32, bf16, fp16")
        if self.log not in (None, "tensorboard", "mlflow"):
            raise FlowforgeError(f"unknown log {self.log!r}; choose from tensorboard, mlflow")
        if self.memory not in MEMORY:
            raise FlowforgeError(f"unknown memory {self.memory!r}; choose from {', '.join(MEMORY)}")
        if self.objective not in OBJECTIVES:
            raise FlowforgeError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.coupling not in COUPLINGS:
            raise FlowforgeError(f"unknown coupling {self.coupling!r}; choose from {', '.join(COUPLINGS)}")
        if self.ema is not None and (not _is_number(self.ema) or not 0 <= self.ema < 1):
            raise FlowforgeError(f"ema must be a decay in [0, 1), got {self.ema!r}")
        if not _is_number(self.time_power) or not self.time_power > 0:
            raise FlowforgeError(f"time_power must be a positive number, got {self.time_power!r}")
        if not self.hidden:
            raise FlowforgeError("hidden: give at least one layer width")
        for width in self.hidden:
            check_int("hidden", width, minimum=1)
        if not _is_number(self.lr) or not self.lr > 0:
            raise FlowforgeError(f"lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.test_fraction) or not 0 <= self.test_fraction < 1:
            raise FlowforgeError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}")
        if not _is_number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise FlowforgeError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.data, str) or not self.data:
            raise FlowforgeError(f"data must be a dataset name or a file path, got {self.data!r}")
        if self.context_columns is not None and (not isinstance(self.context_columns, str) or not self.context_columns.strip()):
            raise FlowforgeError(f"context_columns must be comma-separated column names or indices, got {self.context_columns!r}")
        if not isinstance(self.model, str) or self.model.lower() not in MODELS:
            raise FlowforgeError(f"unknown model {self.model!r}; choose from {', '.join(sorted(MODELS))}")
        object.__setattr__(self, "model", self.model.lower())

    def left_at_default(self, name: str) -> bool:
        """Whether option `name` was not given explicitly and still holds TrainConfig's default."""
        default = next(f.default for f in fields(self) if f.name == name)
        return name not in self.given and getattr(self, name) == default

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (hidden as a list)."""
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of to_dict; an unknown key fails with its name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FlowforgeError(f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
