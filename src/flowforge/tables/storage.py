"""A fitted TableFlow as a folder, no pickle: table.json (schema, options, metrics), flow.pt
(flowforge.save: builder name, kwargs, weights), categorical.pt and baseline.pt (state_dicts of
tensors, read back with torch.load(weights_only=True))."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import FlowforgeError
from ..train import load, save
from .baseline import GaussianBaseline
from .discrete import CategoricalAR
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
    record = {"format": FORMAT, "schema": model.schema.to_json(), "options": model.options,
              "metrics": model.metrics, "has_flow": model.flow is not None, "decimals": model.decimals}
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
    model.baseline = None  # a folder saved before the tail mixture: the flow alone
    if (path / "baseline.pt").is_file():
        baseline = GaussianBaseline(model.schema, seed=model.seed, samples=model.samples)
        model.baseline = baseline.load_state_dict(torch.load(path / "baseline.pt", weights_only=True))
    return model
