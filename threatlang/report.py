"""What every backend returns: per-example records and a summary with stable keys."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs


class Status(enum.Enum):
    CERTIFIED = "certified"
    FALSIFIED = "falsified"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


def _jsonable(value: Any) -> Any:
    """Numbers, strings, lists and dicts only; numpy/torch scalars and arrays become Python."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, enum.Enum):
        return value.value
    return value


@attrs.frozen
class Record:
    """One work item's outcome; `certified` only ever with proof (see DESIGN.md)."""

    id: str
    status: Status = attrs.field(converter=Status)
    values: Mapping[str, Any] = attrs.field(factory=dict, converter=_jsonable)
    seconds: float = 0.0
    counterexample: Any = attrs.field(default=None, converter=_jsonable)
    reason: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.status in (Status.UNKNOWN, Status.TIMEOUT, Status.ERROR) and not self.reason:
            raise ValueError(f"record {self.id}: status {self.status.value} needs a reason")

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "status": self.status.value,
            "values": self.values,
            "seconds": round(self.seconds, 6),
            "counterexample": self.counterexample,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            id=data["id"],
            status=data["status"],
            values=data.get("values", {}),
            seconds=data.get("seconds", 0.0),
            counterexample=data.get("counterexample"),
            reason=data.get("reason"),
        )


@attrs.frozen
class Table:
    """A titled table for the terminal and for `summary.json`."""

    title: str
    columns: tuple[str, ...] = attrs.field(converter=tuple)
    rows: tuple[tuple, ...] = attrs.field(converter=lambda rows: tuple(tuple(r) for r in rows))

    def to_json(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": _jsonable(self.rows)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Table:
        return cls(data["title"], data["columns"], data["rows"])


@attrs.frozen
class Summary:
    """Headline figures under stable keys (`clean_accuracy`, `certified_accuracy`, …)."""

    metrics: Mapping[str, Any] = attrs.field(converter=_jsonable)
    tables: tuple[Table, ...] = attrs.field(factory=tuple, converter=tuple)
    plots: tuple[Path, ...] = attrs.field(
        factory=tuple, converter=lambda ps: tuple(Path(p) for p in ps)
    )

    def to_json(self, spec_name: str, backend: str) -> dict:
        return {
            "spec": spec_name,
            "backend": backend,
            **self.metrics,
            "tables": [t.to_json() for t in self.tables],
            "plots": [str(p) for p in self.plots],
        }


def write_summary(path: Path, summary: Summary, spec_name: str, backend: str) -> None:
    """Written atomically: a kill leaves the previous summary or this one, never half."""
    from .rundir import write_atomic

    write_atomic(Path(path), json.dumps(summary.to_json(spec_name, backend), indent=2) + "\n")


def status_counts(records) -> dict[str, int]:
    counts = {s.value: 0 for s in Status}
    for r in records:
        counts[r.status.value] += 1
    return counts
