"""Data loaders: bundled digits, class selection, resize, and the user's own files."""

from __future__ import annotations

import gzip
import io
import pickle
import struct

import numpy as np
import pytest

from threatlang.data import load_dataset
from threatlang.data.files import read_idx
from threatlang.errors import UsageError
from threatlang.ir import DataRef


def test_digits_split_is_seeded_stratified_and_scaled():
    a = load_dataset(DataRef("digits"), seed=1)
    b = load_dataset(DataRef("digits"), seed=1)
    assert a.train.x.shape[1:] == (1, 8, 8) and a.train.x.dtype == np.float32
    assert 0.0 <= a.train.x.min() and a.train.x.max() <= 1.0
    assert np.array_equal(a.test.y, b.test.y)
    assert len(a.test) == pytest.approx(0.25 * 1797, abs=10)
    assert set(np.unique(a.test.y)) == set(range(10))


def test_classes_resize_and_limits():
    d = load_dataset(DataRef("digits", classes=(3, 7), resize=32, train_limit=16))
    assert d.num_classes == 2 and set(np.unique(d.train.y)) <= {0, 1}
    assert d.train.x.shape == (16, 1, 32, 32)


def test_npz_and_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (10, 28, 28)),
        y_train=np.arange(10),
        x_test=rng.integers(0, 255, (4, 28, 28)),
        y_test=np.arange(4),
    )
    d = load_dataset(DataRef("npz", path=str(path)))
    assert d.train.x.shape == (10, 1, 28, 28) and d.train.x.max() <= 1.0

    images = rng.integers(0, 255, (3, 4, 5), dtype=np.uint8)
    raw = bytes([0, 0, 8, 3]) + np.array([3, 4, 5], dtype=">u4").tobytes() + images.tobytes()
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "x.gz"), images)


class _Py2Pickler(pickle._Pickler):
    """Writes `str` and `bytes` as Python 2 `str` (BINSTRING), as cPickle wrote the CIFAR-10
    batches; their numpy arrays name `numpy.core.multiarray._reconstruct`."""

    def _binstring(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = lambda self, obj: self._binstring(obj)
    dispatch[str] = lambda self, obj: self._binstring(obj.encode("latin1"))


def _py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    buf = io.BytesIO()
    batch = {
        "batch_label": "training batch 1 of 5",
        "labels": labels,
        "data": images,
        "filenames": [f"img{i}.png" for i in range(len(labels))],
    }
    _Py2Pickler(buf, protocol=2).dump(batch)
    raw = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    return raw


@pytest.mark.parametrize("writer", ["python2", "python3"])
def test_cifar10_batches_load_through_the_restricted_unpickler(tmp_path, writer):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        images = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = [i % 10, (i + 3) % 10]
        if writer == "python2":
            raw = _py2_batch(images, labels)
        else:
            raw = pickle.dumps({b"data": images, b"labels": labels}, protocol=4)
        (folder / name).write_bytes(raw)
        expected[name] = (images, labels)
    d = load_dataset(DataRef("cifar10", path=str(folder)))
    assert d.train.x.shape == (10, 3, 32, 32) and d.test.x.shape == (2, 3, 32, 32)
    images, labels = expected["test_batch"]
    assert np.array_equal(d.test.x, images.reshape(-1, 3, 32, 32) / np.float32(255.0))
    assert d.test.y.tolist() == labels and d.train.y[:2].tolist() == [0, 3]


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(UsageError, match="t10k|train-images"):
        load_dataset(DataRef("mnist", path=str(tmp_path)))
    with pytest.raises(UsageError, match="cifar-10-batches-py"):
        load_dataset(DataRef("cifar10", path=str(tmp_path)))


def test_data_paths_are_read_beside_the_spec(tmp_path, monkeypatch):
    import threatlang

    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    np.savez(
        tmp_path / "sub/d.npz",
        x_train=rng.random((6, 1, 4, 4)),
        y_train=np.arange(6) % 2,
        x_test=rng.random((2, 1, 4, 4)),
        y_test=np.arange(2),
    )
    spec_file = tmp_path / "sub/s.threat"
    spec_file.write_text(
        'spec s {\n  model mlp_small\n  data npz { path "d.npz" }\n  train standard\n}\n'
    )
    monkeypatch.chdir(tmp_path)
    spec = threatlang.load("sub/s.threat")
    d = load_dataset(spec.data)
    assert d.train.x.shape == (6, 1, 4, 4)
    assert 0 < d.train.x.max() <= 1.0  # float features are not rescaled
