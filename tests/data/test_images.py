"""Image loaders: digits, folders of PNG/JPEG (sizes, modes, resize), .npy/.npz layouts, named errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowforge import FlowforgeError
from flowforge.data.images import load_image_folder, load_images, read_image_array


def write(folder: Path, name: str, array: np.ndarray, mode: str | None = None) -> None:
    folder.mkdir(exist_ok=True)
    Image.fromarray(array, mode).save(folder / name)


def grey(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_digits_are_8x8_images_with_17_levels() -> None:
    x, levels = load_images("digits")
    assert x.shape == (1797, 1, 8, 8) and levels == 17 and x.min() == 0 and x.max() == 16


def test_a_folder_of_pngs_keeps_pixels_exactly(tmp_path: Path) -> None:
    arrays = [grey(6, 5, i) for i in range(3)]
    for i, a in enumerate(arrays):
        write(tmp_path, f"{i}.png", a)
    (tmp_path / "notes.txt").write_text("not an image")
    x, levels = load_images(tmp_path)
    assert x.shape == (3, 1, 6, 5) and x.dtype == np.uint8 and levels == 256
    assert np.array_equal(x[:, 0], np.stack(arrays))


def test_sizes_must_match_unless_resized(tmp_path: Path) -> None:
    write(tmp_path, "a.png", grey(6, 6, 0))
    write(tmp_path, "b.jpg", grey(8, 4, 1))
    with pytest.raises(FlowforgeError, match="differ in size.*size="):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=4).shape == (2, 1, 4, 4)
    assert load_image_folder(tmp_path, size=(2, 3)).shape == (2, 1, 2, 3)


def test_mixed_modes_become_the_least_mode_that_holds_them(tmp_path: Path) -> None:
    write(tmp_path, "a.png", grey(4, 4, 0))
    write(tmp_path, "b.png", np.stack([grey(4, 4, s) for s in range(3)], -1))
    x = load_image_folder(tmp_path)  # grey and colour: RGB, the grey one replicated
    assert x.shape == (2, 3, 4, 4) and all(np.array_equal(x[0, c], grey(4, 4, 0)) for c in range(3))
    assert load_image_folder(tmp_path, mode="L").shape == (2, 1, 4, 4)
    write(tmp_path, "c.png", np.dstack([grey(4, 4, 5), grey(4, 4, 6)]), "LA")
    assert load_image_folder(tmp_path).shape == (2 + 1, 4, 4, 4)  # one has transparency: RGBA
    with pytest.raises(FlowforgeError, match="unknown image mode"):
        load_image_folder(tmp_path, mode="CMYK")


def test_palette_one_bit_and_16_bit_images_load(tmp_path: Path) -> None:
    Image.fromarray(np.stack([grey(4, 4, s) for s in range(3)], -1)).convert("P").save(tmp_path / "p.png")
    assert load_image_folder(tmp_path).shape == (1, 3, 4, 4)
    (tmp_path / "p.png").unlink()
    Image.fromarray(grey(4, 4, 1) > 127).save(tmp_path / "bits.png")
    assert set(np.unique(load_image_folder(tmp_path))) <= {0, 255}
    (tmp_path / "bits.png").unlink()
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # 16-bit grey
    x = load_image_folder(tmp_path)
    assert x.shape == (1, 1, 4, 4) and np.array_equal(x[0, 0], (ramp >> 8).astype(np.uint8))  # was clipped to 255


def test_empty_folders_and_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FlowforgeError, match="no .png"):
        load_image_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FlowforgeError, match="broken.png"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((5, 6, 7), (5, 1, 6, 7)),
        ((5, 6, 7, 3), (5, 3, 6, 7)),
        ((5, 3, 6, 7), (5, 3, 6, 7)),
        ((5, 2, 8, 4), (5, 2, 8, 4)),  # two channels of 8x4: was read as 4 channels of 2x8
        ((5, 4, 4, 3), (5, 4, 4, 3)),  # ambiguous: channels first, the documented layout
    ],
)
def test_arrays_in_any_common_layout(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    images = read_image_array(tmp_path / "x.npy")
    assert images.x.shape == expected and images.levels == 256


def test_levels_of_integer_arrays_and_npz_keys(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 17, (4, 1, 8, 8))
    np.savez(tmp_path / "d.npz", labels=np.arange(4), x=x)
    images = load_images(tmp_path / "d.npz")
    assert images.levels == int(x.max()) + 1 and np.array_equal(images.x, x)


def test_non_pixel_arrays_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "scaled.npy", np.random.default_rng(0).random((4, 1, 4, 4)))
    with pytest.raises(FlowforgeError, match="whole-number pixel levels"):
        read_image_array(tmp_path / "scaled.npy")
    with pytest.raises(FlowforgeError, match="not 'digits'"):
        load_images(tmp_path / "nothing.csv")
    refused = {
        "complex.npy": (np.zeros((4, 1, 4, 4), np.complex64), "got dtype complex64$"),
        "nan.npy": (np.full((4, 1, 4, 4), np.nan, np.float32), "contains NaN or Inf pixels"),
        "deep.npy": (np.full((4, 1, 4, 4), 2**31 - 1, np.int64), "at most 65,536 levels"),
        "huge.npy": (np.full((4, 1, 4, 4), 1e20), "at most 65,536 levels"),  # not an int64 overflow
    }
    for name, (array, message) in refused.items():
        np.save(tmp_path / name, array)
        with pytest.raises(FlowforgeError, match=message):
            read_image_array(tmp_path / name)
    np.save(tmp_path / "sixteen.npy", np.full((4, 1, 4, 4), 65535, np.uint16))
    assert read_image_array(tmp_path / "sixteen.npy").levels == 65536
