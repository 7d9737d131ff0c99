"""Memory-constant backpropagation: recompute each layer's input from its output.

Ordinary autograd keeps every layer's activations until the backward pass, so training memory
grows with depth. A bijection needs none of them: its input is its inverse applied to its output.
`InvertibleCompose` runs each stretch of exactly invertible layers as one autograd node that
keeps only the stretch's output. Its backward pass walks the layers in reverse: it rebuilds a
layer's input with the layer's inverse, re-runs that one layer with gradients on, and
back-propagates dL/dz and dL/dlogabsdet into the layer's parameters, its input and the context.
At most one layer's activations are alive at a time, whatever the depth.

Layers that are not a fixed, exactly invertible map run under ordinary autograd (their
activations are kept): BatchNorm in training mode (batch statistics, running averages updated
once), any layer whose class or instance sets `is_exactly_invertible = False` (an iterative
inverse, say), and any that sets `has_sequential_inverse = True` (MaskedAutoregressive: rebuilding
its input takes D passes, costlier than keeping its activations). Inverse(t) rebuilds its input with
t's forward, one pass, so it is recomputed when t is exact (IAF). Random layers (dropout in a
conditioner) would recompute differently: flag them. A layer holding an InvertibleCompose (the
coarser levels inside a multi-scale Split) runs under ordinary autograd too: its inner stretches
keep only their outputs already, and rebuilding it whole would run them a second time.
A CouplingTransform (the vector, image and spline couplings) rebuilds its input and re-runs
itself from one conditioner pass: the conditioner reads only the kept part, which input and
output share, so its (s, t) and their graph serve both the inverse and the re-run (a Coupling
that runs fused.py's kernel does the same by hand). Its backward then costs one conditioner pass
more than ordinary autograd's; other layers pay an inverse and a forward.
Recomputed inputs carry the round-trip error of the inverse (~1e-16 relative in float64).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import Compose, CouplingTransform, Inverse, Transform
from .coupling import Coupling
from .fused import mlp_params
from .inplace import run_in_place
from .norm import BatchNorm


def is_recomputable(transform: Transform, inverted: bool = False) -> bool:
    """True if the layer's input can be rebuilt from its output by its inverse, exactly and cheaply.

    `inverted`: the layer sits inside an odd number of Inverse, so its forward does the rebuilding.
    """
    if isinstance(transform, BatchNorm):
        return not transform.training  # training mode normalises by the batch: not a fixed bijection
    if any(isinstance(t, InvertibleCompose) for t in transform.children()):
        return False  # e.g. a multi-scale Split: its inner stretches keep only their outputs already
    if isinstance(transform, Compose):
        return all(is_recomputable(t, inverted) for t in transform)
    if isinstance(transform, Inverse):
        return is_recomputable(transform.base_transform, not inverted)
    is_slow = getattr(transform, "has_sequential_inverse", False) and not inverted
    return getattr(transform, "is_exactly_invertible", True) and not is_slow


class InvertibleCompose(Compose):
    """A Compose whose training pass stores no activations inside its invertible layers.

    Same layers, parameters, state_dict and results as Compose; only the memory of the backward
    pass differs (constant in depth instead of linear), for about one extra forward pass of time.
    Without gradients (eval, sampling) and under torch.compile it is exactly Compose.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not torch.is_grad_enabled() or torch.compiler.is_compiling():
            return super().forward(x, context)
        total = x.new_zeros(x.shape[0])
        run: list[Transform] = []
        for transform in self.transforms:
            if is_recomputable(transform):
                run.append(transform)
                continue
            x, total = _apply_run(run, x, context, total)
            run = []
            x, logabsdet = transform(x, context)  # ordinary autograd for this layer
            total = total + logabsdet
        return _apply_run(run, x, context, total)


