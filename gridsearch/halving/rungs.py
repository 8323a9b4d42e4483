"""Successive halving run to its last rung by one command: ``submit --all-rungs``.

A campaign whose space file declares ``halving: {rungs: [10, 30, 90], keep: 1/3}`` runs
rung 0 as usual. With ``--all-rungs`` the later rungs follow by themselves:

* locally (a backend that blocks until its jobs end), each rung is promoted and run in
  the same command once the one before has ended;
* on Slurm, a small job (``rung.sh``: one core, 1 GB, 15 minutes) is queued behind the
  rung's arrays with ``--dependency=afterany``. When they have ended it runs
  ``gridsearch promote DIR --site S --all-rungs``, which promotes the best ``keep`` of
  the rung's done jobs (:mod:`gridsearch.halving.promote`), submits them, and queues the next
  such job behind them, until the last rung. Which jobs go on is decided only then, by
  their results, so the rungs cannot be queued as arrays up front.

Each queued promote job is a ledger record (event :data:`RUNG_EVENT`: rung, scheduler id,
the ids it waits for, its directory); ``status`` reports the newest while it is queued or
running, or when it failed, and ``--watch`` waits for it. A scheduler that cannot hold a
job behind others (HTCondor here) is refused before anything is queued: run ``gridsearch
promote DIR --site S`` after each rung there.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from gridsearch import render
from gridsearch.backends.base import Backend, SchedulerState
from gridsearch.campaign import SPACE, Campaign
from gridsearch.errors import GridsearchError
from gridsearch.halving.promote import rung_of
from gridsearch.halving.section import campaign_halving
from gridsearch.options import CARRIED_FLAGS
from gridsearch.sites import _token, check_environment, user_site_dirs
from hepae_core.contract import TaskState
from hepae_core.jobdir import atomic_write_text, now_iso

RUNG_EVENT = "rung_chain"
SCRIPT = "rung.sh"
#: The promote job's walltime: it ranks, rewrites a few files and submits; minutes at most.
PROMOTE_TIME = "00:15:00"


def check(campaign: Campaign, backend: Backend) -> dict[str, Any]:
    """The campaign's halving section; refuse ``--all-rungs`` where it cannot run."""
    halving = campaign_halving(campaign.root)
    if halving is None:
        raise GridsearchError(
            message="--all-rungs needs a 'halving: {rungs: [10, 30, 90], keep: 1/3}' section "
            "in the space file",
            source=str(campaign.root / SPACE),
            key="halving",
        )
    if not backend.blocking and not backend.rung_template:
        raise GridsearchError(
            message=f"{backend.kind} cannot queue a job behind the rung's jobs, so the rungs "
            "cannot follow by themselves; submit without --all-rungs and run 'gridsearch "
            "promote DIR --site SITE' after each rung"
        )
    return halving


def next_rung(campaign: Campaign) -> int | None:
    """The rung the next promotion reaches, or None when the last one is reached."""
    halving = campaign_halving(campaign.root)
    if halving is None:
        return None
    jobs = campaign.manifest().get("jobs") or []
    top = max((rung_of(campaign.root / j["dir"]) for j in jobs if j.get("dir")), default=0)
    return top + 1 if top + 1 < len(halving["rungs"]) else None


def promote_command(
    campaign: Campaign,
    site: str,
    python: str,
    overrides: dict[str, Any] | None,
    sites_dir: list[Path] | None,
    metric: str = "best_val_loss",
    per: str | None = None,
) -> list[str]:
    """``python -m gridsearch promote DIR --site S --all-rungs`` with the submission's
    request overrides and site directories, so every rung asks for what rung 0 asked, and
    the ranking's ``metric`` and ``per``."""
    cmd = [python, "-m", "gridsearch", "promote", str(campaign.root), "--site", site]
    cmd.append("--all-rungs")
    if metric != "best_val_loss":
        cmd += ["--metric", metric]
    if per:
        cmd += ["--per", per]
    for d in sites_dir or []:
        cmd += ["--sites-dir", str(Path(d).absolute())]
    for key, value in (overrides or {}).items():
        flag = CARRIED_FLAGS.get(key)
        if flag is not None and value is not None:
            cmd += [flag, str(value)]
    return cmd


def queue_next(
    campaign: Campaign,
    site: str,
    profile: dict[str, Any],
    backend: Backend,
    after: list[str],
    *,
    overrides: dict[str, Any] | None = None,
    sites_dir: list[Path] | None = None,
    dry_run: bool = False,
    metric: str = "best_val_loss",
    per: str | None = None,
) -> dict[str, Any] | None:
    """Queue the promote job of the next rung behind ``after`` (the rung's arrays).

    Returns its ledger record (``dry_run``: the record it would get, nothing queued), or
    None when the last rung is reached.
    """
    from gridsearch.submit import new_submission_id

    rung = next_rung(campaign)
    if rung is None:
        return None
    halving = campaign_halving(campaign.root) or {}
    environment = check_environment(profile)
    command = promote_command(
        campaign, site, environment["python"], overrides, sites_dir, metric, per
    )
    submission = new_submission_id("rung")
    directory = campaign.submit_dir(submission)
    request = {**(profile.get("request") or {}), **(overrides or {})}
    for key in ("account", "partition", "qos"):  # written into #SBATCH lines: plain tokens
        if request.get(key) is not None:
            request[key] = _token(request[key], f"request.{key}")
    context = {
        **render.contract_context(),
        "site": profile.get("name", site),
        "job_name": f"rung{rung}-{render.job_name(campaign.root)}",
        "log_name": "rung-%j.out",
        "time": PROMOTE_TIME,
        "request": request,
        "env": environment["env"],
        "rung": rung,
        "epochs": halving["rungs"][rung],
        "command": command,
    }
    # A template of that name in the user's site directories comes first (ChoiceLoader).
    text = render.render(backend.rung_template, context, user_site_dirs(sites_dir))
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / SCRIPT
    atomic_write_text(script, text)
    script.chmod(0o755)
    record = {
        "event": RUNG_EVENT,
        "rung": rung,
        "site": site,
        "kind": backend.kind,
        "dir": campaign.relative(directory),
        "after": list(after),
        "time": now_iso(),
        "command": command,
        "dry_run": dry_run,
    }
    if dry_run:
        record["submit_command"] = backend.follow_up_command(script, after)
        return record
    try:
        record["scheduler_id"], record["submit_command"] = backend.submit_after(script, after)
    except GridsearchError as exc:
        raise GridsearchError(
            message=f"the next rung could not be queued: {exc}; once the jobs above ended, "
            f"'gridsearch promote {campaign.root} --site {site} --all-rungs' goes on by hand"
        ) from None
    campaign.append_ledger(record)
    return record


def newest_link(campaign: Campaign) -> dict[str, Any] | None:
    """The newest queued promote job's ledger record (not a dry run), if any."""
    links = [r for r in campaign.ledger() if r.get("event") == RUNG_EVENT]
    links = [r for r in links if not r.get("dry_run") and r.get("scheduler_id")]
    return links[-1] if links else None


def link_state(
    campaign: Campaign, query: bool = True
) -> tuple[dict[str, Any], SchedulerState | None] | None:
    """The newest promote job and its scheduler's word (None: not asked, or no answer)."""
    from gridsearch.backends import get_backend

    link = newest_link(campaign)
    if link is None:
        return None
    if not query:
        return link, None
    sid = str(link["scheduler_id"])
    try:
        answer = get_backend(str(link.get("kind"))).query([sid]).get(sid)
    except (GridsearchError, OSError):
        answer = None
    return link, answer


def in_flight(state: tuple[dict[str, Any], SchedulerState | None] | None) -> bool:
    """The promote job is queued or running: the campaign goes on by itself."""
    return bool(
        state and state[1] is not None and state[1].state in (TaskState.QUEUED, TaskState.RUNNING)
    )


def reached_rung(campaign: Campaign) -> int:
    """The highest rung any job of the campaign has reached (0: none promoted)."""
    jobs = campaign.manifest().get("jobs") or []
    return max((rung_of(campaign.root / j["dir"]) for j in jobs if j.get("dir")), default=0)


def describe(
    campaign: Campaign,
    state: tuple[dict[str, Any], SchedulerState | None] | None,
    statuses: list[Any] | None = None,
) -> str | None:
    """One line on the rungs that follow by themselves, for ``status``; None when there is
    nothing to say (no promote job, it ended well, or its rung was reached since).

    The whole chain is read: a rung reached after the newest promote job was queued (by it,
    or by a ``gridsearch promote`` by hand after it was cancelled) makes its failure old
    news. ``statuses`` (the campaign's jobs) let a failed promote job's advice wait while
    the rung's jobs still run.
    """
    if state is None:
        return None
    link, answer = state
    sid, rung = link.get("scheduler_id"), link.get("rung")
    log = campaign.root / str(link.get("dir", "")) / f"rung-{sid}.out"
    if isinstance(rung, int) and reached_rung(campaign) >= rung:
        return None  # its rung is reached: whatever became of this job, the chain went on
    if answer is None:
        return f"halving: rung {rung} is promoted by job {sid} (the scheduler was not asked)"
    if answer.state == TaskState.QUEUED:
        return (
            f"halving: job {sid} promotes the best to rung {rung} once the jobs before have "
            f"ended ({answer.reason or 'queued'}); cancelling it stops the rungs"
        )
    if answer.state == TaskState.RUNNING:
        return f"halving: job {sid} is promoting the best to rung {rung}"
    if answer.state == TaskState.UNKNOWN:  # forgotten by the scheduler: the log's last word
        code = _logged_exit(log)
        if code == 0:
            return None
        answer = SchedulerState(
            answer.task_id,
            TaskState.FAILED,
            f"exit {code}" if code is not None else "no exit logged",
        )
    if answer.state == TaskState.DONE:
        return None
    ended = (
        f"halving: the promote job for rung {rung} (job {sid}) ended {answer.state}"
        f"{f' ({answer.reason})' if answer.reason else ''}"
        + (f": see {log}" if log.is_file() else "")
    )
    command = (
        f"'gridsearch promote {shlex.quote(str(campaign.root))} --site "
        f"{shlex.quote(str(link.get('site')))} --all-rungs'"
    )
    busy = [js for js in statuses or [] if getattr(js, "in_flight", False)]
    if busy:
        return (
            f"{ended}; {len(busy)} job(s) of the rung before still queued or running: wait "
            f"until they end, then {command} goes on by hand"
        )
    return f"{ended}; {command} goes on by hand"


def _logged_exit(log: Path) -> int | None:
    """The exit code the promote job's script logged last (None: none logged)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = re.search(r"promote exited with (\d+)$", line)
        if m:
            return int(m.group(1))
    return None
