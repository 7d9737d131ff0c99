import sys

import numpy as np
import pytest

from flowforge.data import load_digits, load_digits_images
from flowforge.errors import FlowforgeError


def test_images_are_the_raw_pixels() -> None:
    images = load_digits_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    np.testing.assert_array_equal(images.reshape(1797, 64), load_digits(dequantize=False))


def test_dequantized_values_stay_in_their_unit_bin() -> None:
    pixels = load_digits(dequantize=False)
    x = load_digits(seed=1)
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert ((x >= pixels) & (x < pixels + 1)).all()  # so floor(x) recovers the pixel and x < 17
    assert 0.45 < (x - pixels).mean() < 0.55  # U(0, 1) noise
    np.testing.assert_array_equal(x, load_digits(seed=1))
    assert not np.array_equal(x, load_digits(seed=2))


def test_missing_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(FlowforgeError, match=r"pip install 'flowforge\[data\]'"):
        load_digits()
