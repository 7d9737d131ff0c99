"""`torch._C._are_functorch_transforms_active`: whether a torch.func transform (vmap, grad, jacrev...)
is tracing the current call.

Why: the hand-written kernels (transforms/fused.py, transforms/inplace.py) write in place and into
`out=` tensors, which functorch's wrapped tensors reject; a no-grad pass under a transform must take
the ordinary ops. torch has no public query for it (torch.compiler.is_compiling covers dynamo only).
Tested on torch 2.13.0; present since torch 2.0 (flowforge declares torch>=2.2).
"""
from __future__ import annotations

import torch


def transforms_active() -> bool:
    """Whether a torch.func transform is active."""
    return torch._C._are_functorch_transforms_active()
