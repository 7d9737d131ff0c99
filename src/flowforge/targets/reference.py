"""How importance-sampling results compare with what is known about a target."""
from __future__ import annotations

from typing import Any

import torch

from .base import Target
from .importance import ImportanceSamples

MODE_SHARE = 0.005  # a mode counts as covered when this share of resampled points lies near it


def compare_to_reference(result: ImportanceSamples, target: Target, seed: int = 0) -> dict[str, Any]:
    """The checks the target's knowledge allows, as plain numbers:

    - `log_z_error`: log_z - the true log Z;
    - `modes_covered` (of `modes`): modes (reference["locations"]) with at least 0.5% of as many
      importance-resampled points as were drawn within 2 standard deviations (reference["std"]);
    - `mean_error_sd`, `std_error_sd`: the largest |error| of the self-normalised means and standard
      deviations against the reference ones, in reference standard deviations.
    """
    checks: dict[str, Any] = {}
    if target.log_z is not None:
        checks["true_log_z"] = target.log_z
        checks["log_z_error"] = result.log_z - target.log_z
    if "locations" in target.reference and result.x.shape[0]:
        points = result.resample(result.drawn, torch.Generator().manual_seed(seed)).double().cpu()
        locations = target.reference["locations"].double()
        near = torch.cdist(points, locations) < 2 * float(target.reference["std"])
        checks["modes_covered"] = int((near.double().mean(0) >= MODE_SHARE).sum())
        checks["modes"] = locations.shape[0]
    reference_mean, reference_std = target.reference.get("mean"), target.reference.get("std")
    if isinstance(reference_std, torch.Tensor) and reference_mean is not None and result.x.shape[0]:
        mean, std = result.expectation().double().cpu(), result.std().double().cpu()
        checks["mean_error_sd"] = float(((mean - reference_mean) / reference_std).abs().max())
        checks["std_error_sd"] = float(((std - reference_std) / reference_std).abs().max())
    return checks
