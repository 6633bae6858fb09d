"""Read CIFAR-10 python batches without running code from the file.

A pickle may name any importable callable, so `pickle.load` on a user's file runs whatever it
says. The real batches only need plain containers (dict, list, bytes, str, int, which pickle
builds itself) and numpy's array reconstruction; `find_class` admits exactly those names and
refuses everything else before it is called.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError


def _latin1(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """`_codecs.encode` as Python 3 writes `bytes` in protocol 2, for latin-1 text only (the
    real callable would accept any codec, including decompressors)."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r}")
    return text.encode("latin1", errors)


def _numpy_core(module: str, name: str) -> Callable[..., Any]:
    import importlib

    for candidate in ("numpy._core." + module, "numpy.core." + module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")  # pragma: no cover


class _ArrayType:
    """Stands for `numpy.ndarray` in the pickle: usable only as `_reconstruct`'s subtype, so
    the file cannot call the array constructor with a shape of its choosing."""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` as every array pickle calls it: an empty array filled by its
    `__setstate__`, which checks the data against the shape."""
    if subtype is not _ArrayType or tuple(shape) != (0,):
        raise pickle.UnpicklingError("_reconstruct with arguments numpy never writes")
    return _numpy_core("multiarray", "_reconstruct")(np.ndarray, (0,), dtype)


#: (module, name) -> what it unpickles as; the only globals a CIFAR-10 batch refers to
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _ArrayType,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): lambda *a: _numpy_core("numeric", "_frombuffer")(*a),
    ("numpy._core.numeric", "_frombuffer"): lambda *a: _numpy_core("numeric", "_frombuffer")(*a),
}


class Refused(pickle.UnpicklingError):
    """The pickle named a global outside the format; nothing it names was called."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise Refused(f"{module}.{name}")
        return _ALLOWED[(module, name)]


def load_restricted(path: Path) -> Any:
    """The object pickled in `path`, built only from containers and numpy arrays."""
    data = Path(path).read_bytes()
    try:
        return _Restricted(io.BytesIO(data), encoding="bytes").load()
    except Refused as err:
        raise UsageError(
            f"{path} is not a CIFAR-10 python batch: its pickle asks for {err}, which the "
            "format never uses (refused, nothing from the file was run)."
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        MemoryError,
    ) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(
            f"{path} is not a CIFAR-10 python batch (unreadable pickle: {why})."
        ) from None
