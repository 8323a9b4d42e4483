"""``gridsearch submit [DIR] --site SITE``: submit a campaign's jobs (local: run them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridsearch import options
from gridsearch.backends import get_backend
from gridsearch.campaign import open_campaign
from gridsearch.selection import SELECTABLE, words
from gridsearch.status import DEFAULT_LOST_AFTER_S
from gridsearch.submit import parse_only, submit
from gridsearch.submit_report import print_report
from gridsearch.units import positive_minutes


def add_arguments(p: argparse.ArgumentParser, only_default: str | None) -> None:
    """The options ``submit`` and ``resubmit`` share."""
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument("--site", required=True, help="site profile: local, slurm, kebnekaise, ...")
    p.add_argument("--dry-run", action="store_true", help="render the files, submit nothing")
    p.add_argument(
        "--only",
        default=only_default,
        metavar="STATES",
        help="exactly the jobs in these states, comma-separated: "
        + words(SELECTABLE).replace(",", ", ")
        + f" (default: {only_default or 'planned'}); jobs the scheduler still holds are "
        "never taken without --force",
    )
    p.add_argument(
        "--force", action="store_true", help="allow queued, running and done jobs in --only"
    )
    p.add_argument(
        "--out-of-date",
        action="store_true",
        help="also rerun done jobs that are out of date: a stage-1 job they picked from "
        "finished again since (their outputs are moved to previous/)",
    )
    p.add_argument(
        "--lost-after",
        type=positive_minutes,
        default=DEFAULT_LOST_AFTER_S / 60,
        metavar="MIN",
        help="where the scheduler cannot tell, a running job silent this long is lost "
        "(default %(default)g minutes)",
    )
    options.add_arguments(p)
    p.add_argument(
        "--sites-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also look for site profiles here (repeatable)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit the campaign's planned jobs to a site (local: run them here)",
        description="Submit jobs to the site's scheduler and record the submission in "
        "ledger.jsonl. By default the planned jobs; --only picks exactly the given states. "
        "Jobs queued, running or done are never submitted again unless --force.",
    )
    add_arguments(p, None)
    from gridsearch.cmd_promote import add_all_rungs

    add_all_rungs(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    overrides = options.overrides_from_args(args)
    if getattr(args, "reuse_options", False):  # resubmit: as the campaign was submitted
        from gridsearch.submit import format_options, remembered_options

        remembered, source = remembered_options(campaign, args.site)
        reused = {k: v for k, v in remembered.items() if k not in overrides}
        if reused:
            print(
                f"note: reusing {format_options(reused)} of submission {source} "
                "(give the option to change it)"
            )
        overrides = {**reused, **overrides}
    all_rungs = getattr(args, "all_rungs", False)  # submit has it, resubmit not
    if all_rungs:  # refused before anything is queued
        from gridsearch import rungs
        from gridsearch.sites import load_profile

        rungs.check(campaign, get_backend(load_profile(args.site, args.sites_dir)["kind"]))
    try:
        report = submit(
            campaign,
            args.site,
            only=parse_only(args.only),
            force=args.force,
            dry_run=args.dry_run,
            overrides=overrides,
            sites_dir=args.sites_dir,
            lost_after_s=args.lost_after * 60,
            out_of_date=args.out_of_date,
        )
    except KeyboardInterrupt:
        print(
            "\nrunning jobs were asked to checkpoint; "
            "'gridsearch resubmit --site ...' resumes them",
            file=sys.stderr,
        )
        raise
    code = print_report(campaign, args.site, report, args.dry_run)
    if all_rungs and report.selected:
        from gridsearch.cmd_promote import follow_rungs

        code = max(
            code,
            follow_rungs(campaign, args.site, report, overrides, args.sites_dir, args.dry_run),
        )
    return code
