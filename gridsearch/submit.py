"""Submission: choose the jobs, hand them to the site's backend, record it in the ledger.

By default the jobs that are ``planned`` (never started, not in flight) are submitted.
``only`` names exactly the states to submit (``failed,interrupted,planned``...). Jobs that
the scheduler still holds (queued, requeued, running) and done ones are never submitted
again unless ``force`` is given (:mod:`gridsearch.selection`); a
forced done job has its previous outputs moved to ``previous/<time>/`` in its directory
first, so it starts afresh and nothing is lost.

A job named by an ``intended`` submission (the ledger's write-ahead record without an
outcome: the scheduler may hold it) counts as in flight, whatever its files say, until a
newer state.json shows it ran; ``gridsearch adopt`` completes such a record.

The flow of one submission (validate, write ahead, write, submit, complete the record) is
:meth:`gridsearch.backends.base.Backend.submit`'s.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridsearch import bundles, options
from gridsearch import status as S
from gridsearch.backends import get_backend
from gridsearch.backends.base import JobRef, Journal, Submission
from gridsearch.campaign import Campaign
from gridsearch.errors import GridsearchError
from gridsearch.selection import (  # noqa: F401 (the selection policy lives there)
    NEEDS_FORCE,
    RESUBMIT_DEFAULT,
    SELECTABLE,
    parse_only,
    select_jobs,
)
from gridsearch.sites import load_profile, user_site_dirs
from hepae_core.contract import JobState
from hepae_core.jobdir import CONFIG, now_iso


@dataclass
class SubmitReport:
    """What ``submit`` did."""

    selected: list[S.JobStatus]
    submission: Submission | None = None
    record: dict[str, Any] | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # state -> jobs left alone
    #: One report per submission made, in order: a staged campaign submits each stage
    #: as its own submission, a later one held by the scheduler behind the earlier.
    parts: list[SubmitReport] = field(default_factory=list)
    stage: str | None = None  # the stage of a part
    notes: list[str] = field(default_factory=list)
    interrupted: BaseException | None = None


def intended_jobs(campaign: Campaign) -> dict[str, tuple[str, float]]:
    """See :meth:`gridsearch.campaign.Campaign.intended_jobs`."""
    return campaign.intended_jobs()


def archive_outputs(job_dir: Path) -> Path | None:
    """Move everything but config.yaml into ``previous/<time>/``; return that folder."""
    names = [n for n in os.listdir(job_dir) if n not in (CONFIG, "previous")]
    if not names:
        return None
    dest = job_dir / "previous" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.move(str(job_dir / name), str(dest / name))
    return dest


def new_submission_id(kind: str) -> str:
    """``20261124-051200-slurm-1a2b``: time, kind and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{kind}-{secrets.token_hex(2)}"


def submit(
    campaign: Campaign,
    site: str,
    *,
    only: set[JobState] | None = None,
    force: bool = False,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    sites_dir: list[Path] | None = None,
    ids: set[str] | None = None,
    lock_wait_s: float = 10.0,
    lost_after_s: float = S.DEFAULT_LOST_AFTER_S,
    echo: Callable[[str], None] = print,
    out_of_date: bool = False,
) -> SubmitReport:
    """Submit a campaign's jobs to ``site``, recording the submission in the ledger.

    The campaign lock is held throughout (for a blocking backend: until the jobs ended),
    so two submissions never pick the same jobs. ``ids`` limits the choice to these job
    ids (``gridsearch promote`` submits exactly the jobs it promoted).

    In a staged campaign each stage is its own submission, in order; a later stage waits
    for the earlier one (Slurm: ``--dependency=afterany`` on its array; a blocking backend
    runs them one after the other; a scheduler without dependencies gets the first stage
    only, and a note). ``out_of_date`` also reruns done jobs whose stage-1 jobs changed.
    """
    profile = load_profile(site, sites_dir)
    kind = profile["kind"]
    backend = get_backend(kind)
    check_overrides(profile, overrides)
    with campaign.lock("submit", lock_wait_s):
        statuses = S.campaign_status(campaign, lost_after_s=lost_after_s, log_lines=0)
        if out_of_date and not any(js.after for js in statuses):
            raise GridsearchError(
                message="--out-of-date reruns the done jobs of a staged campaign whose stage-1 "
                "jobs finished again; this campaign has no stages, so it would do nothing: "
                "drop --out-of-date (use --only, or --force to rerun done jobs)",
                source=str(campaign.root),
            )
        if ids is not None:
            statuses = [js for js in statuses if js.id in ids]
        chosen, skipped = select_jobs(
            statuses, only, force, intended_jobs(campaign), out_of_date=out_of_date
        )
        report = SubmitReport(selected=chosen, skipped=skipped)
        if not chosen:
            return report
        _note_bad_input(chosen, echo)
        by_id = {js.id: js for js in statuses}
        parts = _stage_parts(chosen)
        submitted: dict[str, list[str]] = {}  # job id -> scheduler ids of its submission
        for k, part in enumerate(parts):
            if k and backend.blocking and not dry_run:
                part = _still_runnable(campaign, part, report, lost_after_s)
                if not part:
                    continue
            after = _held_behind(part, by_id, submitted)
            if after and not backend.blocking and not backend.supports_dependency:
                stage = part[0].stage
                report.notes.append(
                    f"stage '{stage}' ({len(part)} jobs) was not submitted: {kind} cannot hold "
                    "it until the jobs it waits for ended; submit again once 'gridsearch status' "
                    "shows them done"
                )
                report.skipped[f"waiting (stage {stage})"] = len(part)
                continue
            one = _submit_part(
                campaign, backend, profile, site, part, after,
                dry_run=dry_run, overrides=overrides, sites_dir=sites_dir,
            )  # fmt: skip
            one.stage = part[0].stage if len(parts) > 1 else None
            report.parts.append(one)
            report.submission, report.record = one.submission, one.record
            queued = list(one.submission.scheduler_ids) if one.submission is not None else []
            for js in part:
                submitted[js.id] = queued or [f"<ids of stage {js.stage}>"]
            if one.interrupted is not None:
                raise one.interrupted
        report.selected = [js for p in report.parts for js in p.selected]
    return report


