"""Hypothesis strategies shared by the fuzz tests: awkward numbers, CSV text, arrays of any dtype."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

EXTREMES = [0.0, -0.0, 1e-45, -1e-300, 5e-324, 1e38, -3.4e38, 3.5e38, 1e300, -1e308, float("nan"), float("inf"), float("-inf")]
numbers = st.one_of(st.floats(-10, 10), st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))

cells = st.one_of(
    st.floats(-100, 100).map(repr),
    numbers.map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["", " ", "NA", "nan", "-inf", "1e999", "1,5", '"3"', "0x10", "\uff11\uff12", "abc", "1e-320", "+1", ".5", "1_0"]),
    st.text(max_size=4),
)


@st.composite
def csv_texts(draw) -> str:
    """Mostly table-shaped text: a header or not, a delimiter, rows of awkward cells (ragged at times)."""
    delimiter = draw(st.sampled_from([",", ";", "\t", " "]))
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width + draw(st.integers(0, 1))), max_size=6))
    lines = [delimiter.join(row) for row in rows]
    if draw(st.booleans()):
        lines.insert(0, delimiter.join(f"c{i}" for i in range(width)))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_, np.complex64]


@st.composite
def arrays(draw, shape=None) -> np.ndarray:
    """An array of any of DTYPES and (by default) any shape of up to 3 dimensions, with extreme values."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = shape if shape is not None else draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # values beyond the dtype's range become +-inf, on purpose
            elements = numbers.map(lambda v: float(np.array(v).astype(dtype)))
            return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))
