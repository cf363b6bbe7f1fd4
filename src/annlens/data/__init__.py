"""Data sets and batching: bundled, generated and file data, splits, batches.

Start with :func:`load_dataset` (by name) or :func:`dataset_from_arrays`; both
return a :class:`Dataset` split into training, validation and test parts.
:func:`iterate_batches` walks one epoch in seeded mini-batches.
"""

from annlens.data.arrays import dataset_from_arrays
from annlens.data.batches import batch_count, check_batch_size, iterate_batches
from annlens.data.dataset import Dataset, RawData, build_dataset
from annlens.data.files import read_data_file
from annlens.data.generators import make_spirals
from annlens.data.registry import (
    DatasetInfo,
    dataset_info,
    dataset_names,
    describe_datasets,
    load_dataset,
)
from annlens.data.splits import Standardizer, split_indices

__all__ = [
    "Dataset",
    "DatasetInfo",
    "RawData",
    "Standardizer",
    "batch_count",
    "build_dataset",
    "check_batch_size",
    "dataset_from_arrays",
    "dataset_info",
    "dataset_names",
    "describe_datasets",
    "iterate_batches",
    "load_dataset",
    "make_spirals",
    "read_data_file",
    "split_indices",
]
