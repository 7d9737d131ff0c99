"""`flowforge train --model cnf` on images: bits/dim from the exact likelihood, NFE, plots, the run folder."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import flowforge
from flowforge.cli import main
from flowforge.cli.config import TrainConfig
from flowforge.cli.image_run import IMAGE_CNF_DEFAULTS, IMAGE_CNF_LIKELIHOOD_DEFAULTS, load_image_split, with_image_defaults
from flowforge.flows.continuous import ContinuousFlow
from flowforge.nn import FlatTimeMLP, TimeUNet

pytest.importorskip("torchdiffeq")

TINY = ["--steps", "15", "--batch-size", "32", "--no-progress", "--threads", "1"]


def test_digits_cnf_run_scores_bits_per_dim_that_its_saved_model_reproduces(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    assert main(["train", "--data", "digits", "--n", "120", "--model", "cnf", "--hidden", "16", "16", *TINY, "--out", str(folder)]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 < metrics["test_bpd"] < 10 and metrics["steps_run"] == 15
    assert metrics["log_prob_nfe"] >= 6 and metrics["sample_nfe"] >= 6  # dopri5: at least one step of six evaluations
    assert metrics["train_bpd"] is None  # flow matching's loss is no likelihood
    record = json.loads((folder / "config.json").read_text())
    assert record["config"]["objective"] == "flow-matching" and record["config"]["val_fraction"] == 0  # the image cnf's defaults
    assert record["model"]["kwargs"]["field"] == "mlp" and record["model"]["kwargs"]["features"] == [1, 8, 8]
    assert (folder / "plots" / "samples.png").is_file() and (folder / "plots" / "reconstructions.png").is_file()
    flow = flowforge.load(folder)
    assert isinstance(flow, ContinuousFlow) and isinstance(flow.odes()[0].field, FlatTimeMLP)
    config = TrainConfig.from_dict(record["config"])
    _, test, _ = load_image_split(config)
    assert flowforge.bits_per_dim(flow, test, seed=config.seed) == pytest.approx(metrics["test_bpd"], abs=1e-4)


def test_npy_images_train_by_likelihood_and_resume(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 4, size=(60, 1, 4, 4), dtype=np.uint8) * 85)  # 256 levels
    folder = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "images.npy"), "--model", "cnf", "--objective", "likelihood",
                 "--hidden", "8", "8", *TINY, "--out", str(folder)]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert math.isfinite(metrics["test_bpd"]) and math.isfinite(metrics["train_bpd"])
    assert main(["train", "--resume", str(folder), "--steps", "18", "--no-progress", "--threads", "1"]) == 0
    assert json.loads((folder / "metrics.json").read_text())["steps_run"] == 18


def test_cnf_image_defaults_and_field_by_size() -> None:
    config = with_image_defaults(TrainConfig(data="digits", model="cnf", steps=7, given=("steps",)))
    assert config.steps == 7 and config.objective == IMAGE_CNF_DEFAULTS["objective"] and config.layers == 1
    explicit = with_image_defaults(TrainConfig(data="digits", model="cnf", objective="likelihood", given=("objective",)))
    assert explicit.objective == "likelihood" and explicit.steps == IMAGE_CNF_LIKELIHOOD_DEFAULTS["steps"]
    big = flowforge.build_model("cnf", features=[1, 32, 32], hidden=[4], field="unet")
    assert isinstance(big.odes()[0].field, TimeUNet)
