"""Where files are read from and written to.

Paths written in a spec are read from the current directory, else from the spec's folder.
Output paths (`--output`) are checked before anything is computed, so a file in the way, a
parent that is a file or a read-only folder is one sentence, not a traceback at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError
from .ir.span import Span


def beside_spec(name: str, span: Span | None) -> Path:
    """`name` as given when it exists (or is absolute), else relative to the spec file of `span`."""
    path = Path(name)
    if path.is_absolute() or path.exists() or span is None or not span.file:
        return path
    beside = Path(span.file).parent / path
    return beside if beside.exists() else path


def output_dir(path: str | Path, flag: str = "--output") -> Path:
    """`path` as a writable directory, created with its parents if missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a directory; pick another {flag}.")
    _make_dir(path, flag)
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path} is not writable; pick another {flag}.")
    return path


def output_file(path: str | Path, flag: str = "--output") -> Path:
    """`path` as a file that can be written: not a directory; parents created if missing."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a file name, e.g. {path / 'out'}.")
    parent = path.parent
    _make_dir(parent, flag, for_file=path)
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path} is not writable; pick another {flag}.")
    return path


def _make_dir(path: Path, flag: str, for_file: Path | None = None) -> None:
    target = for_file or path
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UsageError(f"{flag} {target} cannot be created: {blocker} is a file.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise UsageError(
            f"{flag} {target} cannot be created: permission denied; pick another {flag}."
        ) from None
    except OSError as err:
        raise UsageError(
            f"{flag} {target} cannot be created: {err.strerror or err}; pick another {flag}."
        ) from None
