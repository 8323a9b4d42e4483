"""Plain-text tables for the command line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridsearch.text import safe


def fmt(value: Any) -> str:
    """A compact cell: floats in 4 significant digits, lists joined with '-'."""
    if type(value) is str:  # most cells: no isinstance chain
        return value
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "-".join(fmt(v) for v in value)
    return str(value)


def _cell(value: Any) -> str:
    text = fmt(value)
    # printable ASCII has nothing to escape: skip the regex (status prints 80,000 cells)
    return text if text.isascii() and text.isprintable() else safe(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; one line per row.

    Newlines in cells are shown as \\n and control characters (terminal escape sequences
    from a value or a log line) are shown escaped (:func:`gridsearch.text.safe`).
    """
    n = len(headers)
    if any(len(row) != n for row in rows):  # ragged: cell by cell (never from the commands)
        return _table_ragged(headers, rows)
    # column by column: one pass per column, each line one format call (status prints
    # 10,000 rows of 8 cells)
    columns = [
        [c if type(c) is str and c.isascii() and c.isprintable() else _cell(c) for c in col]
        for col in zip(*rows)
    ]
    columns = columns or [[] for _ in headers]
    widths = [max(len(h), max(map(len, col), default=0)) for h, col in zip(headers, columns)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [line.format(*headers).rstrip()]
    lines += [line.format(*cells).rstrip() for cells in zip(*columns)]
    return "\n".join(lines)


def _table_ragged(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)
