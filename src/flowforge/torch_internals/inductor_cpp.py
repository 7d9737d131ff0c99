"""`torch._inductor.cpp_builder.get_cpp_compiler`: the C++ compiler inductor would use.

Why: torch.compile is lazy, so a CPU run without a working compiler would fail at the first
compiled call, inside training; train/placement.py asks first and runs eagerly with a warning.
torch has no public query. Importing this module raises ImportError where the helper moved (the
caller then looks for the usual compiler names). Tested on torch 2.13.0 (flowforge declares
torch>=2.2).
"""
from __future__ import annotations

from torch._inductor.cpp_builder import get_cpp_compiler

__all__ = ["get_cpp_compiler"]
