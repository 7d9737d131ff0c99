"""Checkpoints: exact round trips, run folders, and refusals (damaged, foreign, malicious, unsaveable)."""
from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import pytest
import torch

import flowforge
from flowforge import Flow, FlowforgeError, StandardNormal
from flowforge.train.checkpoint import FORMAT_VERSION, checkpoint_payload, read_checkpoint
from flowforge.transforms import ActNorm, BatchNorm, Compose, Reverse, Standardize

from ..helpers import Malicious

BUILDERS = {
    "realnvp": lambda: flowforge.RealNVP(3, layers=2, hidden=(16,)),
    "realnvp_batchnorm": lambda: flowforge.RealNVP(3, layers=2, hidden=(16,), norm="batchnorm", base="diag"),
    "nice": lambda: flowforge.NICE(3, layers=2, hidden=(16,)),
    "glow": lambda: flowforge.Glow(3, layers=2, hidden=(16,)),
}


def data(n: int = 256) -> torch.Tensor:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    return torch.stack([4 * x[:, 0] + 2, x[:, 1] + x[:, 0] ** 2, 0.3 * x[:, 2] - 1], 1)


@functools.cache
def _trained(name: str) -> Flow:
    torch.manual_seed(0)
    flow = BUILDERS[name]()
    flowforge.fit(flow, data(), steps=20, batch_size=64, lr=3e-3, progress=False)
    return flow


def test_training_made_the_buffers_non_trivial() -> None:
    """Otherwise the round trips below would pass even if buffers were not saved."""
    for name in BUILDERS:
        layers = list(_trained(name).transform)
        assert isinstance(layers[0], Standardize) and bool(layers[0].is_fitted) and layers[0].mean.abs().max() > 1
    assert all(bool(t.is_initialized) for t in _trained("glow").transform if isinstance(t, ActNorm))
    assert any((t.running_var - 1).abs().max() > 0.01 for t in _trained("realnvp_batchnorm").transform if isinstance(t, BatchNorm))


