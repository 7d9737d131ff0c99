"""The UCI handwritten digits that ship with scikit-learn: 1797 images of 8x8 pixels, values 0..16."""
from __future__ import annotations

import numpy as np

from ..errors import FlowforgeError


def _digits_pixels() -> np.ndarray:
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as e:
        raise FlowforgeError("the digits dataset ships with scikit-learn: pip install 'flowforge[data]'") from e
    return sklearn_load_digits().data  # (1797, 64), whole numbers 0..16, read from a file inside sklearn


def load_digits(seed: int = 0, dequantize: bool = True) -> np.ndarray:
    """The digits as float32 (1797, 64).

    Args:
        seed: fixes the dequantisation noise.
        dequantize: add U(0, 1) noise, so values lie in [0, 17) and the discrete pixels get a density.

    Reference: Theis et al., A note on the evaluation of generative models, 2016 (arXiv:1511.01844).
    """
    x = _digits_pixels().astype(np.float32)
    if not dequantize:
        return x
    noisy = x + np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    # float32 rounding can carry v + u up to v + 1; keep every value inside [v, v + 1)
    return np.minimum(noisy, np.nextafter(x + 1, x))


def load_digits_images() -> np.ndarray:
    """The digits as uint8 images (1797, 1, 8, 8), values 0..16, no noise."""
    return _digits_pixels().reshape(-1, 1, 8, 8).astype(np.uint8)
