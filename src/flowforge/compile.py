"""torch.compile for flows: `flowforge.compile(flow)` compiles its log-density and data -> latent pass in place."""
from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .flows.flow import Flow
from .torch_internals.code_objects import own_copy
from .torch_internals.module_call import compiled_call, eager_call, set_compiled_call
from .transforms.base import sets_up_on_this_call
from .transforms.inplace import runs_blocked


def compile(flow: Flow, **options: Any) -> Flow:
    """Compile the flow in place and return it: its transform (as nn.Module.compile does) and,
    whole, the log-density after the input checks (transform, base density and the NaN mask in one
    graph, which lets the compiler fuse across the transform's end into the density).

    log_prob, encode and training through `fit` then run compiled code; parameters, state_dict and
    checkpoints are unchanged, and copies (`copy.deepcopy`, pickling) run eagerly. `options` go to
    torch.compile (e.g. mode="max-autotune", dynamic=False); on the CPU, unless they set a mode or
    inductor options, inductor's C++ wrapper is on. The vector flows trace without graph breaks in
    `log_prob` and `sample` (the finiteness checks are skipped while tracing, and a training-mode
    call that sets up an ActNorm on its first batch runs eagerly, once), so
    `torch.compile(flow.sample)` compiles sampling whole too. The first call of each new input
    shape pays the compile time (seconds to a minute); on CPU inductor needs a C compiler.
    Hand-written kernels (fused couplings, memory="invertible") step aside while tracing: the
    compiler fuses the plain operations instead; a no-grad pass over more rows than one block of
    the CPU kernel runs that kernel eagerly, as the kernel is faster there than compiled code.
    Sampling is not compiled by this function: on CPU, eager sampling's kernel beats the compiled
    plain operations for large batches (benchmarks/RESULTS.md).

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.compile(flowforge.RealNVP(2, layers=2, hidden=(8, 8)), backend="eager")
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    on_cpu = flow._anchor().device.type == "cpu"
    if options.get("backend", "inductor") == "inductor" and "mode" not in options and "options" not in options and on_cpu:
        # the C++ wrapper calls the generated kernels without Python in between
        options["options"] = {"cpp_wrapper": True}
    # each compiled callable gets a code object of its own: dynamo's cache is per code object
    compiled = torch.compile(types.MethodType(own_copy(_call), flow.transform), **options)
    flow._compiled_density = torch.compile(types.MethodType(own_copy(type(flow)._density), flow), **options)
    set_compiled_call(flow.transform, _EagerForBlockedBatches(flow.transform, compiled))
    return flow


class _EagerForBlockedBatches:
    """A compiled transform's call: a no-grad pass over more rows than one block of the CPU kernel
    (fused.py) runs eagerly, in place, as the kernel is faster there than the compiled code; so
    does a training call that sets up an ActNorm (a branch the compiled code leaves out).
    Everything else runs the compiled code."""

    def __init__(self, transform: nn.Module, compiled: Callable[..., Any]) -> None:
        self.eager, self.compiled = eager_call(transform), compiled
        self.chain = [transform]  # runs_blocked asks it (a Compose asks its layers)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x = args[0] if args else kwargs.get("x")
        blocked = isinstance(x, torch.Tensor) and runs_blocked(self.chain, x)
        if blocked or (not torch.compiler.is_compiling() and sets_up_on_this_call(self.chain[0])):
            return self.eager(*args, **kwargs)
        return self.compiled(*args, **kwargs)


def _call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """What a compiled transform's call traces: the module's ordinary call (hooks, then forward).
    Dynamo does not compile torch's own `Module._call_impl` frame but the `forward` under it, one
    code object shared by every Compose; a copy of this function is compiled instead."""
    return eager_call(module)(*args, **kwargs)


def uncompile(flow: Flow) -> Flow:
    """Undo `compile` in place: the transform runs eagerly again (e.g. before moving to another
    device, where the compiled code would be compiled again). A flow never compiled is unchanged."""
    if compiled_call(flow.transform) is not None:
        set_compiled_call(flow.transform, None)
    flow._compiled_density = None
    return flow
