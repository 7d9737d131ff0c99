"""CUDA: training on a GPU. Every test is skipped where CUDA is not available.

`fit` in fp32, bf16 and fp16 (the gradient scaler); image flows; checkpoints written on the GPU and
read on the CPU; `flowforge train --device cuda|auto --precision bf16 --compile`; conditional flows
and rsample. Tiny models and few steps.

    FLOWFORGE_TEST_DEVICE=cpu pytest tests/test_cuda_training.py    # dry run on the CPU
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import flowforge
from flowforge.cli import main
from flowforge.cli.image_plots import interpolate

from .cuda_cases import BUILDERS, DEVICE, FEATURES, cloud, needs_device

pytestmark = needs_device


# -- fit ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf"])
def test_fit_in_each_precision_learns(name: str, precision: str) -> None:
    torch.manual_seed(0)
    flow = BUILDERS[name]().to(DEVICE)
    history = flowforge.fit(flow, cloud(2048), steps=80, batch_size=256, lr=3e-3, eval_every=20, progress=False, precision=precision)
    losses = history.train_nll
    assert np.isfinite(losses).all() and np.isfinite(history.best_val_nll)
    assert len(losses) + history.skipped_steps == 80 and history.skipped_steps < 20  # fp16: a few scaler overflows at most
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2
    assert all(p.device.type == DEVICE.type and p.dtype == torch.float32 for p in flow.parameters())
    assert all(getattr(m, "autocast_dtype", None) is None for m in flow.modules())  # full precision after fit


def test_fit_takes_data_and_context_already_on_the_gpu() -> None:
    torch.manual_seed(0)
    flow = flowforge.RealNVP(FEATURES, layers=2, hidden=(16, 16), context_features=1).to(DEVICE)
    x = cloud(1024).to(DEVICE)
    history = flowforge.fit(flow, x, context=x[:, :1] ** 2, steps=40, batch_size=128, progress=False)
    assert np.isfinite(history.train_nll).all() and np.isfinite(history.best_val_nll)
    assert np.isfinite(flowforge.mean_nll(flow, x, x[:, :1] ** 2))


IMAGE_BUILDERS = {
    "glow": lambda: flowforge.Glow((1, 8, 8), levels=2, steps_per_level=2, hidden_channels=16, pixel_levels=17),
    "realnvp_variational": lambda: flowforge.RealNVP((1, 8, 8), levels=2, steps_per_level=1, hidden_channels=16,
                                                     pixel_levels=17, dequantize="variational"),
}


@pytest.mark.parametrize(("name", "precision"), [("glow", "fp32"), ("glow", "bf16"), ("realnvp_variational", "fp32")])
def test_image_flow_trains_samples_and_round_trips(name: str, precision: str) -> None:
    digits = torch.from_numpy(flowforge.data.load_digits_images().astype(np.float32))
    train, test = digits[:1024], digits[1024:1280]
    torch.manual_seed(0)
    flow = IMAGE_BUILDERS[name]().to(DEVICE)
    before = flowforge.bits_per_dim(flow, test)
    flowforge.fit(flow, train, steps=40, batch_size=64, val_fraction=0, progress=False, precision=precision)
    after = flowforge.bits_per_dim(flow, test)
    assert np.isfinite(after) and after < before
    x = test[:8].to(DEVICE)
    assert torch.equal(flow.decode(flow.encode(x)), x)
    samples = flow.sample(8, temperature=0.7)
    assert samples.shape == (8, 1, 8, 8) and samples.device.type == DEVICE.type
    assert torch.equal(samples, samples.floor()) and 0 <= samples.min() and samples.max() <= 16
    strip = interpolate(flow, x[0], x[1], steps=5)
    assert torch.equal(strip[0], x[0]) and torch.equal(strip[-1], x[1])



# -- checkpoints and the command line ---------------------------------------------------------------
def test_checkpoint_written_on_the_gpu_loads_on_the_cpu(tmp_path: Path) -> None:
    torch.manual_seed(0)
    flow = BUILDERS["glow"]().to(DEVICE)
    flowforge.fit(flow, cloud(1024), steps=30, batch_size=128, progress=False)
    path = flowforge.save(flow, tmp_path / "flow.pt")
    stored = torch.load(path, weights_only=True)  # no map_location: as a CPU-only machine would read it
    assert all(t.device.type == "cpu" for t in stored["state_dict"].values())
    loaded = flowforge.load(path)
    assert {t.device.type for t in loaded.state_dict().values()} == {"cpu"}
    x = cloud(64, seed=3)
    assert_close(loaded.log_prob(x), flow.log_prob(x.to(DEVICE)).detach().cpu(), rtol=1e-4, atol=1e-4)
    assert_close(loaded.to(DEVICE).log_prob(x.to(DEVICE)), flow.log_prob(x.to(DEVICE)))


TINY = ["--steps", "20", "--layers", "2", "--hidden", "16", "16", "--no-progress", "--threads", "1", "--patience", "0"]


def trained_on(run: Path) -> str:
    """Where fit's Adam moments lived: torch.load without map_location puts tensors back where they were saved."""
    state = torch.load(run / "model.pt", weights_only=True)["train_state"]["optimizer"]["state"]
    return next(iter(state.values()))["exp_avg"].device.type


