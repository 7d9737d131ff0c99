"""Data: 2-D toy densities, the digits that ship with scikit-learn, and user files -> float32 arrays."""
from .datasets import DATASETS, load_dataset, split
from .digits import load_digits, load_digits_images
from .files import read_array, read_csv_with_header
from .toys import TOYS, make_toy

__all__ = [
    "DATASETS", "TOYS", "load_dataset", "load_digits", "load_digits_images", "make_toy", "read_array",
    "read_csv_with_header", "split",
]
