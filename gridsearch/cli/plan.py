"""``gridsearch plan space.yaml [-o DIR] [--dry-run]``: make or update a campaign."""

from __future__ import annotations

import argparse
import sys

from gridsearch.plan import DEFAULT_MAX_POINTS, PlanReport, plan
from gridsearch.table import table
from gridsearch.text import safe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="expand a space file into a campaign directory (one job dir per point)",
        description="Validate every point of SPACE as a job config, then write the campaign "
        "directory: a copy of the space, manifest.json and jobs/<id>/config.yaml. Planning "
        "again is idempotent and reports what changed; it never deletes a job nor touches "
        "one that started.",
    )
    p.add_argument("space", help="the space YAML file")
    p.add_argument("-o", "--output", metavar="DIR", help="campaign directory (default: ./NAME)")
    p.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    p.add_argument("--yes", action="store_true", help="allow more points than --max-points")
    p.add_argument(
        "--max-points",
        type=int,
        default=DEFAULT_MAX_POINTS,
        metavar="N",
        help=f"more points than this need --yes (default {DEFAULT_MAX_POINTS})",
    )
    p.add_argument("--table", action="store_true", help="print the table of jobs as well")
    p.set_defaults(func=run)


def _table(report: PlanReport) -> str:
    added = set(report.added)
    keys = report.space.keys
    staged = bool(report.space.stages)
    rows = [
        [j.index, j.id, safe(j.name), "new" if j.id in added else "planned"]
        + ([safe(j.stage)] if staged else [])
        + [safe(j.params[k]) if k in j.params else "" for k in keys]
        for j in report.jobs
    ]
    head = ["#", "id", "name", "plan", *(["stage"] if staged else []), *(safe(k) for k in keys)]
    return table(head, rows)


def run(args: argparse.Namespace) -> int:
    report = plan(
        args.space,
        args.output,
        dry_run=args.dry_run,
        yes=args.yes,
        max_points=args.max_points,
    )
    for warning in report.warnings:
        print(f"warning: {safe(warning)}", file=sys.stderr)
    if args.dry_run or args.table:
        print(_table(report))
    verb = "would plan" if report.dry_run else "planned"
    what = "new campaign" if report.new_campaign else "campaign"
    print(
        f"{verb} {len(report.jobs)} points of '{safe(report.space.name)}' in {what} "
        f"{safe(report.root)}: "
        f"{len(report.added)} added, {len(report.unchanged)} unchanged, "
        f"{len(report.gone)} no longer in the space (kept, flagged)"
    )
    for stage in report.space.stages:
        n = sum(1 for j in report.jobs if j.stage == stage.name)
        after = ""
        if stage.after and stage.pick == "each":
            after = f", one per job of stage '{stage.after}', each starting when that one ended"
        elif stage.after:
            after = (
                f", each picks the best finished job of stage '{stage.after}' by {stage.by} "
                "when it starts"
            )
        print(f"  stage {safe(stage.name)}: {n} jobs{after}")
    if report.renamed:
        print(f"{len(report.renamed)} readable names changed (ids did not)")
    if report.returning:
        print(f"{len(report.returning)} jobs are back in the space")
    if report.dry_run:
        print("dry run: nothing written")
    return 0
