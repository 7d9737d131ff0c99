"""Image runs: `flowforge train --data digits --model glow|realnvp` writes bits/dim and image plots."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import flowforge
from flowforge import FlowforgeError
from flowforge.cli import main
from flowforge.cli.config import TrainConfig
from flowforge.cli.image_plots import interpolate
from flowforge.cli.image_run import is_image_run, with_image_defaults

TINY = ["--steps", "4", "--layers", "1", "--hidden", "8", "--batch-size", "32", "--no-progress"]
PLOTS = ["training_curve.png", "samples.png", "reconstructions.png", "interpolation.png"]


@pytest.mark.parametrize("model", ["glow", "realnvp"])
def test_digits_run_writes_bits_per_dim_and_image_plots(model: str, tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", "digits", "--model", model, *TINY, "--out", str(tmp_path / "run")]) == 0
    assert "test_bpd" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < metrics["test_bpd"] < 6 and metrics["n_train"] == 1500 and metrics["n_test"] == 297
    assert metrics["image_shape"] == [1, 8, 8]
    for name in PLOTS:
        assert (tmp_path / "run" / "plots" / name).stat().st_size > 1000, name
    flow = flowforge.load(tmp_path / "run")
    assert flow.spec["model"] == f"image-{model}" and flow.sample(2).shape == (2, 1, 8, 8)
    assert main(["sample", str(tmp_path / "run"), "-n", "3", "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy").shape == (3, 1, 8, 8)
    assert main(["sample", str(tmp_path / "run"), "-n", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1].count(",") == 63  # CSV: one row of 64 pixels per sample
    assert main(["score", str(tmp_path / "run"), "--data", str(tmp_path / "x.npy")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 3


def test_image_defaults_fill_only_untouched_options() -> None:
    config = with_image_defaults(TrainConfig(data="digits", model="glow", steps=7))
    assert config.steps == 7 and config.layers != TrainConfig().layers and config.test_fraction == 0.165


def test_which_runs_are_image_runs(tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", np.zeros((4, 1, 4, 4), dtype=np.uint8))
    np.save(tmp_path / "rows.npy", np.zeros((4, 16), dtype=np.float32))
    assert is_image_run(TrainConfig(data="digits", model="glow"))
    assert is_image_run(TrainConfig(data=str(tmp_path / "images.npy"), model="realnvp"))
    assert not is_image_run(TrainConfig(data=str(tmp_path / "rows.npy"), model="glow"))
    assert not is_image_run(TrainConfig(data="digits", model="maf"))
    with pytest.raises(FlowforgeError, match="needs images"):
        is_image_run(TrainConfig(data="moons", model="image-glow"))


def test_interpolation_starts_and_ends_at_the_images() -> None:
    flow = flowforge.Glow((1, 4, 4), levels=1, steps_per_level=1, hidden_channels=4, pixel_levels=4).eval()
    a, b = torch.randint(0, 4, (2, 1, 4, 4)).float()
    strip = interpolate(flow, a, b, steps=5)
    assert strip.shape == (5, 1, 4, 4) and torch.equal(strip[0], a) and torch.equal(strip[-1], b)


@pytest.mark.parametrize(("shape", "rows"), [((1, 8, 8), 8), ((2, 8, 8), 20)], ids=["one-test-image", "two-channels"])
def test_unusual_image_sets_finish_with_their_plots(shape: tuple[int, ...], rows: int, tmp_path: Path, capsys) -> None:
    """A test split of one image (no pair to interpolate) and two-channel images (no colour map)
    used to crash after training, with metrics and model written but no summary."""
    pixels = np.random.default_rng(0).integers(0, 256, (rows, *shape)).astype(np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    assert main(["train", "--data", str(tmp_path / "images.npy"), "--model", "glow", *TINY, "--out", str(tmp_path / "run")]) == 0
    assert "test_bpd" in capsys.readouterr().out
    drawn = {p.name for p in (tmp_path / "run" / "plots").iterdir()}
    assert drawn == set(PLOTS) - ({"interpolation.png"} if rows == 8 else set())


@pytest.mark.parametrize("model", ["glow", "realnvp"])
def test_small_images_get_as_many_levels_as_they_can_take(model: str, tmp_path: Path) -> None:
    """4x4 images could not be trained from the command line (its default levels need 8x8 or more)."""
    np.save(tmp_path / "small.npy", np.random.default_rng(0).integers(0, 256, (40, 1, 4, 4)).astype(np.uint8))
    assert main(["train", "--data", str(tmp_path / "small.npy"), "--model", model, *TINY, "--out", str(tmp_path / "run")]) == 0
    flow = flowforge.load(tmp_path / "run")
    assert flow.spec["kwargs"]["levels"] == 2 and flow.sample(2).shape == (2, 1, 4, 4)  # realnvp: 3 by default
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # 33 training images, batch 32
    assert metrics["train_images_per_second"] * metrics["train_seconds"] == pytest.approx(4 * 32, rel=0.01)


def test_an_image_run_refuses_a_changed_file_on_check_and_resume(tmp_path: Path, capsys) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 1, 8, 8)).astype(np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    run = str(tmp_path / "run")
    assert main(["train", "--data", str(tmp_path / "images.npy"), "--model", "glow", *TINY, "--out", run]) == 0
    capsys.readouterr()
    assert main(["check", run]) == 0
    first = capsys.readouterr().out
    assert main(["check", run]) == 0 and capsys.readouterr().out == first  # the same noise draw each time
    np.save(tmp_path / "images.npy", np.zeros_like(pixels))
    assert main(["check", run]) == 2
    assert "images.npy changed since" in capsys.readouterr().err
    assert main(["train", "--resume", run, "--steps", "8"]) == 2
    assert "its data changed since it started (the file's contents differ" in capsys.readouterr().err


def test_a_data_record_hashes_what_the_run_reads(tmp_path: Path, monkeypatch) -> None:
    """A folder named like a built-in dataset is not it; an image folder's hash covers its images
    only (a run folder inside it, or a .DS_Store, had made check and resume refuse it)."""
    from flowforge.cli.run_folder import data_record

    monkeypatch.chdir(tmp_path)
    (tmp_path / "moons").mkdir()
    assert data_record("moons") == {"path": None, "sha256": None}
    Image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(folder / f"{i}.png")
    before = data_record(str(folder))["sha256"]
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "run").mkdir()
    (folder / "run" / "config.json").write_text("{}")
    assert data_record(str(folder))["sha256"] == before
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "3.png")
    assert data_record(str(folder))["sha256"] != before


def test_options_given_explicitly_keep_their_values_on_an_image_run(tmp_path: Path) -> None:
    """--batch-size 512 and --test-fraction 0.2 equal the vector defaults, and were silently
    replaced by the image defaults (64, 0.165) although given."""
    args = ["train", "--data", "digits", "--model", "glow", "--steps", "2", "--layers", "1", "--hidden", "8",
            "--batch-size", "512", "--test-fraction", "0.2", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (config["batch_size"], config["test_fraction"], config["lr"]) == (512, 0.2, 1e-3)
    assert with_image_defaults(TrainConfig(data="digits", model="glow")).batch_size == 64  # not given: image default


def test_an_image_run_takes_the_subset_a_table_run_takes_and_refuses_too_large_an_n(tmp_path: Path) -> None:
    from dataclasses import replace

    from flowforge.cli.training import train_run as train_image_run

    images = np.random.default_rng(0).integers(0, 256, size=(30, 1, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "img.npy", images)
    config = TrainConfig(data=str(tmp_path / "img.npy"), model="glow", n=40, steps=1, out=str(tmp_path / "run"))
    with pytest.raises(FlowforgeError, match="has 30 rows, fewer than n=40"):
        train_image_run(config)
    assert not (tmp_path / "run").exists()
    train_image_run(replace(config, n=12, seed=3, threads=1, progress=False))
    record = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert (record["images"], record["n_train"] + record["n_test"]) == (12, 12)
