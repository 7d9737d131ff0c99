"""`flowforge score` and `check` on an image run take flattened images too, as `flowforge sample --out s.csv` writes them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowforge.cli import main
from flowforge.cli.score import score_file
from flowforge.errors import FlowforgeError

from ..helpers import one_line_error

TINY = ["--steps", "2", "--layers", "1", "--hidden", "8", "--batch-size", "32", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image") / "run"
    assert main(["train", "--data", "digits", "--model", "glow", *TINY, "--out", str(folder)]) == 0
    return folder


def _score(run: Path, path: Path) -> np.ndarray:
    torch.manual_seed(0)  # the same dequantisation noise for each file
    return score_file(run, path)


def test_score_takes_sampled_images_as_csv_or_flat_npy(image_run: Path, tmp_path: Path) -> None:
    assert main(["sample", str(image_run), "-n", "5", "--seed", "1", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(image_run), "-n", "5", "--seed", "1", "--out", str(tmp_path / "s.csv")]) == 0
    images = np.load(tmp_path / "s.npy")
    np.save(tmp_path / "flat.npy", images.reshape(5, -1))
    expected = _score(image_run, tmp_path / "s.npy")
    assert expected.shape == (5,) and np.isfinite(expected).all()
    np.testing.assert_allclose(_score(image_run, tmp_path / "s.csv"), expected, rtol=1e-5)
    np.testing.assert_allclose(_score(image_run, tmp_path / "flat.npy"), expected, rtol=1e-5)
    assert main(["score", str(image_run), "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "scores.csv")]) == 0


def test_the_same_images_score_the_same_every_time(image_run: Path, tmp_path: Path) -> None:
    """The dequantisation noise is one fixed draw: scores moved by up to 3 nats between two calls."""
    np.save(tmp_path / "x.npy", np.random.default_rng(1).integers(0, 17, (5, 1, 8, 8)).astype(np.uint8))
    torch.manual_seed(123)
    first = score_file(image_run, tmp_path / "x.npy")
    torch.manual_seed(456)
    assert np.array_equal(first, score_file(image_run, tmp_path / "x.npy"))


def test_score_names_a_wrong_column_count(image_run: Path, tmp_path: Path, capsys) -> None:
    np.savetxt(tmp_path / "short.csv", np.zeros((3, 63)), delimiter=",")
    with pytest.raises(FlowforgeError, match=r"expects rows of 64 pixel values \(flattened 1x8x8 images\), got 63 columns"):
        score_file(image_run, tmp_path / "short.csv")
    assert main(["score", str(image_run), "--data", str(tmp_path / "short.csv")]) == 2
    assert "got 63 columns" in one_line_error(capsys)


def test_check_takes_the_same_flattened_images(image_run: Path, tmp_path: Path) -> None:
    assert main(["sample", str(image_run), "-n", "5", "--seed", "1", "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["check", str(image_run), "--data", str(tmp_path / "s.csv")]) == 0  # was refused: not images
