"""The state of every job of a campaign (a :class:`~hepae_core.states.JobState`), decided
from the job dir first, then the ledger, then the scheduler.

Evidence, per job:

1. ``state.json`` (docs/jobdir.md), when it was written after the newest submission naming
   the job: ``done``, ``failed`` and ``interrupted`` are the job's own last word; ``running``
   is checked against the job's signs of life (the ``heartbeat`` file and ``updated``) and,
   on this host, its job-dir lock (held by the running process, freed by the kernel when it
   dies).
2. The ledger (docs/campaign.md): a job named by a submission newer than its state is
   ``queued``; so is a job named by an ``intended`` submission (the scheduler was called but
   no ids were recorded: it may hold the job). A job never named and never started is
   ``planned``.
3. The scheduler, through the backend's ``query(task_ids)`` (one call per kind), for every
   job its newest submission may still hold: queued, running, and also interrupted and
   failed ones (a requeued task, preempted or after a node failure, is pending again under
   the same task id and will run by itself). Its answer decides ``queued``/``running``, and
   for a job that never started or never wrote its final state, ``cancelled``, ``failed`` or
   ``lost``. When it cannot be asked, nothing is concluded from its silence.

A job is ``lost`` when its state says running but its process is gone: the scheduler no
longer runs the task (ended, or forgotten) and its heartbeat is older than
``LOST_BEATS`` intervals; or, on this host, its job-dir lock is free; or, with no scheduler
answer, its heartbeat stopped for ``lost_after_s``.

Backends that block until their jobs end (``blocking = True``: the local one) are never
asked: once their submission is complete, nothing of theirs is in flight.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridsearch.backends.base import job_ids
from gridsearch.campaign import Campaign, lock_holder, parse_time
from gridsearch.errors import GridsearchError
from hepae_core.jobdir import (
    HEARTBEAT_INTERVAL_S,
    JOB_LOCK,
    LOG,
    METRICS,
    STAGE1_CHOICE,
    STATE,
    heartbeat_age,
    job_lock_holder,
)
from hepae_core.states import STAGE1_NOT_DONE, JobState

#: Without a scheduler answer, a running job silent this long is lost.
DEFAULT_LOST_AFTER_S = 600.0
#: With the scheduler saying the task ended, a heartbeat this many intervals old is dead.
LOST_BEATS = 3.0
#: What the scheduler still holds (or may hold): never submitted again without --force.
HELD = (JobState.QUEUED, JobState.RUNNING)
#: Scheduler words (SchedulerState.state) for a task that ended without success.
_ENDED_BADLY = {"failed", "cancelled", "timeout", "oom", "node_fail", "preempted"}


@dataclass
class JobStatus:
    """What is known of one job."""

    index: int
    id: str
    name: str
    dir: Path
    state: JobState
    in_space: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    attempt: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    host: str | None = None
    updated: str | None = None
    heartbeat_age_s: float | None = None  # seconds since the last sign of life
    scheduler_job_id: str | None = None
    submission: str | None = None  # newest ledger submission naming this job
    outcome: str | None = None  # that submission's outcome: submitted or intended
    site: str | None = None  # its site profile
    task_id: str | None = None
    kind: str | None = None  # backend kind of that submission
    scheduler_state: str | None = None  # what the scheduler said, when asked
    asked: bool | None = None  # None: not needed; False: the scheduler could not be asked
    reason: str = ""
    error_kind: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    finished: str | None = None  # state.json's 'finished' of a done job
    started: str | None = None  # state.json's 'started' of this attempt
    jets_per_s: float | None = None  # its last epoch's own training rate, as if alone
    stack_size: int | None = None  # models trained beside it in one stack (1: alone)
    stage: str | None = None  # its stage in a staged campaign (gridsearch/stages.py)
    after: list[str] = field(default_factory=list)  # job ids it waits for
    held: bool = False  # waiting, and the scheduler holds it (queued behind its stage)
    out_of_date: str = ""  # done, but a stage-1 job it picked from changed since: why

    @property
    def in_flight(self) -> bool:
        """The scheduler holds it: queued, running, or waiting in its queue behind an
        earlier stage (a waiting job nobody submitted is not in flight)."""
        return self.state in HELD or (self.state == JobState.WAITING and self.held)

    @property
    def on_hold(self) -> bool:
        """Queued, but the scheduler starts it only once someone releases it."""
        return self.state == JobState.QUEUED and self.scheduler_state == "held"

    @property
    def epoch_text(self) -> str | None:
        """``7/30``; ``0/30`` before the first epoch; None (shown ``-``) when not known."""
        if self.epochs is None:
            return None if not self.epoch else str(self.epoch)
        return f"{self.epoch or 0}/{self.epochs}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dir"] = str(self.dir)
        out["state"] = self.state.word
        out["on_hold"] = self.on_hold
        return out


_READ_SIZE = 1 << 16


def _read_state(path: str) -> dict[str, Any] | None:
    """state.json as a dict; None when there is none; ``{"state": None, ...}`` when unreadable."""
    # os.open and one read: a job file is small and written whole (renamed into place), so
    # a read short of the buffer is all of it; open() would add an fstat, an ioctl and a
    # read to find the end, per job of a 10,000-job status
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return {"state": None, "reason": f"state.json cannot be read: {exc.strerror}"}
    try:
        chunks = [os.read(fd, _READ_SIZE)]
        while len(chunks[-1]) == _READ_SIZE:  # a large file: read on to its end
            chunks.append(os.read(fd, _READ_SIZE))
    except OSError as exc:  # a directory named state.json, an I/O error
        return {"state": None, "reason": f"state.json cannot be read: {exc.strerror}"}
    finally:
        os.close(fd)
    data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
    try:
        obj = json.loads(data)
    except ValueError:
        return {"state": None, "reason": "state.json is not valid JSON"}
    if not isinstance(obj, dict):
        return {"state": None, "reason": "state.json is not a JSON object"}
    return obj


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


def heartbeat_interval(state: dict[str, Any] | None = None) -> float:
    """The job's heartbeat interval: state.json's ``heartbeat_s``, else ``HEPAE_HEARTBEAT_S``
    (the variable the job reads), else the default."""
    for value in ((state or {}).get("heartbeat_s"), os.environ.get("HEPAE_HEARTBEAT_S")):
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return HEARTBEAT_INTERVAL_S


def latest_submissions(submissions: Iterable[dict[str, Any]]) -> dict[str, tuple[dict, str | None]]:
    """Job id -> (newest submission naming it, its task id there or None).

    ``submissions`` are merged ledger records (:meth:`Campaign.submissions`). Dry runs and
    refused submissions queued nothing and are passed over; an ``intended`` one names its
    jobs through ``indices`` (campaign index -> job id) and has no task ids.
    """
    out: dict[str, tuple[dict, str | None]] = {}
    for rec in submissions:
        if rec.get("dry_run") or rec.get("outcome") == "refused":
            continue
        named: dict[str, str | None] = {}
        # A value is one job id, or the list of a bundle task's job ids (--bundle).
        indices = rec.get("indices")
        if isinstance(indices, dict):
            named.update({j: None for v in indices.values() for j in job_ids(v)})
        elif isinstance(indices, list):
            named.update({str(j): None for j in indices})
        tasks = rec.get("tasks")
        if isinstance(tasks, dict):
            named.update({j: str(t) for t, v in tasks.items() for j in job_ids(v)})
        for job_id, task_id in named.items():
            out[job_id] = (rec, task_id)
    return out


def ago(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Evidence:
    """What the files said of one job, kept for the scheduler's turn."""

    js: JobStatus
    ran: bool  # state.json was written after the newest submission naming the job
    written: str | None  # the state word of that state.json
    same_host: bool
    lock: bool | None  # True held, False free, None cannot tell (other host, no lock file)
    interval: float
    sub_time: float | None


