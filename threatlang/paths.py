"""Paths written in a spec are read from the current directory, else from the spec's folder."""

from __future__ import annotations

from pathlib import Path

from .ir.span import Span


def beside_spec(name: str, span: Span | None) -> Path:
    """`name` as given when it exists (or is absolute), else relative to the spec file of `span`."""
    path = Path(name)
    if path.is_absolute() or path.exists() or span is None or not span.file:
        return path
    beside = Path(span.file).parent / path
    return beside if beside.exists() else path
