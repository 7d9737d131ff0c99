"""fit: maximum-likelihood training with validation, best-weights keeping and early stopping."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..nn.precision import set_precision
from ..transforms.base import data_dependent_layers, sets_up_on_this_call
from ..transforms.standardize import Standardize
from . import distributed
from .data import (
    as_data,
    batch_index,
    check_positive,
    check_same_rows,
    split_validation,
    to_flow_dtype,
    warn_discrete,
    warn_lost_precision,
)
from .evaluate import evaluate
from .history import History
from .optim import adam, clip_grad_norm
from .schedule import learning_rate
from .state import TrainState, clone_state

MAX_RESTORES = 10  # give up (loudly) after this many restores of the last good state


class _NLL(nn.Module):
    """Mean NLL of a batch; the module DDP wraps, so its gradient hooks see a forward call."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        return -self.flow.log_prob(x, context).mean()


def _prepare_standardize(flow: Flow, train: Tensor) -> None:
    """Fit the first layer's Standardize if it is not yet fitted. Data-dependent set-ups done
    before (an ActNorm that saw a batch in training mode, e.g. a log_prob call before fit) saw
    unstandardised data: they are undone, so the first training batch sets them up again."""
    first = flow.transform[0] if hasattr(flow.transform, "__getitem__") else flow.transform
    if isinstance(first, Standardize) and not bool(first.is_fitted):
        first.fit_(train)
        for layer in data_dependent_layers(flow):
            layer.is_initialized.fill_(False)


def _prepare_context_standardize(flow: Flow, context: Tensor | None) -> None:
    """Fit the flow's context Standardize (flows built with standardize=...) on the training contexts."""
    scaler = getattr(flow, "context_standardize", None)
    if scaler is not None and context is not None and not bool(scaler.is_fitted):
        scaler.fit_(context)


@torch.no_grad()
def _initialize_data_dependent(flow: Flow, x: Tensor, context: Tensor | None) -> None:
    """Run one forward pass on the first *global* batch, so ActNorm-style data-dependent
    initialisations see the same statistics on every rank (and as in a single process)."""
    flow.train()
    if sets_up_on_this_call(flow):
        flow.log_prob(x, context)


