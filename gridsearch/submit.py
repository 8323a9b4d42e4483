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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridsearch import bundles
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
from hepae_core.jobdir import CONFIG, now_iso
from hepae_core.states import JobState


@dataclass
class SubmitReport:
    """What ``submit`` did."""

    selected: list[S.JobStatus]
    submission: Submission | None = None
    record: dict[str, Any] | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # state -> jobs left alone


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
) -> SubmitReport:
    """Submit a campaign's jobs to ``site``, recording the submission in the ledger.

    The campaign lock is held throughout (for a blocking backend: until the jobs ended),
    so two submissions never pick the same jobs. ``ids`` limits the choice to these job
    ids (``gridsearch promote`` submits exactly the jobs it promoted).
    """
    profile = load_profile(site, sites_dir)
    kind = profile["kind"]
    backend = get_backend(kind)
    with campaign.lock("submit", lock_wait_s):
        statuses = S.campaign_status(campaign, lost_after_s=lost_after_s, log_lines=0)
        if ids is not None:
            statuses = [js for js in statuses if js.id in ids]
        chosen, skipped = select_jobs(statuses, only, force, intended_jobs(campaign))
        report = SubmitReport(selected=chosen, skipped=skipped)
        if not chosen:
            return report
        bad_input = [js for js in chosen if js.error_kind == "bad_input"]
        if bad_input:
            echo(
                f"note: {len(bad_input)} job(s) failed on bad input before (e.g. "
                f"{bad_input[0].name}: {bad_input[0].reason}); they fail again unless the "
                "input was fixed"
            )
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
        journal = Journal(campaign, sub_id, fields)

        def archive_done() -> None:
            for js in chosen:
                if js.state == JobState.DONE:
                    archive_outputs(js.dir)

        interrupted = None
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
            )
        except KeyboardInterrupt as exc:
            sub = getattr(exc, "submission", None)
            if sub is None:
                raise
            interrupted = exc
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
        if interrupted is not None:
            record["interrupted"] = True
        report.submission, report.record = sub, record
        if interrupted is not None:
            raise interrupted
    return report


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