def campaign_status(
    campaign: Campaign,
    *,
    query: bool = True,
    lost_after_s: float = DEFAULT_LOST_AFTER_S,
    metrics: bool = False,
    log_lines: int = 5,
    now: float | None = None,
) -> list[JobStatus]:
    """The status of every job in the campaign's manifest, in manifest order.

    Parameters
    ----------
    query
        Ask the scheduler about the jobs it may still hold (never about the others).
    lost_after_s
        Without a scheduler answer, a ``running`` job with no sign of life for this long
        is ``lost``.
    metrics
        Read metrics.json of done jobs into ``JobStatus.metrics``.
    log_lines
        Lines of job.log kept for failed and lost jobs.
    """
    manifest = campaign.manifest()
    scan = _Scan(campaign, time.time() if now is None else now)
    evidence = [scan.job(i, entry) for i, entry in enumerate(manifest["jobs"])]
    out = [ev.js for ev in evidence]
    answered = _ask_schedulers(scan.to_ask, scan.now) if query and scan.to_ask else set()
    for ev in scan.to_ask:
        if id(ev.js) not in answered:
            ev.js.asked = False if query else None
    for ev in evidence:
        if id(ev.js) not in answered:
            _without_answer(ev, lost_after_s)
    if any(js.after for js in out):
        apply_stages(out, {st.get("name"): st.get("after") for st in manifest.get("stages") or []})
    _read_ends(out, metrics, log_lines)
    return out


