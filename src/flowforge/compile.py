"""torch.compile for flows: `flowforge.compile(flow)` compiles its log-density and data -> latent pass in place."""
from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .flows.flow import Flow
from .transforms.base import sets_up_on_this_call
from .transforms.inplace import runs_blocked


def compile(flow: Flow, **options: Any) -> Flow:
    """Compile the flow in place and return it: its transform (nn.Module.compile) and, whole, the
    log-density after the input checks (transform, base density and the NaN mask in one graph).

    log_prob, encode and training through `fit` then run compiled code; parameters, state_dict and
    checkpoints are unchanged, and copies (`copy.deepcopy`, pickling) run eagerly. Compiling the
    density whole rather than the transform alone measured a 2-7% faster train step (d=2 and d=64,
    8 couplings, fused Adam, in-process A/B, four runs each). `options` go to torch.compile (e.g.
    mode="max-autotune", dynamic=False); on the CPU, unless they set a mode or inductor options,
    inductor's C++ wrapper is on (a faster step). The vector flows trace without graph breaks in `log_prob` and `sample` (the
    finiteness checks are skipped while tracing, and a training-mode call that sets up an ActNorm
    on its first batch runs eagerly, once), so `torch.compile(flow.sample)` compiles sampling
    whole too. The first call of each new input shape pays the compile time (seconds to a minute);
    on CPU inductor needs a C compiler. Hand-written kernels (fused couplings, memory="invertible")
    step aside while tracing: the compiler fuses the plain operations instead; a no-grad pass over
    more rows than one block of the CPU kernel runs that kernel eagerly (faster than the compiled
    code there). Sampling is not compiled by this function; `torch.compile(flow.sample)` traces
    the plain operations, which on CPU were slower than eager sampling's kernel for a large batch
    (10,000 rows at d=64: 178.7 vs 160.9 ms, benchmarks/RESULTS.md).

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.compile(flowforge.RealNVP(2, layers=2, hidden=(8, 8)), backend="eager")
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    on_cpu = flow._anchor().device.type == "cpu"
    if options.get("backend", "inductor") == "inductor" and "mode" not in options and "options" not in options and on_cpu:
        # inductor's C++ wrapper calls the generated kernels without Python in between: a CPU train
        # step is ~7% faster (d=64, 8 couplings of H=512: 30.1 vs 32.4 ms), the first compile as long
        options["options"] = {"cpp_wrapper": True}
    # nn.Module.compile, but entered through a function with a code object of this transform's own
    flow.transform._compiled_call_impl = torch.compile(types.MethodType(_own_copy(_call), flow.transform), **options)
    flow._compiled_density = torch.compile(types.MethodType(_own_copy(type(flow)._density), flow), **options)
    flow.transform._compiled_call_impl = _EagerForBlockedBatches(flow.transform, flow.transform._compiled_call_impl)
    return flow


class _EagerForBlockedBatches:
    """A compiled transform's call: a no-grad pass over more rows than one block of the CPU kernel
    (fused.py) runs eagerly, in place, and so does a training call that sets up an ActNorm (a
    branch the compiled code leaves out); everything else runs the compiled code.

    Measured (RealNVP with 8 couplings, log_prob without gradients, 2 threads, interleaved): at
    batch 10,000 eager 54.8 vs compiled 68.2 ms (d=2, H=256) and 188.5 vs 212.7 ms (d=64, H=512);
    at 64-2,048 rows, where the kernel runs unblocked, compiled was as fast or up to 30% faster.
    """

    def __init__(self, transform: nn.Module, compiled: Callable[..., Any]) -> None:
        self.eager, self.compiled = transform._call_impl, compiled
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
    code object shared by every Compose (see _own_copy); a copy of this function is compiled instead."""
    return module._call_impl(*args, **kwargs)


def _own_copy(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with a code object of its own. Dynamo keeps compiled code per code object, at
    most `recompile_limit` (8) entries: with one shared `Flow._density` (or nn.Module._call_impl,
    which every module compiled with nn.Module.compile shares), the ninth flow of a new shape
    compiled in a process (a sweep over architectures) ran its log_prob (or encode) eagerly."""
    copy = types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__kwdefaults__, copy.__qualname__ = function.__kwdefaults__, function.__qualname__
    return copy


def uncompile(flow: Flow) -> Flow:
    """Undo `compile` in place: the transform runs eagerly again (e.g. before moving to another
    device, where the compiled code would be compiled again). A flow never compiled is unchanged."""
    if getattr(flow.transform, "_compiled_call_impl", None) is not None:
        flow.transform._compiled_call_impl = None
    flow._compiled_density = None
    return flow
