"""Build the model a spec's `model` statement names: a builtin architecture (optionally with
`torch.save`d weights, read with `weights_only=True`), an ONNX file, or — only with
`--allow-code` — a TorchScript archive (loading one runs its code: `__setstate__`, `forward`) or
a Python `module:function`. A spec never runs code unless the user says so.

Builtin architectures are looked up in the backends' `architectures` maps, and each builder is
called as `builder(input_shape, num_classes, **options)` with the `model { ... }` options.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError
from .ir import ModelKind, ModelRef
from .paths import beside_spec


def resolve_path(ref: ModelRef) -> Path:
    """The file `ref` names: as given, else relative to the spec file it was written in."""
    path = beside_spec(ref.name, ref.span)
    if not path.exists():
        raise UsageError(
            f"model file {ref.name} not found (relative paths are tried from the "
            "current directory and from the spec's directory)."
        )
    return path


def architecture_builder(name: str) -> Callable[..., Any]:
    """The builder function of a builtin architecture, imported from the backend that owns it."""
    from .backends.registry import architecture_owners

    owners = architecture_owners()
    if name not in owners:
        known = ", ".join(sorted(owners)) or "none installed"
        raise UsageError(f"unknown architecture {name!r}; builtin architectures: {known}.")
    return _import(owners[name])


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"cannot import {module_name!r} for {target!r}: {err}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"{module_name!r} has no function {attr!r} (from {target!r}).")
    return fn


def _options(ref: ModelRef) -> dict[str, Any]:
    return {o.name: o.value for o in ref.options}


def build_builtin(name: str, input_shape, num_classes: int, options=None):
    builder = architecture_builder(name)
    try:
        return builder(tuple(input_shape), num_classes, **(options or {}))
    except TypeError as err:
        raise UsageError(f"architecture {name!r} does not take these options: {err}") from None


def load_model(
    ref: ModelRef,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    *,
    allow_code: bool = False,
    device: str = "cpu",
):
    """The `nn.Module` (eval mode, on `device`) that `ref` names.

    `input_shape` (C, H, W) and `num_classes` size builtin architectures; ONNX conversions are
    checked against onnxruntime when it is installed. Problems are `UsageError`s that say what
    to do.
    """
    import torch

    kind = ref.kind
    if kind is ModelKind.BUILTIN:
        if input_shape is None or num_classes is None:
            raise UsageError(f"builtin model {ref.name!r} needs the input shape and class count.")
        model = build_builtin(ref.name, input_shape, num_classes, _options(ref))
    elif kind is ModelKind.STATE_DICT:
        model = _state_dict(ref, input_shape, num_classes)
    elif kind is ModelKind.TORCHSCRIPT:
        from .interop.unscript import unscript

        path = resolve_path(ref)
        if not allow_code:  # loading runs the archive's __setstate__ code; forward is code too
            raise UsageError(
                f"model torchscript({ref.name!r}): a TorchScript archive is code that runs when "
                "it is loaded; pass --allow-code (allow_code=True in Python) if you trust "
                f"{path}, or save its weights with torch.save(model.state_dict(), path) and "
                "name them with state_dict(...) { arch ... }."
            )
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; we still read it
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError, EOFError) as err:
            raise UsageError(f"{path} is not a TorchScript file ({_first_line(err)}).") from None
        model = unscript(scripted, input_shape)
    elif kind is ModelKind.ONNX:
        from .interop.onnx_import import check_against_onnxruntime, load_onnx

        path = resolve_path(ref)
        check_onnx_file(path)
        model = load_onnx(path)
        if input_shape is not None and importlib.util.find_spec("onnxruntime") is not None:
            check_against_onnxruntime(path, model, tuple(input_shape))
    elif kind is ModelKind.PYTHON:
        if not allow_code:
            raise UsageError(
                f"model python({ref.name!r}) runs code from the spec; pass --allow-code "
                "(allow_code=True in Python) if you trust it."
            )
        model = _import(ref.name)(**_options(ref))
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"{ref.name} returned {type(model).__name__}, not a torch.nn.Module.")
    else:  # pragma: no cover - ModelKind is closed
        raise UsageError(f"unknown model kind {kind}")
    return model.to(device).eval()


def _first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, clipped: torch's are paragraphs."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_onnx_file(path: Path) -> None:
    """Refuse an empty, unparsable or graph-less file as "not a valid ONNX model: PATH" before
    the converter reads it (an empty file parses as an empty ModelProto)."""
    if path.stat().st_size == 0:
        raise UsageError(f"not a valid ONNX model: {path} (the file is empty).")
    try:
        import onnx
    except ImportError:  # the converter says what to install
        return
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError and friends: a truncated or foreign file
        raise UsageError(f"not a valid ONNX model: {path} ({_first_line(err)}).") from None
    graph = model.graph
    if not graph.node or not graph.input or not graph.output:
        raise UsageError(
            f"not a valid ONNX model: {path} (its graph has {len(graph.node)} nodes, "
            f"{len(graph.input)} inputs and {len(graph.output)} outputs)."
        )


def _is_torchscript(path: Path) -> bool:
    """A zip archive with a `code/` folder or `constants.pkl`: what torch.jit.save writes (a
    state dict's torch.save zip has neither). Read from the zip's directory; nothing runs."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in names)


def _state_dict(ref: ModelRef, input_shape, num_classes):
    import pickle

    import torch

    if input_shape is None or num_classes is None:
        raise UsageError(f"weights {ref.name} need the input shape and class count of `arch`.")
    model = build_builtin(ref.arch, input_shape, num_classes, _options(ref))
    path = resolve_path(ref)
    if _is_torchscript(path):
        raise UsageError(
            f"{path} is a TorchScript archive, not a state dict; name it with "
            f'torchscript("{ref.name}") (it runs code: --allow-code), or save the weights with '
            "torch.save(model.state_dict(), path)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UsageError(
            f"{path} is not a plain state dict (weights_only=True refused it: "
            f"{str(err).splitlines()[0]}); save it with torch.save(model.state_dict(), path)."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # truncated: OSError EINVAL
        raise UsageError(
            f"{path} is not a complete torch.save file ({_first_line(err)}); it may be "
            "truncated: save it again with torch.save(model.state_dict(), path)."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict.")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise UsageError(f"{path} does not fit architecture {ref.arch!r}: {err}") from None
    bad = [*result.missing_keys, *result.unexpected_keys]
    if bad:
        raise UsageError(
            f"{path} does not fit architecture {ref.arch!r}: missing {list(result.missing_keys)[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}."
        )
    return model
