"""``gridsearch promote DIR --keep 1/3 --epochs x3 --site S``: continue the best jobs."""

from __future__ import annotations

import argparse
from pathlib import Path

from gridsearch.bundles import parse_bundle
from gridsearch.campaign import open_campaign
from gridsearch.cmd_submit import print_report
from gridsearch.promote import parse_keep, promote


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
    p.add_argument("--bundle", metavar="K", help="K jobs per task, or auto (see submit)")
    p.add_argument("--time", help="time limit per job")
    p.add_argument("--mem", help="memory per task, e.g. 4G")
    p.add_argument("--cpus", type=int, metavar="N", help="cluster: cores per task")
    p.add_argument("--gpus", type=int, metavar="N", help="cluster: GPUs per task")
    p.add_argument("--partition", help="cluster: Slurm partition")
    p.add_argument("--account", help="cluster: project/account to charge")
    p.add_argument("--workers", type=int, metavar="N", help="local: tasks at a time")
    p.add_argument("--threads", type=int, metavar="N", help="local: CPU threads per task")
    p.add_argument("--sites-dir", action="append", type=Path, default=[], metavar="DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    overrides = {
        "bundle": None if args.bundle is None else parse_bundle(args.bundle),
        "time": args.time,
        "mem": args.mem,
        "cpus": args.cpus,
        "gpus": args.gpus,
        "partition": args.partition,
        "account": args.account,
        "workers": args.workers,
        "threads": args.threads,
    }
    report = promote(  # without --keep/--epochs: the space file's halving section
        campaign,
        keep=None if args.keep is None else parse_keep(args.keep),
        epochs=args.epochs,
        metric=args.metric,
        per=args.per,
        site=None if args.dry_run else args.site,
        dry_run=args.dry_run,
        overrides={k: v for k, v in overrides.items() if v is not None},
        sites_dir=args.sites_dir,
    )
    left = ", ".join(f"{n} {why}" for why, n in report.skipped.items())
    if not report.chosen:
        print(f"nothing to promote: no done job with a finite {args.metric} ({left or 'none'})")
        return 0
    what = "would promote" if args.dry_run else "promoted"
    print(
        f"{what} {len(report.chosen)} of {report.ranked} ranked jobs by {args.metric}"
        + (f" per {args.per}" if args.per else "")
        + (f" (not ranked: {left})" if left else "")
    )
    for p in report.chosen:
        group = f" [{args.per}={p.group}]" if args.per else ""
        print(
            f"  {p.js.name}{group}: {args.metric} {p.value:.4g}, rank {p.rank}/{p.of}, "
            f"epochs {p.from_epochs} -> {p.epochs}, rung {p.rung}"
        )
    if args.dry_run:
        return 0
    if args.site is None:
        print("not submitted (no --site): 'gridsearch resubmit DIR --site S' runs them")
        return 0
    return print_report(campaign, args.site, report.submit)
