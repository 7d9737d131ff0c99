"""ONNX translations of the two torch ops flowforge's flows use that torch.onnx cannot export
(torch 2.13): `searchsorted` (spline bins) and `linalg_solve_triangular` (LULinear's and Whiten's
inverses). Each is written with standard ONNX operators (opset 18), so the files run anywhere.

They are passed to `torch.onnx.export(custom_translation_table=...)`, torch's documented hook for
ops it has no translation of.
"""
from __future__ import annotations

import math
from typing import Any


def searchsorted(sorted_sequence: Any, values: Any, out_int32: bool = False, right: bool = False, side: str | None = None,
                 sorter: Any = None) -> Any:
    """aten.searchsorted.Tensor for values (..., 1): the count of knots below each value (<= with right=True)."""
    from onnxscript import opset18 as op

    before = op.LessOrEqual(sorted_sequence, values) if right or side == "right" else op.Less(sorted_sequence, values)
    count = op.ReduceSum(op.Cast(before, to=7), op.Constant(value_ints=[-1]), keepdims=1)  # 7: INT64
    return op.Cast(count, to=6) if out_int32 else count  # 6: INT32


def solve_triangular(a: Any, b: Any, upper: bool, left: bool = True, unitriangular: bool = False) -> Any:
    """aten.linalg_solve_triangular for a square (n, n) matrix A: X with A X = B (left) or X A = B.

    A = diag(d) (I + N), N strictly triangular, so N^n = 0 and
        A^-1 = (I - N)(I + N^2)(I + N^4)... diag(d)^-1,  ceil(log2 n) factors,
    an exact product of matrices (no loop over rows), then one matmul with B.
    """
    from onnxscript import opset18 as op

    n = int(a.shape[-1])
    triangle = op.Trilu(a, upper=1 if upper else 0)
    eye = op.EyeLike(triangle)
    diag = op.ReduceSum(op.Mul(triangle, eye), op.Constant(value_ints=[-1]), keepdims=1)  # (n, 1)
    if unitriangular:
        diag = op.ReduceSum(eye, op.Constant(value_ints=[-1]), keepdims=1)
        triangle = op.Add(op.Sub(triangle, op.Mul(triangle, eye)), eye)
    nilpotent = op.Sub(op.Div(triangle, diag), eye)  # diag(d)^-1 A - I
    power = op.Neg(nilpotent)
    inverse = op.Add(eye, power)
    for _ in range(max(0, math.ceil(math.log2(max(n, 1)))) - 1):
        power = op.MatMul(power, power)
        inverse = op.MatMul(inverse, op.Add(eye, power))
    inverse = op.Div(inverse, op.Transpose(diag, perm=[1, 0]))  # times diag(d)^-1 on the right
    return op.MatMul(inverse, b) if left else op.MatMul(b, inverse)


def translation_table() -> dict[Any, Any]:
    """{torch op: ONNX translation}, for torch.onnx.export's custom_translation_table."""
    import torch

    return {torch.ops.aten.searchsorted.Tensor: searchsorted, torch.ops.aten.linalg_solve_triangular.default: solve_triangular}
