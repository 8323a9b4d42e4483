"""Errors of the orchestration layer: one message naming the file, the key, what to do."""

from __future__ import annotations

from hepae_core.errors import UserError, did_you_mean  # noqa: F401


class GridsearchError(UserError):
    """An error a user can act on; the CLI prints it without a traceback and exits 2."""
