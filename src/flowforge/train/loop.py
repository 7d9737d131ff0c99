"""fit: maximum-likelihood training with validation, best-weights keeping and early stopping."""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..transforms.standardize import Standardize
from .history import History
from .schedule import learning_rate


def as_data(data: Any, name: str, event_shape: tuple[int, ...] | None = None) -> Tensor:
    """Turn arrays/tensors into a float32 tensor; name the problem if they are unusable."""
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number):
            raise FlowforgeError(f"{name}: expected numbers, got an array of dtype {data.dtype}")
        data = torch.from_numpy(np.asarray(data, dtype=np.float32))
    if not isinstance(data, Tensor):
        raise FlowforgeError(f"{name}: expected a tensor or numpy array, got {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        raise FlowforgeError(f"{name}: expected real numbers, got dtype {data.dtype}")
    data = data if data.is_floating_point() else data.float()
    if data.dim() < 2:
        raise FlowforgeError(f"{name}: expected a 2-D (rows, features) array, got shape {tuple(data.shape)}")
    if event_shape is not None and tuple(data.shape[1:]) != tuple(event_shape):
        raise FlowforgeError(f"{name}: the model expects rows of shape {tuple(event_shape)}, got {tuple(data.shape[1:])}")
    if data.shape[0] == 0:
        raise FlowforgeError(f"{name} is empty")
    bad = ~torch.isfinite(data.reshape(data.shape[0], -1)).all(1)
    if bad.any():
        raise FlowforgeError(f"{name} contains NaN or Inf (first in row {int(bad.nonzero()[0])})")
    return data


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value)):
            raise FlowforgeError(f"{name} must be a positive number, got {value!r}")


@torch.no_grad()
def mean_nll(flow: Flow, data: Tensor, context: Tensor | None = None, batch_size: int = 8192) -> float:
    """Mean negative log-likelihood (nats) of `data` under `flow`, in eval mode, in chunks."""
    was_training = flow.training
    flow.eval()
    device = flow._anchor().device
    total = 0.0
    for start in range(0, data.shape[0], batch_size):
        x = data[start : start + batch_size].to(device)
        c = context[start : start + batch_size].to(device) if context is not None else None
        total += -flow.log_prob(x, c).double().sum().item()
    flow.train(was_training)
    return total / data.shape[0]


def _split_validation(train: Tensor, context: Tensor | None, fraction: float, generator: torch.Generator):
    n_val = int(round(train.shape[0] * fraction))
    if fraction <= 0 or n_val < 1 or train.shape[0] - n_val < 2:
        return train, context, None, None
    order = torch.randperm(train.shape[0], generator=generator)
    val_idx, train_idx = order[:n_val], order[n_val:]
    pick = (lambda c, i: c[i] if c is not None else None)
    return train[train_idx], pick(context, train_idx), train[val_idx], pick(context, val_idx)


