"""The only module that touches torch.distributed: ranks, DDP wrapping, reductions.

Launch with `torchrun --nproc_per_node=N -m flowforge train ...`; gloo on CPU, nccl (and gloo for
CPU tensors) on CUDA.
Rank 0 alone logs and writes files; every rank sees its own shard of each global batch.
"""
from __future__ import annotations

import atexit
import gc
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import FlowforgeError


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that logs and writes files."""
    return rank() == 0


def choose_backend(device: str) -> str:
    """gloo on CPU. On CUDA, nccl for CUDA tensors plus gloo for CPU ones: fit's finiteness flags
    and mean_nll's sums are reduced on the CPU, and an nccl-only group refuses CPU tensors."""
    return "cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo"


_made_here = False  # init_from_env made the group: leave() and the exit hook destroy only that one


def init_from_env(device: str = "cpu") -> bool:
    """Initialise the process group from torchrun's environment; False when not under torchrun."""
    global _made_here
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    if not dist.is_initialized():
        if device.startswith("cuda"):  # before the group: nccl binds each rank to the current device
            local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
            if local_rank >= gpus:
                raise FlowforgeError(f"torchrun started more processes per node than this node has GPUs ({gpus}): "
                                     f"use --nproc_per_node={gpus} or less, or --device cpu")
            torch.cuda.set_device(local_rank)
        dist.init_process_group(choose_backend(device))
        _made_here = True
        atexit.register(_leave)
    return True


def made_group() -> bool:
    """Whether init_from_env made the (still live) process group."""
    return _made_here and dist.is_initialized()


def leave() -> None:
    """End a finished run's process group: wait for every rank (rank 0 may still be writing the run
    folder), then destroy the group while the interpreter is whole. Ranks leaving one by one, or a
    group left to the interpreter's teardown, can abort a rank on exit (gloo: "terminate called
    without an active exception", seen under loaded test runs)."""
    if made_group():
        dist.all_reduce(torch.zeros(1))  # a barrier on the CPU backend, which both group kinds have
        _leave()


def _leave() -> None:
    """Destroy the group (at exit too, after errors: no barrier there, a failed rank's peers may be
    mid-collective). Collecting first frees DDP wrappers held only by reference cycles."""
    global _made_here
    if made_group():
        _made_here = False
        gc.collect()
        dist.destroy_process_group()


def sum_across(values: Tensor) -> Tensor:
    """Sum a tensor over ranks (identity in a single process)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def wrap(module: nn.Module) -> nn.Module:
    """DistributedDataParallel around `module` when distributed, else the module itself."""
    if not is_distributed():
        return module
    device_ids = [torch.cuda.current_device()] if next(module.parameters()).is_cuda else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def shard(index: Tensor) -> Tensor:
    """This rank's share of a global batch of row indices (strided, equal sizes)."""
    return index[rank() :: world_size()]


def broadcast_object(value: object) -> object:
    """Rank 0's value on every rank (e.g. the run folder it chose)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
