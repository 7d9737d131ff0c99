"""Checkpoints: the model's registry name and kwargs as JSON-able values, tensors, and no pickles.

A file is written with `torch.save` to a temporary file, fsynced, then `os.replace`d, so it is
never half-written; it is read with `torch.load(weights_only=True)`, which refuses to unpickle
arbitrary objects (no code from a file ever runs).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import stat
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
    """Call write(file) on a temporary file beside `path`, fsync, then rename over `path`.

    The file gets the mode `open` would give it: the old file's, else 0o666 less the umask
    (mkstemp makes 0o600 files). A killed writer leaves `path` as it was, plus at worst a
    `.NAME.*.tmp` file that `remove_stale_temporaries` clears.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _about(error, path) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename == tmp:
            raise _about(error, path) from None
        raise
    _fsync_folder(path.parent)


def _about(error: OSError, path: Path) -> OSError:
    """The same error, about the file the user named rather than its hidden temporary."""
    return type(error)(error.errno, error.strerror, str(path))


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed `atomic_write_bytes(path, ...)` left; returns them.

    Only for a file no other process is writing (e.g. a run folder being resumed).
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def check_finite_weights(weights: dict[str, Any], problem: str = "save: refusing to write non-finite weights") -> None:
    """FlowforgeError `problem (name)` for the first tensor of a state_dict holding NaN or Inf."""
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise FlowforgeError(f"{problem} ({name})")


def checkpoint_payload(flow: Flow, **extra: Any) -> dict[str, Any]:
    """The dict a checkpoint stores: format version, spec, state_dict, plus extra JSON-able items."""
    if flow.spec is None:
        raise FlowforgeError("save: this Flow was not made by a registered builder (e.g. flowforge.RealNVP), so it cannot be rebuilt; save flow.state_dict() instead")
    check_finite_weights(flow.state_dict())
    payload = {
        "format_version": FORMAT_VERSION,
        "spec_json": json.dumps(flow.spec),
        "state_dict": {k: v.detach().cpu() for k, v in flow.state_dict().items()},
        **extra,
    }
    return {**payload, "sha256": checksum(payload)}


def checksum(payload: dict[str, Any]) -> str:
    """SHA-256 of a payload's structure, values and tensor bytes (torch itself checks no CRC):
    a damaged or edited file fails `read_checkpoint` instead of loading different weights."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != "sha256"})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode() + b":")
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode() + b",")


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


def _why_unreadable(path: Path, error: BaseException) -> str:
    """What torch.load's failure means for the user (its own text speaks of zip internals and
    weights_only options, and is cut off in a one-line error)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return "the file is empty"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        return "it is not a file written by torch.save (a checkpoint is a zip archive)"
    if isinstance(error, pickle.UnpicklingError):
        return "it holds pickled Python objects besides tensors, which are never unpickled here (no code from a file runs)"
    if "central directory" in str(error) or "zip archive" in str(error):
        return "the file is truncated (an incomplete copy, or a full disk when it was written)"
    return f"{type(error).__name__}: {_first_line(error)}"


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
    except Exception as error:  # noqa: BLE001 -- truncated zip, pickled code, not a torch file at all
        raise FlowforgeError(f"{path} is not a readable flowforge checkpoint: {_why_unreadable(path, error)}") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise FlowforgeError(f"{path} is not a flowforge checkpoint")
    version = payload["format_version"]
    if not isinstance(version, int) or version != FORMAT_VERSION:
        raise FlowforgeError(f"{path}: checkpoint format {version!r} is not supported (this flowforge reads {FORMAT_VERSION})")
    if payload.get("sha256") != checksum(payload):
        raise FlowforgeError(f"{path}: checksum mismatch: the file was damaged or edited after it was written")
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
    return rebuild(read_checkpoint(path), path)


def _odd_coupling_hint(payload: dict[str, Any]) -> str:
    """Why a coupling flow on an odd number of features saved before its masks were fixed no longer loads."""
    try:
        spec = json.loads(payload["spec_json"])
        features = spec["kwargs"].get("features")
    except Exception:  # noqa: BLE001 -- the hint is a courtesy; the error above stands on its own
        return ""
    if spec.get("model") in ("realnvp", "nice", "nsf") and isinstance(features, int) and features % 2 == 1:
        return ("; coupling flows on an odd number of features now alternate their masks (before, one feature, or half of "
                "them, was never transformed), so this model must be trained again")
    return ""


def rebuild(payload: dict[str, Any], path: str | os.PathLike) -> Flow:
    """The flow (in eval mode) of a checkpoint dict from `read_checkpoint(path)`."""
    try:
        spec = json.loads(payload["spec_json"])
        flow = build_model(spec["model"], **spec["kwargs"])
        dtype = _floating_dtype(payload["state_dict"])
        if dtype is not None:
            flow.to(dtype)  # a float64 flow comes back float64, not cast into the builder's float32
        flow.load_state_dict(payload["state_dict"])
    except FlowforgeError as error:
        raise FlowforgeError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 -- a tampered spec can make a builder raise anything
        raise FlowforgeError(f"{path}: checkpoint does not match its model ({type(error).__name__}: {_first_line(error)})"
                             f"{_odd_coupling_hint(payload)}") from None
    check_finite_weights(flow.state_dict(), f"{path}: checkpoint holds non-finite weights")
    return flow.eval()


def _floating_dtype(state: dict[str, Any]) -> torch.dtype | None:
    """The floating dtype of a state_dict's tensors (None if it has none or mixes several)."""
    dtypes = {v.dtype for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None
