"""HTCondor's job states and exit codes, as :class:`hepae_core.contract.TaskState` members.

``classify`` reads a job ClassAd from ``condor_q`` or ``condor_history`` (``JobStatus``,
``ExitCode``, ``HoldReason``, ``RemoveReason``...) and says what status reports: one of the
contract's task states, a reason, the exit code.
"""

from __future__ import annotations

from typing import Any

from hepae_core.contract import EXIT_INTERRUPTED, TaskState


def _is(value: Any, expected: Any) -> bool:
    return value is not None and str(value).lower() == str(expected).lower()


def classify(
    ad: dict[str, Any], max_restarts: int | None = None
) -> tuple[TaskState, str, int | None]:
    """Map a job ClassAd (from condor_q or condor_history) to ``(state, reason, exit code)``."""
    status = ad.get("JobStatus")
    code = ad.get("ExitCode")
    code = int(code) if isinstance(code, int | float) and not isinstance(code, bool) else None
    hold = str(ad.get("HoldReason") or ad.get("LastHoldReason") or "")
    removed = str(ad.get("RemoveReason") or "")
    starts = int(ad.get("NumJobStarts") or 0)
    if status == 1:
        return (
            TaskState.QUEUED,
            "idle" + (f", started {starts} time(s) before" if starts else ""),
            None,
        )
    if status in (2, 6):
        return TaskState.RUNNING, "", None
    if status == 7:
        return TaskState.RUNNING, "suspended", None
    if status == 5:
        # Held stays in the queue until released or removed (by hand or a site policy):
        # neither ended nor free to run again elsewhere.
        return TaskState.HELD, hold, None
    if status == 3:
        if removed and "periodic" in removed.lower():
            return _reason_state(removed, removed, code)
        return TaskState.CANCELLED, f"removed ({removed})" if removed else "removed", code
    if status == 4:
        if _is(ad.get("ExitBySignal"), True):
            sig = ad.get("ExitSignal")
            if sig == 9 and starts:
                return TaskState.FAILED, f"killed by signal {sig} (out of memory?)", None
            return TaskState.FAILED, f"killed by signal {sig}", None
        if code == 0:
            return TaskState.DONE, "", 0
        if code == EXIT_INTERRUPTED:
            return (
                TaskState.FAILED,
                f"exit 75: interrupted after {starts} start(s), checkpoint written; "
                "resubmit to resume",
                code,
            )
        return TaskState.FAILED, f"exit {code}", code
    return TaskState.UNKNOWN, f"JobStatus {status!r}", code


def _reason_state(text: str, reason: str, code: int | None) -> tuple[TaskState, str, int | None]:
    low = text.lower()
    if "memory" in low:
        return TaskState.OOM, reason, code
    if "wall" in low or "runtime" in low or "time limit" in low or "maxruntime" in low:
        return TaskState.TIMEOUT, reason, code
    if "node" in low or "shadow" in low or "starter" in low:
        return TaskState.NODE_FAIL, reason, code
    return TaskState.FAILED, reason, code
