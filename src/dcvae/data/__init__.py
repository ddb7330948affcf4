"""Data for dcvae: benchmark datasets by name, the user's own files, and readers.

* :func:`load_dataset` - MNIST, Fashion-MNIST, KMNIST, EMNIST splits, sklearn digits.
* :func:`load_image_folder`, :func:`load_array_file` - the user's own data.
* :func:`read_idx`, :func:`read_npz_array` - validated low-level readers.

Images are ``uint8 (n, C, H, W)``, tabular data ``float32 (n, d)``, labels ``int64 (n,)``.
"""

from .arrays import DatasetSplits, LabelledArray
from .datasets import DATASETS, load_dataset, stratified_carve
from .errors import DataFileError, DatasetNotFoundError
from .idx import read_idx, read_npz_array
from .locate import cache_dir, dataset_search_dirs, search_roots
from .user import load_array_file, load_image_folder

__all__ = [
    "DATASETS",
    "DataFileError",
    "DatasetNotFoundError",
    "DatasetSplits",
    "LabelledArray",
    "cache_dir",
    "dataset_search_dirs",
    "load_array_file",
    "load_dataset",
    "load_image_folder",
    "read_idx",
    "read_npz_array",
    "search_roots",
    "stratified_carve",
]
