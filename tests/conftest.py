"""Shared test setup: every test starts from the same random state, on one thread.

One thread: the models under test are tiny, so extra threads only add overhead and fight
with pytest-xdist workers for the few cores a CI machine has.

Hypothesis draws the same examples on every run (profile "ci", the default), so `make test`
passes or fails the same way each time; HYPOTHESIS_PROFILE=explore draws fresh ones.
"""
import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
