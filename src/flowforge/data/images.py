"""Image data -> (N, C, H, W) arrays of integer pixel levels: digits, a folder of PNG/JPEG, .npy/.npz.

Image models take whole-number pixel levels 0..levels-1 (their first layer dequantises), so
every loader here returns `Images(x, levels)`: x as uint8 (or int64 when levels > 256).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import FlowforgeError, check_int
from .digits import load_digits_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {"L": 1, "RGB": 3, "RGBA": 4}  # Pillow mode -> channels
_NPZ_KEYS = ("x", "images", "data", "arr_0")
MAX_LEVELS = 65536  # pixel levels a float32 image model dequantises with sub-level resolution (2^16)


class Images(NamedTuple):
    """x: (N, C, H, W) integer pixel levels in 0..levels-1."""

    x: np.ndarray
    levels: int


def load_images(spec: str | os.PathLike, size: int | tuple[int, int] | None = None, mode: str | None = None) -> Images:
    """"digits" (sklearn's 8x8 digits, 17 levels), a folder of PNG/JPEG (256 levels) or a .npy/.npz array.

    Args:
        size: folder images are resized to (size, size) or (H, W); None requires equal sizes.
        mode: "L" (grey), "RGB" or "RGBA" for folder images; None: their common mode, or the least
            that holds them all (grey -> L, any colour -> RGB, any transparency -> RGBA). 16-bit
            greys are scaled to 8 bits.
    """
    if os.fspath(spec) == "digits":
        return Images(load_digits_images(), 17)
    path = Path(spec)
    if path.is_dir():
        return Images(load_image_folder(path, size, mode), 256)
    if path.suffix.lower() in (".npy", ".npz"):
        return read_image_array(path)
    raise FlowforgeError(f"{os.fspath(spec)!r} is not 'digits', a folder of PNG/JPEG images, or a .npy/.npz file")


def array_ndim(path: str | os.PathLike) -> int:
    """The number of dimensions of the array in an .npy file (the largest in an .npz), read from
    its header; 0 when it cannot be read (the loader that reads it later names the problem)."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return 0
    if isinstance(loaded, np.ndarray):
        return loaded.ndim
    with loaded:
        return max((loaded[k].ndim for k in loaded.files), default=0)


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise FlowforgeError("reading image files needs Pillow: pip install pillow") from e
    return Image


def _open(path: Path):
    try:
        image = _pil().open(path)
        image.load()
    except OSError as e:
        raise FlowforgeError(f"{path} is not a readable image: {e}") from None
    return image


def _common(values: dict[str, object], what: str, hint: str) -> object:
    distinct = {}
    for name, value in values.items():
        distinct.setdefault(value, name)
    if len(distinct) > 1:
        examples = ", ".join(f"{name}: {value}" for value, name in list(distinct.items())[:3])
        raise FlowforgeError(f"images differ in {what} ({examples}); {hint}")
    return next(iter(distinct))


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The PNG/JPEG files of `folder` (not its subfolders), sorted by name: what load_image_folder reads."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(folder: str | os.PathLike, size: int | tuple[int, int] | None = None, mode: str | None = None) -> np.ndarray:
    """All PNG/JPEG files of `folder` (sorted by name) as uint8 (N, C, H, W); see `load_images`."""
    files = image_files(folder)
    if not files:
        raise FlowforgeError(f"{folder} holds no .png/.jpg/.jpeg files")
    if mode is not None and mode not in MODES:
        raise FlowforgeError(f"unknown image mode {mode!r}; choose from {', '.join(MODES)}")
    images = {p.name: _eight_bit(_open(p)) for p in files}
    mode = mode or _common_mode(images.values())
    if size is None:
        _common({n: f"{im.height}x{im.width}" for n, im in images.items()}, "size",
                "resize them to one size (in Python, load_images(folder, size=...) does it)")
    else:
        height, width = (size, size) if isinstance(size, int) else size
        for value in (height, width):
            check_int("size", value, 1)
        images = {n: im.resize((width, height), resample=_pil().Resampling.BICUBIC) for n, im in images.items()}
    arrays = [np.asarray(im.convert(mode), dtype=np.uint8).reshape(im.height, im.width, MODES[mode]) for im in images.values()]
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()


def _eight_bit(image):
    """A 16-bit (or 32-bit integer) grey image as 8-bit grey, its levels scaled by 1/256: Pillow's
    convert("L") would clip every level above 255 to white."""
    if not image.mode.startswith("I"):
        return image
    levels = np.asarray(image).astype(np.int64)
    return _pil().fromarray((np.clip(levels, 0, 65535) >> 8).astype(np.uint8), mode="L")


def _common_mode(images) -> str:
    """The images' mode if they share L, RGB or RGBA; else the least that holds them all: grey
    (1-bit, 16-bit) -> L, any colour (palette, CMYK, ...) -> RGB, any transparency -> RGBA."""
    modes = {image.mode for image in images}
    if len(modes) == 1 and next(iter(modes)) in MODES:
        return next(iter(modes))
    transparent = any(image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info for image in images)
    colour = any(image.mode not in ("1", "L", "LA", "La") for image in images)
    return "RGBA" if transparent else "RGB" if colour else "L"


def _channels_first(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise FlowforgeError(f"{name}: expected images (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.shape[-1] in MODES.values() and x.shape[1] > 4:
        return x.transpose(0, 3, 1, 2)  # channels last, as image libraries store them
    return x


def read_image_array(path: str | os.PathLike) -> Images:
    """A .npy/.npz of whole-number pixels as Images; levels = 256 for uint8, else max + 1.

    Layouts (N, H, W), (N, C, H, W) and (N, H, W, C) with C in 1, 3, 4 are accepted.
    """
    path, name = Path(path), os.fspath(path)
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle: a pickle can run code
    except (OSError, ValueError, EOFError) as e:
        raise FlowforgeError(f"{name} is not a readable NumPy file of numbers: {e}") from None
    if not isinstance(loaded, np.ndarray):
        with loaded:
            key = next((k for k in _NPZ_KEYS if k in loaded.files), loaded.files[0] if len(loaded.files) == 1 else None)
            if key is None:
                raise FlowforgeError(f"{name} holds several arrays ({', '.join(loaded.files)}); store the images as 'x'")
            loaded = loaded[key]
    x = _channels_first(loaded, name)
    real = np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)
    if real and x.size and not np.isfinite(x).all():
        raise FlowforgeError(f"{name} contains NaN or Inf pixels (first in image {int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))[0])})")
    if not real or x.size == 0 or (x < 0).any() or (x != np.floor(x)).any():
        raise FlowforgeError(
            f"{name}: expected whole-number pixel levels >= 0 (e.g. uint8), got dtype {x.dtype}"
            + (f" with values in [{x.min():g}, {x.max():g}]" if x.size and real else "")
        )
    if x.max() >= MAX_LEVELS:
        raise FlowforgeError(f"{name}: pixel values up to {x.max():g}; at most {MAX_LEVELS:,} levels (16-bit images) are "
                             "supported, as float32 resolves finer ones only to a few noise draws: rescale the values")
    levels = 256 if x.dtype == np.uint8 else int(x.max()) + 1
    return Images(x.astype(np.uint8 if levels <= 256 else np.int64), max(levels, 2))
