"""Append-only JSONL record log: each finished work item is flushed at once, so a killed run
loses nothing and `--resume` skips what is done.

Reading is strict: a kill can only tear the last line (it is written in one call ending with
its newline), so that line alone may be dropped on resume, and the log says it did. An invalid
or repeated line anywhere else is corruption, reported with its file and line number; nothing
is deleted to get past it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import attrs

from .errors import UsageError
from .report import Record


@attrs.frozen
class Parsed:
    """A record file's valid records, and the torn last line if there is one."""

    records: tuple[Record, ...]
    torn: str | None = None  # the torn last line's text (no newline: cut short by a kill)
    torn_offset: int = 0  # where that line starts: the file's length once it is dropped
    unterminated: bool = False  # the last line is a whole record but lacks its newline


def parse_records(path: Path) -> Parsed:
    """Every record in `path`, strictly: see the module docstring."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}.") from None
    chunks = data.split(b"\n")
    records: list[Record] = []
    first_line: dict[str, int] = {}
    offset = 0
    for number, chunk in enumerate(chunks, start=1):
        start, offset = offset, offset + len(chunk) + 1
        if not chunk.strip():
            continue
        last = number == len(chunks)  # no newline after it
        try:
            record = _record(chunk)
        except ValueError as err:
            if last:
                return Parsed(tuple(records), chunk.decode("utf-8", "replace"), start)
            raise UsageError(
                f"{path}:{number}: not a valid record ({err}); only a torn last line is dropped "
                "on resume, so fix or delete this line by hand (nothing was changed)."
            ) from None
        if record.id in first_line:
            raise UsageError(
                f"{path}:{number}: record {record.id!r} repeats line {first_line[record.id]}; "
                "a run directory holds each item once (did two runs write into it?)."
            )
        first_line[record.id] = number
        records.append(record)
    unterminated = bool(chunks[-1].strip())
    return Parsed(tuple(records), unterminated=unterminated)


def _record(line: bytes) -> Record:
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON at column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    try:
        return Record.from_json(data)
    except KeyError as err:
        raise ValueError(f"no {err.args[0]!r} field") from None
    except (TypeError, ValueError) as err:
        raise ValueError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None


class RecordLog:
    """Records of one run, appended to `path` as they finish (fsync'd: survive SIGKILL).

    A fresh log refuses to replace a file that already holds records unless `overwrite`;
    with `resume` it continues one. `on_append` runs after every append (the run directory
    notes the checkpoints the records came from). `dropped` holds the torn last line a resume
    removed, for the caller to report.
    """

    def __init__(
        self,
        path: Path,
        resume: bool = False,
        *,
        overwrite: bool = False,
        on_append: Callable[[], None] | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, Record] = {}
        self._on_append = on_append
        self.dropped: str | None = None
        if resume and self.path.exists():
            parsed = parse_records(self.path)
            self._records = {r.id: r for r in parsed.records}
            if parsed.torn is not None:
                with self.path.open("r+b") as fh:  # that line and nothing else
                    fh.truncate(parsed.torn_offset)
                    os.fsync(fh.fileno())
                self.dropped = parsed.torn
            elif parsed.unterminated:  # a whole record whose newline the kill cut off
                with self.path.open("a") as fh:
                    fh.write("\n")
        elif self.path.exists() and self.path.stat().st_size and not overwrite:
            raise UsageError(
                f"{self.path} already holds records; resume them (--resume) or replace them "
                "(--overwrite)."
            )
        else:
            self.path.write_text("")

    def done_ids(self) -> frozenset[str]:
        return frozenset(self._records)

    def get(self, record_id: str) -> Record | None:
        return self._records.get(record_id)

    def append(self, record: Record) -> None:
        if record.id in self._records:
            raise ValueError(f"record {record.id!r} is already in {self.path}")
        line = json.dumps(record.to_json()) + "\n"
        with self.path.open("a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._records[record.id] = record
        if self._on_append is not None:
            self._on_append()

    def all(self) -> tuple[Record, ...]:
        return tuple(self._records.values())

    def __len__(self) -> int:
        return len(self._records)


def read_records(path: Path) -> tuple[Record, ...]:
    """The records of a run (read-only: a torn last line is skipped, not removed)."""
    return parse_records(Path(path)).records
