"""Where and how a run computes: device choice and optional torch.compile with a safe fallback."""
from __future__ import annotations

import shutil
import warnings

import torch

from ..errors import FlowforgeError
from ..flows.flow import Flow


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when available, else the CPU; "cuda" without a GPU is a named error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FlowforgeError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


def has_cxx_compiler() -> bool:
    """Whether inductor finds the C++ compiler its CPU code needs ($CXX, else g++ or clang++).
    torch.compile is lazy: without one, the first compiled call would fail inside training."""
    try:
        from ..torch_internals.inductor_cpp import get_cpp_compiler
    except ImportError:  # torch's private helper moved: look for the usual names
        return any(shutil.which(name) for name in ("g++", "clang++", "c++"))
    try:
        return shutil.which(get_cpp_compiler()) is not None
    except Exception:  # noqa: BLE001 -- InvalidCxxCompiler: none that works
        return False


def maybe_compile(flow: Flow, enabled: bool) -> bool:
    """Compile the flow's transform when asked and supported; otherwise warn and run eagerly."""
    if not enabled:
        return False
    device = next(flow.parameters()).device
    if device.type == "cpu" and not has_cxx_compiler():
        warnings.warn("--compile: torch.compile on the CPU needs a C++ compiler (none found: set CXX or install g++); "
                      "running eagerly", RuntimeWarning, stacklevel=2)
        return False
    try:
        from ..compile import compile as compile_flow

        compile_flow(flow)
    except Exception as error:  # noqa: BLE001 -- any compile failure falls back to eager mode, loudly
        warnings.warn(f"--compile: torch.compile is not available ({type(error).__name__}: {error}); running eagerly", RuntimeWarning, stacklevel=2)
        return False
    return True