def _note_bad_input(chosen: list[S.JobStatus], echo: Callable[[str], None]) -> None:
    """Say that jobs which failed on bad input fail again unless it was fixed."""
    bad_input = [js for js in chosen if js.error_kind == "bad_input"]
    if bad_input:
        echo(
            f"note: {len(bad_input)} job(s) failed on bad input before (e.g. "
            f"{bad_input[0].name}: {bad_input[0].reason}); they fail again unless the "
            "input was fixed"
        )


def _stage_parts(chosen: list[S.JobStatus]) -> list[list[S.JobStatus]]:
    """The chosen jobs cut by stage, in campaign order (the manifest lists stages in the
    order they run); one part for a campaign without stages."""
    parts: dict[str | None, list[S.JobStatus]] = {}
    for js in chosen:
        parts.setdefault(js.stage, []).append(js)
    return list(parts.values())


def _held_behind(
    part: list[S.JobStatus],
    by_id: dict[str, S.JobStatus],
    submitted: dict[str, list[str]],
) -> list[str]:
    """The scheduler ids the part must wait for: the submissions of this call holding its
    dependencies, and the tasks of earlier submissions still queued or running."""
    out: list[str] = []
    for js in part:
        for dep_id in js.after:
            if dep_id in submitted:
                ids = submitted[dep_id]
            else:
                dep = by_id.get(dep_id)
                ids = [dep.task_id] if dep is not None and dep.in_flight and dep.task_id else []
            out.extend(i for i in ids if i not in out)
    return out


def _still_runnable(
    campaign: Campaign, part: list[S.JobStatus], report: SubmitReport, lost_after_s: float
) -> list[S.JobStatus]:
    """After a blocking run of an earlier stage: the jobs that have a done job to pick."""
    now = {js.id: js for js in S.campaign_status(campaign, query=False, log_lines=0,
                                                  lost_after_s=lost_after_s)}  # fmt: skip
    keep = []
    for js in part:
        if not js.after or any(
            now.get(d) is not None and now[d].state == JobState.DONE for d in js.after
        ):
            keep.append(js)
    dropped = len(part) - len(keep)
    if dropped:
        key = "waiting (no stage-1 job they pick from ended done)"
        report.skipped[key] = report.skipped.get(key, 0) + dropped
    return keep


