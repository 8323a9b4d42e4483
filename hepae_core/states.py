"""The states of a job and the exit codes of a job run (kept for older imports).

They are defined once in :mod:`hepae_core.contract`, the contract every side imports;
this module re-exports them under their old names. This module imports nothing else of
the project but the contract (no torch, no numpy).
"""

from __future__ import annotations

from hepae_core.contract import (
    ALIASES,
    ERROR_KINDS,
    EXIT_BAD_ENVIRONMENT,
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    FINAL,
    STAGE1_NOT_DONE,
    WRITTEN_BY_JOB,
    JobState,
)

__all__ = [
    "ALIASES",
    "ERROR_KINDS",
    "EXIT_BAD_ENVIRONMENT",
    "EXIT_BAD_INPUT",
    "EXIT_BUSY",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "FINAL",
    "STAGE1_NOT_DONE",
    "WRITTEN_BY_JOB",
    "JobState",
]
