"""Shared test setup: every test starts from the same random state, on one thread.

One thread: the models under test are tiny, so extra threads only add overhead and fight
with pytest-xdist workers for the few cores a CI machine has.
"""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
