"""A fitted TableFlow as a folder, no pickle: table.json (schema, options, metrics), flow.pt
(flowforge.save: builder name, kwargs, weights), categorical.pt, baseline.pt, with marginals="copula"
copula.pt (the kernel CDFs' training latents and bandwidths) and, with
missing="model", pattern.pt (state_dicts of tensors, read back with torch.load(weights_only=True);
the blank patterns' columns and levels are in table.json)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import FlowforgeError
from ..train import load, save
from .baseline import GaussianBaseline
from .copula import CopulaMarginals
from .discrete import CategoricalAR
from .missingness import PatternModel, Patterns
from .schema import Schema

FORMAT = 1


def save_table(model, folder: str | os.PathLike) -> Path:
    model._check_fitted()
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    if model.flow is not None:
        save(model.flow, path / "flow.pt")
    torch.save(model.discrete.state_dict(), path / "categorical.pt")
    torch.save(model.baseline.state_dict(), path / "baseline.pt")
    copula = getattr(model, "copula", None)
    if copula is not None:
        torch.save(copula.state_dict(), path / "copula.pt")
    pattern_model = getattr(model, "pattern_model", None)
    if pattern_model is not None:
        torch.save(pattern_model.state_dict(), path / "pattern.pt")
    patterns = getattr(model, "patterns", None)
    record = {"format": FORMAT, "schema": model.schema.to_json(), "options": model.options,
              "metrics": model.metrics, "has_flow": model.flow is not None, "decimals": model.decimals,
              "patterns": patterns.to_json() if patterns is not None else None}
    temporary = path / "table.json.tmp"
    temporary.write_text(json.dumps(record, indent=1, default=float))
    os.replace(temporary, path / "table.json")
    return path


def load_table(folder: str | os.PathLike):
    from .model import TableFlow

    path = Path(folder)
    if not (path / "table.json").is_file():
        raise FlowforgeError(f"{path}: no table.json; not a folder written by TableFlow.save")
    record = json.loads((path / "table.json").read_text())
    if record.get("format") != FORMAT:
        raise FlowforgeError(f"{path}: table format {record.get('format')!r}, expected {FORMAT}")
    options = record["options"]
    options["hidden"] = tuple(options["hidden"]) if options["hidden"] else None
    model = TableFlow(schema=Schema.from_json(record["schema"]), metrics=record["metrics"], **options)
    model.discrete = CategoricalAR([len(c.levels) for c in model.schema.discrete])
    model.discrete.load_state_dict(torch.load(path / "categorical.pt", weights_only=True))
    model.flow = load(path / "flow.pt") if record["has_flow"] else None
    model.decimals = record.get("decimals", {})
    model.copula = None  # marginals="support", or a folder saved before the option
    if (path / "copula.pt").is_file():
        model.copula = CopulaMarginals.from_state(torch.load(path / "copula.pt", weights_only=True))
    if record.get("patterns") is not None:  # missing="model"
        model.patterns = Patterns.from_json(record["patterns"])
        model.pattern_model = None
        if (path / "pattern.pt").is_file():
            sizes = [len(c.levels) for c in model.schema.discrete]
            model.pattern_model = PatternModel(sizes, len(model.patterns.levels))
            model.pattern_model.load_state_dict(torch.load(path / "pattern.pt", weights_only=True))
    model.baseline = None  # a folder saved before the tail mixture: the flow alone
    if (path / "baseline.pt").is_file():
        baseline = GaussianBaseline(model.schema, seed=model.seed, samples=model.samples)
        model.baseline = baseline.load_state_dict(torch.load(path / "baseline.pt", weights_only=True))
    return model
