"""``gridsearch promote DIR --keep 1/3 --epochs x3 --site S``: continue the best jobs."""

from __future__ import annotations

import argparse
from pathlib import Path

from gridsearch import backends, options
from gridsearch.campaign import open_campaign
from gridsearch.cli.common import add_all_rungs
from gridsearch.errors import GridsearchError
from gridsearch.halving import parse_keep, rungs
from gridsearch.halving.follow import follow_rungs, print_promotion
from gridsearch.halving.promote import promote
from gridsearch.sites import load_profile


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
