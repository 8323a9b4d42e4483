"""Submission: choose the jobs, hand them to the site's backend, record it in the ledger.

By default the jobs that are ``planned`` (never started, not in flight) are submitted.
``only`` names exactly the states to submit (``failed,interrupted,planned``...). Jobs that
are submitted, running or done are never submitted again unless ``force`` is given; a
forced done job has its previous outputs moved to ``previous/<time>/`` in its directory
first, so it starts afresh and nothing is lost.
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

from gridsearch import render
from gridsearch import status as S
from gridsearch.backends import get_backend
from gridsearch.backends.base import JobRef, Submission
from gridsearch.campaign import SUBMIT, Campaign
from gridsearch.selection import (  # noqa: F401 (the selection policy lives there)
    NEEDS_FORCE,
    RESUBMIT_DEFAULT,
    SELECTABLE,
    parse_only,
    select_jobs,
)
from gridsearch.sites import load_profile
from hepae_core.jobdir import CONFIG, now_iso
from hepae_core.states import JobState


@dataclass
class SubmitReport:
    """What ``submit`` did."""

    selected: list[S.JobStatus]
    submission: Submission | None = None
    record: dict[str, Any] | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # state -> jobs left alone


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
    lock_wait_s: float = 10.0,
    lost_after_s: float = S.DEFAULT_LOST_AFTER_S,
    echo: Callable[[str], None] = print,
) -> SubmitReport:
    """Submit a campaign's jobs to ``site`` and append the submission to the ledger.

    The campaign lock is held throughout (for the local backend: until the jobs ended), so
    two submissions never pick the same jobs.
    """
    profile = load_profile(site, sites_dir)
    kind = profile["kind"]
    backend = get_backend(kind)
    with campaign.lock("submit", lock_wait_s):
        statuses = S.campaign_status(campaign, lost_after_s=lost_after_s, log_lines=0)
        chosen, skipped = select_jobs(statuses, only, force)
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
        if not dry_run:
            for js in chosen:
                if js.state == JobState.DONE:
                    archive_outputs(js.dir)
        sub_id = new_submission_id(kind)
        directory = campaign.root / SUBMIT / sub_id
        directory.mkdir(parents=True)
        refs = [JobRef(js.id, js.dir) for js in chosen]
        # The task index -> job dir map, in the one format every backend reads.
        render.write_list(directory, zip(render.task_indices(refs), (r.dir for r in refs)))
        started = now_iso()  # before any job starts: status compares it with state.json
        interrupted = None
        try:
            sub = backend.submit(
                refs, profile, directory=directory, dry_run=dry_run, overrides=overrides or {}
            )
        except KeyboardInterrupt as exc:
            sub = getattr(exc, "submission", None)
            if sub is None:
                raise
            interrupted = exc
        record = {
            "submission": sub_id,
            "time": started,
            "site": site,
            "kind": kind,
            "dir": f"{SUBMIT}/{sub_id}",
            "command": [str(c) for c in sub.command],
            "scheduler_ids": list(sub.scheduler_ids),
            "tasks": dict(sub.tasks),
            "dry_run": bool(dry_run),
            "jobs": len(refs),
            "overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
            "profile": profile.get("source"),
        }
        if kind == "local" and not dry_run:
            record["ended"] = now_iso()
        if interrupted is not None:
            record["interrupted"] = True
        campaign.append_ledger(record)
        report.submission, report.record = sub, record
        if interrupted is not None:
            raise interrupted
    return report
