"""The estimators' file format: a flowforge checkpoint (registry name, kwargs, weights; read with
torch.load(weights_only=True)) plus the estimator's parameters and fitted attributes as JSON.

Nothing is unpickled on load, so a file cannot run code; this is why the estimators do not
use pickle or skops for files (skops would have to be told to trust torch's tensor and module
types, which is the unpickling it exists to avoid).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..errors import FlowforgeError
from ..train.checkpoint import read_checkpoint, rebuild, save

ATTRIBUTES = ("n_features_in_", "feature_names_in_", "n_targets_", "is_single_target_")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def save_estimator(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted FlowDensity or ConditionalFlowDensity to `path` (atomically)."""
    check_is_fitted(estimator)
    params = estimator.get_params()
    if not (params["random_state"] is None or isinstance(params["random_state"], (int, np.integer))):
        params["random_state"] = None  # a RandomState object: its seed is spent, the weights are what matter
    record = {"class": type(estimator).__name__, "params": {k: _jsonable(v) for k, v in params.items()},
              "attributes": {k: _jsonable(getattr(estimator, k)) for k in ATTRIBUTES if hasattr(estimator, k)}}
    try:
        text = json.dumps(record)
    except TypeError as error:
        raise FlowforgeError(f"save: the estimator's parameters are not JSON-able ({error})") from None
    return save(estimator.flow_, path, sklearn_json=text)


def load_estimator(path: str | os.PathLike) -> Any:
    """Read an estimator written by `FlowDensity.save` or `ConditionalFlowDensity.save`.

    Example:
        >>> import tempfile, numpy as np
        >>> from flowforge.sklearn import FlowDensity, load_estimator
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> density = FlowDensity(layers=1, hidden=(8,), steps=20, random_state=0).fit(X)
        >>> again = load_estimator(density.save(tempfile.mkdtemp() + "/density.pt"))
        >>> bool(np.array_equal(again.score_samples(X), density.score_samples(X)))
        True
    """
    from .conditional import ConditionalFlowDensity
    from .density import FlowDensity

    classes = {cls.__name__: cls for cls in (FlowDensity, ConditionalFlowDensity)}
    payload = read_checkpoint(path)
    if "sklearn_json" not in payload:
        raise FlowforgeError(f"{path} holds a flow, not a scikit-learn estimator: read it with flowforge.load")
    record = json.loads(payload["sklearn_json"])
    if record.get("class") not in classes:
        raise FlowforgeError(f"{path}: unknown estimator class {record.get('class')!r}")
    params = dict(record["params"])
    params["hidden"] = tuple(params["hidden"])
    estimator = classes[record["class"]](**params)
    for name, value in record["attributes"].items():
        setattr(estimator, name, np.asarray(value, dtype=object) if name == "feature_names_in_" else value)
    estimator.flow_ = rebuild(payload, path)
    return estimator
