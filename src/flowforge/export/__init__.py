"""Export: vector flows as ONNX files (log_prob.onnx, sample.onnx), checked with onnxruntime."""
from .files import export_onnx

__all__ = ["export_onnx"]
