"""fit: maximum-likelihood training with validation, best-weights keeping and early stopping.

Each step trains on the step's batch: Adam on the mean NLL at the scheduled learning rate, with
clipped gradients. A step whose loss or gradient is not finite on some rank is skipped; three in a
row restore the last good weights and optimizer state and halve the learning rate (under fp16 the
gradient scaler lowers its scale instead). The validation NLL, measured before the first step and
every `eval_every` steps, picks the weights left in the flow at the end and stops the run after
`patience` evaluations without improvement. With `ema`, a moving average of the weights is what
is validated, kept as best and left in the flow (train/ema.py).
"""
from __future__ import annotations

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
from .data import FitData
from .ema import ema_start, ema_update, load_weights
from .evaluate import evaluate
from .history import History, TrainState, clone_state
from .objectives import objective_module
from .optim import adam, clip_grad_norm, learning_rate
from .options import FitOptions, default_eval_every  # noqa: F401 -- default_eval_every: the CLI logs fit's default

MAX_RESTORES = 10  # give up (loudly) after this many restores of the last good state


@torch.enable_grad()  # called under torch.no_grad() it would otherwise fail inside backward
def fit(flow: Flow, train: Any, val: Any = None, *, context: Any = None, val_context: Any = None,
        options: FitOptions | None = None, resume: dict[str, Any] | None = None,
        callback: Callable[[int, Flow, History], None] | None = None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None, **overrides: Any) -> History:
    """Train `flow` by maximum likelihood (Adam on the mean NLL), or a CNF by flow matching
    (`objective="flow-matching"`); it ends in eval mode, with the best weights by validation NLL.

    Args:
        train, val: (rows, *event_shape) tensors, arrays or .npy paths; without `val`, `val_fraction` of `train`.
        context, val_context: (rows, context_features), one row per row of `train` and `val`.
        options: [`FitOptions`][flowforge.FitOptions]; `**overrides` (its field names) replace its fields.
        resume: a state `on_checkpoint` was given, to continue that run bit-exactly.
        callback, on_checkpoint, should_stop: rank 0 calls `callback(step, flow, history)` after each step,
            `on_checkpoint(resumable_state)` every `checkpoint_every` steps, at the end and on `should_stop()`.

    Example:
        >>> import torch, flowforge
        >>> x = torch.randn(512, 2) * torch.tensor([1.0, 0.2])
        >>> history = flowforge.fit(flowforge.RealNVP(2, layers=2, hidden=(16,)), x, steps=50, batch_size=128, progress=False)
        >>> history.best_val_nll < 2.0
        True
    """
    options = FitOptions.merge(options, overrides)
    data = FitData.checked(flow, train, val, context, val_context, options)
    options = options.for_data(data.rows_given, data.train.shape[0])
    _prepare_standardize(flow, data.train, data.context)
    set_precision(flow, options.precision)
    try:
        scaler = torch.amp.GradScaler(data.device.type, enabled=options.precision == "fp16")
        optimizer = _adam(flow, options)
        state = _first_state(flow, optimizer, data, options, resume)
        state.ema = None if options.ema is None else state.ema or ema_start(flow)
        objective = objective_module(flow, options.objective, options.coupling, options.time_power)
        model, history, is_main = distributed.wrap(objective), state.history, distributed.is_main()
        start_time, stop_asked = time.perf_counter() - history.seconds, False
        flow.train()
        with _progress_bar(options, state.step, is_main) as bar:
            while state.step < options.steps and not history.stopped_early:
                if stop_asked:  # by a signal on any rank, as of the last step's all-reduce
                    history.interrupted = True
                    break
                step = state.step
                lr = learning_rate(options.schedule, step, options.steps, options.lr, options.warmup) * state.lr_factor
                is_taken, nll, stop_asked, grad_norm = _step(model, optimizer, scaler, data.batch(step, options), lr,
                                                             options.grad_clip, should_stop)
                state.step += 1
                if not is_taken:
                    _on_non_finite(flow, optimizer, state, step, restore=not scaler.is_enabled())
                    continue
                _record(state, step, nll, lr, grad_norm)
                if state.ema is not None:
                    ema_update(state.ema, flow, options.ema, state.step)
                is_evaluated = state.step % options.eval_every == 0 or state.step == options.steps
                if is_evaluated:
                    evaluate(flow, optimizer, state, data.val, data.val_context, options.patience)
                _show(bar, history, step, is_evaluated)
                if callback is not None and is_main:
                    callback(state.step, flow, history)
                if options.checkpoint_every and state.step % options.checkpoint_every == 0 and state.step < options.steps:
                    _checkpoint(on_checkpoint, state, optimizer, start_time, is_main)
    finally:  # also when training raises (divergence, Ctrl-C): later calls run at full precision
        set_precision(flow, "fp32")
    _finish(flow, state, optimizer, on_checkpoint, start_time, is_main)
    return history


