"""A counterexample counts only when the ORIGINAL model confirms it: onnxruntime for an ONNX
file (not our conversion), the user's float32 torch module otherwise, on a float32 input that
lies inside the box (rounded inwards, so float32 rounding cannot step outside it)."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from .problem import Problem


def inside_f32(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """`x` as float32 within [lo, hi] (float64 bounds), or None when no float32 fits."""
    x32 = np.clip(np.asarray(x, dtype=np.float64), lo, hi).astype(np.float32)
    for _ in range(4):
        high = x32.astype(np.float64) > hi
        low = x32.astype(np.float64) < lo
        if not (high.any() or low.any()):
            return x32
        x32 = np.where(high, np.nextafter(x32, np.float32(-np.inf)), x32)
        x32 = np.where(low, np.nextafter(x32, np.float32(np.inf)), x32)
    return None


@attrs.frozen(eq=False)
class Original:
    """How to run the model the user named; picklable (the onnxruntime session is opened
    lazily in whichever process confirms)."""

    input_shape: tuple[int, ...]
    onnx: str | None = None
    module: nn.Module | None = None
    _session: list = attrs.field(factory=list, init=False, repr=False)

    @property
    def name(self) -> str:
        return "onnxruntime" if self.onnx is not None else "the torch model"

    def outputs(self, x32: np.ndarray) -> np.ndarray:
        """Flat float64 outputs of one float32 input (flattened)."""
        if self.onnx is not None:
            session = self._open()
            inp = session.get_inputs()[0]
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            if int(np.prod(shape)) != x32.size:
                shape = [1, *self.input_shape]
            y = session.run(None, {inp.name: x32.reshape(shape)})[0]
        else:
            with torch.no_grad():
                y = self.module(torch.from_numpy(x32.reshape(1, *self.input_shape))).numpy()
        return np.asarray(y, dtype=np.float64).reshape(-1)

    def _open(self):
        if not self._session:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self._session.append(
                ort.InferenceSession(
                    str(Path(self.onnx)), options, providers=["CPUExecutionProvider"]
                )
            )
        return self._session[0]

    def __getstate__(self):
        return {"input_shape": self.input_shape, "onnx": self.onnx, "module": self.module}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_session", [])


def confirm(
    original: Original, problem: Problem, x: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(input, outputs) when the original model violates the property at (float32) `x`."""
    x32 = inside_f32(x, lo, hi)
    if x32 is None:
        return None
    y = original.outputs(x32)
    if bool(problem.violated(y[None])[0]):
        return x32, y
    return None
