"""``gridsearch resubmit [DIR] --site SITE``: rerun every job that ended unfinished.

The same as ``gridsearch submit --only failed,interrupted,lost,cancelled``: interrupted and
lost jobs resume from their checkpoints. A job the scheduler still holds (queued, requeued
after a preemption or a node failure, running, or named by a submission whose ids were not
recorded) is never submitted again, whatever ``--only`` says, unless ``--force``. Repeat it
until status shows nothing left to rerun.

The submit options of the campaign's last submission to the site (``--bundle``, ``--time``,
``--mem``, ``--cpus``... as recorded in the ledger) are reused unless given again, so a
bundled campaign stays bundled.
"""

from __future__ import annotations

import argparse

from gridsearch.cli import submit as cmd_submit
from gridsearch.cli.common import add_submit_arguments
from gridsearch.selection import RESUBMIT_DEFAULT, words


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "resubmit",
        help="rerun the failed, interrupted, lost and cancelled jobs (they resume from "
        "checkpoints)",
        description="Like 'submit --only " + words(RESUBMIT_DEFAULT) + "': exactly those jobs. "
        "Jobs the scheduler still holds (queued, requeued, running) are never submitted "
        "again without --force. Use --only to choose other states.",
    )
    add_submit_arguments(p, words(RESUBMIT_DEFAULT))
    # --bundle, --time, --mem... of the campaign's last submission to the site are reused
    p.set_defaults(func=cmd_submit.run, reuse_options=True)