class _Scan:
    """One pass over a campaign's job dirs: each job's evidence from its files and the
    ledger, and the jobs to ask the scheduler about (:attr:`to_ask`)."""

    def __init__(self, campaign: Campaign, now: float) -> None:
        self.campaign = campaign
        self.now = now
        self.named = latest_submissions(campaign.submissions())
        self.host = socket.gethostname()
        self.root = str(campaign.root)
        # jobs/<id> as a child of one Path: a Path parsed from the whole string cost twice
        # as much, per job of a 10,000-job status
        self.jobs_path = campaign.root / "jobs"
        self.jobs_str = os.path.join(self.root, "jobs")
        self.default_interval = heartbeat_interval()
        self.blocking: dict[str, bool] = {}
        self.campaign_locked: list[bool] = []  # asked once, when a blocking intent needs it
        self.to_ask: list[_Evidence] = []

    def job(self, i: int, entry: dict[str, Any]) -> _Evidence:
        """The evidence of the manifest's entry ``i``, its state decided from it."""
        jid = entry["id"]
        rel = entry.get("dir") or f"jobs/{jid}"
        # jobs/<id>, the planned layout: joined without a call per path
        usual = rel == f"jobs/{jid}" and isinstance(jid, str) and "/" not in jid
        jdir = f"{self.jobs_str}/{jid}" if usual else os.path.join(self.root, rel)
        state_path = f"{jdir}/{STATE}" if usual else os.path.join(jdir, STATE)
        st = _read_state(state_path)
        js = JobStatus(
            index=entry.get("index", i),
            id=jid,
            name=entry.get("name", jid),
            dir=self.jobs_path / jid if usual else Path(jdir),
            state=JobState.PLANNED,
            in_space=entry.get("in_space", True),
            params=entry.get("params", {}),
            stage=entry.get("stage"),
            after=[str(a) for a in entry.get("after") or []],
        )
        rec = None
        sub_time = None
        if jid in self.named:
            rec, js.task_id = self.named[jid]
            js.submission, js.outcome = rec.get("submission"), rec.get("outcome")
            js.kind, js.site = rec.get("kind"), rec.get("site")
            sub_time = parse_time(rec.get("time"))
        interval = heartbeat_interval(st) if st and "heartbeat_s" in st else self.default_interval
        ev = _Evidence(js, False, None, False, None, interval, sub_time)
        if st is not None:
            self._from_state(ev, st, jdir, state_path)
        if rec is not None:
            self._submitted(ev)
        return ev

    def _from_state(self, ev: _Evidence, st: dict[str, Any], jdir: str, state_path: str) -> None:
        """What state.json says, unless the job was submitted again after writing it."""
        js = ev.js
        _take_state(js, st, jdir)
        updated = parse_time(js.updated)
        if updated is None:  # unreadable: the file's own time stands in
            try:
                updated = os.stat(state_path).st_mtime
            except OSError:
                updated = None
        # Submitted again after this state was written: that state is history.
        ev.ran = not (ev.sub_time is not None and updated is not None and ev.sub_time > updated)
        if ev.ran:
            ev.written = st.get("state")
            ev.same_host = js.host == self.host
            _decide_from_state(js, st, ev, self.now)

    def _submitted(self, ev: _Evidence) -> None:
        """A job a submission names: queued unless it ran since; settled here for a
        blocking backend, else kept to ask its scheduler when it may hold it."""
        js = ev.js
        if not ev.ran:
            js.state = JobState.QUEUED
            js.error_kind = js.exit_code = None  # an earlier attempt's, not this one's
            js.reason = (
                f"submitted as {js.submission}"
                if js.outcome != "intended"
                else f"submission {js.submission} was handed to the scheduler but its ids were "
                "not recorded: it may be queued (see 'gridsearch adopt')"
            )
        kind = js.kind or ""
        if kind not in self.blocking:
            self.blocking[kind] = _is_blocking(kind)
        if self.blocking[kind]:
            _settle_blocking(js, ev, self.campaign, self.campaign_locked)
        elif js.task_id and js.state in _ASKABLE:
            self.to_ask.append(ev)


#: States of a submitted job whose task the scheduler may still hold (or have requeued).
_ASKABLE = frozenset(
    {JobState.QUEUED, JobState.RUNNING, JobState.LOST, JobState.INTERRUPTED, JobState.FAILED}
)


def _read_ends(out: list[JobStatus], metrics: bool, log_lines: int) -> None:
    """The end of job.log of failed and lost jobs; metrics.json of done ones if asked."""
    for js in out:
        if js.state in (JobState.FAILED, JobState.LOST) and log_lines > 0:
            js.log_tail = log_tail(js.dir, log_lines)
        elif js.state == JobState.DONE and metrics:
            js.metrics = _read_state(os.path.join(js.dir, METRICS))


def _take_state(js: JobStatus, st: dict[str, Any], jdir: str) -> None:
    js.attempt = st.get("attempt")
    js.epoch, js.epochs = st.get("epoch"), st.get("epochs")
    js.train_loss, js.val_loss = st.get("train_loss"), st.get("val_loss")
    js.host, js.updated = st.get("host"), st.get("updated")
    js.scheduler_job_id = st.get("scheduler_job_id")
    js.reason = str(st.get("reason") or "")
    js.error_kind, js.exit_code = st.get("error_kind"), st.get("exit_code")
    js.finished, js.started = st.get("finished"), st.get("started")
    js.jets_per_s, js.stack_size = st.get("jets_per_s"), st.get("stack_size")


def _waits_text(deps: list[JobStatus], missing: int, stage: str | None) -> str:
    not_done = [d for d in deps if d.state != JobState.DONE]
    what = Counter(d.state.word for d in not_done)
    if missing:
        what["not in the campaign"] = missing
    detail = ", ".join(f"{n} {w}" for w, n in what.most_common())
    of = f" of stage '{stage}'" if stage else ""
    return f"waits on {len(not_done) + missing} of {len(deps) + missing} jobs{of} ({detail})"


def apply_stages(statuses: list[JobStatus], stage_after: dict[str, Any]) -> None:
    """Waiting and out-of-date jobs of a staged campaign, from their dependencies' states.

    A job whose dependencies (``after``) are not all done is ``waiting``: planned, or queued
    behind them (``held``: the scheduler starts it when its stage ended), or failed at
    start because none of them was done yet (failure kind ``stage1_not_done``). A done
    job is out of date when one of the stage-1 jobs it picked from (its ``stage1.json``)
    finished again, or finished for the first time, after it picked.
    """
    by_id = {js.id: js for js in statuses}
    for js in statuses:
        if not js.after:
            continue
        deps = [by_id[d] for d in js.after if d in by_id]
        missing = len(js.after) - len(deps)
        ready = not missing and all(d.state == JobState.DONE for d in deps)
        earlier = stage_after.get(js.stage) if js.stage else None
        if js.state == JobState.PLANNED and not ready:
            js.state = JobState.WAITING
            js.reason = _waits_text(deps, missing, earlier)
        elif js.state == JobState.QUEUED and not ready:
            js.state, js.held = JobState.WAITING, True
            js.reason = f"queued behind its stage: {_waits_text(deps, missing, earlier)}"
        elif js.state == JobState.FAILED and js.error_kind == STAGE1_NOT_DONE and not ready:
            js.state = JobState.WAITING
            js.reason = (
                f"started before any stage-1 job was done; {_waits_text(deps, missing, earlier)}"
            )
        elif js.state == JobState.FAILED and js.error_kind == STAGE1_NOT_DONE:
            # the job's own reason names its candidates' states when it started (a killed
            # one reads "running" there); say what they are now
            js.reason = (
                f"started before any stage-1 job was done; all {len(deps)} are done now: "
                "resubmit it"
            )
        elif js.state == JobState.DONE:
            js.out_of_date = _out_of_date(js, by_id)


def _out_of_date(js: JobStatus, by_id: dict[str, JobStatus]) -> str:
    choice = _read_state(os.path.join(js.dir, STAGE1_CHOICE))
    if not choice or not isinstance(choice.get("candidates"), list):
        return ""
    for cand in choice["candidates"]:
        if not isinstance(cand, dict):
            continue
        now = by_id.get(str(cand.get("id")))
        if now is None:
            continue
        was_done = cand.get("state") == "done"
        if now.state != JobState.DONE:
            if was_done and now.state in (JobState.QUEUED, JobState.RUNNING, JobState.WAITING):
                return f"stage-1 job {now.name} is being rerun ({now.state.word})"
            continue
        if not was_done:
            return (
                f"stage-1 job {now.name} finished after this job picked {choice.get('chosen_id')}"
            )
        if cand.get("finished") != now.finished:
            return f"stage-1 job {now.name} finished again after this job picked from it"
    return ""


def _last_sign(js: JobStatus, now: float) -> float | None:
    """Seconds since the job last showed life: its heartbeat file or its state's ``updated``."""
    ages = [heartbeat_age(js.dir, now)]
    updated = parse_time(js.updated)
    if updated is not None:
        ages.append(max(0.0, now - updated))
    known = [a for a in ages if a is not None]
    return min(known) if known else None


def _lock_state(js: JobStatus, st: dict[str, Any]) -> bool | None:
    """On this host: True when a process holds the job dir's lock, False when none does."""
    if os.path.exists(js.dir / JOB_LOCK):
        return job_lock_holder(js.dir) is not None
    # A job that predates the lock: its pid tells.
    pid = st.get("pid")
    if isinstance(pid, int) and pid > 0:
        return pid_alive(pid)
    return None


def _decide_from_state(js: JobStatus, st: dict[str, Any], ev: _Evidence, now: float) -> None:
    """The state from state.json alone (the scheduler may refine it later)."""
    word = st.get("state")
    if word is None:  # unreadable: one word for it
        js.state = JobState.FAILED
        js.error_kind = js.error_kind or "unreadable_state"
        return
    try:
        state = JobState.from_word(word)
    except ValueError:
        state = None
    if state in (JobState.DONE, JobState.FAILED, JobState.INTERRUPTED):
        js.state = state
        if state == JobState.INTERRUPTED and not js.reason:
            js.reason = f"stopped by {st.get('signal') or 'a signal'}, checkpoint written"
        if state == JobState.FAILED and not js.reason:
            code = f" (exit {js.exit_code})" if js.exit_code is not None else ""
            js.reason = f"failed{code}; see job.log"
        return
    if state != JobState.RUNNING:
        js.state = JobState.FAILED
        js.reason = f"state.json has an unknown state {word!r}"
        js.error_kind = js.error_kind or "unreadable_state"
        return
    js.state = JobState.RUNNING
    js.heartbeat_age_s = _last_sign(js, now)
    if ev.same_host:
        ev.lock = _lock_state(js, st)
        if ev.lock is False:
            js.state = JobState.LOST
            js.reason = (
                f"its process (pid {st.get('pid')} on {js.host}) is gone: the job dir's lock is "
                f"free{_beat_note(js)}"
            )


def _beat_note(js: JobStatus) -> str:
    if js.heartbeat_age_s is None:
        return ""
    return f"; last heartbeat {ago(js.heartbeat_age_s)} ago"


def _settle_blocking(
    js: JobStatus, ev: _Evidence, campaign: Campaign, campaign_locked: list[bool]
) -> None:
    """A job of a backend that blocks until its jobs end (local): decided without asking."""
    if js.state != JobState.QUEUED:
        return
    if js.outcome == "intended":
        if not campaign_locked:
            campaign_locked.append(lock_holder(campaign.root) is not None)
        if campaign_locked[0]:
            js.reason = f"waiting in the {js.kind} run {js.submission}"
            return
        js.state = JobState.CANCELLED
        js.reason = f"the {js.kind} run {js.submission} ended before it started this job"
        return
    js.state = JobState.FAILED
    js.reason = (
        f"submission {js.submission} ended but the job never started; see its job.log and "
        "the submission's files"
    )


def _is_blocking(kind: str) -> bool:
    try:
        from gridsearch.backends import get_backend

        return bool(getattr(get_backend(kind), "blocking", False))
    except GridsearchError:
        return False


def _without_answer(ev: _Evidence, lost_after_s: float) -> None:
    """No scheduler answer: a running job silent for ``lost_after_s`` is lost."""
    js = ev.js
    if js.state != JobState.RUNNING or ev.lock is True:
        return
    age = js.heartbeat_age_s
    if age is not None and age > lost_after_s:
        js.state = JobState.LOST
        js.reason = (
            f"no heartbeat for {ago(age)} (more than {ago(lost_after_s)}) and no word from "
            "the scheduler"
        )


def _scheduler_word(kind: str, ans: Any) -> str:
    """``Slurm: failed (exit 137)``: the scheduler's last word, each fact once."""
    name = {"slurm": "Slurm", "condor": "HTCondor"}.get(kind, kind or "the scheduler")
    if ans is None:
        return f"{name} no longer knows the task"
    if ans.state == "unknown":
        return ans.reason or f"{name} no longer knows the task"
    detail = ans.reason or (f"exit {ans.exit_code}" if ans.exit_code else "")
    if detail and detail != ans.state:
        return f"{name}: {ans.state} ({detail})"
    return f"{name}: {ans.state}"


def _held_reason(kind: str, task: str, word: str, ev: _Evidence) -> str:
    """Why a held task does not run, and the two ways on: release it or remove it. It is
    not rerun by ``resubmit`` while held, so the job can never run twice."""
    from gridsearch.backends import get_backend

    backend = get_backend(kind)
    quoted = shlex.quote(task)
    ways = (
        f"fix the cause, then `{backend.release_tool} {quoted}`, or `{backend.remove_tool} "
        f"{quoted}` and resubmit"
        if backend.release_tool
        else "release or remove it"
    )
    last = ""
    if ev.ran:
        last = f"; its last attempt {ev.written or '?'}"
        if ev.js.epoch is not None:
            last += f" at epoch {ev.js.epoch_text}"
    return f"{word}: it starts only once released; {ways}{last}"


def _ask_schedulers(evidence: list[_Evidence], now: float) -> set[int]:
    """Refine jobs with what their schedulers say (one query per kind); the ids (``id(js)``)
    of the jobs that got an answer."""
    from gridsearch.backends import get_backend

    by_kind: dict[str, list[_Evidence]] = {}
    for ev in evidence:
        by_kind.setdefault(ev.js.kind or "", []).append(ev)
    answered: set[int] = set()
    for kind, group in by_kind.items():
        try:
            answers = get_backend(kind).query([ev.js.task_id for ev in group if ev.js.task_id])
        except (GridsearchError, OSError) as exc:
            for ev in group:
                note = f"{kind} not asked: {exc}"
                ev.js.reason = f"{ev.js.reason}; {note}" if ev.js.reason else note
            continue
        for ev in group:
            ans = answers.get(ev.js.task_id or "")
            ev.js.asked = True
            answered.add(id(ev.js))
            _refine(ev, ans, kind, now)
    return answered


