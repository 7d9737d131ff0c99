"""An image run's side of training (cli/training.py runs it): `flowforge train --data digits --model glow`
(or realnvp, or cnf) on images, with image models, bits/dim and image plots.

    RUN/metrics.json    test_bpd (pixel scale), test_nll (nats), train/val bits/dim, throughput, sizes;
                        for a cnf also sample_nfe and log_prob_nfe
    RUN/plots/          training_curve.png, samples.png (one row per temperature),
                        reconstructions.png (decode(encode(x)) of test images), interpolation.png

Options a TrainConfig leaves at its (vector) defaults take the image defaults of IMAGE_DEFAULTS
(and a cnf's of IMAGE_CNF_DEFAULTS); `layers` is read as steps per level and `hidden[0]` as the
conditioners' channels (a cnf: cli/continuous_run.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import __version__, data
from ..data.datasets import subset_indices
from ..data.images import array_ndim, load_images
from ..errors import FlowforgeError
from ..flows import Flow, build_model, count_parameters
from ..flows.continuous import ContinuousFlow
from ..flows.image_builders import most_levels
from ..metrics import bits_per_dim, nats_to_bits_per_dim
from ..train import distributed
from ..train.history import History
from .config import TrainConfig
from .continuous_run import build_image_cnf, image_cnf_hidden
from .image_plots import write_image_plots
from .run_folder import data_record, finite

if TYPE_CHECKING:
    from .resume import Resume

IMAGE_MODELS = {"glow": "image-glow", "image-glow": "image-glow", "realnvp": "image-realnvp", "image-realnvp": "image-realnvp",
                "cnf": "cnf"}
# Tuned on the digits (1,500 train images of 8x8, 17 levels) for a good model in minutes on 2 CPU cores
IMAGE_DEFAULTS: dict[str, Any] = {"layers": 4, "hidden": (32,), "steps": 2000, "batch_size": 64, "lr": 1e-3,
                                  "test_fraction": 0.165, "threads": 1}  # digits: 297 of 1,797 held out
# a cnf trains by flow matching (likelihood training solves an ODE with the divergence every step);
# no validation set: an exact validation costs a backward pass per pixel per field evaluation (about
# 10 CPU s for 150 digits). On the digits the field overfits past ~5,000 steps (test bits/dim 2.16
# after 10,000, benchmarks/RESULTS.md). Its --hidden default depends on the image's size
# (cli/continuous_run.py's image_cnf_hidden).
IMAGE_CNF_DEFAULTS: dict[str, Any] = {"layers": 1, "objective": "flow-matching", "time_power": 2.0, "steps": 5000,
                                      "batch_size": 256, "lr": 1e-3, "val_fraction": 0.0}
# --objective likelihood: each step solves the ODE with Hutchinson's divergence and backpropagates
# through the solver (~0.4 CPU s a step of 64 digits at the start, more as the field grows)
IMAGE_CNF_LIKELIHOOD_DEFAULTS: dict[str, Any] = {"time_power": 1.0, "steps": 1000, "batch_size": 64, "lr": 1e-3}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "image-glow": {"levels": 2, "dequantize": "variational"},
    "image-realnvp": {"levels": 3, "blocks": 1, "dequantize": "variational"},
}


def is_image_run(config: TrainConfig) -> bool:
    """An image architecture on image data (digits, a folder of images, a >= 3-D .npy/.npz)."""
    if config.model not in IMAGE_MODELS:
        return False
    path = Path(config.data)
    is_images = config.data == "digits" or path.is_dir() or (path.suffix.lower() in (".npy", ".npz") and array_ndim(path) >= 3)
    if not is_images and config.model.startswith("image-"):
        raise FlowforgeError(f"model {config.model!r} needs images: 'digits', a folder of PNG/JPEG or an .npy of (N, C, H, W)")
    return is_images


def with_image_defaults(config: TrainConfig) -> TrainConfig:
    """config with every option not given explicitly and still at TrainConfig's default replaced by
    IMAGE_DEFAULTS (and, for a cnf, IMAGE_CNF_DEFAULTS)."""
    is_cnf = IMAGE_MODELS[config.model] == "cnf"
    defaults = {k: v for k, v in IMAGE_DEFAULTS.items() if not (is_cnf and k == "hidden")}
    if is_cnf:
        defaults.update(IMAGE_CNF_DEFAULTS)
        if config.objective == "likelihood" and "objective" in config.given:
            defaults.update(IMAGE_CNF_LIKELIHOOD_DEFAULTS)
    return replace(config, **{k: v for k, v in defaults.items() if config.left_at_default(k)})


def load_image_split(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(train, test, pixel levels): config.data's images (a random n of them, the rows a table run
    takes) cut by `data.split`'s seeded shuffle; `train` and `check` both cut them here."""
    images = load_images(config.data)
    x = images.x.astype(np.float32)
    if config.n is not None:
        x = x[subset_indices(len(x), config.n, config.seed, config.data)]
    train, test = data.split(x, test_fraction=config.test_fraction, seed=config.seed)
    return train, test, images.levels