def _submit_part(
    campaign: Campaign,
    backend: Any,
    profile: dict[str, Any],
    site: str,
    chosen: list[S.JobStatus],
    after: list[str],
    *,
    dry_run: bool,
    overrides: dict[str, Any] | None,
    sites_dir: list[Path] | None,
) -> SubmitReport:
    """One submission (one ledger record, one submit/<id>/ directory) of ``chosen``."""
    kind = profile["kind"]
    report = SubmitReport(selected=chosen)
    sub_id = new_submission_id(kind)
    directory = campaign.submit_dir(sub_id)
    refs = [JobRef(js.id, js.dir, js.index) for js in chosen]
    fields = {
        "time": now_iso(),  # before any job starts: status compares it with state.json
        "site": site,
        "kind": kind,
        "dir": campaign.relative(directory),
        "overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
        "profile": profile.get("source"),
    }
    if after:
        fields["after"] = list(after)
    journal = Journal(campaign, sub_id, fields)

    def archive_done() -> None:
        for js in chosen:
            if js.state == JobState.DONE:
                archive_outputs(js.dir)

    try:
        sub = backend.submit(
            refs,
            profile,
            directory=directory,
            dry_run=dry_run,
            # --bundle, else the space file's bundle: (docs/gridsearch.md, "Bundles")
            overrides=bundles.with_space_default(overrides or {}, campaign.root),
            journal=journal,
            search=user_site_dirs(sites_dir),
            before_submit=archive_done,
            after=after,
        )
    except KeyboardInterrupt as exc:
        sub = getattr(exc, "submission", None)
        if sub is None:
            raise
        report.interrupted = exc
    record = {
        "submission": sub_id,
        **fields,
        "command": [str(c) for c in sub.command],
        "scheduler_ids": list(sub.scheduler_ids),
        "tasks": dict(sub.tasks),
        "dry_run": bool(dry_run),
        "jobs": len(refs),
        "notes": list(sub.notes),
    }
    if dry_run:  # one whole record; the scheduler was not called
        campaign.append_ledger(record)
    if report.interrupted is not None:
        record["interrupted"] = True
    report.submission, report.record = sub, record
    return report


def check_overrides(profile: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    """Refuse nonsense requests (``--time 0``, ``--gpus -1``) before any job is chosen, so
    they are refused even when there is nothing to submit (not "nothing to submit", exit 0).
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k != "bundle"}
    if not given:
        return
    if profile.get("kind") == "local":
        from gridsearch.backends.local import resources

        resources(profile, given)
    else:
        from gridsearch.sites import resolve_request

        resolve_request(profile, given)


#: The submit options a resubmission reuses from the campaign's last submission, and the
#: flag each was given with.
REMEMBERED_FLAGS = options.REMEMBERED_FLAGS


def remembered_options(campaign: Campaign, site: str | None) -> tuple[dict[str, Any], str | None]:
    """The submit options of the campaign's newest real submission (to ``site``, when
    given) and its id: what ``resubmit`` reuses unless told otherwise (``--bundle``
    above all: members of a bundled campaign would otherwise run one per task)."""
    for rec in reversed(campaign.submissions()):
        if rec.get("dry_run") or rec.get("outcome") == "refused":
            continue
        if site is not None and rec.get("site") != site:
            continue
        saved = rec.get("overrides")
        if not isinstance(saved, dict):
            return {}, None
        options = {k: v for k, v in saved.items() if k in REMEMBERED_FLAGS and v is not None}
        return options, str(rec.get("submission"))
    return {}, None


def format_options(options: dict[str, Any]) -> str:
    """``--bundle 3 --time 2h``: options as the command line gives them."""
    return " ".join(
        f"{flag} {shlex.quote(str(options[k]))}"
        for k, flag in REMEMBERED_FLAGS.items()
        if options.get(k) is not None
    )


def adopt(campaign: Campaign, submission: str, ids: list[str] | None) -> dict[str, Any]:
    """Complete an ``intended`` submission with the scheduler ids printed when its record
    could not be written; ``ids=None`` records that the scheduler queued nothing.

    Returns the outcome record written. Refuses a submission that is unknown or already
    has an outcome, so the same jobs are never recorded twice.
    """
    from gridsearch.campaign import REFUSED, SUBMITTED

    with campaign.lock("adopt", 10.0):
        rec = campaign.submission(submission)
        if rec is None:
            known = [r.get("submission") for r in campaign.submissions()]
            raise GridsearchError(
                message=f"no submission {submission!r} in the ledger (intended ones: "
                + (", ".join(str(k) for k in known if k) or "none")
                + ")",
                source=str(campaign.root),
            )
        if rec.get("outcome") != "intended":
            raise GridsearchError(
                message=f"submission {submission} is already recorded as {rec.get('outcome')}; "
                "nothing to adopt",
                source=str(campaign.root),
            )
        fields = {k: rec[k] for k in ("time", "site", "kind", "dir") if k in rec}
        if ids is None:
            return campaign.record_outcome(
                submission, REFUSED, reason="the scheduler queued nothing (gridsearch adopt)",
                **fields,
            )  # fmt: skip
        tasks = get_backend(str(rec.get("kind"))).adopt_tasks(rec, ids)
        return campaign.record_outcome(
            submission, SUBMITTED, scheduler_ids=list(ids), tasks=tasks, dry_run=False,
            adopted=now_iso(), **fields,
        )  # fmt: skip
