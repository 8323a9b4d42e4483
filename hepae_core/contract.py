"""The contract between a job, its job directory, the job scripts and the orchestration.

Every fact that more than one side interprets is defined here once: the states of a job
(:class:`JobState`) and of a scheduler task (:class:`TaskState`), the exit codes of a job
run and what each means (:class:`ExitCode`, :data:`EXIT_MEANINGS`), the file names of a
job directory, and the environment variables the job scripts set. ``hepae_core`` (the
job), ``gridsearch`` (submission and status), ``results`` and the job templates (which
receive these as render variables: ``exit_codes``, ``files``, ``env_names``) all read them
from here.

This module imports nothing else of the project (nor numpy or torch), so every side may
import it and it can never be part of an import circle. It lives in ``hepae_core``, the
lowest layer, because the job itself imports it; ``hepae_core.states`` and the file-name
constants of ``hepae_core.jobdir`` are the same objects, re-exported for older callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

# --------------------------------------------------------------------------------------
# Job states


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

# --------------------------------------------------------------------------------------
# Scheduler task states


class TaskState(StrEnum):
    """What a scheduler says of one task (a Slurm array task, an HTCondor proc).

    Each backend maps its scheduler's own words (``PENDING``, ``JobStatus 5``...) onto
    these; ``gridsearch status`` turns them into a :class:`JobState` together with what
    the job dir says. A ``StrEnum``: a member equals its word (``TaskState.HELD ==
    "held"``), so ledgers and messages keep the plain words.
    """

    QUEUED = "queued"
    """In the queue and free to start (pending, idle, or requeued after a preemption or a
    node failure: it runs again by itself)."""

    HELD = "held"
    """In the queue, but it starts only once someone releases it (``scontrol hold``, an
    HTCondor hold after a failed transfer or a memory limit)."""

    RUNNING = "running"
    """Running (or completing, suspended: still the scheduler's)."""

    DONE = "done"
    """Ended with exit code 0."""

    FAILED = "failed"
    """Ended with a non-zero exit code or a signal (the reason says which; exit 75 is an
    interrupted job that wrote its checkpoint)."""

    CANCELLED = "cancelled"
    """Removed by a user or an administrator (scancel, condor_rm)."""

    TIMEOUT = "timeout"
    """Killed at its walltime."""

    OOM = "oom"
    """Killed for using more memory than it asked for."""

    NODE_FAIL = "node_fail"
    """Its node failed (or did not boot)."""

    PREEMPTED = "preempted"
    """Preempted and not requeued."""

    UNKNOWN = "unknown"
    """The scheduler does not know the task (any more): ended long ago, or never queued;
    the job dir's files then have the last word."""


#: Task states in which the scheduler still holds the task (it may start or run).
IN_QUEUE = (TaskState.QUEUED, TaskState.HELD, TaskState.RUNNING)

# --------------------------------------------------------------------------------------
# Exit codes


class ExitCode(IntEnum):
    """The exit codes of ``python -m hepae_core.job`` and of the job scripts (docs/jobdir.md)."""

    OK = 0
    """Done: the job finished and wrote its outputs."""

    FAILED = 1
    """The job raised: a bug, or a problem found only while training."""

    BAD_INPUT = 2
    """The config or the data is unusable: fix it, rerunning will not help."""

    BUSY = 73
    """Another process holds the job dir's lock: this one touched nothing."""

    INTERRUPTED = 75
    """EX_TEMPFAIL: a checkpoint was written on SIGTERM/SIGUSR1; resubmit to resume."""

    BAD_ENVIRONMENT = 78
    """EX_CONFIG: the node's python cannot import the project."""

    @property
    def word(self) -> str:
        """The name the templates use (``exit_codes.bad_input``)."""
        return self.name.lower()


EXIT_OK = int(ExitCode.OK)
EXIT_FAILED = int(ExitCode.FAILED)
EXIT_BAD_INPUT = int(ExitCode.BAD_INPUT)
EXIT_BUSY = int(ExitCode.BUSY)
EXIT_INTERRUPTED = int(ExitCode.INTERRUPTED)
EXIT_BAD_ENVIRONMENT = int(ExitCode.BAD_ENVIRONMENT)

#: Name -> code, the ``exit_codes`` render variable of every job template.
EXIT_CODES: dict[str, int] = {c.word: int(c) for c in ExitCode}

#: The shell's code for "command not found" (the profile's python does not exist).
EXIT_COMMAND_NOT_FOUND = 127


@dataclass(frozen=True)
class ExitMeaning:
    """What one exit code means: ``outcome`` is the word a local run prints for the job
    (``done``, ``failed (bad input)``...); ``reason`` what status says of a scheduler task
    that ended with it ("" where the plain ``exit N`` says it all)."""

    outcome: str
    reason: str = ""


#: The one table of exit-code meanings, read by every backend (see also the templates).
EXIT_MEANINGS: dict[int, ExitMeaning] = {
    EXIT_OK: ExitMeaning("done"),
    EXIT_FAILED: ExitMeaning("failed"),
    EXIT_BAD_INPUT: ExitMeaning(
        "failed (bad input)", "exit 2: bad config or data (see state.json / job.log)"
    ),
    EXIT_BUSY: ExitMeaning(
        "failed (job dir busy)", "exit 73: another process runs this job dir; it touched nothing"
    ),
    EXIT_INTERRUPTED: ExitMeaning(
        "interrupted", "exit 75: interrupted, checkpoint written; resubmit to resume"
    ),
    EXIT_BAD_ENVIRONMENT: ExitMeaning(
        "failed (bad environment)", "exit 78: the node's python cannot import the project"
    ),
    EXIT_COMMAND_NOT_FOUND: ExitMeaning(
        "failed", "exit 127: python not found (check the profile's env)"
    ),
}


def exit_outcome(code: int | None) -> str:
    """The word a run prints for a job that exited with ``code`` (unknown codes: failed)."""
    meaning = EXIT_MEANINGS.get(code) if code is not None else None
    return meaning.outcome if meaning is not None else "failed"


def exit_reason(code: int | None) -> str:
    """What status says of a task that exited with ``code`` ("" for a plain ``exit N``)."""
    meaning = EXIT_MEANINGS.get(code) if code is not None else None
    return meaning.reason if meaning is not None else ""


# --------------------------------------------------------------------------------------
# Job-dir file names (docs/jobdir.md)

CONFIG = "config.yaml"
STATE = "state.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
#: A done job's last checkpoint (the exact end of its training), kept so that
#: ``gridsearch promote`` can continue it for more epochs.
FINAL_CHECKPOINT = "final.pt"
LOG = "job.log"
PLOTS = "plots"
EVAL = "evaluation.npz"
#: A stage-2 job's record of the stage-1 job it uses (picked when it starts).
STAGE1_CHOICE = "stage1.json"
#: Written by ``gridsearch promote``: the job's rung of successive halving.
PROMOTION = "promotion.json"
#: Touched while the job runs; its mtime is the last sign of life.
HEARTBEAT = "heartbeat"
#: flock-ed by the one process that may write into the job dir.
JOB_LOCK = ".lock"

#: Name -> file name, the ``files`` render variable of the job templates.
JOB_FILES: dict[str, str] = {
    "config": CONFIG,
    "state": STATE,
    "metrics": METRICS,
    "history": HISTORY,
    "model": MODEL,
    "checkpoint": CHECKPOINT,
    "final_checkpoint": FINAL_CHECKPOINT,
    "log": LOG,
    "plots": PLOTS,
    "eval": EVAL,
    "stage1_choice": STAGE1_CHOICE,
    "promotion": PROMOTION,
    "heartbeat": HEARTBEAT,
    "lock": JOB_LOCK,
}

# --------------------------------------------------------------------------------------
# Environment variables

#: Set by the job scripts so a job records which scheduler task ran it, without
#: ``hepae_core`` knowing any scheduler.
SCHEDULER_ID_ENV = "HEPAE_SCHEDULER_JOB_ID"
#: CPU threads a job may use (set by the job scripts and the local backend).
THREADS_ENV = "HEPAE_THREADS"
#: The thread counts of the numerical libraries, set to the same number.
THREAD_ENVS = (THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Seconds between a running job's heartbeats (tests shorten it).
HEARTBEAT_ENV = "HEPAE_HEARTBEAT_S"
#: ``:``-separated directories of the user's site profiles.
SITES_ENV = "GRIDSEARCH_SITES"

#: Name -> variable name, the ``env_names`` render variable of the job templates.
ENV_NAMES: dict[str, str] = {
    "scheduler_id": SCHEDULER_ID_ENV,
    "threads": THREADS_ENV,
    "heartbeat": HEARTBEAT_ENV,
}
