"""The affine coupling with a ReLU MLP conditioner, forward and backward written out by hand.

The conditioner's products are `addmm`s and its ReLUs run in place (the blocked no-grad kernel
folds each hidden bias into the next layer: an `mm` and one `clamp_` per hidden layer), and the
halves of z and of dL/dx are written straight into their output rows. `choose_kernel` alone
decides which couplings run it: an affine or additive map on a contiguous [kept | transformed]
split with a ReLU `MLP`. Such a `Coupling` runs `coupling_` for no-grad passes, in place (inside a
no-grad Compose pass: inplace.py) or on a copy (with gradients on it uses plain autograd ops,
which torch.func and double backward need); `recompute.py` runs `coupling_backward` on tensors
that `coupling_inverse` rebuilt from the output.

Saved per coupling: the input x, the conditioner's hidden activations, and e = exp(s).
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..nn.mlp import MLP
from .maps import AdditiveMap, AffineMap


class Saved(NamedTuple):
    """What the backward pass needs: x, the MLP's inputs per layer, u = tanh(s_raw / bound), exp(s)."""

    x: Tensor
    hidden: list[Tensor]
    u: Tensor | None
    e: Tensor | None


@dataclass(frozen=True)
class FusedKernel:
    """A coupling this kernel runs: x's first k columns kept, the rest transformed by
    z = x * exp(s) + t, s soft-clamped to |s| < bound (`scale`), or by z = x + t."""

    k: int
    scale: bool
    bound: float

    def step_(self, net: MLP, x: Tensor, context: Tensor | None, inverse: bool, flipped: bool) -> Tensor:
        """The coupling in place on x, whose columns are reversed when `flipped`; returns log|det|."""
        kept = x[:, x.shape[1] - self.k :] if flipped else x[:, : self.k]
        return coupling_(x, net.join(kept, context), self.k, self.bound, self.scale, mlp_params(net), inverse, flipped)

    def rebuild_backward(
        self, net: MLP, z: Tensor, context: Tensor | None, grad_z: Tensor, grad_logabsdet: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """x from z and, from dL/dz and dL/dlogabsdet, dL/dx, dL/dcontext and dL/d(mlp_params)."""
        params = mlp_params(net)
        x, _, saved = coupling_inverse(z, net.join(z[:, : self.k], context), self.k, self.bound, self.scale, params)
        grad_x, g_inp, grad_params = coupling_backward(saved, grad_z, grad_logabsdet, self.k, self.bound, params)
        return x, grad_x, g_inp[:, self.k :], grad_params


def choose_kernel(map_fn: object, net: nn.Module, contiguous_split: int | None) -> FusedKernel | None:
    """The one place that picks this kernel for a coupling: an affine or additive map on a
    contiguous [kept | transformed] split (`contiguous_split` kept columns, else None) with a
    ReLU MLP conditioner."""
    if contiguous_split is None or not isinstance(net, MLP) or net.activation != "relu":
        return None
    if isinstance(map_fn, AffineMap):
        return FusedKernel(contiguous_split, True, map_fn.bound)
    return FusedKernel(contiguous_split, False, 0.0) if isinstance(map_fn, AdditiveMap) else None


def mlp_params(net: MLP) -> tuple[Tensor, ...]:
    """The MLP's (w1, b1, w2, b2, ...), as this kernel takes them."""
    return tuple(p for layer in net.linears() for p in (layer.weight, layer.bias))


BLOCK_BYTES = 8 << 20  # at most this much for a block's widest activation when nothing is kept for backward
MIN_BLOCK_ROWS = 256  # and never fewer rows than this (a batch this small is never blocked)
BLOCK_ROWS = 4096  # and at most this many rows: larger blocks fall out of cache, smaller ones pay per-call overhead


def block_rows(params: tuple[Tensor, ...], element_size: int) -> int:
    """Rows per block: BLOCK_ROWS, fewer where the widest layer would pass BLOCK_BYTES (2048 rows at H=1024)."""
    widest = max(params[i].shape[0] for i in range(0, len(params), 2))
    return max(MIN_BLOCK_ROWS, min(BLOCK_ROWS, BLOCK_BYTES // (widest * element_size)))


SCRATCH_BYTES = 32 << 20  # at most this much is kept between calls, per thread and dtype
_scratch = threading.local()  # per thread: two threads running flows must not share buffers


def scratch(numel: int, like: Tensor) -> Tensor:
    """A flat buffer of `numel` elements of like's dtype, kept between calls on CPU.

    The no-grad kernel's buffers (the blocks' hidden layers, the conditioner's output) are
    reused instead of allocated on every call: glibc can hand blocks of a few MiB back to the OS
    on free, and touching fresh pages again costs page faults. GPUs (torch's caching allocator)
    and requests over SCRATCH_BYTES get a plain allocation.
    """
    if like.device.type != "cpu" or numel * like.element_size() > SCRATCH_BYTES:
        return like.new_empty(numel)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(like.dtype)
    if buffer is None or buffer.numel() < numel:
        buffer = buffers[like.dtype] = like.new_empty(numel)
    return buffer[:numel]


def mlp_forward(inp: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, list[Tensor]]:
    """ReLU MLP on rows; params are (w1, b1, w2, b2, ...). Returns the output and each layer's input."""
    hidden = [inp]
    h = inp
    for i in range(0, len(params), 2):
        h = torch.addmm(params[i + 1], h, params[i].t())
        if i + 2 < len(params):
            h.relu_()
            hidden.append(h)
    return h, hidden


def coupling_(
    x: Tensor, inp: Tensor, k: int, bound: float, scale: bool, params: tuple[Tensor, ...], inverse: bool = False,
    flipped: bool = False,
) -> Tensor:
    """The coupling (or its inverse) in place on x, no autograd; returns log|det|.

    inp is the conditioner's input (x_A plus any context), read before x changes. `flipped`:
    x's columns are in reverse order (a Reverse before this layer, not yet applied): the kept
    part is then x's last k columns reversed, and the transformed part its first D-k reversed.
    Reversing the first layer's input columns and the last layer's output rows (s and t each)
    makes the conditioner read and write x's own column order, so the batch is never moved.

    On CPU the conditioner runs on blocks of `block_rows` rows in one reused scratch buffer, so
    its activations stay in cache (GPUs take the whole batch), and writes s and t into two
    contiguous outputs, because tanh and exp vectorise on a contiguous (B, m) block and not on the
    s-columns of a (B, 2m) output. The coupling's own arithmetic then runs once on the whole
    batch, in place on the conditioner's output.
    """
    m = x.shape[1] - k
    if flipped:
        params = _reversed_ends(params, k, m)
    b = x[:, :m] if flipped else x[:, k:]
    if not scale:
        (b.sub_ if inverse else b.add_)(_conditioner(inp, params, None)[0])
        return x.new_zeros(x.shape[0])
    s, t = _conditioner(inp, params, m)
    s = s.div_(bound).tanh_().mul_(bound)  # soft clamp: |s| < bound
    logabsdet = s.sum(1)
    if inverse:  # x_B = (z_B - t) e^-s
        b.sub_(t).mul_(s.neg_().exp_())
        return logabsdet.neg_()
    torch.addcmul(t, b, s.exp_(), out=b)  # z_B = x_B e^s + t
    return logabsdet


def blocked_rows(x: Tensor, params: tuple[Tensor, ...]) -> int | None:
    """Rows per block when the no-grad kernel runs x in blocks (on CPU, more rows than one block), else None."""
    rows = block_rows(params, x.element_size())
    return rows if x.device.type == "cpu" and x.shape[0] > rows else None


def _conditioner(inp: Tensor, params: tuple[Tensor, ...], split: int | None) -> tuple[Tensor, ...]:
    """The MLP's output, ours to overwrite: blocked on CPU, whole on a GPU or a small batch; with
    `split`, as (its first `split` columns, the rest)."""
    rows = blocked_rows(inp, params)
    if rows is not None:
        return _mlp_blocks(inp, params, rows, split)
    out = mlp_forward(inp, params)[0]
    return (out,) if split is None else (out[:, :split], out[:, split:])


def _reversed_ends(params: tuple[Tensor, ...], k: int, m: int) -> tuple[Tensor, ...]:
    """The MLP's parameters with its first k input columns reversed and each m-row block of its
    output (s, t) reversed: the same network on reversed inputs and outputs."""
    out = list(params)
    out[0] = torch.cat([out[0][:, :k].flip(1), out[0][:, k:]], 1)
    out[-2], out[-1] = (torch.cat([part.flip(0) for part in p.split(m)]) for p in (out[-2], out[-1]))
    return tuple(out)


def _mlp_blocks(inp: Tensor, params: tuple[Tensor, ...], rows: int, split: int | None = None) -> tuple[Tensor, ...]:
    """The MLP on `rows` rows at a time, each hidden layer written into one reused buffer (no
    allocation per block, so the buffers stay in cache) and the output straight into its rows:
    one (B, out) tensor, or with `split` two contiguous ones, (B, split) and (B, out - split).

    Each hidden layer's bias is folded into the next layer instead of being copied into every
    row (`addmm` writes its bias into the output before the product): a buffer holds
    h' = relu(a + c) - c = max(a, -c), with a the product without bias and c the layer's offset,
    its bias plus the previous offset carried through its weights, so one `clamp_` does bias and
    ReLU in one pass. Offsets: c_1 = b_1, c_(j+1) = b_(j+1) + W_(j+1) c_j; the output layer adds
    b_L + W_L c_(L-1).
    """
    n = inp.shape[0]
    widths = [params[i].shape[0] for i in range(0, len(params) - 2, 2)]
    width_out = params[-1].shape[0]
    flat = scratch(rows * sum(widths) + n * width_out, inp)
    buffers = []
    for width in widths:
        buffers.append(flat[: rows * width].view(rows, width))
        flat = flat[rows * width :]
    cuts = [0, width_out] if split is None else [0, split, width_out]
    outs = []  # read by the caller before the next call reuses them
    for lo, hi in itertools.pairwise(cuts):
        outs.append(flat[n * lo : n * hi].view(n, hi - lo))
    offsets = _offsets(params)
    floors = [c.neg() for c in offsets[:-1]]
    heads = [(params[-2][lo:hi].t(), offsets[-1][lo:hi]) for lo, hi in itertools.pairwise(cuts)]
    for start in range(0, n, rows):
        h = inp[start : start + rows]
        for i, buffer, floor in zip(range(0, len(params) - 2, 2), buffers, floors):
            # one input feature (d=2, no context): an outer product, cheaper than a GEMM of inner size 1
            if params[i].shape[1] == 1:
                h = torch.mul(h, params[i].view(1, -1), out=buffer[: h.shape[0]]).clamp_(min=floor)
            else:
                h = torch.mm(h, params[i].t(), out=buffer[: h.shape[0]]).clamp_(min=floor)
        for (w, bias), out in zip(heads, outs):
            torch.addmm(bias, h, w, out=out[start : start + h.shape[0]])
    return tuple(outs)


def _offsets(params: tuple[Tensor, ...]) -> list[Tensor]:
    """Each layer's offset c_j for the bias fold (the last one is the output layer's bias).

    Computed in float64: in float32 the fold's rounding would add to the cancellation between a
    dead unit's -c and the +W c carried in the next offset; so computed, gradients of
    memory="invertible" flows (whose forward pass is this kernel) stay as close to ordinary
    autograd's as the unfolded kernel's were (tests/transforms/test_recompute.py)."""
    offsets = [params[1].double()]
    for i in range(2, len(params), 2):
        offsets.append(torch.addmv(params[i + 1].double(), params[i].double(), offsets[-1]))
    return [c.to(params[1].dtype) for c in offsets]


def coupling_inverse(
    z: Tensor, inp: Tensor, k: int, bound: float, scale: bool, params: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor, Saved]:
    """x from z with one conditioner pass (inp is z_A = x_A plus context), and the forward's Saved."""
    out, hidden = mlp_forward(inp, params)
    x = torch.empty_like(z)
    x[:, :k] = z[:, :k]
    if not scale:
        torch.sub(z[:, k:], out, out=x[:, k:])
        return x, z.new_zeros(z.shape[0]), Saved(x, hidden, None, None)
    m = z.shape[1] - k
    u = torch.tanh(out[:, :m] / bound)
    s = u * bound
    e = s.exp()
    torch.mul(z[:, k:] - out[:, m:], (-s).exp(), out=x[:, k:])
    return x, -s.sum(1), Saved(x, hidden, u, e)


def coupling_backward(
    saved: Saved, grad_z: Tensor, grad_logabsdet: Tensor, k: int, bound: float, params: tuple[Tensor, ...],
    need_input: bool = True,
) -> tuple[Tensor | None, Tensor | None, list[Tensor]]:
    """dL/dx, dL/d(conditioner input) and dL/d(params) from dL/dz and dL/dlogabsdet."""
    x, hidden, u, e = saved
    g_b = grad_z[:, k:]
    if u is None:
        g_out = g_b
    else:
        m = x.shape[1] - k
        g_out = torch.empty(x.shape[0], 2 * m, dtype=x.dtype, device=x.device)
        # ds/ds_raw = 1 - u^2;  dz_B/ds = x_B * e;  dlogabsdet/ds = 1
        torch.mul(torch.addcmul(grad_logabsdet[:, None], g_b * x[:, k:], e), 1 - u * u, out=g_out[:, :m])
        g_out[:, m:] = g_b
    grad_params, g_inp = _mlp_backward(g_out, hidden, params, need_input)
    if not need_input:
        return None, None, grad_params
    grad_x = torch.empty_like(x)
    torch.add(grad_z[:, :k], g_inp[:, :k], out=grad_x[:, :k])
    if u is None:
        grad_x[:, k:] = g_b
    else:
        torch.mul(g_b, e, out=grad_x[:, k:])
    return grad_x, g_inp, grad_params


def _mlp_backward(
    g: Tensor, hidden: list[Tensor], params: tuple[Tensor, ...], need_input: bool
) -> tuple[list[Tensor], Tensor | None]:
    grads: list[Tensor] = []
    for i in reversed(range(0, len(params), 2)):
        h = hidden[i // 2]
        grads += [g.sum(0), torch.mm(g.t(), h)]  # bias, weight (reversed below)
        if i == 0 and not need_input:
            return grads[::-1], None
        g = torch.mm(g, params[i])
        if i > 0:  # ReLU, h its output: autograd's own kernel (a bool mask costs ~6x more on CPU)
            g = torch.ops.aten.threshold_backward(g, h, 0)
    return grads[::-1], g
