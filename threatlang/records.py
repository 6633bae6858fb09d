"""Append-only JSONL record log: each finished work item is flushed at once, so a killed run
loses nothing and `--resume` skips what is done."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .report import Record


class RecordLog:
    """Records of one run, appended to `path` as they finish (fsync'd: survive SIGKILL)."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, Record] = {}
        if resume and self.path.exists():
            self._records = {r.id: r for r in _read(self.path)}
            _rewrite(self.path, self._records.values())  # drops a torn last line
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

    def all(self) -> tuple[Record, ...]:
        return tuple(self._records.values())

    def __len__(self) -> int:
        return len(self._records)


def _read(path: Path) -> list[Record]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(Record.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, ValueError):
            break  # a torn write from a kill: everything after it is lost work, redone on resume
    return out


def read_records(path: Path) -> tuple[Record, ...]:
    return tuple(_read(Path(path)))


def _rewrite(path: Path, records) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    os.replace(tmp, path)