def _prepare_standardize(flow: Flow, train: Tensor, context: Tensor | None) -> None:
    """Fit the first layer's Standardize and the flow's context Standardize (flows built with
    standardize=...) where they are not yet fitted. Data-dependent set-ups done before the first
    (an ActNorm that saw a batch in training mode, e.g. a log_prob call before fit) saw
    unstandardised data: they are undone, so the first training batch sets them up again."""
    first = flow.transform[0] if hasattr(flow.transform, "__getitem__") else flow.transform
    if isinstance(first, Standardize) and not bool(first.is_fitted):
        first.fit_(train)
        for layer in data_dependent_layers(flow):
            layer.is_initialized.fill_(False)
    scaler = getattr(flow, "context_standardize", None)
    if scaler is not None and context is not None and not bool(scaler.is_fitted):
        scaler.fit_(context)


def _adam(flow: Flow, options: FitOptions) -> torch.optim.Optimizer:
    """Adam over the flow's trainable parameters, one group: `param_groups[0]["params"]`."""
    parameters = [p for p in flow.parameters() if p.requires_grad]
    if not parameters:
        raise FlowforgeError("fit: the flow has no trainable parameters")
    return adam(parameters, options.lr, options.weight_decay)


def _first_state(flow: Flow, optimizer: torch.optim.Optimizer, data: FitData, options: FitOptions,
                 resume: dict[str, Any] | None) -> TrainState:
    """The state training starts from: `resume`'s, or a new run's after the data-dependent
    set-up and a validation of the starting weights."""
    if resume is not None:
        if "live_model" in resume:
            flow.load_state_dict(resume["live_model"])
        state = TrainState.from_dict(resume, optimizer)
        state.history.interrupted = False  # a state saved on should_stop(): this run goes on
        return state
    torch.manual_seed(options.seed)
    _initialize_data_dependent(flow, *data.batch(0, options, shard=False))
    state = TrainState()
    if data.val is not None:  # the starting weights are a candidate too (few rows: they can beat every later step)
        device = data.device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            evaluate(flow, optimizer, state, data.val, data.val_context, options.patience, restorable=False)  # draws nothing from the run's stream
    return state


@torch.no_grad()
def _initialize_data_dependent(flow: Flow, x: Tensor, context: Tensor | None) -> None:
    """Run one forward pass on the first *global* batch, so ActNorm-style data-dependent
    initialisations see the same statistics on every rank (and as in a single process)."""
    flow.train()
    if sets_up_on_this_call(flow):
        flow.log_prob(x, context)


