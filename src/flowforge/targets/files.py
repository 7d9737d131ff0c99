"""A target named on the command line: a built-in name, or `path/to/file.py:function`."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import FlowforgeError
from .base import Target
from .builtin import TARGETS, make_target


def load_target(spec: str, features: int | None = None) -> Target:
    """The built-in target `spec`, or the callable `function` in `file.py` (`spec` = "file.py:function").

    The name in the file may be a Target (then `features` is optional) or a log_density callable
    (then `features` is needed). The file is run as Python: name only files you trust.
    """
    if ":" not in spec or spec.lower().replace("-", "_") in TARGETS:
        target = make_target(spec)
        if features is not None and features != target.features:
            raise FlowforgeError(f"target {spec!r} has {target.features} features, not {features}")
        return target
    path, _, name = spec.rpartition(":")
    if not Path(path).is_file():
        raise FlowforgeError(f"target {spec!r}: no file {path}")
    module_spec = importlib.util.spec_from_file_location(f"flowforge_target_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 -- the user's file: any error it raises is reported in one line
        raise FlowforgeError(f"target {spec!r}: running {path} failed: {type(error).__name__}: {error}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise FlowforgeError(f"target {spec!r}: {path} defines no function {name!r}")
    if isinstance(function, Target):
        return function
    if features is None:
        raise FlowforgeError(f"target {spec!r}: give --features D, the size of x")
    return Target(function, features, name=name)
