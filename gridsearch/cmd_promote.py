"""``gridsearch promote DIR --keep 1/3 --epochs x3 --site S``: continue the best jobs."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from gridsearch import backends, options, rungs
from gridsearch.backends.base import format_command
from gridsearch.campaign import Campaign, open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.halving import parse_keep
from gridsearch.promote import PromoteReport, promote
from gridsearch.sites import load_profile
from gridsearch.submit import SubmitReport
from gridsearch.submit_report import print_report
from gridsearch.text import safe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "promote",
        help="continue the best finished jobs for more epochs (successive halving)",
        description="Rank the done jobs by --metric (lower is better; per value of --per), "
        "continue the best --keep of them from the exact end of their training for more "
        "epochs, and submit them as one array. one_cycle schedules are refused (their "
        "learning rate is defined on the final budget). See docs/gridsearch.md.",
    )
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument(
        "--keep", help="1/3, 0.25 (fraction) or 5 (count) per group (default: the space's halving)"
    )
    p.add_argument(
        "--epochs",
        help="x3 (times), +20 (more) or 90 (in all); default: the next rung of the space's halving",
    )
    p.add_argument("--metric", default="best_val_loss", help="metrics.json key, lower wins")
    p.add_argument("--per", metavar="PARAM", help="rank within each value of a grid parameter")
    p.add_argument("--site", help="submit the promoted jobs here (without: only promote them)")
    p.add_argument("--dry-run", action="store_true", help="show the choice, change nothing")
    options.add_arguments(p)
    p.add_argument("--sites-dir", action="append", type=Path, default=[], metavar="DIR")
    add_all_rungs(p)
    p.set_defaults(func=run)


def add_all_rungs(p: argparse.ArgumentParser) -> None:
    """``--all-rungs``, shared by ``submit`` and ``promote``."""
    p.add_argument(
        "--all-rungs",
        action="store_true",
        help="with the space file's halving: the later rungs follow by themselves (local: "
        "in this command; Slurm: a small promote job queued behind each rung's arrays)",
    )


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    overrides = options.overrides_from_args(args)
    from hepae_core.config import metric_key_problem

    problem = metric_key_problem(args.metric)
    if problem is not None:
        raise GridsearchError(message=problem, key="--metric")
    if args.site is not None:  # nonsense requests refused before any job is promoted
        from gridsearch.submit import check_overrides

        check_overrides(load_profile(args.site, args.sites_dir), overrides)
    if args.all_rungs:
        if args.site is None:
            raise GridsearchError(message="--all-rungs needs --site: the rungs are submitted")
        rungs.check(campaign, backends.get_backend(load_profile(args.site, args.sites_dir)["kind"]))
    report = promote(  # without --keep/--epochs: the space file's halving section
        campaign,
        keep=None if args.keep is None else parse_keep(args.keep),
        epochs=args.epochs,
        metric=args.metric,
        per=args.per,
        site=None if args.dry_run else args.site,
        dry_run=args.dry_run,
        overrides=overrides,
        sites_dir=args.sites_dir,
    )
    code = print_promotion(campaign, args.site, report, args.metric, args.per, args.dry_run)
    if args.all_rungs and report.chosen and not args.dry_run:
        code = max(
            code,
            follow_rungs(
                campaign,
                args.site,
                report.submit,
                overrides,
                args.sites_dir,
                False,
                metric=args.metric,
                per=args.per,
            ),
        )
    return code


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
    """The rungs after a submission (``--all-rungs``, gridsearch/rungs.py): locally each is
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
