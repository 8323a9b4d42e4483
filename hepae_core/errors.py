"""Errors a user can act on, and the exit codes the job entry point uses for them."""

from __future__ import annotations

# Exit codes of `python -m hepae_core.job` (documented in docs/jobdir.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the job raised: a bug, or a problem found only while training
EXIT_BAD_INPUT = 2  # the config or the data is unusable: fix it, rerunning will not help
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: checkpoint written on SIGTERM/SIGUSR1, resume me


class HepaeError(Exception):
    """An error with a message meant for the user; never shown with a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, source: str | None, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.source, f"'{self.key}'" if self.key else None) if p]
        return ": ".join([*parts, self.message])


class ConfigError(HepaeError):
    """A job config that cannot be used: names the file and the key."""


class DataError(HepaeError):
    """Data that cannot be read or used: names the file, the branch or the cut."""

    def __init__(self, source: str | None, message: str, key: str | None = None) -> None:
        super().__init__(source, key, message)
