"""CUDA: the code paths that only a GPU reaches. Every test is skipped where CUDA is not available.

Each builder's round trip, exact log-density (float64 autograd Jacobian), sampling and gradients;
`fit` in fp32, bf16 and fp16 (the gradient scaler); image flows; memory="invertible" gradients;
checkpoints written on the GPU and read on the CPU; `flowforge train --device cuda|auto
--precision bf16 --compile`; conditional flows and rsample; DDP over nccl (a group of one, and two
processes where there are two GPUs). Tiny models and few steps: about a minute on one GPU.

    FLOWFORGE_TEST_DEVICE=cpu pytest tests/test_cuda.py    # dry run of the same tests on the CPU

The DDP tests launch this module as their worker: python -m tests.test_cuda --ddp-worker MODE OUT DEVICE.
"""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributions import Normal
from torch.testing import assert_close

import flowforge
from flowforge.cli import main
from flowforge.train import distributed
from flowforge.train.image_run import interpolate
from flowforge.train.loop import _NLL
from flowforge.transforms.recompute import InvertibleCompose

from .transforms.cases import autograd_logabsdet, randomized

DEVICE = torch.device(os.environ.get("FLOWFORGE_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROOT = Path(__file__).resolve().parents[1]
FEATURES = 4
BUILDERS = {
    "realnvp": lambda: flowforge.RealNVP(FEATURES, layers=3, hidden=(16, 16)),
    "realnvp_alternating_actnorm": lambda: flowforge.RealNVP(FEATURES, layers=3, hidden=(16, 16), mask="alternating", norm="actnorm"),
    "nice": lambda: flowforge.NICE(FEATURES, layers=3, hidden=(16, 16)),
    "glow": lambda: flowforge.Glow(FEATURES, layers=2, hidden=(16, 16)),
    "maf": lambda: flowforge.MAF(FEATURES, layers=2, hidden=(16, 16), permute="random"),
    "iaf": lambda: flowforge.IAF(FEATURES, layers=2, hidden=(16, 16)),
    "nsf": lambda: flowforge.NSF(FEATURES, layers=2, hidden=(16, 16), bins=4),
    "nsf-ar": lambda: flowforge.build_model("nsf-ar", features=FEATURES, layers=2, hidden=[16, 16], bins=4),
}


def cloud(n: int, seed: int = 0) -> Tensor:
    """A curved, correlated, off-centre 4-D cloud on the CPU: nothing a flow fits at init."""
    a, b, c, d = torch.randn(4, n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([3 * a + 5, a**2 + 0.3 * b - 1, torch.sin(2 * a) + 0.2 * c, 0.1 * d + a * b], 1)


def prepared(name: str, dtype: torch.dtype = torch.float64) -> flowforge.Flow:
    """`name` with its Standardize and ActNorms set from data, off its identity init, in eval mode, on DEVICE."""
    torch.manual_seed(0)
    flow = BUILDERS[name]()
    x = cloud(512)
    flow.transform[0].fit_(x)
    with torch.no_grad():
        flow.train().log_prob(x)  # data-dependent initialisation
    return randomized(flow).to(DEVICE, dtype).eval()


def finite_grads(flow: flowforge.Flow) -> None:
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# -- every builder on the GPU ---------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_round_trip_and_log_prob_equal_the_autograd_jacobian(name: str) -> None:
    flow = prepared(name)
    x = cloud(6, seed=7).to(DEVICE, torch.float64)
    z = flow.encode(x)
    assert (z.device, z.dtype, z.shape) == (x.device, x.dtype, x.shape)
    assert_close(flow.decode(z), x)
    log_prob = flow.log_prob(x)
    jacobian = autograd_logabsdet(lambda v: flow.transform(v)[0], x)
    assert_close(log_prob, Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1) + jacobian)
    with torch.no_grad():  # without autograd the hand-written coupling kernels run instead
        assert_close(flow.log_prob(x), log_prob)
        assert_close(flow.decode(z), x)
    assert_close(copy.deepcopy(flow).cpu().log_prob(x.cpu()), log_prob.detach().cpu())


@pytest.mark.parametrize("name", BUILDERS)
def test_sampling_and_gradients(name: str) -> None:
    flow = prepared(name, torch.float32)
    x, log_prob = flow.sample_and_log_prob(300, chunk_size=128)
    assert x.shape == (300, FEATURES) and x.device.type == DEVICE.type and torch.isfinite(x).all()
    assert_close(log_prob, flow.log_prob(x), rtol=1e-3, atol=1e-3)
    assert not flow.sample(5, temperature=0.5).requires_grad
    (-flow.log_prob(cloud(64).to(DEVICE)).mean()).backward()
    finite_grads(flow)


def test_arrays_and_lists_land_on_the_flow_device() -> None:
    flow = flowforge.MAF(2, layers=2, hidden=(8,), context_features=1).to(DEVICE)
    log_prob = flow.log_prob(np.zeros((3, 2), dtype=np.float32), context=[[0.5], [0.0], [1.0]])
    assert log_prob.device.type == DEVICE.type and torch.isfinite(log_prob).all()
    assert flow.sample(4, context=[0.5]).device.type == DEVICE.type
    assert flow.distribution([0.5]).sample((3,)).device.type == DEVICE.type


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


# -- memory="invertible" ----------------------------------------------------------------------------
INVERTIBLE = {
    "realnvp": (flowforge.RealNVP, {}),  # fused couplings: the hand-written backward of fused.py
    "realnvp_context": (flowforge.RealNVP, {"context_features": 3, "mask": "alternating"}),
    "realnvp_batchnorm": (flowforge.RealNVP, {"norm": "batchnorm"}),  # a layer that falls back to autograd
    "nice": (flowforge.NICE, {}),
    "glow": (flowforge.Glow, {}),
}


@pytest.mark.parametrize("name", INVERTIBLE)
def test_invertible_memory_gradients_equal_autograd(name: str) -> None:
    builder, kwargs = INVERTIBLE[name]
    torch.manual_seed(0)
    standard = builder(4, 4, (32, 32), **kwargs).to(DEVICE, torch.float64)
    x = torch.randn(128, 4, dtype=torch.float64, device=DEVICE) * 2 + 1
    context = torch.randn(128, 3, dtype=torch.float64, device=DEVICE) if "context_features" in kwargs else None
    optimizer = torch.optim.Adam(standard.parameters(), lr=1e-2)
    for step in range(30):  # trained at a high learning rate (ActNorm initialised on the first batch):
        rows = slice(32 * (step % 4), 32 * (step % 4 + 1))  # where round-trip drift is largest
        optimizer.zero_grad()
        (-standard.train().log_prob(x[rows], None if context is None else context[rows]).mean()).backward()
        optimizer.step()
    invertible = builder(4, 4, (32, 32), memory="invertible", **kwargs).to(DEVICE, torch.float64)
    invertible.load_state_dict(standard.state_dict())
    assert isinstance(invertible.transform, InvertibleCompose)
    grads = []
    for flow in (standard, invertible):
        inputs = [*flow.parameters(), x.requires_grad_()] + ([context.requires_grad_()] if context is not None else [])
        grads.append(torch.autograd.grad(flow.train().log_prob(x, context).mean(), inputs))
    for i, (ours, reference) in enumerate(zip(grads[1], grads[0])):
        error = float((ours - reference).norm() / reference.norm().clamp_min(1e-30))
        assert error <= 1e-10, f"gradient {i}: relative error {error:.2e}"


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


# -- DDP over nccl ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_worker(mode: str, out: Path, env: dict[str, str] | None = None, processes: int = 1) -> None:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    paths = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": paths, **(env or {})}
    command = [sys.executable, *launcher, "-m", "tests.test_cuda", "--ddp-worker", mode, str(out), DEVICE.type]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def test_group_of_one_runs_every_collective_fit_uses(tmp_path: Path) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    _run_worker("group", tmp_path / "group.json", env)
    assert json.loads((tmp_path / "group.json").read_text()) == {"flags": 1.0, "sums": [1.0, 1.0], "object": "run", "same_grads": True}


@pytest.mark.skipif(DEVICE.type == "cuda" and torch.cuda.device_count() < 2, reason="two nccl ranks need two GPUs")
def test_two_process_ddp_equals_one_process(tmp_path: Path) -> None:
    _run_worker("fit", tmp_path / "single.pt")
    _run_worker("fit", tmp_path / "ddp.pt", processes=2)
    single, ddp = (torch.load(tmp_path / name, weights_only=True) for name in ("single.pt", "ddp.pt"))
    assert single.keys() == ddp.keys()
    for key in single:
        assert_close(ddp[key], single[key], rtol=1e-7, atol=1e-9, msg=key)


def _group_worker(out: Path, device: str) -> None:
    """A group of one with the backend init_from_env picks: the reductions fit and mean_nll make on
    CPU tensors, a CUDA all-reduce, an object broadcast, and DDP around fit's loss module."""
    here = torch.device(device, 0) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(here)
    dist.init_process_group(distributed.choose_backend(device), rank=0, world_size=1)
    flags, sums, box = torch.ones(1), torch.ones(2, device=here), ["run"]
    dist.all_reduce(flags)
    dist.all_reduce(sums)
    dist.broadcast_object_list(box, src=0)
    torch.manual_seed(0)
    flow = randomized(flowforge.RealNVP(4, layers=2, hidden=(16, 16))).to(here, torch.float64)
    x = cloud(64).to(here, torch.float64)
    plain = torch.autograd.grad(-flow.log_prob(x).mean(), list(flow.parameters()))
    model = torch.nn.parallel.DistributedDataParallel(_NLL(flow), device_ids=[here.index] if device == "cuda" else None)
    model(x, None).backward()
    same = all(torch.allclose(p.grad, g, rtol=1e-12, atol=0) for p, g in zip(flow.parameters(), plain))
    dist.destroy_process_group()
    out.write_text(json.dumps({"flags": flags.item(), "sums": sums.tolist(), "object": box[0], "same_grads": same}))


def _fit_worker(out: Path, device: str) -> None:
    """fit a float64 Glow alone, or as one rank under torchrun (DDP); rank 0 saves the weights."""
    distributed.init_from_env(device)
    here = torch.device(device, torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    flow = flowforge.Glow(2, layers=2, hidden=(16, 16)).double().to(here)
    x = cloud(2000)[:, :2].double()
    flowforge.fit(flow, x, steps=40, batch_size=64, eval_every=10, progress=False)
    assert distributed.broadcast_object(str(out)) == str(out)
    if distributed.is_main():
        torch.save({k: v.cpu() for k, v in flow.state_dict().items()}, out)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__" and sys.argv[1:2] == ["--ddp-worker"]:
    torch.set_num_threads(1)
    mode, out, device = sys.argv[2:5]
    (_group_worker if mode == "group" else _fit_worker)(Path(out), device)