def default_eval_every(steps: int, rows: int, batch_size: int) -> int:
    """Validate 50 times per run, and at least every 8 passes over the `rows` given to fit: on a
    few hundred rows, 40 steps of batch 512 are 200 passes, enough to overfit between two checks."""
    return max(1, min(steps // 50, math.ceil(8 * rows / batch_size)))


def _check_options(steps, epochs, batch_size, lr, grad_clip, eval_every, patience) -> None:
    check_positive(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, grad_clip=grad_clip,
                   eval_every=eval_every, patience=patience)
    counts = {"steps": steps, "epochs": epochs, "batch_size": batch_size, "eval_every": eval_every, "patience": patience}
    for name, value in counts.items():
        if value is not None and not isinstance(value, int):
            raise FlowforgeError(f"{name} must be a whole number, got {value!r}")
    if batch_size % distributed.world_size():
        raise FlowforgeError(f"batch_size {batch_size} must be divisible by the number of processes ({distributed.world_size()})")


@torch.enable_grad()  # called under torch.no_grad() it would otherwise fail inside backward
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
    patience: int | None = 20,
    context: Any = None,
    val_context: Any = None,
    progress: bool = True,
    callback: Callable[[int, Flow, History], None] | None = None,
    resume: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    precision: str = "fp32",
) -> History:
    """Train `flow` by maximum likelihood (Adam on the mean NLL) and return its History.

    Without `val`, `val_fraction` of `train` is held out for validation (0 disables it). The
    validation NLL is measured before the first step and every `eval_every` steps (default: 50
    times per run, and at least every 8 passes over the data); the best weights are kept and restored
    at the end, and training stops after `patience` evaluations without improvement (None:
    never). `steps` defaults to 2000, or `epochs` passes over the training rows. A non-finite
    loss or gradient skips the step (counted in `skipped_steps`); three in a row restore the
    last good weights and optimizer state and halve the learning rate. Reproducible for a given
    `seed`; `on_checkpoint(state)` gets a resumable state every `checkpoint_every` steps, on
    `should_stop()` (asked once a step; when it is True on any rank, every rank finishes that
    step and stops) and at the end, and `resume=state` continues a run bit-exactly. Inside an
    initialised torch.distributed process group it trains with DistributedDataParallel.
    `precision="bf16"` or `"fp16"` runs the conditioner networks under autocast (fp16 with a
    gradient scaler); the flow's data path, log-det sums and base density stay in float32.

    Example:
        >>> import torch, flowforge
        >>> x = torch.randn(512, 2) * torch.tensor([1.0, 0.2])
        >>> flow = flowforge.RealNVP(2, layers=2, hidden=(16,))
        >>> history = flowforge.fit(flow, x, steps=50, batch_size=128, progress=False)
        >>> history.best_val_nll < 2.0
        True
    """
    from tqdm import tqdm

    _check_options(steps, epochs, batch_size, lr, grad_clip, eval_every, patience)
    train = as_data(train, "train", flow.event_shape)
    context = as_data(context, "context") if context is not None else None
    check_same_rows(train, context, "train", "context")
    rows_given = train.shape[0]
    if val is None:
        if val_context is not None:
            raise FlowforgeError("fit: val_context was given without val")
        train, context, val, val_context = split_validation(train, context, val_fraction, seed)
    else:
        val = as_data(val, "val", flow.event_shape)
        val_context = as_data(val_context, "val_context") if val_context is not None else None
        check_same_rows(val, val_context, "val", "val_context")
    steps = steps or (epochs * max(1, train.shape[0] // batch_size) if epochs else 2000)
    warmup = min(100, steps // 20) if warmup is None else warmup
    eval_every = eval_every or default_eval_every(steps, rows_given, batch_size)
    device, dtype = flow._anchor().device, flow._anchor().dtype
    warn_lost_precision(train, dtype, "train")
    warn_discrete(train, "train")
    train, val = to_flow_dtype(train, dtype, "train"), to_flow_dtype(val, dtype, "val")
    context, val_context = to_flow_dtype(context, dtype, "context"), to_flow_dtype(val_context, dtype, "val_context")

    def batch(step: int) -> tuple[Tensor, Tensor | None]:
        index = distributed.shard(batch_index(step, train.shape[0], batch_size, seed))
        return train[index].to(device), (context[index].to(device) if context is not None else None)

    _prepare_standardize(flow, train)
    _prepare_context_standardize(flow, context)
    set_precision(flow, precision)
    try:
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        parameters = [p for p in flow.parameters() if p.requires_grad]
        if not parameters:
            raise FlowforgeError("fit: the flow has no trainable parameters")
        optimizer = adam(parameters, lr, weight_decay)
        if resume is not None:
            if "live_model" in resume:
                flow.load_state_dict(resume["live_model"])
            state = TrainState.from_dict(resume, optimizer)
            state.history.interrupted = False  # a state saved on should_stop(): this run goes on
        else:
            torch.manual_seed(seed)
            first = batch_index(0, train.shape[0], batch_size, seed)
            _initialize_data_dependent(flow, train[first].to(device), context[first].to(device) if context is not None else None)
            state = TrainState()
            if val is not None:  # the starting weights are a candidate too (few rows: they can beat every later step)
                with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
                    evaluate(flow, optimizer, state, val, val_context, patience, restorable=False)  # draws nothing from the run's stream
        model = distributed.wrap(_NLL(flow))
        history, start_time = state.history, time.perf_counter() - state.history.seconds
        is_main = distributed.is_main()

        def checkpoint() -> None:
            history.seconds = time.perf_counter() - start_time
            if on_checkpoint is not None and is_main:
                on_checkpoint(state.to_dict(optimizer))

        flow.train()
        bar = tqdm(total=steps, initial=state.step, disable=not (progress and is_main), desc="fit", unit="step", dynamic_ncols=True)
        stop_asked = False  # by a signal on any rank, as of the last step's all-reduce
        while state.step < steps and not history.stopped_early:
            if stop_asked:
                history.interrupted = True
                break
            step = state.step
            x, c = batch(step)
            current_lr = learning_rate(schedule, step, steps, lr, warmup) * state.lr_factor
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            optimizer.zero_grad(set_to_none=True)
            loss = model(x, c)
            scaler.scale(loss).backward()  # always, even if non-finite: under DDP every rank joins the all-reduce
            scaler.unscale_(optimizer)
            norm = clip_grad_norm(parameters, grad_clip)
            # one all-reduce: how many ranks had a finite loss and gradient, the sum of their losses, and
            # how many were asked to stop (a signal reaches each rank at its own moment: all stop together)
            finite = torch.stack([loss.detach(), norm]).isfinite().all()
            asked = torch.tensor([float(should_stop is not None and should_stop())])
            flags = torch.cat([torch.stack([finite.float(), loss.detach().float()]).cpu(), asked])
            finite_ranks, loss_sum, stops = distributed.sum_across(flags).tolist()
            stop_asked = stops > 0
            state.step += 1
            if finite_ranks < distributed.world_size():
                if scaler.is_enabled():  # fp16 overflow: the scaler lowers its scale, nothing to restore
                    scaler.update()
                    state.history.skipped_steps += 1
                else:
                    _on_non_finite(flow, optimizer, state, step)
                continue
            scaler.step(optimizer)
            scaler.update()
            state.bad_in_row = 0
            history.step.append(step)
            history.train_nll.append(loss_sum / distributed.world_size())  # the global batch's NLL: equal shards
            history.lr.append(current_lr)
            if step % 10 == 0:
                bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", refresh=False)
            bar.update(state.step - bar.n)
            if state.step % eval_every == 0 or state.step == steps:
                evaluate(flow, optimizer, state, val, val_context, patience)
                if history.val_nll:
                    bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", val=f"{history.val_nll[-1]:.3f}", refresh=False)
            if callback is not None and is_main:
                callback(state.step, flow, history)
            if checkpoint_every and state.step % checkpoint_every == 0 and state.step < steps:
                checkpoint()
        bar.close()
    finally:  # also when training raises (divergence, Ctrl-C): later calls run at full precision
        set_precision(flow, "fp32")
    if history.val_nll and state.good is None and not history.interrupted:
        raise FlowforgeError(
            f"training diverged: the validation NLL was never finite ({len(history.val_nll)} evaluations, "
            f"{history.skipped_steps} steps skipped); lower lr or check the data"
        )
    checkpoint_state = None
    if not history.interrupted:
        live = clone_state(flow)
        if state.best is not None:
            flow.load_state_dict(state.best)
        elif history.step:
            history.best_step = history.step[-1] + 1
        checkpoint_state = live
    history.seconds = time.perf_counter() - start_time
    if on_checkpoint is not None and is_main:
        saved = state.to_dict(optimizer)
        if checkpoint_state is not None:
            saved["live_model"] = checkpoint_state  # the weights to continue from, not the best ones
        on_checkpoint(saved)
    flow.eval()
    return history


def _on_non_finite(flow: Flow, optimizer: torch.optim.Optimizer, state: TrainState, step: int) -> None:
    """Skip the step; after three in a row restore the last good state and halve the lr."""
    state.history.skipped_steps += 1
    state.bad_in_row += 1
    if state.bad_in_row < 3:
        return
    state.bad_in_row, state.lr_factor = 0, state.lr_factor * 0.5
    state.history.restores += 1
    if state.good is None or state.history.restores > MAX_RESTORES:
        raise FlowforgeError(
            f"training diverged: non-finite loss or gradients at step {step} "
            f"({state.history.skipped_steps} steps skipped); lower lr or check the data"
        )
    flow.load_state_dict(state.good[0])
    optimizer.load_state_dict(state.good[1])
