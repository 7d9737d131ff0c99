"""Checkpoints: the model's registry name and kwargs as JSON-able values, tensors, and no pickles.

A file is written with `torch.save` to a temporary file, fsynced, then `os.replace`d, so it is
never half-written; it is read with `torch.load(weights_only=True)`, which refuses to unpickle
arbitrary objects (no code from a file ever runs).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..flows.registry import build_model

FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.pt"


def atomic_write_bytes(path: str | os.PathLike, write: Any) -> None:
    """Call write(file) on a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def checkpoint_payload(flow: Flow, **extra: Any) -> dict[str, Any]:
    """The dict a checkpoint stores: format version, spec, state_dict, plus extra JSON-able items."""
    if flow.spec is None:
        raise FlowforgeError("save: this Flow was not made by a registered builder (e.g. flowforge.RealNVP), so it cannot be rebuilt; save flow.state_dict() instead")
    for name, tensor in flow.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise FlowforgeError(f"save: refusing to write non-finite weights ({name})")
    return {
        "format_version": FORMAT_VERSION,
        "spec_json": json.dumps(flow.spec),
        "state_dict": {k: v.detach().cpu() for k, v in flow.state_dict().items()},
        **extra,
    }


def save(flow: Flow, path: str | os.PathLike, **extra: Any) -> Path:
    """Save a flow (its builder name, kwargs and weights) atomically to `path`.

    Example:
        >>> import tempfile, torch, flowforge
        >>> flow = flowforge.RealNVP(2, layers=2, hidden=(8,))
        >>> path = flowforge.save(flow, tempfile.mkdtemp() + "/flow.pt")
        >>> x = torch.randn(4, 2)
        >>> torch.equal(flowforge.load(path).log_prob(x), flow.log_prob(x))
        True
    """
    payload = checkpoint_payload(flow, **extra)
    atomic_write_bytes(path, lambda handle: torch.save(payload, handle))
    return Path(path)


def _first_line(error: BaseException) -> str:
    """The start of an error's message (may be empty, e.g. EOFError on an empty file)."""
    return (str(error).splitlines() or [""])[0][:200]


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FlowforgeError(f"no checkpoint at {path}")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint dict safely, with clear errors for truncated, tampered or foreign files."""
    path = _resolve(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickled code, not a torch file at all
        raise FlowforgeError(f"{path} is not a readable flowforge checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise FlowforgeError(f"{path} is not a flowforge checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise FlowforgeError(f"{path}: checkpoint format {payload['format_version']} is not supported (this flowforge reads {FORMAT_VERSION})")
    return payload


def load(path: str | os.PathLike) -> Flow:
    """Rebuild a saved flow from a checkpoint file or a run folder written by `flowforge train`.

    Example:
        >>> import tempfile, flowforge
        >>> path = flowforge.save(flowforge.NICE(3, layers=2, hidden=(8,)), tempfile.mkdtemp() + "/nice.pt")
        >>> flow = flowforge.load(path)
        >>> flow.spec["model"], flow.event_shape, flow.training
        ('nice', (3,), False)
    """
    payload = read_checkpoint(path)
    try:
        spec = json.loads(payload["spec_json"])
        flow = build_model(spec["model"], **spec["kwargs"])
        flow.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, json.JSONDecodeError) as error:
        raise FlowforgeError(f"{path}: checkpoint does not match its model ({_first_line(error)})") from None
    return flow.eval()
