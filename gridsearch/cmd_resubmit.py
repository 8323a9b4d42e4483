"""``gridsearch resubmit [DIR] --site SITE``: submit the failed and interrupted jobs again.

The same as ``gridsearch submit --only failed,interrupted``; interrupted jobs resume from
their checkpoint.
"""

from __future__ import annotations

import argparse

from gridsearch import cmd_submit
from gridsearch.submit import RESUBMIT_DEFAULT


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "resubmit",
        help="submit the failed and interrupted jobs again (they resume from checkpoints)",
        description="Like 'submit --only failed,interrupted': exactly those jobs, nothing "
        "else. Use --only to choose other states (e.g. failed,interrupted,stale).",
    )
    cmd_submit.add_arguments(p, ",".join(RESUBMIT_DEFAULT))
    p.set_defaults(func=cmd_submit.run)