def _apply_run(run: list[Transform], x: Tensor, context: Tensor | None, total: Tensor) -> tuple[Tensor, Tensor]:
    if not run:
        return x, total
    # each parameter once, however many layers share it: backward returns its summed gradient
    params = list(dict.fromkeys(p for t in run for p in t.parameters() if p.requires_grad))
    z, logabsdet = _Recompute.apply(tuple(run), context, x, *params)
    return z, total + logabsdet


class _Recompute(torch.autograd.Function):
    """forward: the layers under no_grad, keeping only the output. backward: see the module doc."""

    @staticmethod
    def forward(ctx, layers: tuple[Transform, ...], context: Tensor | None, x: Tensor, *params: Tensor):
        x, total = run_in_place(layers, x, context, inverse=False)  # no autograd here: one buffer
        ctx.layers, ctx.context, ctx.params = layers, context, params
        ctx.save_for_backward(x)
        return x, total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z: Tensor, grad_logabsdet: Tensor):
        (z,) = ctx.saved_tensors
        context = ctx.context
        wants_context = context is not None and ctx.needs_input_grad[1]
        grads: dict[Tensor, Tensor] = {}
        grad_context = None
        for layer in reversed(ctx.layers):
            z, grad_z, g_context = _layer_backward(layer, z, context, grad_z, grad_logabsdet, grads, wants_context)
            if g_context is not None:
                grad_context = g_context if grad_context is None else grad_context + g_context
        grad_x = grad_z if ctx.needs_input_grad[2] else None
        return (None, grad_context, grad_x, *(grads.get(p) for p in ctx.params))


def _accumulate(grads: dict[Tensor, Tensor], params: list[Tensor], values) -> None:
    for p, g in zip(params, values):
        if g is not None:
            grads[p] = g if p not in grads else grads[p] + g


def _layer_backward(
    layer: Transform, z: Tensor, context: Tensor | None, grad_z: Tensor, grad_logabsdet: Tensor,
    grads: dict[Tensor, Tensor], wants_context: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Rebuild the layer's input x from z; return x, dL/dx and dL/dcontext (params into grads)."""
    kernel = layer.fused_kernel() if isinstance(layer, Coupling) else None
    if kernel is not None:  # one conditioner pass rebuilds x and what the hand-written backward needs
        x, grad_x, g_context, grad_params = kernel.rebuild_backward(layer.net, z, context, grad_z, grad_logabsdet)
        _accumulate(grads, mlp_params(layer.net), grad_params)
        return x, grad_x, (g_context if wants_context and layer.net.context_features else None)
    params = [p for p in layer.parameters() if p.requires_grad]
    with torch.enable_grad():
        c = context.detach().requires_grad_() if wants_context else context
        x, leaves, (z_again, logabsdet) = _rerun(layer, z, c)
        pairs = [(o, g) for o, g in ((z_again, grad_z), (logabsdet, grad_logabsdet)) if o.requires_grad]
        inputs = [*leaves] + ([c] if wants_context else []) + params
        values = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], allow_unused=True)
    _accumulate(grads, params, values[len(inputs) - len(params) :])
    parts = [g for g in values[: len(leaves)] if g is not None]
    grad_x = sum(parts[1:], parts[0]) if parts else torch.zeros_like(x)
    return x, grad_x, (values[len(leaves)] if wants_context else None)


def _rerun(layer: Transform, z: Tensor, context: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, Tensor]]:
    """x = layer^-1(z) and layer(x) again with a graph, whose leaves' gradients sum to dL/dx.

    A coupling needs one conditioner pass: `kept` (= z, read only through the kept part, which
    is x's) feeds the conditioner, and `moved` (= x, the inverse's result) the coupling itself.
    """
    if isinstance(layer, CouplingTransform):
        kept = z.detach().requires_grad_()
        theta = layer.condition(kept, context)
        with torch.no_grad():
            x = layer.couple(z, theta, inverse=True)[0]
        moved = x.requires_grad_()
        return x.detach(), (kept, moved), layer.couple(moved, theta)
    with torch.no_grad():
        x = layer.inverse(z, context)[0]
    x = x.requires_grad_()
    return x.detach(), (x,), layer(x, context)

