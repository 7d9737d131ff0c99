"""Flow: a base distribution pushed through an invertible transform."""
from __future__ import annotations

import math
import operator
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from ..transforms.base import Transform, sets_up_on_this_call
from ..transforms.inplace import runs_blocked
from ..transforms.standardize import Standardize
from .checks import cast_checked, check_batch, check_context
from .distribution import FlowDistribution


class Flow(nn.Module):
    """A normalizing flow: z = transform(x) ~ base.

        log p(x) = log p_base(f(x)) + log|det df/dx|      (exact, in nats)
        sample:  x = f^-1(z),  z ~ base (scaled by `temperature`)

    Args:
        transform: the bijection f from data to latent (a Transform, e.g. a Compose).
        base: any object with `log_prob(z)` (one value per sample, or per element, summed here)
            and `sample(shape)`, e.g. StandardNormal or a torch.distributions.Distribution.
        event_shape: shape of one data point; read from `base.event_shape` when omitted.
        context_features: size of the conditioning vector (0: unconditional).
        standardize_context: give the context a Standardize of its own (`context_standardize`),
            fitted by `fit` on the training contexts, so the networks see it on unit scale (a
            context of years, 2000-2020, or incomes, 2e4-2e5, trained to a useless model raw).
            The builders set it whenever they standardize x; log_prob's values do not change,
            as the context is a condition, not a variable of the density.

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.RealNVP(2, layers=4, hidden=(32, 32))
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
        >>> flow.sample(5).shape
        torch.Size([5, 2])
    """

    _compiled_density: Any = None  # torch.compile(self._density), set by flowforge.compile

    def __init__(
        self,
        transform: Transform,
        base: Any,
        event_shape: tuple[int, ...] | None = None,
        context_features: int = 0,
        standardize_context: bool = False,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.base = base
        shape = event_shape
        if shape is None and hasattr(base, "event_shape"):
            # a torch.distributions base with per-element log_prob, e.g. Normal(zeros(D), ones(D)),
            # holds the data shape in batch_shape (its event_shape is ())
            shape = (*getattr(base, "batch_shape", ()), *base.event_shape)
        if shape is None:
            raise FlowforgeError("Flow: pass event_shape, the base has none")
        self.event_shape = tuple(int(s) for s in shape)
        self.context_features = context_features
        self.context_standardize = Standardize(context_features) if standardize_context and context_features else None
        self.spec: dict[str, Any] | None = None  # builder name + kwargs, set by the model registry
        # a network the (standardised) context passes through before the layers see it: builders'
        # `embedding_net` (flows/registry.py); the layers were built for its output size
        self.context_embedding: nn.Module | None = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """A model saved before flows standardised their context loads with the identity there,
        marked fitted, so it keeps computing what it learned (and `fit` does not refit it)."""
        key, scaler = prefix + "context_standardize.", getattr(self, "context_standardize", None)
        if scaler is not None and key + "mean" not in state_dict:
            state_dict[key + "mean"] = torch.zeros_like(scaler.mean)
            state_dict[key + "scale"] = torch.ones_like(scaler.scale)
            state_dict[key + "is_fitted"] = torch.ones_like(scaler.is_fitted)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _scaled(self, context: Tensor | None) -> Tensor | None:
        """The checked context as the layers and the base see it: standardised, if the flow does that."""
        scaler = getattr(self, "context_standardize", None)  # None too in a Flow pickled before it existed
        context = context if context is None or scaler is None else scaler(context)[0]
        embedding = getattr(self, "context_embedding", None)
        return context if context is None or embedding is None else embedding(context)

    # -- helpers -----------------------------------------------------------------------------
    def _anchor(self) -> Tensor:
        for tensor in self.parameters():
            return tensor
        for tensor in self.buffers():
            return tensor
        return torch.zeros(())

    def _prepare(self, x: Tensor, context: Tensor | None, name: str = "x") -> tuple[Tensor, Tensor | None]:
        if not isinstance(x, Tensor):
            try:
                x = torch.as_tensor(x, device=self._anchor().device)  # a list or array: onto the flow's device
            except (TypeError, ValueError, RuntimeError):
                raise FlowforgeError(f"{name}: expected a tensor or an array of numbers, got {type(x).__name__}") from None
        anchor = self._anchor()
        if x.dtype != torch.bool and not x.is_complex():  # floats of any precision; integers (pixels, counts)
            x = cast_checked(x, anchor.dtype, name)
        check_batch(x, self.event_shape, name)
        context = check_context(context, self.context_features, x.shape[0], device=anchor.device, dtype=anchor.dtype)
        return x, self._scaled(context)

    def _base_log_prob(self, z: Tensor, context: Tensor | None) -> Tensor:
        lp = self.base.log_prob(z, context) if context is not None else self.base.log_prob(z)
        return lp.flatten(1).sum(1) if lp.dim() > 1 else lp

    def _base_sample(self, n: int, temperature: float, context: Tensor | None) -> Tensor:
        if isinstance(self.base, nn.Module) and hasattr(self.base, "event_shape"):
            return self.base.sample((n,), temperature=temperature, context=context)
        z = self.base.sample((n,))  # e.g. a torch.distributions object: scale around its mean
        return z if temperature == 1.0 else self.base.mean + temperature * (z - self.base.mean)

    # -- public API --------------------------------------------------------------------------
    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log-density of each row of x, in nats: shape (batch,).

        Example:
            >>> import torch, flowforge
            >>> flow = flowforge.RealNVP(2, layers=2, hidden=(8,))  # untrained: z is x, flipped
            >>> flow.log_prob(torch.zeros(3, 2)).detach()  # log N(0; 0, I) = -log(2 pi)
            tensor([-1.8379, -1.8379, -1.8379])

        A row outside a layer's support (e.g. 1.5 given to a Logit layer) has density zero: its
        log_prob is -inf, never NaN. Layers that check their input (Dequantize) raise instead.
        """
        x, context = self._prepare(x, context)
        if x.shape[0] == 0:  # no rows: layers with a data-dependent set-up or input checks need one
            return x.new_zeros(0)
        compiled = self._compiled_density
        if compiled is None or runs_blocked([self.transform], x) or sets_up_on_this_call(self):
            return self._density(x, context)  # eager (large no-grad CPU batches: the in-place kernel)
        return compiled(x, context)

    def _density(self, x: Tensor, context: Tensor | None) -> Tensor:
        """log_prob of checked inputs: what `flowforge.compile` compiles whole."""
        z, logabsdet = self.transform(x, context)
        log_prob = self._base_log_prob(z, context) + logabsdet
        # NaN comes only from a value a layer does not define there (log of a negative, inf - inf)
        return log_prob.masked_fill(log_prob.isnan(), -math.inf)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles drop the compiled density, as torch drops a module's compiled call."""
        state = super().__getstate__()
        state.pop("_compiled_density", None)
        return state

    def encode(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact latents z = f(x); a row whose z is not finite raises FlowforgeError."""
        x, context = self._prepare(x, context)
        if x.shape[0] == 0:
            return x.new_zeros(x.shape)  # latents have the data's shape
        return _check_finite_rows(self.transform(x, context)[0], "encode: x")

    def decode(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Data x = f^-1(z); a row whose x is not finite raises FlowforgeError."""
        z, context = self._prepare(z, context, "z")
        if z.shape[0] == 0:
            return z.new_zeros(z.shape)
        return _check_finite_rows(self.transform.inverse(z, context)[0], "decode: z")

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None, chunk_size: int = 65536) -> Tensor:
        """n samples x = f^-1(T * z), z ~ base; in chunks so memory stays bounded; no autograd graph.

        Example:
            >>> import torch, flowforge
            >>> _ = torch.manual_seed(0)
            >>> flow = flowforge.RealNVP(2, layers=2, hidden=(8,))  # untrained: x is z, flipped
            >>> x = flow.sample(2000, temperature=0.5)  # z ~ N(0, 0.5^2 I)
            >>> x.shape, x.requires_grad, round(float(x.std()), 1)
            (torch.Size([2000, 2]), False, 0.5)
        """
        with torch.no_grad():
            return self._sample(n, temperature, context, chunk_size, with_log_prob=False)[0]

    def sample_and_log_prob(
        self, n: int, context: Tensor | None = None, temperature: float = 1.0, chunk_size: int = 65536
    ) -> tuple[Tensor, Tensor]:
        """n samples and their exact model log-density log p(x), from one inverse pass."""
        return self._sample(n, temperature, context, chunk_size, with_log_prob=True)

    def distribution(self, context: Tensor | None = None) -> FlowDistribution:
        """This flow as a torch.distributions.Distribution (log_prob, sample, rsample); a context of
        shape (B, C) gives batch_shape (B,), one of shape (C,) or none gives batch_shape ()."""
        return FlowDistribution(self, context)

    def _sample(
        self, n: int, temperature: float, context: Tensor | None, chunk_size: int, with_log_prob: bool
    ) -> tuple[Tensor, Tensor | None]:
        n = _whole_number(n, "n", minimum=0)
        chunk_size = _whole_number(chunk_size, "chunk_size", minimum=1)
        if not (isinstance(temperature, (int, float)) and temperature > 0 and temperature < float("inf")):
            raise FlowforgeError(f"sample: temperature must be a positive number, got {temperature!r}")
        context = self._scaled(check_context(context, self.context_features, n, device=self._anchor().device, dtype=self._anchor().dtype))
        if n == 0:  # no draws: layers with a data-dependent set-up or input checks need a row
            empty = self._anchor().new_zeros((0, *self.event_shape))
            return empty, (empty.new_zeros(0) if with_log_prob else None)
        xs, lps = [], []
        for start in range(0, n, chunk_size):
            m = min(chunk_size, n - start)
            c = context[start : start + m] if context is not None else None
            z = self._base_sample(m, temperature, c)
            x, logabsdet = self.transform.inverse(z, c)
            xs.append(x)
            if with_log_prob:
                lps.append(self._base_log_prob(z, c) - logabsdet)
        x = xs[0] if len(xs) == 1 else torch.cat(xs)  # one chunk: no copy of the whole sample
        _warn_non_finite(x)
        return x, ((lps[0] if len(lps) == 1 else torch.cat(lps)) if with_log_prob else None)


def _whole_number(value: Any, name: str, minimum: int) -> int:
    """value as an int (Python, numpy or 0-d integer tensor) of at least `minimum`, else FlowforgeError."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < minimum:
        what = "a positive" if minimum == 1 else "a non-negative"
        raise FlowforgeError(f"sample: {name} must be {what} integer, got {value!r}")
    return number


def _non_finite_rows(y: Tensor) -> Tensor:
    """(batch,) True where a row holds NaN or Inf."""
    return ~torch.isfinite(y.flatten(1)).all(1)


def _warn_non_finite(x: Tensor) -> None:
    """A warning naming how many samples are NaN or Inf (an inverse that overflowed): rather than
    an error, so that one bad draw does not cost a long sampling job the other rows."""
    if torch.compiler.is_compiling() or x.numel() == 0:
        return
    bad = int(_non_finite_rows(x).sum())
    if bad:
        warnings.warn(f"sample: {bad} of {len(x)} rows are NaN or Inf: the inverse overflowed "
                      f"{str(x.dtype).removeprefix('torch.')} (a lower temperature or float64 may help)", RuntimeWarning, stacklevel=3)


def _check_finite_rows(y: Tensor, name: str) -> Tensor:
    """encode/decode output: NaN or Inf means the input left a layer's support or overflowed."""
    if torch.compiler.is_compiling():  # a data-dependent branch would split the graph
        return y
    bad = _non_finite_rows(y)
    if bad.any():
        raise FlowforgeError(
            f"{name} row {int(bad.nonzero()[0])} maps to NaN or Inf: it lies outside a layer's support "
            f"or overflows {str(y.dtype).removeprefix('torch.')} (float64 may help)"
        )
    return y