def run_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_cli_trains_on_the_gpu_and_the_run_reads_on_the_cpu(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "moons", "--n", "600", *TINY, "--device", DEVICE.type, "--out", str(run)]) == 0
    assert trained_on(run) == DEVICE.type and np.isfinite(run_metrics(run)["test_nll"])
    assert json.loads((run / "config.json").read_text())["config"]["device"] == DEVICE.type
    assert flowforge.load(run).sample(3).device.type == "cpu"
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "x.npy")]) == 0
    assert main(["train", "--resume", str(run), "--steps", "30", "--no-progress"]) == 0
    assert run_metrics(run)["steps_run"] == 30 and trained_on(run) == DEVICE.type


def test_cli_auto_device_picks_the_gpu(tmp_path: Path) -> None:
    assert main(["train", "--data", "moons", "--n", "600", *TINY, "--device", "auto", "--out", str(tmp_path / "run")]) == 0
    assert trained_on(tmp_path / "run") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cli_bf16_on_the_gpu(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "moons", "--n", "600", *TINY, "--device", DEVICE.type, "--precision", "bf16", "--out", str(run)]) == 0
    assert trained_on(run) == DEVICE.type and np.isfinite(run_metrics(run)["test_nll"])


def test_cli_image_run_trains_on_the_gpu(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["--steps", "4", "--layers", "1", "--hidden", "8", "--batch-size", "32", "--no-progress"]
    assert main(["train", "--data", "digits", "--model", "glow", *tiny, "--device", DEVICE.type, "--out", str(run)]) == 0
    assert trained_on(run) == DEVICE.type and 0 < run_metrics(run)["test_bpd"] < 10


def test_cli_compile_on_the_gpu(tmp_path: Path) -> None:
    # three columns: no density plot, which would run the compiled flow again on the CPU
    x = cloud(600)[:, :3].numpy()
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b,c", comments="")
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["train", "--data", str(tmp_path / "x.csv"), *TINY, "--val-fraction", "0", "--device", DEVICE.type,
                     "--compile", "--out", str(run)])
    assert code == 0 and not [w for w in caught if "--compile" in str(w.message)], [str(w.message) for w in caught]
    assert trained_on(run) == DEVICE.type and np.isfinite(run_metrics(run)["test_nll"])


# -- conditional flows ----------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [flowforge.RealNVP, flowforge.MAF, flowforge.NSF])
def test_conditional_flow_fits_and_rsamples(builder) -> None:
    torch.manual_seed(0)
    flow = builder(2, layers=2, hidden=(32, 32), context_features=1, base="conditional").to(DEVICE)
    c = torch.rand(2048, 1) * 4 - 2
    x = torch.randn(2048, 2) * 0.3 + torch.cat([c, -c], 1)
    history = flowforge.fit(flow, x, context=c, steps=150, batch_size=256, lr=3e-3, progress=False)
    assert np.mean(history.train_nll[-10:]) < np.mean(history.train_nll[:10]) - 0.5
    q = flow.distribution(torch.tensor([[1.0], [-1.0]], device=DEVICE))
    draws = q.rsample((500,))
    assert draws.shape == (500, 2, 2) and draws.device.type == DEVICE.type
    assert_close(draws.mean(0).detach(), torch.tensor([[1.0, -1.0], [-1.0, 1.0]], device=DEVICE), atol=0.3, rtol=0)
    assert q.log_prob(draws.detach()).shape == (500, 2)
    flow.zero_grad()
    draws.square().mean().backward()  # rsample keeps the graph through the flow and the conditional base
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.base.parameters())
    assert sum(p.grad.abs().sum() for p in flow.parameters() if p.grad is not None) > 0
