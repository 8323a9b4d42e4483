"""``gridsearch adopt DIR SUBMISSION --ids ID[,ID...]``: record scheduler ids the ledger missed.

When the scheduler accepted a submission but its outcome could not be written (a full
disk), ``gridsearch submit`` prints the scheduler ids and this command; until it runs, the
submission's jobs count as in flight and are not submitted again. ``--none`` records that
the scheduler queued nothing, which makes the jobs submittable again.
"""

from __future__ import annotations

import argparse
import re

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


#: A scheduler job id as sbatch and condor_submit print it: a positive 32-bit integer
#: without leading zeros (Slurm and HTCondor ids are), for HTCondor maybe ``.PROC``.
_ID = re.compile(r"^[1-9][0-9]{0,9}(\.[0-9]{1,9})?$")


def check_ids(text: str) -> list[str]:
    """The ids of ``--ids``, checked: each a scheduler id, none twice."""
    ids = [i.strip() for i in text.split(",") if i.strip()]
    bad = [i for i in ids if not _ID.match(i) or int(i.split(".")[0]) >= 2**32]
    if not ids or bad:
        raise GridsearchError(
            message=f"expects the scheduler ids submit printed, such as 1234,1235 (positive, "
            f"no leading zeros, below 2^32), got {bad[0] if bad else text!r}",
            key="--ids",
        )
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise GridsearchError(message=f"names {', '.join(twice)} twice", key="--ids")
    return ids


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    ids = None if args.none else check_ids(args.ids)
    rec = adopt(campaign, args.submission, ids)
    if ids is None:
        print(f"recorded: submission {args.submission} queued nothing; its jobs can be submitted")
    else:
        print(
            f"recorded: submission {args.submission} as {', '.join(ids)} "
            f"({len(rec.get('tasks', {}))} tasks)"
        )
    return 0
