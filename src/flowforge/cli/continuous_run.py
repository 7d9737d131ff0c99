"""A run of a continuous flow (`--model cnf`): its model from train's options (tables and images),
and the solver's function-evaluation counts that metrics.json reports (`sample_nfe`, `log_prob_nfe`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import FlowforgeError
from ..flows import Flow, build_model
from ..flows.continuous import ContinuousFlow
from .config import TrainConfig
from .small_data import SMALL_DATA_ROWS

CNF_HIDDEN = (256, 256, 256)  # --hidden's default for cnf: a smooth field needs depth more than width
NFE_ROWS = 1000  # rows of the log_prob and sample solves whose evaluations metrics.json counts
MLP_FIELD_MAX_VALUES = 256  # images of at most this many values (C * H * W) get the MLP field, larger ones the U-Net
IMAGE_CNF_HIDDEN = {"mlp": (512, 512, 512), "unet": (64,)}  # --hidden's default for an image cnf, by field


def is_cnf(config: TrainConfig) -> bool:
    return config.model == "cnf"


def build_cnf(config: TrainConfig, features: int, context_features: int, standardize: bool | str, train_rows: int) -> Flow:
    """The CNF of a table run: one ODE block unless --layers is given (flow matching trains one), the
    field's widths --hidden, else CNF_HIDDEN (64, 64, 64 below SMALL_DATA_ROWS training rows)."""
    if config.memory != "standard":
        raise FlowforgeError("--memory invertible is for stacked flows; a cnf trained by likelihood keeps its memory "
                             "bounded with the adjoint method (flowforge.CNF(..., adjoint=True))")
    layers = config.layers if "layers" in config.given else 1
    hidden = config.hidden if "hidden" in config.given else (CNF_HIDDEN if train_rows >= SMALL_DATA_ROWS else (64, 64, 64))
    return build_model("cnf", features=features, hidden=hidden, layers=layers, context_features=context_features,
                       standardize=standardize)


@torch.no_grad()
def nfe_metrics(flow: Flow, rows: Any, context: Any = None) -> dict[str, Any]:
    """{"log_prob_nfe", "sample_nfe"}: the ODE solver's field evaluations for the log-density of up
    to NFE_ROWS held-out rows and for NFE_ROWS samples (at the test rows' contexts, if any); {} for
    a flow that solves no ODE."""
    if not isinstance(flow, ContinuousFlow):
        return {}
    anchor = next(flow.parameters())
    x = torch.as_tensor(np.asarray(rows[:NFE_ROWS]), dtype=anchor.dtype, device=anchor.device)
    c = torch.as_tensor(np.asarray(context[:NFE_ROWS]), dtype=anchor.dtype, device=anchor.device) if context is not None else None
    flow.eval()
    flow.log_prob(x, c)
    log_prob_nfe = flow.nfe
    flow.sample(len(x) if c is not None else NFE_ROWS, context=c)
    return {"log_prob_nfe": log_prob_nfe, "sample_nfe": flow.nfe}


def image_field(image_shape: tuple[int, ...]) -> str:
    """The vector field of an image cnf: an MLP on the flattened pixels for small images (cheap:
    on the 8x8 digits 5,000 of its steps cost what 1,000 of a 32-channel U-Net's do, for about the
    same test bits/dim, and its exact likelihood a sixth), the U-Net above MLP_FIELD_MAX_VALUES
    values, where an MLP's first layer grows with the pixels."""
    return "mlp" if math.prod(image_shape) <= MLP_FIELD_MAX_VALUES else "unet"


def image_cnf_hidden(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """--hidden's default for an image cnf: its field's IMAGE_CNF_HIDDEN."""
    return IMAGE_CNF_HIDDEN[image_field(image_shape)]


def build_image_cnf(config: TrainConfig, image_shape: tuple[int, ...], levels: int) -> Flow:
    """The CNF of an image run: uniform dequantisation of `levels` levels and a logit (as the image
    Glow), then --layers ODE blocks whose field is image_field's, of widths --hidden (the U-Net:
    hidden[0] channels)."""
    if config.memory != "standard":
        raise FlowforgeError("--memory invertible is for stacked flows, not --model cnf")
    return build_model("cnf", features=list(image_shape), hidden=config.hidden, layers=config.layers, pixel_levels=levels,
                       field=image_field(image_shape))
