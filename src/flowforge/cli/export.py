"""`flowforge export RUN --format onnx --out DIR`: a run's flow as DIR/log_prob.onnx and DIR/sample.onnx.

Both files are run with onnxruntime beside PyTorch on the run's held-out rows (up to 1,000), and
the largest differences are printed and written to DIR/export.json.
"""
from __future__ import annotations

import argparse

import numpy as np

from ..errors import FlowforgeError
from ..export import export_onnx
from ..export.graphs import check_exportable
from ..train.checkpoint import load
from .argparse_internals import Subcommands
from .mixed_run import is_table_run
from .run_folder import RunFolder
from .table_run import load_split

CHECK_ROWS = 1000


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("export", parents=[common], help="export a run's flow to ONNX (log_prob.onnx, sample.onnx)",
                            description="Write DIR/log_prob.onnx (inputs x [, context]) and DIR/sample.onnx (inputs noise, "
                                        "temperature [, context]) for a run of a vector flow, check both with onnxruntime against "
                                        "PyTorch on the held-out rows, and write DIR/export.json. Needs the onnx extra.")
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the export format (default onnx)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write the files to")
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    if is_table_run(args.run):
        raise FlowforgeError(f"{args.run} is a run on a mixed table (categories, support maps); export takes runs of vector flows")
    flow = load(args.run)
    check_exportable(flow)  # before the held-out rows are read: a refusal needs no data
    rows, context, source = _held_out(args.run) if len(flow.event_shape) == 1 else (None, None, "")
    record = export_onnx(flow, args.out, check_rows=rows, check_context=context)
    print(f"wrote {args.out}/log_prob.onnx and {args.out}/sample.onnx (ONNX opset {record['opset']})")
    print(f"onnxruntime vs PyTorch on {record['checked_rows']} {source or 'rows sampled from the flow'}: "
          f"log_prob max abs diff {record['log_prob_max_abs_diff']:.3g} nats, sample max abs diff {record['sample_max_abs_diff']:.3g}")
    return 0


def _held_out(run: str) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Up to CHECK_ROWS held-out rows of the run (and their context), as `train` cut them; none
    without a config.json (a bare checkpoint file): then export checks on the flow's own samples."""
    folder = RunFolder.of(run)
    record = folder.record()
    if record is None or record.get("kind") == "target":  # fit-target runs have no data: the flow's own samples
        return None, None, ""
    table = load_split(folder.config(record))
    test, context = table.test_in_memory(CHECK_ROWS)
    if len(test) == 0:
        return None, None, ""
    return test[:CHECK_ROWS], (context[:CHECK_ROWS] if context is not None else None), "held-out rows"
