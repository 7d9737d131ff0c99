"""torch.compile for flows: `flowforge.compile(flow)` compiles its data -> latent pass in place."""
from __future__ import annotations

from typing import Any

from .flows.flow import Flow


def compile(flow: Flow, **options: Any) -> Flow:
    """Compile the flow's transform in place (nn.Module.compile) and return the flow.

    log_prob, encode and training through `fit` then run the compiled forward pass; parameters,
    state_dict and checkpoints are unchanged. `options` go to torch.compile (e.g. mode="max-autotune",
    dynamic=False); on the CPU, unless they set a mode or inductor options, inductor's C++ wrapper
    is on (a faster step). The vector flows trace without graph breaks in `log_prob` and `sample` (the
    finiteness checks are skipped while tracing), so `torch.compile(flow.sample)` compiles sampling
    whole too. The first call of each new input shape pays the compile time (seconds to a minute);
    on CPU inductor needs a C compiler. Hand-written kernels (fused couplings, memory="invertible")
    step aside while tracing: the compiler fuses the plain operations instead.

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
    flow.transform.compile(**options)
    return flow


def uncompile(flow: Flow) -> Flow:
    """Undo `compile` in place: the transform runs eagerly again (e.g. before moving to another
    device, where the compiled code would be compiled again). A flow never compiled is unchanged."""
    if getattr(flow.transform, "_compiled_call_impl", None) is not None:
        flow.transform._compiled_call_impl = None
    return flow
