"""Readers for the user's own files (IDX, CIFAR-10 python batches, npz), with numpy only."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .splits import ArrayDataset

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).exists():
            return directory / name
    raise UsageError(
        f"MNIST file {directory / stem}[.gz] not found; put the four IDX files in {directory} "
        "(or use `data mnist5k` for the bundled 5,000-image subset)."
    )


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic, dims, then big-endian data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UsageError(f"{path} is not an IDX file (bad magic number).")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[
        data[2]
    ]
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(
        tuple(int(d) for d in dims)
    )


def mnist_idx(path: str | None):
    directory = Path(path or ".")
    if not directory.is_dir():
        raise UsageError(
            f"MNIST directory {directory} does not exist; set `path` to the folder with the IDX files."
        )
    arrays = {k: read_idx(_find(directory, v)) for k, v in MNIST_FILES.items()}

    def images(a):
        return (a.astype(np.float32) / 255.0)[:, None, :, :]

    return (
        ArrayDataset(images(arrays["train_x"]), arrays["train_y"].astype(np.int64)),
        ArrayDataset(images(arrays["test_x"]), arrays["test_y"].astype(np.int64)),
    )


def cifar10(path: str | None):
    directory = Path(path or ".")
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in [*names, "test_batch"] if not (directory / n).exists()]
    if missing:
        raise UsageError(
            f"CIFAR-10 batch {directory / missing[0]} not found; set `path` to the extracted "
            "cifar-10-batches-py folder."
        )

    def read(name):
        with open(directory / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        x = batch[b"data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
        return x, np.asarray(batch[b"labels"], dtype=np.int64)

    parts = [read(n) for n in names]
    test = read("test_batch")
    train = ArrayDataset(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    return train, ArrayDataset(*test)


def npz(path: str | None):
    file = Path(path or "")
    if not file.is_file():
        raise UsageError(
            f"npz file {file} not found; it must hold x_train, y_train, x_test, y_test."
        )
    with np.load(file) as data:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in data]
        if missing:
            raise UsageError(
                f"{file} lacks arrays {', '.join(missing)}; it must hold x_train, y_train, x_test, y_test."
            )
        arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}

    def images(a):
        # integer pixels are 0..255; float arrays are taken as already scaled (they may be
        # normalised features outside [0, 1], e.g. from an imported VNN-LIB benchmark)
        a = (
            a.astype(np.float32) / 255.0
            if np.issubdtype(a.dtype, np.integer)
            else a.astype(np.float32)
        )
        if a.ndim == 3:
            a = a[:, None]
        elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
            a = a.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(a)

    return (
        ArrayDataset(images(arrays["x_train"]), arrays["y_train"].astype(np.int64)),
        ArrayDataset(images(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )
