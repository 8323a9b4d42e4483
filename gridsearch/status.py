"""The state of every job of a campaign, decided from job-dir files first.

Order of evidence, per job:

1. ``state.json`` (docs/jobdir.md): ``done``, ``failed``, ``interrupted`` are final for the
   attempt that wrote them; ``running`` is trusted while ``updated`` keeps moving, and is
   ``stale`` once it is older than ``stale_after_s``.
2. The ledger (docs/campaign.md): a job named by a submission newer than its state file is
   ``submitted`` (in flight); a job never named by one and never started is ``planned``.
3. Only for jobs still in flight (submitted, or running per state.json) is the scheduler
   asked, through the backend's ``query(task_ids)``: one call per backend kind.

Backends that block until their jobs end (``blocking = True``: the local one) are never
asked: once their ledger record exists, nothing of theirs is in flight.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridsearch.campaign import Campaign, parse_time
from gridsearch.errors import GridsearchError
from hepae_core.jobdir import LOG, METRICS, STATE

PLANNED = "planned"
SUBMITTED = "submitted"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
STALE = "stale"
STATES = (PLANNED, SUBMITTED, RUNNING, DONE, FAILED, INTERRUPTED, STALE)

DEFAULT_STALE_AFTER_S = 3600.0
_FATAL = {"failed", "cancelled", "timeout", "oom", "node_fail", "preempted"}


@dataclass
class JobStatus:
    """What is known of one job."""

    index: int
    id: str
    name: str
    dir: Path
    state: str
    in_space: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    attempt: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    host: str | None = None
    updated: str | None = None
    scheduler_job_id: str | None = None
    submission: str | None = None  # latest ledger record naming this job
    task_id: str | None = None
    kind: str | None = None  # backend kind of that submission
    scheduler_state: str | None = None  # what the scheduler said, when asked
    reason: str = ""
    error_kind: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dir"] = str(self.dir)
        return out


def _read_state(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return {"state": "unreadable", "reason": f"state.json cannot be read: {exc.strerror}"}
    try:
        obj = json.loads(data)
    except ValueError:
        return {"state": "unreadable", "reason": "state.json is not valid JSON"}
    return obj if isinstance(obj, dict) else {"state": "unreadable"}


def log_tail(job_dir: Path, lines: int = 5, max_bytes: int = 8192) -> list[str]:
    """The last ``lines`` non-empty lines of a job's job.log (empty when there is none)."""
    try:
        with open(job_dir / LOG, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    if lines <= 0:
        return []
    text = data.decode("utf-8", errors="replace")
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def pid_alive(pid: Any) -> bool:
    """Whether a process of this machine lives (True when it cannot be told)."""
    if not isinstance(pid, int) or pid <= 0:
        return True  # cannot tell: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def latest_submissions(records: Iterable[dict[str, Any]]) -> dict[str, tuple[dict, str]]:
    """Job id -> (newest non-dry-run ledger record naming it, its task id there)."""
    out: dict[str, tuple[dict, str]] = {}
    for rec in records:
        if rec.get("dry_run"):
            continue
        tasks = rec.get("tasks")
        if isinstance(tasks, dict):
            for task_id, job_id in tasks.items():
                out[job_id] = (rec, task_id)
    return out


def campaign_status(
    campaign: Campaign,
    *,
    query: bool = True,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    metrics: bool = False,
    log_lines: int = 5,
    now: float | None = None,
) -> list[JobStatus]:
    """The status of every job in the campaign's manifest, in manifest order.

    Parameters
    ----------
    query
        Ask the scheduler about jobs still in flight (never about the others).
    stale_after_s
        A ``running`` state not updated for this long is ``stale``.
    metrics
        Read metrics.json of done jobs into ``JobStatus.metrics``.
    log_lines
        Lines of job.log kept for failed jobs.
    """
    manifest = campaign.manifest()
    now = time.time() if now is None else now
    submitted = latest_submissions(campaign.ledger())
    record_time: dict[int, float] = {}
    blocking: dict[str, bool] = {}
    host = socket.gethostname()
    root = str(campaign.root)
    out: list[JobStatus] = []
    in_flight: list[JobStatus] = []
    for i, entry in enumerate(manifest["jobs"]):
        jid = entry["id"]
        rel = entry.get("dir") or f"jobs/{jid}"
        jdir = os.path.join(root, rel)
        st = _read_state(os.path.join(jdir, STATE))
        js = JobStatus(
            index=entry.get("index", i),
            id=jid,
            name=entry.get("name", jid),
            dir=Path(jdir),
            state=PLANNED,
            in_space=entry.get("in_space", True),
            params=entry.get("params", {}),
        )
        out.append(js)
        sub = submitted.get(jid)
        sub_time = None
        if sub is not None:
            rec, task_id = sub
            js.submission, js.task_id, js.kind = rec.get("submission"), task_id, rec.get("kind")
            key = id(rec)
            if key not in record_time:
                record_time[key] = parse_time(rec.get("time")) or 0.0
            sub_time = record_time[key]
        if st is not None:
            js.attempt = st.get("attempt")
            js.epoch, js.epochs = st.get("epoch"), st.get("epochs")
            js.train_loss, js.val_loss = st.get("train_loss"), st.get("val_loss")
            js.host, js.updated = st.get("host"), st.get("updated")
            js.scheduler_job_id = st.get("scheduler_job_id")
            js.reason = st.get("reason") or ""
            js.error_kind, js.exit_code = st.get("error_kind"), st.get("exit_code")
            updated = parse_time(js.updated)
            state = st.get("state")
            if sub_time is not None and updated is not None and sub_time > updated:
                state = None  # submitted again after this state was written: in flight
            if state in (DONE, FAILED, INTERRUPTED):
                js.state = state
            elif state == RUNNING:
                js.state = RUNNING
                if updated is not None and now - updated > stale_after_s:
                    js.state = STALE
                    js.reason = f"no update for {_ago(now - updated)} (state.json 'updated')"
                if js.kind in (None, "local") and js.host == host:  # ask the process itself
                    if not pid_alive(st.get("pid")):
                        js.state = STALE
                        js.reason = f"its process {st.get('pid')} on {host} is gone"
                    elif js.state == STALE:
                        js.state = RUNNING
                        js.reason = f"silent ({js.reason}), but its process is alive"
            elif state is None:
                js.state = SUBMITTED
            else:
                js.state = FAILED
                js.reason = js.reason or f"state.json has an unknown state {state!r}"
        elif sub is not None:
            js.state = SUBMITTED
        if js.state in (SUBMITTED, RUNNING, STALE) and sub is not None:
            kind = js.kind or ""
            if kind not in blocking:
                blocking[kind] = _is_blocking(kind)
            if blocking[kind]:
                if js.state == SUBMITTED:
                    js.state = FAILED
                    js.reason = (
                        f"submission {js.submission} ended but the job never started; "
                        "see its job.log and the submission's files"
                    )
            else:
                in_flight.append(js)
    if query and in_flight:
        _ask_schedulers(in_flight, now, stale_after_s, record_time, submitted)
    for js in out:
        if js.state == FAILED and log_lines > 0:
            js.log_tail = log_tail(js.dir, log_lines)
        elif js.state == DONE and metrics:
            js.metrics = _read_state(os.path.join(js.dir, METRICS))
    return out


def _is_blocking(kind: str) -> bool:
    try:
        from gridsearch.backends import get_backend

        return bool(getattr(get_backend(kind), "blocking", False))
    except GridsearchError:
        return False


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ask_schedulers(
    jobs: list[JobStatus],
    now: float,
    stale_after_s: float,
    record_time: dict[int, float],
    submitted: dict[str, tuple[dict, str]],
) -> None:
    """Refine in-flight jobs with what their schedulers say (one query per kind)."""
    from gridsearch.backends import get_backend

    by_kind: dict[str, list[JobStatus]] = {}
    for js in jobs:
        by_kind.setdefault(js.kind or "", []).append(js)
    for kind, group in by_kind.items():
        try:
            answers = get_backend(kind).query([js.task_id for js in group if js.task_id])
        except (GridsearchError, OSError) as exc:
            for js in group:
                js.reason = (js.reason + "; " if js.reason else "") + f"{kind} not asked: {exc}"
            continue
        for js in group:
            ans = answers.get(js.task_id or "")
            sched = ans.state if ans is not None else "unknown"
            js.scheduler_state = sched
            detail = f"{ans.reason} " if ans is not None and ans.reason else ""
            exit_note = f"exit {ans.exit_code}" if ans is not None and ans.exit_code else ""
            if sched == "queued":
                if js.state != SUBMITTED:
                    js.state = SUBMITTED
                    js.reason = "queued again (requeued by the scheduler)"
            elif sched == "running":
                if js.state == SUBMITTED:
                    js.state = RUNNING
                    js.reason = "starting"
                elif js.state == STALE:
                    js.state = RUNNING
                    js.reason = f"silent ({js.reason}), but the scheduler says running"
            elif sched in _FATAL:
                js.state = FAILED
                js.reason = (
                    f"the scheduler reports {sched} {detail}{exit_note}".strip()
                    + " before the job wrote its final state"
                )
            elif sched == "done":
                js.state = FAILED if js.state == SUBMITTED else STALE
                js.reason = (
                    "the scheduler says it ended but the job "
                    + ("never started" if js.state == FAILED else "did not write its final state")
                    + "; see its job.log"
                )
            elif js.state == SUBMITTED:
                rec = submitted[js.id][0]
                t = record_time.get(id(rec)) or 0.0
                if now - t > stale_after_s:
                    js.state = STALE
                    js.reason = (
                        f"the scheduler no longer knows task {js.task_id} and the job never started"
                    )


def counts(statuses: Iterable[JobStatus]) -> dict[str, int]:
    """Jobs per state, in the order of STATES (states with no job left out)."""
    c = Counter(js.state for js in statuses)
    return {s: c[s] for s in STATES if c[s]}
