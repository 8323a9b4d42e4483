"""``gridsearch adopt DIR SUBMISSION --ids ID[,ID...]``: record scheduler ids the ledger missed.

When the scheduler accepted a submission but its outcome could not be written (a full
disk), ``gridsearch submit`` prints the scheduler ids and this command; until it runs, the
submission's jobs count as in flight and are not submitted again. ``--none`` records that
the scheduler queued nothing, which makes the jobs submittable again.
"""

from __future__ import annotations

import argparse

from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.submit import adopt


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "adopt",
        help="record the scheduler ids of a submission whose ledger record is incomplete",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("campaign", help="campaign directory")
    p.add_argument("submission", help="the submission id (e.g. 20261124-051200-slurm-1a2b)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--ids", metavar="ID[,ID...]", help="the scheduler ids submit printed, in its order"
    )
    group.add_argument(
        "--none", action="store_true", help="the scheduler queued nothing (checked with squeue)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    ids = None if args.none else [i.strip() for i in args.ids.split(",") if i.strip()]
    if ids is not None and (not ids or not all(i.replace(".", "").isdigit() for i in ids)):
        raise GridsearchError(message=f"expects scheduler ids such as 1234,1235, got {args.ids!r}",
                              key="--ids")  # fmt: skip
    rec = adopt(campaign, args.submission, ids)
    if ids is None:
        print(f"recorded: submission {args.submission} queued nothing; its jobs can be submitted")
    else:
        print(
            f"recorded: submission {args.submission} as {', '.join(ids)} "
            f"({len(rec.get('tasks', {}))} tasks)"
        )
    return 0
