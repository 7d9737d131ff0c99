"""Data: 2-D toy densities, the digits that ship with scikit-learn, and user files -> float32 arrays."""
from .columns import find_columns, recorded_columns, split_columns
from .datasets import DATASETS, load_dataset, load_table, split
from .digits import load_digits, load_digits_images
from .files import read_array, read_csv_with_header
from .images import Images, load_image_folder, load_images, read_image_array
from .toys import TOYS, make_toy

__all__ = [
    "DATASETS", "TOYS", "Images", "find_columns", "load_dataset", "load_digits", "load_digits_images", "load_image_folder",
    "load_images", "load_table", "make_toy", "read_array", "read_csv_with_header", "read_image_array", "recorded_columns", "split",
    "split_columns",
]