def _fit_standardizers(flow: Flow, train: Tensor) -> None:
    first = flow.transform[0] if hasattr(flow.transform, "__getitem__") else flow.transform
    if isinstance(first, Standardize) and not bool(first.is_fitted):
        first.fit_(train)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless stream of index batches: a fresh permutation each epoch, no partial batches."""
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def fit(
    flow: Flow,
    train: Any,
    val: Any = None,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    warmup: int | None = None,
    grad_clip: float | None = 10.0,
    seed: int = 0,
    val_fraction: float = 0.1,
    eval_every: int | None = None,
    patience: int | None = 10,
    context: Any = None,
    val_context: Any = None,
    progress: bool = True,
    callback: Callable[[int, Flow, History], None] | None = None,
) -> History:
    """Train `flow` by maximum likelihood (Adam on the mean NLL) and return its History.

    Without `val`, `val_fraction` of `train` is held out for validation (0 disables it). The
    validation NLL is measured every `eval_every` steps; the best weights are kept and restored
    at the end, and training stops after `patience` evaluations without improvement (None:
    never). `steps` defaults to 2000, or `epochs` passes over the training rows. A non-finite
    loss or gradient skips the step (counted in `skipped_steps`); three in a row restore the
    last good weights and halve the learning rate. Reproducible for a given `seed` on CPU.

    Example:
        >>> import torch, flowforge
        >>> torch.manual_seed(0) and None
        >>> x = torch.randn(512, 2) * torch.tensor([1.0, 0.2])
        >>> flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
        >>> history = flowforge.fit(flow, x, steps=50, batch_size=128, progress=False)
        >>> history.best_val_nll < 2.0
        True
    """
    from tqdm.auto import tqdm

    train = as_data(train, "train", flow.event_shape)
    context = as_data(context, "context") if context is not None else None
    _check_positive(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, grad_clip=grad_clip, eval_every=eval_every, patience=patience)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if val is None:
        train, context, val, val_context = _split_validation(train, context, val_fraction, generator)
    else:
        val = as_data(val, "val", flow.event_shape)
        val_context = as_data(val_context, "val_context") if val_context is not None else None
    steps = steps or (epochs * math.ceil(train.shape[0] / batch_size) if epochs else 2000)
    warmup = min(100, steps // 20) if warmup is None else warmup
    eval_every = eval_every or max(1, steps // 50)
    _fit_standardizers(flow, train)

    device = flow._anchor().device
    optimizer = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    history, start_time = History(), time.perf_counter()
    best_state = good_state = None
    lr_factor, bad_in_row, evals_since_best = 1.0, 0, 0
    flow.train()
    bar = tqdm(total=steps, disable=not progress, desc="fit", unit="step", dynamic_ncols=True)
    batches = _batches(train.shape[0], batch_size, generator)
    for step in range(steps):
        index = next(batches)
        x = train[index].to(device)
        c = context[index].to(device) if context is not None else None
        current_lr = learning_rate(schedule, step, steps, lr, warmup) * lr_factor
        for group in optimizer.param_groups:
            group["lr"] = current_lr
        loss = -flow.log_prob(x, c).mean()
        optimizer.zero_grad(set_to_none=True)
        is_finite = bool(torch.isfinite(loss))
        if is_finite:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), grad_clip or float("inf"))
            is_finite = bool(torch.isfinite(norm))
        if not is_finite:
            history.skipped_steps += 1
            bad_in_row += 1
            if bad_in_row >= 3:
                bad_in_row, lr_factor = 0, lr_factor * 0.5
                history.restores += 1
                if good_state is None or history.restores > 10:
                    raise FlowforgeError(f"training diverged: non-finite loss at step {step} and no good state to restore; lower lr")
                flow.load_state_dict(good_state[0])
                optimizer.load_state_dict(good_state[1])
            continue
        optimizer.step()
        bad_in_row = 0
        history.step.append(step)
        history.train_nll.append(loss.item())
        history.lr.append(current_lr)
        if step % 10 == 0:
            bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", refresh=False)
        bar.update(1)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            good_state = (copy.deepcopy(flow.state_dict()), copy.deepcopy(optimizer.state_dict()))
            if val is not None:
                val_nll = mean_nll(flow, val, val_context)
                history.val_step.append(step + 1)
                history.val_nll.append(val_nll)
                bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", val=f"{val_nll:.3f}", refresh=False)
                if val_nll < history.best_val_nll:
                    history.best_val_nll, history.best_step = val_nll, step + 1
                    best_state, evals_since_best = good_state[0], 0
                else:
                    evals_since_best += 1
                if patience is not None and evals_since_best >= patience:
                    history.stopped_early = True
                    break
        if callback is not None:
            callback(step + 1, flow, history)
    bar.close()
    if best_state is not None:
        flow.load_state_dict(best_state)
    elif history.step:
        history.best_step = history.step[-1] + 1
    history.seconds = time.perf_counter() - start_time
    flow.eval()
    return history
