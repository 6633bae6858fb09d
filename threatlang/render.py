"""Terminal rendering of summaries (shared by `run` and `report`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable

from .report import Summary, Table


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(console: Console, table: Table) -> None:
    out = RichTable(title=table.title)
    for col in table.columns:
        out.add_column(str(col))
    for row in table.rows:
        out.add_row(*(_cell(v) for v in row))
    console.print(out)


def print_summary(console: Console, summary: Summary, out_dir) -> None:
    for table in summary.tables:
        print_table(console, table)
    headline = {k: v for k, v in summary.metrics.items() if isinstance(v, int | float | str)}
    if headline:
        console.print(", ".join(f"{k} = {_cell(v)}" for k, v in headline.items()))
    console.print(f"records: {out_dir}/records.jsonl   summary: {out_dir}/summary.json")
    for plot in summary.plots:
        console.print(f"plot: {plot}")
