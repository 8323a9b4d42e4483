"""Slurm's state words and exit codes, as :class:`hepae_core.contract.TaskState` members.

``classify`` reads squeue's, scontrol's or sacct's state word (``PENDING``, ``CANCELLED by
0``, ``OUT_OF_MEMORY``), the reason and the exit code (``75:0``), and says what status
reports: one of the contract's task states, a reason, the exit code. The meanings of the
job's own exit codes (75: interrupted, 2: bad input...) are the contract's table.
"""

from __future__ import annotations

import re

from hepae_core.contract import TaskState, exit_reason

# REQUEUED/REQUEUE_FED are the moment of a requeue (preemption, node failure, scontrol
# requeue): the task is pending again under the same id and will run by itself.
_QUEUED = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
# Pending reasons of a task that starts only once released (``scontrol release``).
_HELD_REASONS = {"JobHeldUser", "JobHeldAdmin"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED"}
_SIMPLE = {
    "COMPLETED": TaskState.DONE,
    "CANCELLED": TaskState.CANCELLED,
    "TIMEOUT": TaskState.TIMEOUT,
    "DEADLINE": TaskState.TIMEOUT,
    "OUT_OF_MEMORY": TaskState.OOM,
    "NODE_FAIL": TaskState.NODE_FAIL,
    "BOOT_FAIL": TaskState.NODE_FAIL,
    "PREEMPTED": TaskState.PREEMPTED,
    "REVOKED": TaskState.CANCELLED,
}

#: The reason status gives for a task that ended in one of the ``_SIMPLE`` states.
_LABELS = {
    TaskState.DONE: "",
    TaskState.CANCELLED: "cancelled",
    TaskState.TIMEOUT: "walltime exceeded",
    TaskState.OOM: "out of memory",
    TaskState.NODE_FAIL: "node failure",
    TaskState.PREEMPTED: "preempted",
}


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """``(exit code, signal)`` of Slurm's ``ExitCode=75:0`` / ``0:9`` form."""
    if not text:
        return None, None
    m = re.match(r"^(\d+)(?::(\d+))?", text.strip())
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2) or 0)


def classify(
    slurm_state: str, exit_code: str | None = None, reason: str = "", restarts: int = 0
) -> tuple[TaskState, str, int | None]:
    """Map a Slurm job state to ``(state, reason, exit code)`` of :class:`SchedulerState`.

    ``slurm_state`` is squeue's/scontrol's/sacct's state word (``CANCELLED by 0`` is fine).
    """
    word = (slurm_state or "").split()[0].rstrip("+").upper() if slurm_state else ""
    code, signal = parse_exit_code(exit_code)
    reason = "" if reason in ("None", "(null)") else reason
    if word in _QUEUED and reason in _HELD_REASONS:
        return TaskState.HELD, reason, None
    if word in _QUEUED:
        why = f"pending ({reason})" if reason else "pending"
        if restarts:
            why += f", requeued {restarts} time{'s' if restarts > 1 else ''}"
        return TaskState.QUEUED, why, None
    if word in _RUNNING:
        return TaskState.RUNNING, word.lower() if word != "RUNNING" else "", None
    if word == "FAILED":
        if signal:
            return TaskState.FAILED, f"killed by signal {signal}", code
        if code is not None and code > 128:
            return TaskState.FAILED, f"exit {code}: killed by signal {code - 128}", code
        if exit_reason(code):  # the codes the job and its script use (the contract's table)
            return TaskState.FAILED, exit_reason(code), code
        why = f"exit {code}" if code is not None else "failed"
        return (
            TaskState.FAILED,
            f"{why} ({reason})" if reason and reason != "NonZeroExitCode" else why,
            code,
        )
    if word in _SIMPLE:
        state = _SIMPLE[word]
        why = _LABELS[state]
        if state == TaskState.DONE and code not in (None, 0):
            return TaskState.FAILED, f"exit {code}", code
        if reason and state != TaskState.DONE and reason not in why:
            why = f"{why} ({reason})"
        return state, why, code
    return TaskState.UNKNOWN, f"Slurm state {slurm_state!r}" if slurm_state else "", code