@pytest.mark.parametrize("name", BUILDERS)
def test_save_load_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    flow = _trained(name)
    path = flowforge.save(flow, tmp_path / "flow.pt")
    loaded = flowforge.load(path)
    assert type(loaded) is Flow and not loaded.training and loaded.spec == flow.spec
    x = data(64)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
    z = torch.randn(8, 3)
    assert torch.equal(loaded.decode(z), flow.decode(z))
    assert loaded.state_dict().keys() == flow.state_dict().keys()
    assert all(torch.equal(v, flow.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_load_accepts_a_run_folder(tmp_path: Path) -> None:
    flow = _trained("realnvp")
    flowforge.save(flow, tmp_path / "model.pt")
    x = data(16)
    assert torch.equal(flowforge.load(tmp_path).log_prob(x), flow.log_prob(x))
    assert torch.equal(flowforge.load(str(tmp_path)).log_prob(x), flow.log_prob(x))


def test_extra_items_are_stored(tmp_path: Path) -> None:
    flowforge.save(_trained("nice"), tmp_path / "flow.pt", step=20, note="hello")
    payload = read_checkpoint(tmp_path / "flow.pt")
    assert payload["step"] == 20 and payload["note"] == "hello" and payload["format_version"] == FORMAT_VERSION


def test_save_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "flow.pt"
    flowforge.save(_trained("realnvp"), path)
    before = path.read_bytes()
    broken = flowforge.RealNVP(3, layers=2, hidden=(16,))
    with torch.no_grad():
        next(broken.parameters())[0] = float("nan")
    with pytest.raises(FlowforgeError, match="non-finite"):
        flowforge.save(broken, path)
    assert path.read_bytes() == before, "a refused save must leave the old checkpoint alone"
    assert os.listdir(tmp_path) == ["flow.pt"], "no temporary files left behind"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(value: float, tmp_path: Path) -> None:
    flow = flowforge.Glow(3, layers=1, hidden=(8,))
    with torch.no_grad():
        flow.transform[-1].net.net[0].bias[1] = value
    with pytest.raises(FlowforgeError, match="non-finite"):
        flowforge.save(flow, tmp_path / "flow.pt")
    assert not (tmp_path / "flow.pt").exists()


def test_a_hand_built_flow_cannot_be_saved(tmp_path: Path) -> None:
    flow = Flow(Compose([Reverse()]), StandardNormal(2))
    with pytest.raises(FlowforgeError, match="registered builder"):
        flowforge.save(flow, tmp_path / "flow.pt")
    assert not (tmp_path / "flow.pt").exists()


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FlowforgeError, match="no checkpoint"):
        flowforge.load(tmp_path / "nothing.pt")
    with pytest.raises(FlowforgeError, match="no checkpoint"):
        flowforge.load(tmp_path)  # a folder without model.pt


def good_bytes(tmp_path: Path) -> bytes:
    return flowforge.save(_trained("realnvp"), tmp_path / "good.pt").read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        (lambda good: good[: len(good) // 2], "truncated"),
        (lambda good: good[:100], "truncated"),
        (lambda good: b"", "empty"),
        (lambda good: b"\x00" + os.urandom(4096), "not a file written by torch.save"),
        (lambda good: b"not a checkpoint at all\n" * 10, "not a file written by torch.save"),
    ],
    ids=["half", "head", "empty", "random", "text"],
)
def test_damaged_files_raise(damage, tmp_path: Path) -> None:
    make, why = damage
    path = tmp_path / "bad.pt"
    path.write_bytes(make(good_bytes(tmp_path)))
    with pytest.raises(FlowforgeError, match=f"bad.pt is not a readable flowforge checkpoint: .*{why}"):
        flowforge.load(path)


@pytest.mark.parametrize(
    "payload",
    [
        lambda p: {**p, "format_version": FORMAT_VERSION + 1},
        lambda p: {k: v for k, v in p.items() if k != "format_version"},
        lambda p: [p],
        lambda p: torch.zeros(3),
        lambda p: {**p, "spec_json": p["spec_json"].replace('"layers": 2', '"layers": 3')},
        lambda p: {**p, "spec_json": p["spec_json"].replace('"realnvp"', '"no_such_model"')},
        lambda p: {**p, "spec_json": "{not json"},
        lambda p: {k: v for k, v in p.items() if k != "state_dict"},
        lambda p: {k: v for k, v in p.items() if k != "sha256"},
    ],
    ids=["newer_format", "no_format", "list", "tensor", "wrong_layers", "unknown_model", "bad_json", "no_weights",
         "no_checksum"],
)
def test_foreign_or_mismatched_checkpoints_raise(payload, tmp_path: Path) -> None:
    good = checkpoint_payload(_trained("realnvp"))
    assert '"layers": 2' in good["spec_json"] and '"realnvp"' in good["spec_json"]
    path = tmp_path / "other.pt"
    torch.save(payload(good), path)
    with pytest.raises(FlowforgeError):
        flowforge.load(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickled_code_is_never_run(writer: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    payload = {**checkpoint_payload(_trained("realnvp")), "extra": Malicious(marker)}
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        torch.save(payload, handle) if writer == "torch" else pickle.dump(payload, handle)
    with pytest.raises(FlowforgeError, match="evil.pt") as raised:
        flowforge.load(path)
    assert not marker.exists()
    if writer == "torch":
        assert "pickled Python objects besides tensors" in str(raised.value)
    # the same file does run code when unpickled without weights_only: the test really tests something
    if writer == "pickle":
        with open(path, "rb") as handle:
            pickle.load(handle)
        assert marker.exists()


def test_a_float64_flow_comes_back_float64(tmp_path: Path) -> None:
    """load used to cast the weights into the builder's float32 (1.9 nats off on offset data)."""
    torch.manual_seed(0)
    flow = flowforge.MAF(2, layers=2, hidden=(8,)).double()
    x = 1.7e9 + 30 * torch.randn(300, 2, dtype=torch.float64)
    flowforge.fit(flow, x, steps=5, batch_size=64, progress=False)
    loaded = flowforge.load(flowforge.save(flow, tmp_path / "flow.pt"))
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    assert torch.equal(loaded.log_prob(x[:20]), flow.eval().log_prob(x[:20]))


@pytest.mark.parametrize(("features", "hinted"), [(3, True), (4, False)])
def test_a_coupling_checkpoint_that_no_longer_fits_its_masks_says_why(tmp_path: Path, features: int, hinted: bool) -> None:
    """An odd-feature RealNVP saved with the masks of an older flowforge (here: a conditioner's
    weights of the wrong width) fails with the reason, not only torch's size mismatch."""
    from flowforge.train.checkpoint import rebuild

    flow = flowforge.RealNVP(features, layers=2, hidden=(8,))
    payload = checkpoint_payload(flow)
    first = next(k for k in payload["state_dict"] if k.endswith("weight"))
    payload["state_dict"][first] = torch.zeros(8, features + 1)
    with pytest.raises(FlowforgeError, match="does not match its model") as caught:
        rebuild(payload, "old.pt")
    assert ("must be trained again" in str(caught.value)) == hinted