def build_image_model(config: TrainConfig, image_shape: tuple[int, ...], levels: int) -> Flow:
    name = IMAGE_MODELS[config.model]
    if name == "cnf":
        return build_image_cnf(config, tuple(image_shape), levels)
    options = {**MODEL_DEFAULTS[name], "steps_per_level": config.layers, "hidden_channels": config.hidden[0]}
    options["levels"] = most_levels(name, image_shape, options["levels"])  # small images (4x4): fewer levels
    return build_model(name, image_shape=list(image_shape), pixel_levels=levels, memory=config.memory, **options)


class ImageRun:
    """An image run: its defaults and split, model, config.json record, metrics (bits/dim) and plots.
    A resumed run's config already holds the image defaults."""

    def __init__(self, config: TrainConfig, resume: Resume | None = None) -> None:
        self.config = with_image_defaults(config) if resume is None else config

    def load(self) -> None:
        self.train, self.test, self.levels = load_image_split(self.config)
        self.train_context = None
        if IMAGE_MODELS[self.config.model] == "cnf" and self.config.left_at_default("hidden"):
            self.config = replace(self.config, hidden=image_cnf_hidden(self.train.shape[1:]))

    def build_model(self) -> Flow:
        return build_image_model(self.config, self.train.shape[1:], self.levels)

    def record(self, config: TrainConfig, flow: Flow) -> dict[str, Any]:
        train, test = self.train, self.test
        return {
            "flowforge_version": __version__, "config": config.to_dict(), "model": flow.spec,
            "data": {"spec": config.data, **data_record(config.data), "images": len(train) + len(test), "n_train": len(train),
                     "n_test": len(test), "image_shape": list(train.shape[1:]), "pixel_levels": self.levels},
        }

    def measure(self, flow: Flow, history: History, config: TrainConfig) -> dict[str, Any]:
        """metrics.json's content on rank 0 ({} on the others); every rank scores its shard of the test set."""
        test_bpd = bits_per_dim(flow, self.test, seed=config.seed)
        log_prob_nfe = flow.nfe if isinstance(flow, ContinuousFlow) else None  # of the test set's (last) batch
        if not distributed.is_main():
            return {}
        metrics = image_metrics(flow, history, config, self.train, self.test, test_bpd)
        if log_prob_nfe is not None:  # image_metrics's 1,000 samples were the last solve
            metrics.update(log_prob_nfe=log_prob_nfe, sample_nfe=flow.nfe)
        return metrics

    def draw(self, plots: Path, flow: Flow, history: History, seed: int) -> None:
        write_image_plots(plots, flow, history, self.test, self.levels, seed=seed)


def image_metrics(
    flow: Flow, history: History, config: TrainConfig, train: np.ndarray, test: np.ndarray, test_bpd: float
) -> dict[str, Any]:
    dims = math.prod(flow.event_shape)
    tail = history.train_nll[-max(1, len(history.train_nll) // 50):]
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    flow.sample(1000)
    steps_run = len(history.step) + history.skipped_steps
    return {
        "test_bpd": finite(test_bpd),
        "test_nll": finite(test_bpd * dims * math.log(2)),
        # flow matching's loss is a regression error, not an NLL: no train bits/dim
        "train_bpd": finite(nats_to_bits_per_dim(np.mean(tail), dims)) if tail and config.objective == "likelihood" else None,
        "best_val_bpd": finite(nats_to_bits_per_dim(history.best_val_nll, dims)),
        "best_val_nll": finite(history.best_val_nll),
        "best_step": history.best_step,
        "steps_run": steps_run,
        "stopped_early": history.stopped_early,
        "skipped_steps": history.skipped_steps,
        "train_seconds": round(history.seconds, 3),
        "train_images_per_second": round(steps_run * min(config.batch_size, len(train)) / max(history.seconds, 1e-9), 1),
        "sample_images_per_second": round(1000 / (time.perf_counter() - start), 1),
        "n_train": len(train),
        "n_test": len(test),
        "image_shape": list(flow.event_shape),
        "parameters": count_parameters(flow),
    }
