"""flowforge.health and `flowforge check`: round-trip error, log-det gap, layer scales; table, check.json, tolerances."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import flowforge
from flowforge import Flow, StandardNormal
from flowforge.cli import main
from flowforge.health import far_sample_share, measure, table
from flowforge.transforms import Compose, Reverse, Transform

TINY = ["--data", "moons", "--n", "500", "--steps", "30", "--layers", "2", "--hidden", "16", "--batch-size", "128", "--no-progress"]


class Doubling(Transform):
    """z = 2x, with an inverse that is off by `error` and a log-det off by `logdet_error` (tests only)."""

    def __init__(self, error: float = 0.0, logdet_error: float = 0.0) -> None:
        super().__init__()
        self.error, self.logdet_error = error, logdet_error

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return 2 * x, x.new_full((x.shape[0],), x[0].numel() * math.log(2))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z / 2 + self.error, z.new_full((z.shape[0],), -z[0].numel() * math.log(2) + self.logdet_error)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("check") / "run"
    assert main(["train", *TINY, "--out", str(folder)]) == 0
    return folder


def test_measure_points_at_the_layer_that_does_not_invert() -> None:
    flow = Flow(Compose([Doubling(), Reverse(), Doubling(error=1e-2), Doubling(logdet_error=0.5)]), StandardNormal(3)).double()
    health = measure(flow, torch.randn(50, 3, dtype=torch.float64))
    assert [layer.name for layer in health.layers] == ["Doubling", "Reverse", "Doubling", "Doubling"]
    assert [layer.round_trip for layer in health.layers] == pytest.approx([0, 0, 1e-2, 0], abs=1e-12)
    assert [layer.logdet_gap for layer in health.layers] == pytest.approx([0, 0, 0, 0.5], abs=1e-12)
    assert [layer.scale for layer in health.layers] == pytest.approx([3 * math.log(2), 0, 3 * math.log(2), 3 * math.log(2)])
    assert health.round_trip_max == pytest.approx(1e-2 / 2) and health.round_trip_median == pytest.approx(1e-2 / 2)
    assert health.logdet_gap_max == pytest.approx(0.5) and health.max_layer_scale == pytest.approx(3 * math.log(2))
    assert health.rows == 50 and health.dtype == "float64"
    lines = table(health).splitlines()
    assert len(lines) == 1 + 4 + 2 and "2 Doubling" in lines[3] and "1.00e-02" in lines[3]


def test_a_non_finite_round_trip_counts_as_infinite() -> None:
    flow = Flow(Compose([Doubling(error=float("nan"))]), StandardNormal(2))
    health = measure(flow, torch.randn(4, 2))
    assert health.round_trip_max == math.inf and health.layers[0].round_trip == math.inf


def test_check_a_run_on_its_held_out_split(run: Path, capsys) -> None:
    assert main(["check", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("held-out split of moons (100 rows), float32") and "Whiten" in out and "AffineCoupling" in out
    assert "check passed" in out and str(run / "check.json") in out
    record = json.loads((run / "check.json").read_text())
    assert record["passed"] and record["rows"] == json.loads((run / "metrics.json").read_text())["n_test"]
    assert 0 < record["round_trip_max"] < 1e-5 and record["round_trip_median"] <= record["round_trip_max"]
    assert record["logdet_gap_max"] < 1e-4 and record["max_layer_scale"] == max(layer["scale"] for layer in record["layers"])
    assert [layer["name"] for layer in record["layers"]] == ["Whiten", "AffineCoupling", "Reverse", "AffineCoupling"]
    assert 0 <= record["far_sample_share"] < 0.01


def test_float64_runs_the_whole_flow_in_float64(run: Path, capsys) -> None:
    assert main(["check", str(run), "--dtype", "float64"]) == 0
    assert "float64" in capsys.readouterr().out.splitlines()[0]
    record = json.loads((run / "check.json").read_text())
    assert record["dtype"] == "float64" and record["round_trip_max"] < 1e-12 and record["logdet_gap_max"] < 1e-12


def test_check_given_data_and_a_failing_tolerance(run: Path, tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32) * 3
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    assert main(["check", str(run), "--data", str(tmp_path / "x.csv"), "--tolerance", "1e-12"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'x.csv'}, float32") and "check FAILED: round-trip error" in out and "> tolerance 1e-12" in out
    record = json.loads((run / "check.json").read_text())
    assert not record["passed"] and record["rows"] == 40 and record["problems"][0].startswith("round-trip error")


def test_check_refuses_a_changed_data_file(tmp_path: Path, capsys) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32))
    assert main(["train", *TINY, "--data", str(data), "--n", "100", "--out", str(tmp_path / "r")]) == 0
    np.save(data, np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32))
    capsys.readouterr()
    assert main(["check", str(tmp_path / "r")]) == 2
    assert "changed since" in capsys.readouterr().err


def test_check_a_conditional_run(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    theta = rng.uniform(-1, 1, size=(300, 1))
    table_ = np.hstack([rng.normal(size=(300, 2)) + theta, theta])
    np.savetxt(tmp_path / "t.csv", table_, delimiter=",", header="a,b,theta", comments="")
    assert main(["train", *TINY, "--data", str(tmp_path / "t.csv"), "--n", "300", "--context-columns", "theta",
                 "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "check.json").read_text())["rows"] == 60
    assert main(["check", str(tmp_path / "r"), "--data", str(tmp_path / "t.csv")]) == 0


def test_check_an_image_model_on_given_images(tmp_path: Path, capsys) -> None:
    flow = flowforge.ImageGlow((1, 4, 4), levels=2, steps_per_level=1, hidden_channels=8, pixel_levels=4)
    flowforge.save(flow, tmp_path / "img" / "model.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 4, size=(10, 1, 4, 4)).astype(np.uint8))
    assert main(["check", str(tmp_path / "img"), "--data", str(tmp_path / "x.npy")]) == 0
    assert json.loads((tmp_path / "img" / "check.json").read_text())["round_trip_max"] == 0  # pixels come back exactly
    np.save(tmp_path / "small.npy", np.zeros((10, 1, 2, 2), np.uint8))
    assert main(["check", str(tmp_path / "img"), "--data", str(tmp_path / "small.npy")]) == 2
    assert "expects shape (1, 4, 4) per row, got shape (1, 2, 2)" in capsys.readouterr().err


def test_the_tolerance_is_relative_to_each_columns_spread(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)  # a diamonds-like table: price in the thousands beside a carat near 1
    price = rng.lognormal(8, 1, 400)
    np.savetxt(tmp_path / "d.csv", np.c_[price / 5000 + rng.normal(0, 0.1, 400), price], delimiter=",", header="carat,price", comments="")
    assert main(["train", *TINY, "--data", str(tmp_path / "d.csv"), "--n", "400", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "r" / "check.json").read_text())
    assert "flow, max / column std" in out and record["passed"]
    assert record["round_trip_scaled_max"] < 1e-3 and record["round_trip_scaled_max"] < record["round_trip_max"]
    assert main(["check", str(tmp_path / "r"), "--tolerance", "1e-15"]) == 1
    assert "of a column's standard deviation" in capsys.readouterr().out


class FarShift(Transform):
    """z = x + 1e8 where x > 5, else x (tests only): exact in float64, but float32 keeps only about
    8 units of x + 1e8, so those rows lose their round trip in float32 alone; `wrong` breaks the
    inverse in any precision."""

    def __init__(self, wrong: float = 0.0) -> None:
        super().__init__()
        self.wrong = wrong

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x + 1e8 * (x > 5), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z - 1e8 * (z > 1e7) + self.wrong * (z > 1e7), z.new_zeros(z.shape[0])


@pytest.mark.parametrize(("rows", "far_rows", "wrong", "forgiven"),
                         [(2000, 1, 0.0, True), (2000, 10, 0.0, False), (2000, 1, 0.5, False), (40, 1, 0.0, True), (40, 2, 0.0, False)])
def test_rows_failing_in_float32_only_are_told_apart_from_defects(rows: int, far_rows: int, wrong: float, forgiven: bool) -> None:
    """At most 0.1% of the rows, or one row of a small split, may fail in float32 alone."""
    from flowforge.health import FLOAT32_ONLY_SHARE, float32_only_rows

    x = torch.rand(rows, 2) + torch.tensor([0.0, 1.0])
    x[:far_rows, 0] = 5.5 + torch.rand(far_rows)  # a few extreme rows (1 is within FLOAT32_ONLY_SHARE, 10 are not)
    flow = Flow(FarShift(wrong), StandardNormal(2))
    assert (far_rows <= max(1, FLOAT32_ONLY_SHARE * len(x))) == (far_rows == 1)
    found = float32_only_rows(flow, x, None, torch.ones(2), tolerance=1e-3, logdet_tolerance=1e-2)
    assert found == (list(range(far_rows)) if forgiven else [])
    assert measure(flow, x).round_trip_max > 1e-3  # each case does fail in float32


def test_samples_far_beyond_the_data_are_counted() -> None:
    """A standard normal flow against data a thousand times narrower: nearly every sampled cell lies
    more than 10 of the data's standard deviations outside its range; against data like its own
    samples, none does."""
    flow = Flow(Compose([Doubling()]), StandardNormal((2,)))  # samples N(0, 4)
    narrow = torch.rand(500, 2) * 1e-3
    assert far_sample_share(flow, narrow) > 0.9
    like_it = 2 * torch.randn(500, 2)
    assert far_sample_share(flow, like_it) == 0.0


def test_check_fails_a_run_whose_samples_leave_the_data(tmp_path: Path, capsys) -> None:
    """moons' flow checked against data a thousand times narrower than moons: its samples are far out."""
    folder = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(folder)]) == 0
    narrow = tmp_path / "narrow.csv"
    np.savetxt(narrow, np.random.default_rng(0).uniform(0, 1e-3, size=(200, 2)), delimiter=",")
    assert main(["check", str(folder), "--data", str(narrow)]) == 1
    out = capsys.readouterr().out
    assert "of sampled cells lie more than 10 standard deviations beyond" in out
    assert json.loads((folder / "check.json").read_text())["far_sample_share"] > 0.01