def _progress_bar(options: FitOptions, step: int, is_main: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=options.steps, initial=step, disable=not (options.progress and is_main), desc="fit", unit="step",
                dynamic_ncols=True)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          batch: tuple[Tensor, Tensor | None], lr: float, grad_clip: float | None,
          should_stop: Callable[[], bool] | None) -> tuple[bool, float, bool, float]:
    """One optimiser step at learning rate `lr`, taken only when the loss and the gradient are
    finite on every rank. Returns whether it was taken, the global batch's mean NLL, whether
    any rank was asked to stop, and the gradient's norm before clipping."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = model(*batch)
    scaler.scale(loss).backward()  # always, even if non-finite: under DDP every rank joins the all-reduce
    scaler.unscale_(optimizer)
    norm = clip_grad_norm(optimizer.param_groups[0]["params"], grad_clip)
    # one all-reduce: how many ranks had a finite loss and gradient, the sum of their losses, and
    # how many were asked to stop (a signal reaches each rank at its own moment: all stop together)
    finite = torch.stack([loss.detach(), norm]).isfinite().all()
    asked = torch.tensor([float(should_stop is not None and should_stop())])
    flags = torch.cat([torch.stack([finite.float(), loss.detach().float()]).cpu(), asked])
    finite_ranks, loss_sum, stops = distributed.sum_across(flags).tolist()
    is_taken = finite_ranks == distributed.world_size()
    if is_taken:
        scaler.step(optimizer)
    scaler.update()  # fp16: after an overflow, lowers the scale (a no-op without a scaler)
    return is_taken, loss_sum / distributed.world_size(), stops > 0, float(norm)  # the global batch's NLL: equal shards


def _on_non_finite(flow: Flow, optimizer: torch.optim.Optimizer, state: TrainState, step: int, restore: bool) -> None:
    """Skip the step; without fp16's scaler (which lowers its scale instead), three in a row
    restore the last good state and halve the lr."""
    state.history.skipped_steps += 1
    if not restore:
        return
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


def _record(state: TrainState, step: int, nll: float, lr: float, grad_norm: float) -> None:
    state.bad_in_row = 0
    state.history.step.append(step)
    state.history.train_nll.append(nll)
    state.history.lr.append(lr)
    state.history.grad_norm.append(grad_norm)


def _show(bar: Any, history: History, step: int, is_evaluated: bool) -> None:
    """The progress bar after a step: its train NLL every 10 steps, and each validation NLL."""
    if is_evaluated and history.val_nll:
        bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", val=f"{history.val_nll[-1]:.3f}", refresh=False)
    elif step % 10 == 0:
        bar.set_postfix(nll=f"{history.train_nll[-1]:.3f}", refresh=False)
    bar.update(step + 1 - bar.n)


def _finish(flow: Flow, state: TrainState, optimizer: torch.optim.Optimizer,
            on_checkpoint: Callable[[dict[str, Any]], None] | None, start_time: float, is_main: bool) -> None:
    """Leave the best weights in `flow`, in eval mode, and hand `on_checkpoint` the final state."""
    live = _restore_best(flow, state)
    _checkpoint(on_checkpoint, state, optimizer, start_time, is_main, live)
    flow.eval()


def _restore_best(flow: Flow, state: TrainState) -> dict[str, Any] | None:
    """Load the best weights into `flow` (the moving average's last, without validation); returns
    the live ones, to continue from (None for an interrupted run without an average, whose live
    weights stay in `flow`)."""
    history = state.history
    if history.val_nll and state.good is None and not history.interrupted:
        raise FlowforgeError(
            f"training diverged: the validation NLL was never finite ({len(history.val_nll)} evaluations, "
            f"{history.skipped_steps} steps skipped); lower lr or check the data"
        )
    if history.interrupted and state.ema is None:
        return None
    live = clone_state(flow)
    if state.best is not None and not history.interrupted:
        flow.load_state_dict(state.best)
    elif state.ema is not None:
        load_weights(flow, state.ema)
    if state.best is None and history.step and not history.interrupted:
        history.best_step = history.step[-1] + 1
    return live


def _checkpoint(on_checkpoint: Callable[[dict[str, Any]], None] | None, state: TrainState,
                optimizer: torch.optim.Optimizer, start_time: float, is_main: bool,
                live: dict[str, Any] | None = None) -> None:
    """Hand `on_checkpoint` (rank 0's) the resumable state, with the `live` weights to continue
    from when `flow` now holds the best ones."""
    state.history.seconds = time.perf_counter() - start_time
    if on_checkpoint is not None and is_main:
        saved = state.to_dict(optimizer)
        if live is not None:
            saved["live_model"] = live
        on_checkpoint(saved)
