"""Errors of the orchestration layer: one message naming the file, the key, what to do."""

from __future__ import annotations


class GridsearchError(Exception):
    """An error a user can act on; the CLI prints it without a traceback and exits 2."""

    exit_code = 2

    def __init__(self, message: str, source: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.source = source
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.source, f"'{self.key}'" if self.key else None) if p]
        return ": ".join([*parts, self.message])
