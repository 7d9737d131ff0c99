"""Fuzz Flow.log_prob, encode, decode and sample: any shape, dtype and value gives a FlowforgeError
or a correct answer (log_prob: (batch,), never NaN; encode/decode: finite, and they invert)."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import flowforge
from flowforge import Flow, FlowforgeError, StandardNormal
from flowforge.transforms import Compose
from flowforge.transforms.dequantize import Logit

from .strategies import FUZZ, arrays

PIXELS = (1, 4, 4)
BUILDERS = {  # name: (build, trained a few steps first)
    "realnvp": (lambda: flowforge.RealNVP(3, layers=2, hidden=(8,)), True),
    "glow": (lambda: flowforge.Glow(3, layers=2, hidden=(8,)), True),
    "glow_fresh": (lambda: flowforge.Glow(3, layers=2, hidden=(8,)), False),  # train mode, ActNorm not yet initialised
    "maf": (lambda: flowforge.MAF(3, layers=2, hidden=(8,)), True),
    "nsf": (lambda: flowforge.NSF(3, layers=2, hidden=(8,)), True),
    "logit": (lambda: Flow(Compose([Logit()]), StandardNormal(3)), False),
    "image": (lambda: flowforge.ImageGlow(PIXELS, levels=2, steps_per_level=1, hidden_channels=8, pixel_levels=4), False),
}
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the strategies overflow into inf on purpose


@functools.cache
def flow(name: str) -> Flow:
    torch.manual_seed(0)
    build, is_trained = BUILDERS[name]
    built = build()
    if is_trained:  # off the identity init
        flowforge.fit(built, torch.rand(256, 3), steps=3, batch_size=64, progress=False)
        built.eval()
    return built


def _shapes(name: str):
    event = PIXELS if name == "image" else (3,)
    return st.one_of(st.integers(0, 4).map(lambda n: (n, *event)), st.lists(st.integers(0, 4), max_size=4).map(tuple))


def _inputs(name: str):
    pixels = st.integers(0, 3).map(float)
    shaped = _shapes(name).flatmap(lambda shape: arrays(shape=shape))
    if name != "image":
        return shaped
    whole = st.integers(0, 4).flatmap(lambda n: st.lists(pixels, min_size=16 * n, max_size=16 * n).map(
        lambda v, n=n: np.array(v, np.float32).reshape(n, *PIXELS)))
    return st.one_of(shaped, whole)


def _is_valid(name: str, x: np.ndarray) -> bool:
    """Input the flow must accept: floating, its event shape, values float32 holds (image: pixel levels)."""
    event = PIXELS if name == "image" else (3,)
    if x.dtype.kind != "f" or x.shape[1:] != event or x.ndim != len(event) + 1:
        return False
    x32 = x.astype(np.float32)
    if name == "image":
        return bool(((x32 == np.floor(x32)) & (x32 >= 0) & (x32 <= 3)).all())
    return bool(np.isfinite(x32).all())


cases = st.sampled_from(sorted(BUILDERS)).flatmap(lambda name: st.tuples(st.just(name), _inputs(name)))


@FUZZ
@given(case=cases)
def test_log_prob_is_never_nan(case) -> None:
    name, x = case
    try:
        log_prob = flow(name).log_prob(torch.from_numpy(x))
    except FlowforgeError as error:
        assert not _is_valid(name, x), f"valid input refused: {error}"
        return
    assert log_prob.shape == (x.shape[0],) and log_prob.dtype == torch.float32
    assert not log_prob.isnan().any() and not (log_prob == torch.inf).any()


@FUZZ
@given(case=cases)
def test_encode_decode_invert_or_raise(case) -> None:
    name, x = case
    model = flow(name)
    with torch.no_grad():
        try:
            z = model.encode(torch.from_numpy(x))
        except FlowforgeError:
            return
        assert z.shape == x.shape and torch.isfinite(z).all()
        if name == "logit":
            assert ((x >= 0) & (x <= 1)).all(), "encode accepted a value outside Logit's support"
        if np.abs(x).max(initial=0) < 1e3:  # moderate values must come back (float32 precision)
            back = model.decode(z)
            expected = torch.from_numpy(x.astype(np.float32))
            torch.testing.assert_close(back, expected, rtol=1e-3, atol=1e-3 * (1 + float(np.abs(x).max(initial=0))))


@FUZZ
@given(case=cases)
def test_decode_is_finite_or_raises(case) -> None:
    name, z = case
    with torch.no_grad():
        try:
            x = flow(name).decode(torch.from_numpy(z))
        except FlowforgeError:
            return
    assert x.shape == z.shape and torch.isfinite(x).all()


@FUZZ
@given(name=st.sampled_from(sorted(BUILDERS)), n=st.one_of(st.integers(0, 5), st.sampled_from([-1, 2.5, True, "3"])),
       temperature=st.one_of(st.floats(0.1, 2), st.sampled_from([0, -1, float("nan"), float("inf"), "1"])))
def test_sample_is_finite_or_raises(name: str, n, temperature) -> None:
    try:
        x = flow(name).sample(n, temperature=temperature)
    except FlowforgeError:
        assert not (isinstance(n, int) and not isinstance(n, bool) and n >= 0 and isinstance(temperature, float) and 0 < temperature < 9)
        return
    assert x.shape == (n, *flow(name).event_shape) and torch.isfinite(x).all()
