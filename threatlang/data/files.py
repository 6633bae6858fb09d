"""Readers for the user's own files (IDX, CIFAR-10 python batches, npz), with numpy only."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .safe_pickle import load_restricted
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


IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic, dims, then big-endian data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:
        raise UsageError(f"{path} cannot be read ({err}).") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise UsageError(f"{path} is not an IDX file (bad magic number).")
    dtype, ndim = np.dtype(IDX_TYPES[data[2]]), data[3]
    if len(data) < 4 + 4 * ndim:
        raise UsageError(f"{path} is truncated: its header is cut short.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - 4 - 4 * ndim != want:
        raise UsageError(
            f"{path} holds {len(data) - 4 - 4 * ndim} data bytes but its header {dims} "
            f"needs {want}; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def mnist_idx(path: str | None):
    directory = Path(path or ".")
    if not directory.is_dir():
        raise UsageError(
            f"MNIST directory {directory} does not exist; set `path` to the folder with the IDX files."
        )
    arrays = {k: read_idx(_find(directory, v)) for k, v in MNIST_FILES.items()}

    out = []
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UsageError(
                f"MNIST {split} files in {directory} do not match: images {x.shape}, labels "
                f"{y.shape}; expected (N, H, W) images and N labels."
            )
        out.append(ArrayDataset((x.astype(np.float32) / 255.0)[:, None, :, :], y.astype(np.int64)))
    return tuple(out)


def cifar10(path: str | None):
    directory = Path(path or ".")
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in [*names, "test_batch"] if not (directory / n).exists()]
    if missing:
        raise UsageError(
            f"CIFAR-10 batch {directory / missing[0]} not found; set `path` to the extracted "
            "cifar-10-batches-py folder."
        )
    parts = [read_cifar_batch(directory / n) for n in names]
    train = ArrayDataset(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    return train, ArrayDataset(*read_cifar_batch(directory / "test_batch"))


def read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch as (N, 3, 32, 32) floats in [0, 1] and int64 labels; the
    pickle is read without running code (`safe_pickle`) and its shape is checked."""
    batch = load_restricted(file)

    def bad(why: str) -> UsageError:
        return UsageError(f"{file} is not a CIFAR-10 python batch: {why}.")

    if not isinstance(batch, dict):
        raise bad(f"it holds a {type(batch).__name__}, not a dict")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise bad("it lacks the `data` array or the `labels` list")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise bad(f"`data` is {data.dtype} {data.shape}, not uint8 rows of 3072 pixels")
    if not isinstance(labels, list | np.ndarray) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels
    ):
        raise bad("`labels` is not a list of integers")
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(y) != len(data):
        raise bad(f"{len(data)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise bad(f"label {int(y.min() if y.min() < 0 else y.max())} is outside 0..9")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, y


MAX_LABEL = 65535  # a larger "class index" is an id, and would size a classifier head by it
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def npz(path: str | None):
    file = Path(path or "")
    if not file.is_file():
        raise UsageError(
            f"npz file {file} not found; it must hold x_train, y_train, x_test, y_test."
        )
    arrays = _read_npz(file)
    x_train, x_test = (_images(file, k, arrays[k]) for k in ("x_train", "x_test"))
    y_train, y_test = (check_labels(file, k, arrays[k]) for k in ("y_train", "y_test"))
    for x, y, xk, yk in (
        (x_train, y_train, "x_train", "y_train"),
        (x_test, y_test, "x_test", "y_test"),
    ):
        if len(x) != len(y):
            raise UsageError(f"{file}: {xk} has {len(x)} examples but {yk} has {len(y)} labels.")
    if len(x_test) == 0:
        raise UsageError(f"{file}: the test set (x_test) is empty; it needs at least one example.")
    if len(x_train) and x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(
            f"{file}: x_train examples are {x_train.shape[1:]} but x_test examples are "
            f"{x_test.shape[1:]}; both splits need the same shape."
        )
    return ArrayDataset(x_train, y_train), ArrayDataset(x_test, y_test)


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    """The four arrays of an .npz archive, or one sentence naming the file and the problem."""
    with open(file, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise UsageError(
            f"{file} is a single .npy array, not an .npz archive of {', '.join(NPZ_KEYS)}."
        )
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise UsageError(
            f"{file} is not an .npz archive (not a zip file); write it with numpy.savez."
        )
    try:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in NPZ_KEYS if k not in data]
            if missing:
                raise UsageError(
                    f"{file} lacks arrays {', '.join(missing)}; it must hold {', '.join(NPZ_KEYS)}."
                )
            return {k: data[k] for k in NPZ_KEYS}
    except UsageError:
        raise
    except ValueError as err:
        if "pickle" in str(err) or "allow_pickle" in str(err):
            why = "it holds pickled Python objects (not loaded: they could run code); store numeric arrays"
        else:
            why = str(err).splitlines()[0]
        raise UsageError(f"{file} is not a readable .npz archive: {why}.") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(
            f"{file} is not a readable .npz archive ({why}); write it with numpy.savez."
        ) from None


def _images(file: Path, key: str, a: np.ndarray) -> np.ndarray:
    """Float32 examples: (N, C, H, W) images (from N,H,W / N,H,W,C too) or (N, F) features.

    Integer pixels are 0..255 and scaled; float arrays are taken as already scaled (they may
    be normalised features outside [0, 1], e.g. from an imported VNN-LIB benchmark)."""
    kind = a.dtype.kind
    if kind == "c":
        raise UsageError(f"{file}: {key} holds complex numbers; images must be real.")
    if kind not in "biuf":
        raise UsageError(f"{file}: {key} holds {a.dtype} values; images must be numbers.")
    if a.ndim not in (2, 3, 4):
        raise UsageError(
            f"{file}: {key} has shape {a.shape}; examples must be (N, H, W), (N, C, H, W), "
            "(N, H, W, C) images or (N, F) feature rows."
        )
    if kind == "f":
        check_finite(file, key, a)
        if a.size and np.abs(a).max() > np.finfo(np.float32).max:
            raise UsageError(f"{file}: {key} holds values too large for float32.")
        a = a.astype(np.float32)
    else:
        a = a.astype(np.float32) / (1.0 if kind == "b" else 255.0)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(a)


def check_finite(file: Path | str, key: str, a: np.ndarray) -> None:
    """Every input value finite, or one sentence naming where (files and caller data alike)."""
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise UsageError(
            f"{file}: {key} holds {int(bad.sum())} NaN or infinite values (first at "
            f"index {where}); every pixel must be a finite number."
        )


def check_labels(file: Path | str, key: str, y: np.ndarray) -> np.ndarray:
    """Int64 class indices 0..K-1; float labels only when every one is a whole number.
    `file` names where the labels came from (a path, or the caller's `data=`)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(
            f"{file}: {key} has shape {y.shape}; labels must be one integer per example."
        )
    kind = y.dtype.kind
    if kind not in "biuf":
        what = {"U": "text", "S": "bytes", "O": "Python object", "c": "complex"}.get(
            kind, str(y.dtype)
        )
        first = f" ({y[0].item()!r} at index 0)" if len(y) else ""
        raise UsageError(
            f"{file}: {key} holds {what} labels{first}; labels must be integers 0..K-1 (map "
            "names to class indices first)."
        )
    if kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise UsageError(
                f"{file}: {key} holds non-integer labels ({y[i].item()!r} at index {i}); labels must "
                "be integers 0..K-1."
            )
    if len(y) and y.max() > MAX_LABEL:
        raise UsageError(
            f"{file}: {key} holds label {y.max().item()}; labels must be class indices "
            f"0..K-1 (at most {MAX_LABEL})."
        )
    if len(y) and y.min() < 0:
        i = int(np.argmin(y))
        raise UsageError(
            f"{file}: {key} holds negative labels ({y[i].item()} at index {i}); labels must be "
            "integers 0..K-1."
        )
    return y.astype(np.int64)
