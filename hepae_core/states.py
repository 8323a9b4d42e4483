"""The states of a job and the exit codes of a job run: defined once, used everywhere.

``hepae_core`` writes four of the states into a job's ``state.json`` (running, done,
failed, interrupted); ``gridsearch status`` decides the others from the campaign's ledger,
the job dir's heartbeat and lock, and the scheduler. The job templates receive the exit
codes from here, so the scripts, the job and ``status`` agree on what a code means.
This module imports nothing else of the project (no torch, no numpy).
"""

from __future__ import annotations

from enum import IntEnum

# Exit codes of ``python -m hepae_core.job`` (and of the job scripts; docs/jobdir.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the job raised: a bug, or a problem found only while training
EXIT_BAD_INPUT = 2  # the config or the data is unusable: fix it, rerunning will not help
EXIT_BUSY = 73  # another process holds the job dir's lock: this one touched nothing
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: checkpoint written on SIGTERM/SIGUSR1, resume me
EXIT_BAD_ENVIRONMENT = 78  # EX_CONFIG: the node's python cannot import the project

EXIT_CODES = {
    "ok": EXIT_OK,
    "failed": EXIT_FAILED,
    "bad_input": EXIT_BAD_INPUT,
    "busy": EXIT_BUSY,
    "interrupted": EXIT_INTERRUPTED,
    "bad_environment": EXIT_BAD_ENVIRONMENT,
}


class JobState(IntEnum):
    """The state of one job of a campaign, from planned to done.

    The order is the order of progress, so ``max`` over attempts or a sort reads
    naturally. ``str(state)`` and ``state.word`` give the lowercase word that files and
    the command line use.
    """

    PLANNED = 1
    """Planned and never submitted (or only in a dry run)."""

    WAITING = 2
    """Planned, but waits for other jobs (an earlier stage) to finish first."""

    QUEUED = 3
    """In the scheduler's hands and not started: submitted, pending, or requeued
    (preempted, node failure) and waiting to run again by itself."""

    RUNNING = 4
    """The job says it runs and its heartbeat (or the scheduler) confirms it."""

    INTERRUPTED = 5
    """Stopped on a signal (walltime, preemption, Ctrl-C) after writing a checkpoint;
    a resubmission resumes it exactly."""

    FAILED = 6
    """Ended with an error (the reason says which; ``bad_input`` ones fail again until
    the input is fixed)."""

    CANCELLED = 7
    """Removed from the queue before it started (scancel, condor_rm)."""

    LOST = 8
    """Said running, but its process is gone: the scheduler no longer runs it and its
    heartbeat stopped (killed by the OOM killer, kill -9, a node crash)."""

    DONE = 9
    """Finished: metrics.json is written."""

    @property
    def word(self) -> str:
        """The lowercase word used in files and on the command line."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.word

    @classmethod
    def from_word(cls, word: str) -> JobState:
        """``'done'`` -> ``JobState.DONE``; old words are accepted (``submitted``, ``stale``)."""
        text = str(word).strip().lower()
        text = ALIASES.get(text, text)
        try:
            return cls[text.upper()]
        except KeyError:
            known = ", ".join(s.word for s in cls)
            raise ValueError(f"unknown job state {word!r}; states: {known}") from None


#: Older words still accepted where users type states (``--only submitted``).
ALIASES = {"submitted": "queued", "stale": "lost", "pending": "queued"}

#: The states a job writes itself into state.json.
WRITTEN_BY_JOB = (JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.INTERRUPTED)

#: States after which the job is not in flight and will not change by itself.
FINAL = (JobState.DONE, JobState.FAILED, JobState.INTERRUPTED, JobState.CANCELLED, JobState.LOST)

#: Reasons (state.json ``error_kind``) a failed job gives; ``unreadable_state`` is status's
#: word for a state.json it cannot read (shown ``failed``, the one word for it everywhere);
#: ``stage1_not_done``: a stage-2 job found none of its stage-1 jobs done yet (it waits on
#: stage 1; a bad input otherwise, exit code 2).
STAGE1_NOT_DONE = "stage1_not_done"
ERROR_KINDS = (
    "bad_input",
    STAGE1_NOT_DONE,
    "bad_environment",
    "python_error",
    "disk_full",
    "nan",
    "unreadable_state",
)