def _refine(ev: _Evidence, ans: Any, kind: str, now: float) -> None:
    """One job, with its scheduler's answer ``ans`` (None: the scheduler does not know it)."""
    js = ev.js
    sched = ans.state if ans is not None else "unknown"
    js.scheduler_state = sched
    word = _scheduler_word(kind, ans)
    if sched == "held":
        if ev.ran and ev.written == JobState.DONE.word:
            js.reason = f"{word}; it is done: remove the held task"
            return  # released, it would find the job done and exit at once
        js.state = JobState.QUEUED
        js.reason = _held_reason(kind, js.task_id or "", word, ev)
        return
    if sched == "queued":
        js.state = JobState.QUEUED
        restarts = getattr(ans, "restarts", 0) or 0
        if restarts or ev.ran:
            last = f"; its last attempt {ev.written or '?'}" if ev.ran else ""
            if ev.ran and js.epoch is not None:
                last += f" at epoch {js.epoch_text}"
            js.reason = (
                f"requeued by {word.split(':')[0]} (preempted/node failure), will run again by "
                f"itself{last}"
            )
        else:
            js.reason = ans.reason or "pending"
        return
    if sched == "running":
        if ev.ran and ev.written == JobState.RUNNING.word:
            age = js.heartbeat_age_s
            if js.state == JobState.LOST:  # its lock is free: the next attempt is starting
                js.reason = f"{word}: a new attempt is starting"
            elif age is not None and age > LOST_BEATS * ev.interval:
                js.reason = f"silent for {ago(age)}, but {word}"
            js.state = JobState.RUNNING
            return
        js.state = JobState.RUNNING
        js.reason = (
            f"{word}; its job wrote '{ev.written}' before" if ev.ran else "started, no state yet"
        )
        return
    # The scheduler runs nothing for it any more (ended, or no longer known).
    if ev.ran and ev.written in ("done", "failed", "interrupted"):
        if js.state == JobState.INTERRUPTED and sched not in ("failed", "unknown", "done"):
            js.reason = f"{js.reason}; {word}"  # e.g. who stopped it: Slurm: cancelled
        return  # the job's own last word stands
    if ev.ran and ev.written == JobState.RUNNING.word:
        if ev.lock is True:
            js.state = JobState.RUNNING
            js.reason = f"{word}, but its process still holds the job dir's lock"
            return
        age = js.heartbeat_age_s
        if ev.lock is False or age is None or age > LOST_BEATS * ev.interval:
            js.state = JobState.LOST
            beat = f"last heartbeat {ago(age)} ago" if age is not None else "no heartbeat"
            js.reason = f"{beat}; {word}"
            return
        js.state = JobState.RUNNING
        js.reason = f"{word}, but its last heartbeat was {ago(age)} ago: lost unless it beats again"
        return
    # Never started under this submission (or its state is unreadable).
    if ev.ran:  # unreadable state.json
        js.reason = f"{js.reason}; {word}"
        return
    if sched == "cancelled" or (sched == "unknown" and not _log_since(js, ev.sub_time)):
        js.state = JobState.CANCELLED
        js.reason = (
            "cancelled before it started"
            if sched == "cancelled"
            else f"never started, and {word}: cancelled while pending"
        )
        return
    js.state = JobState.FAILED
    js.exit_code = ans.exit_code if ans is not None else js.exit_code
    js.reason = f"the task ended before the job started ({word}); see its job.log"


def _log_since(js: JobStatus, since: float | None) -> bool:
    """Whether job.log was written after ``since`` (the task's script began)."""
    try:
        mtime = os.stat(js.dir / LOG).st_mtime
    except OSError:
        return False
    return since is None or mtime >= since


def counts(statuses: Iterable[JobStatus]) -> dict[str, int]:
    """Jobs per state word, in the order of progress (states with no job left out)."""
    c = Counter(js.state for js in statuses)
    return {s.word: c[s] for s in JobState if c[s]}
