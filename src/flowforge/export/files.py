"""export_onnx: a vector flow as two ONNX files, log_prob.onnx and sample.onnx, checked with onnxruntime.

Needs the `onnx` extra (`pip install 'flowforge[onnx]'`: onnx, onnxscript, onnxruntime); a
missing piece is a FlowforgeError naming it.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..train.checkpoint import atomic_write_bytes, atomic_write_text
from .graphs import LogProbGraph, SampleGraph, check_exportable
from .onnx_ops import translation_table

OPSET = 18
EXTRA = "pip install 'flowforge[onnx]'"


def require(module: str) -> Any:
    """Import an optional dependency of export, or a FlowforgeError naming the extra."""
    try:
        return __import__(module)
    except ImportError:
        raise FlowforgeError(f"export to ONNX needs {module}: {EXTRA}") from None


def export_onnx(flow: Flow, out: str | os.PathLike, check_rows: Any = None, check_context: Any = None, seed: int = 0) -> dict[str, Any]:
    """Write `out/log_prob.onnx` and `out/sample.onnx` for a vector flow, run both with onnxruntime
    beside PyTorch, and write `out/export.json` with the largest differences. Returns that record.

    log_prob.onnx: inputs x (batch, features) float32 [, context (batch, context_features)];
        output log_prob (batch,).
    sample.onnx: inputs noise (batch, features) float32 ~ N(0, I), temperature () float32
        [, context]; output x (batch, features). The same noise gives the same rows.

    Args:
        flow: a trained vector flow (any model in flowforge.MODELS but the image ones).
        out: the folder to write (made if missing).
        check_rows: rows of x to compare the two on, e.g. held-out data (default: 256 of the flow's samples).
        check_context: a conditional flow's contexts of those rows (default: standard-normal draws).
        seed: the noise (and default rows and contexts) of the comparison.

    Example:
        >>> import tempfile, flowforge
        >>> from flowforge.export import export_onnx
        >>> record = export_onnx(flowforge.MAF(2, layers=1, hidden=(8,)), tempfile.mkdtemp())  # doctest: +SKIP
        >>> record["log_prob_max_abs_diff"] < 1e-4  # doctest: +SKIP
        True
    """
    check_exportable(flow)
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module)
    flow = copy.deepcopy(flow).float().cpu().eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, context, noise = _check_inputs(flow, check_rows, check_context, seed)
    features, conditional = flow.event_shape[0], flow.context_features > 0
    log_prob_inputs = (x, context) if conditional else (x,)
    sample_inputs = (noise, torch.tensor(0.8), context) if conditional else (noise, torch.tensor(0.8))
    _export(LogProbGraph(flow), log_prob_inputs, ["x", "context"][: len(log_prob_inputs)], ["log_prob"], out / "log_prob.onnx")
    _export(SampleGraph(flow), sample_inputs, ["noise", "temperature", "context"][: len(sample_inputs)], ["x"], out / "sample.onnx")
    with torch.no_grad():
        expected_log_prob = LogProbGraph(flow)(*log_prob_inputs).numpy()
        expected_x = SampleGraph(flow)(*sample_inputs).numpy()
    record = {
        "model": (flow.spec or {}).get("model"), "features": features, "context_features": flow.context_features, "opset": OPSET,
        "checked_rows": len(x),
        "log_prob_max_abs_diff": _max_abs_diff(_run(out / "log_prob.onnx", log_prob_inputs), expected_log_prob),
        "sample_max_abs_diff": _max_abs_diff(_run(out / "sample.onnx", sample_inputs), expected_x),
        "files": ["log_prob.onnx", "sample.onnx"],
    }
    atomic_write_text(out / "export.json", json.dumps(record, indent=2) + "\n")
    return record


def _check_inputs(flow: Flow, rows: Any, context: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The rows, contexts and noise both runtimes see: given rows (or the flow's own samples), seeded noise."""
    generator = torch.Generator().manual_seed(seed)
    n = 256 if rows is None else len(rows)
    if not flow.context_features:
        context = None
    elif context is None:
        context = torch.randn(n, flow.context_features, generator=generator)
    else:
        context = torch.as_tensor(np.asarray(context, dtype=np.float32)).reshape(n, flow.context_features)
    if rows is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rows = flow.sample(n, context=context)
    x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
    if x.dim() != 2 or x.shape[1] != flow.event_shape[0]:
        raise FlowforgeError(f"export: check_rows must be (rows, {flow.event_shape[0]}), got {tuple(x.shape)}")
    return x, context, torch.randn(n, flow.event_shape[0], generator=generator)


def _export(graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], outputs: list[str], path: Path) -> None:
    """torch.onnx.export (dynamo) with a dynamic batch dimension, written atomically."""
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} if tensor.dim() == 2 else None for tensor in inputs)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), _quiet("torch.onnx"):  # the exporter prints its progress
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, inputs, dynamo=True, input_names=names, output_names=outputs, opset_version=OPSET,
                                        dynamic_shapes=shapes, custom_translation_table=translation_table(), verbose=False)
    except Exception as error:  # noqa: BLE001 -- torch.onnx raises its own classes, with pages of text
        first = (re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() or [""])[0]  # torch colours its text
        raise FlowforgeError(f"export: torch.onnx could not export {path.name} ({type(error).__name__}: {first[:300]})") from None
    atomic_write_bytes(path, lambda handle: handle.write(program.model_proto.SerializeToString()))


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The named logger silenced but for errors (torch.onnx logs a line per torchvision op it skips)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(path: Path, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {name: tensor.numpy() for name, tensor in zip(names, inputs)})[0]


def _max_abs_diff(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        raise FlowforgeError(f"export: onnxruntime returned shape {got.shape}, PyTorch {expected.shape}")
    return float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()) if got.size else 0.0
