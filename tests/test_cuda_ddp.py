"""CUDA: DDP over nccl, a group of one, and two processes where there are two GPUs. Every test is
skipped where CUDA is not available.

    FLOWFORGE_TEST_DEVICE=cpu pytest tests/test_cuda_ddp.py    # dry run over gloo on the CPU

The tests launch this module as their worker: python -m tests.test_cuda_ddp --ddp-worker MODE OUT DEVICE.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.testing import assert_close

import flowforge
from flowforge.train import distributed
from flowforge.train.objectives import Likelihood

from .cuda_cases import DEVICE, cloud, needs_device
from .helpers import launch
from .transforms.cases import randomized

pytestmark = needs_device
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_worker(mode: str, out: Path, env: dict[str, str] | None = None, processes: int = 1) -> None:
    paths = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    launch(["-m", "tests.test_cuda_ddp", "--ddp-worker", mode, str(out), DEVICE.type], processes,
           env={"PYTHONPATH": paths, **(env or {})}, cwd=ROOT)


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
    model = torch.nn.parallel.DistributedDataParallel(Likelihood(flow), device_ids=[here.index] if device == "cuda" else None)
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
