"""How `train` and `demo` end: report the run, or the signal that interrupted it, as the exit status."""
from __future__ import annotations

import signal
import sys

from ..train import distributed
from .training import RunResult


def finish(result: RunResult, list_plots: bool = False) -> int:
    """Report a run (and its plots' paths); an interrupted one exits with 128 + the signal's number.
    Under torchrun every rank waits for rank 0's files, and only rank 0 reports."""
    main_rank = distributed.is_main()
    distributed.leave()  # every rank ends with rank 0's files written
    if not main_rank:
        return 0 if result.stopped_by is None else 128 + result.stopped_by
    if result.stopped_by is None:
        _report(result)
        if list_plots:
            print(f"plots: {', '.join(str(p) for p in sorted((result.folder / 'plots').glob('*.png')))}")
        return 0
    name = signal.Signals(result.stopped_by).name
    print(f"flowforge: interrupted by {name} after {result.metrics['steps_run']} steps; {result.folder / 'model.pt'} holds the "
          f"progress: 'flowforge train --resume {result.folder}' continues", file=sys.stderr)
    return 128 + result.stopped_by


def _report(result: RunResult) -> None:
    m = result.metrics
    test_nll = "n/a" if m["test_nll"] is None else f"{m['test_nll']:.4f} nats"
    print(f"run folder: {result.folder}")
    print(f"test_nll: {test_nll} ({m['n_test']} held-out rows; {m['steps_run']} steps in {m['train_seconds']:.1f} s)")
    if m.get("test_nll_dominated_by"):
        worst = m["test_nll_dominated_by"]
        print(f"flowforge: warning: one held-out row (row {worst['test_row']} of the test split) scores {worst['nll']:.4g} nats "
              f"against a median of {m['test_nll_median']:.4f}: it makes most of test_nll, which is "
              f"{worst['mean_without_it']:.4f} without it; compare models by the median too (metrics.json: test_nll_median)",
              file=sys.stderr)
    if m.get("test_bpd") is not None:
        print(f"test_bpd: {m['test_bpd']:.4f} bits/dim on the pixel scale")
