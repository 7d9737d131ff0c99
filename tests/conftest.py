"""Shared test setup: every test starts from the same random state, on one thread.

One thread: the models under test are tiny, so extra threads only add overhead and fight
with pytest-xdist workers for the few cores a CI machine has.

Hypothesis draws the same examples on every run (profile "ci", the default), so `make test`
passes or fails the same way each time; HYPOTHESIS_PROFILE=explore draws fresh ones. Neither
profile has a per-example deadline: the tests check properties, not speed (benchmarks/ does
that), and on a loaded 2-core machine one slow example (a first compile, a busy neighbour
worker) would otherwise fail a run that passes on the next.

Inductor's compiled-kernel cache is kept per ATEN_CPU_CAPABILITY: torch 2.13's cache key leaves
it out, so a kernel generated with AVX-512 vectors was reused under `=default`, whose build has
no vector headers, and failed to compile. Running the suite under several back-ends is how we
check that it passes on any CPU, so each back-end gets its own cache.
"""
import os
import tempfile

os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"torchinductor_flowforge_tests_{os.environ.get('ATEN_CPU_CAPABILITY', 'native')}"),
)

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
