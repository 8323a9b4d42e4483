"""``gridsearch submit [DIR] --site SITE``: submit a campaign's jobs (local: run them)."""

from __future__ import annotations

import argparse
import sys

from gridsearch import options
from gridsearch.backends import get_backend
from gridsearch.campaign import open_campaign
from gridsearch.cli.common import add_all_rungs, add_submit_arguments
from gridsearch.submit import parse_only, submit
from gridsearch.submit_report import print_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit the campaign's planned jobs to a site (local: run them here)",
        description="Submit jobs to the site's scheduler and record the submission in "
        "ledger.jsonl. By default the planned jobs; --only picks exactly the given states. "
        "Jobs queued, running or done are never submitted again unless --force.",
    )
    add_submit_arguments(p, None)
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
        from gridsearch.halving import rungs
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
        from gridsearch.halving.follow import follow_rungs

        code = max(
            code,
            follow_rungs(campaign, args.site, report, overrides, args.sites_dir, args.dry_run),
        )
    return code
