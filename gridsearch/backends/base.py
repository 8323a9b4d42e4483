"""The interface every submission backend (local, slurm, condor) implements.

A backend turns a list of job directories into rendered submit files and, unless it is a
dry run, hands them to its scheduler. It never blocks on a cluster: submission returns as
soon as the scheduler accepted the jobs (the local backend is the exception: it runs them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class JobRef:
    """One job to submit: its id and its directory (absolute)."""

    id: str
    dir: Path


@dataclass
class Submission:
    """What a backend did: the files it rendered, the command, the scheduler's ids."""

    kind: str
    directory: Path
    files: list[Path]
    command: list[str]
    scheduler_ids: list[str] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)  # scheduler task id -> job id
    dry_run: bool = False


@dataclass
class SchedulerState:
    """What the scheduler says of one task still in flight (or recently finished)."""

    task_id: str
    state: (
        str  # queued, running, done, failed, cancelled, timeout, oom, node_fail, preempted, unknown
    )
    reason: str = ""
    exit_code: int | None = None
    restarts: int = 0  # times the scheduler requeued the task (preemption, node failure)


class Backend(Protocol):
    """One scheduler."""

    kind: str

    def submit(
        self,
        jobs: list[JobRef],
        profile: dict[str, Any],
        directory: Path,
        dry_run: bool = False,
        overrides: dict[str, Any] | None = None,
    ) -> Submission:
        """Render the submit files for ``jobs`` into ``directory`` and submit them."""
        ...

    def query(self, task_ids: list[str]) -> dict[str, SchedulerState]:
        """Ask the scheduler about these task ids; missing ones are unknown to it."""
        ...
