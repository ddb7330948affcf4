"""Data for dcvae: benchmark datasets by name, the user's own files, and the rules every input obeys.

* :func:`load_dataset` - MNIST, Fashion-MNIST, KMNIST, EMNIST splits, sklearn digits.
* :func:`load_image_folder`, :func:`load_array_file` - the user's own data.
* :func:`canonical_inputs` - the one input rule (dtype, range, shape, channels).
* :func:`encode_conditions`, :func:`condition_indices` - the one condition-encoding rule.
* :func:`stratified_split` - the one stratified split.
* :func:`read_idx`, :func:`read_npz_array` - validated low-level readers.

Images are ``(n, C, H, W)`` uint8 (or float32 in [0, 1]), tabular data ``(n, d)`` float32,
labels ``int64 (n,)``.
"""

from .arrays import DatasetSplits, FactorSplits, LabelledArray
from .canonical import InputError, canonical_inputs, in_unit_interval
from .conditions import condition_indices, condition_name, encode_conditions
from .datasets import DATASETS, load_dataset, stratified_carve
from .errors import DataFileError, DatasetNotFoundError
from .idx import read_idx, read_npz_array
from .images import ImageFolder, list_image_files, load_image_folder, read_image_folder
from .search import cache_dir, dataset_search_dirs, search_roots
from .split import stratified_split
from .tables import load_array_file

__all__ = [
    "DATASETS",
    "DataFileError",
    "DatasetNotFoundError",
    "DatasetSplits",
    "FactorSplits",
    "InputError",
    "LabelledArray",
    "cache_dir",
    "canonical_inputs",
    "condition_indices",
    "condition_name",
    "dataset_search_dirs",
    "encode_conditions",
    "in_unit_interval",
    "ImageFolder",
    "list_image_files",
    "load_array_file",
    "load_dataset",
    "load_image_folder",
    "read_image_folder",
    "read_idx",
    "read_npz_array",
    "search_roots",
    "stratified_carve",
    "stratified_split",
]
