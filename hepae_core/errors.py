"""Errors a user can act on, and the exit codes the job entry point uses for them.

Every package's user-facing errors derive from :class:`UserError`: ``hepae_core``
(:class:`HepaeError`), ``gridsearch`` (``GridsearchError``) and ``results``
(``SummaryError``). The command lines print ``str(error)`` (file: 'key': what to do) and
exit with ``error.exit_code``, never with a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from hepae_core.states import (  # noqa: F401  (re-exported: one home, old import paths)
    EXIT_BAD_ENVIRONMENT,
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)


class UserError(Exception):
    """An error with a message meant for the user; never shown with a traceback.

    Parameters
    ----------
    message
        What is wrong and what to do about it.
    source
        The file (or directory, or option) the problem is in.
    key
        The key within it (``train.lr``, ``--time``).
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, *, message: str, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.source, f"'{self.key}'" if self.key else None) if p]
        return ": ".join([*parts, self.message])


def did_you_mean(name: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """``; did you mean 'x'?`` for the closest of ``options``, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=cutoff)
    return f"; did you mean '{close[0]}'?" if close else ""


class HepaeError(UserError):
    """A user error of the science package (config, data, model files)."""


class ConfigError(HepaeError):
    """A job config that cannot be used: names the file and the key."""


class DataError(HepaeError):
    """Data that cannot be read or used: names the file, the branch or the cut."""
