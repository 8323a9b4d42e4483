"""The halving workflow after a submission or a promotion: what was chosen, and the rungs
that follow by themselves (``submit --all-rungs``, ``promote --all-rungs``).

Locally (a backend that blocks until its jobs end) each later rung is promoted and run in
this command; on a scheduler that can hold a job behind others (Slurm) the next rung's
promote job is queued behind the rung's arrays (:mod:`gridsearch.halving.rungs`), and it
does the same when it runs.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from gridsearch import backends
from gridsearch.backends.base import format_command
from gridsearch.campaign import Campaign
from gridsearch.halving import rungs
from gridsearch.halving.promote import PromoteReport, promote
from gridsearch.sites import load_profile
from gridsearch.submit import SubmitReport
from gridsearch.submit_report import print_report
from gridsearch.text import safe

#: Why a job was not ranked, when it may still finish (choose()'s words).
_BUSY = ("not done (queued)", "not done (running)", "not done (waiting)")


def print_promotion(
    campaign: Campaign,
    site: str | None,
    report: PromoteReport,
    metric: str,
    per: str | None,
    dry_run: bool,
) -> int:
    """What a promotion chose and (with ``site``) submitted; the exit code."""
    left = ", ".join(f"{n} {why}" for why, n in report.skipped.items())
    if not report.chosen:
        # a promotion that promoted nothing did not do what was asked: non-zero
        busy = sum(n for why, n in report.skipped.items() if why in _BUSY)
        if busy:
            print(
                f"error: nothing to promote yet: {busy} job(s) still queued or running; wait "
                f"until they end (gridsearch status {shlex.quote(str(campaign.root))} --watch), "
                "then promote again",
                file=sys.stderr,
            )
        else:
            print(
                f"error: nothing to promote: no done job with a finite {metric} "
                f"({safe(left) or 'no job'})",
                file=sys.stderr,
            )
        return 1
    what = "would promote" if dry_run else "promoted"
    print(
        f"{what} {len(report.chosen)} of {report.ranked} ranked jobs by {metric}"
        + (f" per {per}" if per else "")
        + (f" (not ranked: {left})" if left else "")
    )
    for p in report.chosen:
        group = f" [{per}={p.group}]" if per else ""
        print(
            f"  {p.js.name}{group}: {metric} {p.value:.4g}, rank {p.rank}/{p.of}, "
            f"epochs {p.from_epochs} -> {p.epochs}, rung {p.rung}"
        )
    if dry_run:
        return 0
    if site is None or report.submit is None:
        print("not submitted (no --site): 'gridsearch resubmit DIR --site S' runs them")
        return 0
    return print_report(campaign, site, report.submit)


def follow_rungs(
    campaign: Campaign,
    site: str,
    submitted: SubmitReport | None,
    overrides: dict[str, Any],
    sites_dir: list[Path],
    dry_run: bool,
    metric: str = "best_val_loss",
    per: str | None = None,
) -> int:
    """The rungs after a submission (``--all-rungs``, gridsearch/halving/rungs.py): locally each is
    promoted and run now; on Slurm the next rung's promote job is queued behind
    ``submitted``'s arrays, ranking by the same ``metric`` and ``per``. The exit code."""
    profile = load_profile(site, sites_dir)
    backend = backends.get_backend(profile["kind"])
    if backend.blocking:
        if dry_run:
            print("halving: each later rung is promoted and run here once the one before ended")
            return 0
        code = 0
        while rungs.next_rung(campaign) is not None:
            report = promote(
                campaign, metric=metric, per=per, site=site, overrides=overrides,
                sites_dir=sites_dir,
            )  # fmt: skip
            code = max(code, print_promotion(campaign, site, report, metric, per, False))
            if not report.chosen:
                break
        return code
    parts = (submitted.parts or [submitted]) if submitted is not None else []
    after = [i for part in parts if part.submission for i in part.submission.scheduler_ids]
    if not after and not dry_run:
        print("halving: nothing was queued, so no rung follows")
        return 0
    rung = rungs.next_rung(campaign)
    placeholder = [f"<ids of rung {(rung or 1) - 1}>"]
    link = rungs.queue_next(
        campaign, site, profile, backend, after or placeholder,
        overrides=overrides, sites_dir=sites_dir, dry_run=dry_run, metric=metric, per=per,
    )  # fmt: skip
    if link is None:
        print("halving: the last rung is reached")
        return 0
    what = "would queue a job" if dry_run else f"queued job {link['scheduler_id']}"
    print(
        f"halving: {what} that promotes the best of these to rung {link['rung']} once they "
        f"have ended, and queues the rung after; files in {campaign.root / link['dir']}"
    )
    print("command: " + format_command(link["submit_command"]))
    return 0
