"""scikit-learn estimators: `FlowDensity` (p(x), like KernelDensity) and `ConditionalFlowDensity` (p(y | X)).

Needs scikit-learn (`pip install 'flowforge[sklearn]'`); importing this package without it is a
FlowforgeError naming that extra.
"""
from ..errors import FlowforgeError

try:
    import sklearn  # noqa: F401 -- the optional dependency, checked before the estimators import it
except ImportError:  # pragma: no cover - the dev environment has scikit-learn
    raise FlowforgeError("flowforge.sklearn needs scikit-learn: pip install 'flowforge[sklearn]'") from None

from .conditional import ConditionalFlowDensity
from .density import FlowDensity
from .storage import load_estimator

__all__ = ["ConditionalFlowDensity", "FlowDensity", "load_estimator"]
