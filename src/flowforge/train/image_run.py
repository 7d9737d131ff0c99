"""Image runs: `flowforge train --data digits --model glow` (or realnvp) and their run folder.

Same layout as a vector run (train/run.py), with image plots and bits/dim:

    RUN/metrics.json    test_bpd (pixel scale), test_nll (nats), train/val bits/dim, throughput, sizes
    RUN/plots/          training_curve.png, samples.png (one row per temperature),
                        reconstructions.png (decode(encode(x)) of test images), interpolation.png

Options a TrainConfig leaves at its (vector) defaults take the image defaults of IMAGE_DEFAULTS;
`layers` is read as steps per level and `hidden[0]` as the conditioners' channels.
"""
from __future__ import annotations

import math
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .. import __version__, data
from ..compile import uncompile
from ..data.datasets import subset_indices
from ..data.images import array_ndim, load_images
from ..errors import FlowforgeError
from ..flows import Flow, build_model, count_parameters
from ..flows.image_builders import most_levels
from ..metrics import bits_per_dim, nats_to_bits_per_dim
from . import distributed
from .checkpoint import atomic_write_text
from .config import TrainConfig
from .history import History
from .placement import maybe_compile, resolve_device
from .run import RunResult, draw_or_warn, fit_run
from .run_folder import _claim_run_folder, _finite, _to_json, data_record

if TYPE_CHECKING:
    from .resume import Resume

IMAGE_MODELS = {"glow": "image-glow", "image-glow": "image-glow", "realnvp": "image-realnvp", "image-realnvp": "image-realnvp"}
# Tuned on the digits (1,500 train images of 8x8, 17 levels) for a good model in minutes on 2 CPU cores
IMAGE_DEFAULTS: dict[str, Any] = {"layers": 4, "hidden": (32,), "steps": 2000, "batch_size": 64, "lr": 1e-3,
                                  "test_fraction": 0.165, "threads": 1}  # digits: 297 of 1,797 held out
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "image-glow": {"levels": 2, "dequantize": "variational"},
    "image-realnvp": {"levels": 3, "blocks": 1, "dequantize": "variational"},
}
TEMPERATURES = (0.5, 0.7, 0.85, 1.0)


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
    """config with every option not given explicitly (`config.given`) and still at TrainConfig's
    default replaced by IMAGE_DEFAULTS."""
    vector_defaults = {f.name: f.default for f in fields(TrainConfig)}
    unset = {k: v for k, v in IMAGE_DEFAULTS.items() if k not in config.given and getattr(config, k) == vector_defaults[k]}
    return replace(config, **unset)


def build_image_model(config: TrainConfig, image_shape: tuple[int, ...], levels: int) -> Flow:
    name = IMAGE_MODELS[config.model]
    options = {**MODEL_DEFAULTS[name], "steps_per_level": config.layers, "hidden_channels": config.hidden[0]}
    options["levels"] = most_levels(name, image_shape, options["levels"])  # small images (4x4): fewer levels
    return build_model(name, image_shape=list(image_shape), pixel_levels=levels, memory=config.memory, **options)


