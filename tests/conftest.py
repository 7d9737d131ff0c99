"""Shared test setup: every test starts from the same random state, on one thread.

One thread: the models under test are tiny, so extra threads only add overhead and fight
with pytest-xdist workers for the few cores a CI machine has.

Hypothesis draws the same examples on every run (profile "ci", the default), so `make test`
passes or fails the same way each time; HYPOTHESIS_PROFILE=explore draws fresh ones. Neither
profile has a per-example deadline: the tests check properties, not speed (benchmarks/ does
that), and on a loaded 2-core machine one slow example (a first compile, a busy neighbour
worker) would otherwise fail a run that passes on the next.
"""
import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
