"""ONNX TensorProto → torch tensor, refusing what a hostile file could use against us.

Sizes are checked from the declared dims before any data is decoded, and data stored outside
the file (external data: a path the file names) is never read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .onnx_common import MAX_ELEMENTS

_NUMPY_OK = {
    np.dtype(t)
    for t in (
        np.float16,
        np.float32,
        np.float64,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.bool_,
    )
}


class TensorError(ValueError):
    """A tensor in the file that cannot be read; the message completes "tensor NAME ..."."""


def tensor_from_proto_raw(proto: Any) -> torch.Tensor:
    from onnx import TensorProto, numpy_helper

    dims = [int(d) for d in proto.dims]
    if any(d < 0 for d in dims):
        raise TensorError(f"has negative dimensions {dims}")
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise TensorError(f"has {n:,} elements, over threatlang's limit of {MAX_ELEMENTS:,}")
    if proto.data_location == TensorProto.EXTERNAL or proto.external_data:
        raise TensorError(
            "keeps its data in an external file, which threatlang does not read; save the "
            "model with its weights inside the .onnx file"
        )
    try:
        array = numpy_helper.to_array(proto)
    except Exception as err:  # onnx raises several types for inconsistent protos
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise TensorError(f"cannot be decoded ({first})") from None
    if array.dtype not in _NUMPY_OK:
        raise TensorError(f"has element type {array.dtype}, which threatlang does not convert")
    return torch.from_numpy(np.array(array, copy=True))


def tensor_from_proto(node: Any, proto: Any) -> torch.Tensor:
    """The tensor an attribute of ``node`` holds, or the node's error."""
    try:
        return tensor_from_proto_raw(proto)
    except TensorError as err:
        raise node.error(f"holds a tensor that {err}") from None