def train_image_run(
    config: TrainConfig, image_size: int | tuple[int, int] | None = None, resume: Resume | None = None,
    device: torch.device | None = None,
) -> RunResult:
    """Load the images, split off the test set, train, write the run folder; metrics include test_bpd.
    With `resume`, continue that run (train/resume.py); its config already holds the image defaults.
    `device` defaults to config.device resolved; under torchrun every rank trains its shard of each
    batch (DDP) and rank 0 alone writes the folder and measures the test set."""
    config = with_image_defaults(config) if resume is None else config
    images = load_images(config.data, size=image_size)
    x = images.x.astype(np.float32)
    if config.n is not None:
        x = x[subset_indices(len(x), config.n, config.seed, config.data)]  # the rows a table run takes
    train, test = data.split(x, test_fraction=config.test_fraction, seed=config.seed)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    flow = build_image_model(config, x.shape[1:], images.levels)
    folder = resume.folder if resume is not None else _claim_run_folder(config)
    config = replace(config, out=str(folder))
    resolved = {
        "flowforge_version": __version__, "config": config.to_dict(), "model": flow.spec,
        "data": {"spec": config.data, **data_record(config.data), "images": len(x), "n_train": len(train), "n_test": len(test),
                 "image_shape": list(x.shape[1:]), "pixel_levels": images.levels},
    }
    if resume is not None:
        resume.check_same_data(resolved)
        flow.load_state_dict(resume.weights)
    if distributed.is_main():
        atomic_write_text(folder / "config.json", _to_json(resolved))
    flow.to(device if device is not None else resolve_device(config.device))
    maybe_compile(flow, config.compile)
    history, stopped_by = fit_run(flow, train, config, folder, resume=resume.state if resume is not None else None)
    if stopped_by is not None:
        return RunResult(folder, {"steps_run": len(history.step) + history.skipped_steps}, stopped_by)
    test_bpd = bits_per_dim(flow, test, seed=config.seed)  # every rank: each scores its shard of the test set
    if not distributed.is_main():
        return RunResult(folder, {})
    metrics = _image_metrics(flow, history, config, train, test, test_bpd)
    atomic_write_text(folder / "metrics.json", _to_json(metrics))
    uncompile(flow).cpu()  # the plots take numpy arrays; eager, so no second compile on the CPU
    draw_or_warn(folder / "plots", lambda: write_image_plots(folder / "plots", flow, history, test, images.levels, seed=config.seed))
    return RunResult(folder, metrics)


def _image_metrics(
    flow: Flow, history: History, config: TrainConfig, train: np.ndarray, test: np.ndarray, test_bpd: float
) -> dict[str, Any]:
    dims = math.prod(flow.event_shape)
    tail = history.train_nll[-max(1, len(history.train_nll) // 50):]
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    flow.sample(1000)
    steps_run = len(history.step) + history.skipped_steps
    return {
        "test_bpd": _finite(test_bpd),
        "test_nll": _finite(test_bpd * dims * math.log(2)),
        "train_bpd": _finite(nats_to_bits_per_dim(np.mean(tail), dims)) if tail else None,
        "best_val_bpd": _finite(nats_to_bits_per_dim(history.best_val_nll, dims)),
        "best_val_nll": _finite(history.best_val_nll),
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


@torch.no_grad()
def interpolate(flow: Flow, a: Tensor, b: Tensor, steps: int = 9) -> Tensor:
    """decode(cos(t pi/2) z_a + sin(t pi/2) z_b) for t in [0, 1]: from image a to image b.

    The spherical path keeps the latent norm typical (a straight line shrinks it midway,
    which gives washed-out, low-temperature images); the ends decode back to a and b exactly.
    """
    za, zb = flow.encode(a[None]), flow.encode(b[None])
    t = torch.linspace(0, 1, steps, dtype=za.dtype, device=za.device).reshape(-1, *[1] * (za.dim() - 1))
    return flow.decode(torch.cos(t * math.pi / 2) * za + torch.sin(t * math.pi / 2) * zb)


@torch.no_grad()
def write_image_plots(folder: Path, flow: Flow, history: History, test: np.ndarray, levels: int, seed: int = 0,
                      per_row: int = 12) -> list[Path]:
    """training_curve.png, samples.png (rows of TEMPERATURES), reconstructions.png, interpolation.png."""
    from .. import viz  # matplotlib loads only when plots are drawn
    from ..viz.images import plot_interpolations, plot_reconstructions, plot_samples_by_temperature

    flow.eval()
    paths = [viz.plot_training_curve(np.add(history.step, 1), history.train_nll, folder / "training_curve.png",
                                     history.val_step, history.val_nll)]
    torch.manual_seed(seed)
    samples = {t: flow.sample(per_row, temperature=t).numpy() for t in TEMPERATURES}
    paths.append(plot_samples_by_temperature(samples, levels, folder / "samples.png"))
    x = torch.from_numpy(test[:per_row])
    paths.append(plot_reconstructions(x.numpy(), flow.decode(flow.encode(x)).numpy(), levels, folder / "reconstructions.png"))
    pairs = [(2 * i, 2 * i + 1) for i in range(min(3, len(test) // 2))]
    if pairs:  # a test split of one image has no pair to interpolate between
        strips = [interpolate(flow, x[i], x[j]).numpy() for i, j in pairs]
        paths.append(plot_interpolations(strips, levels, folder / "interpolation.png"))
    return paths

