"""What the CUDA test modules (tests/test_cuda*.py) share: the device under test, its skip mark,
the builders and the data they train on.

FLOWFORGE_TEST_DEVICE=cpu runs the same tests on the CPU (a dry run); the default is cuda.
"""
from __future__ import annotations

import os

import pytest
import torch
from torch import Tensor

import flowforge

DEVICE = torch.device(os.environ.get("FLOWFORGE_TEST_DEVICE", "cuda"))
needs_device = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")
FEATURES = 4
BUILDERS = {
    "realnvp": lambda: flowforge.RealNVP(FEATURES, layers=3, hidden=(16, 16)),
    "realnvp_alternating_actnorm": lambda: flowforge.RealNVP(FEATURES, layers=3, hidden=(16, 16), mask="alternating", norm="actnorm"),
    "nice": lambda: flowforge.NICE(FEATURES, layers=3, hidden=(16, 16)),
    "glow": lambda: flowforge.Glow(FEATURES, layers=2, hidden=(16, 16)),
    "maf": lambda: flowforge.MAF(FEATURES, layers=2, hidden=(16, 16), permute="random"),
    "iaf": lambda: flowforge.IAF(FEATURES, layers=2, hidden=(16, 16)),
    "nsf": lambda: flowforge.NSF(FEATURES, layers=2, hidden=(16, 16), bins=4),
    "nsf-ar": lambda: flowforge.build_model("nsf-ar", features=FEATURES, layers=2, hidden=[16, 16], bins=4),
}


def cloud(n: int, seed: int = 0) -> Tensor:
    """A curved, correlated, off-centre 4-D cloud on the CPU: nothing a flow fits at init."""
    a, b, c, d = torch.randn(4, n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([3 * a + 5, a**2 + 0.3 * b - 1, torch.sin(2 * a) + 0.2 * c, 0.1 * d + a * b], 1)
