"""The options several commands share: those of ``submit`` and ``resubmit``, and
``--all-rungs`` of ``submit`` and ``promote``. The request options (``--time``,
``--bundle``...) come from the one table, :mod:`gridsearch.options`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gridsearch import options
from gridsearch.selection import SELECTABLE, words
from gridsearch.status import DEFAULT_LOST_AFTER_S
from gridsearch.units import positive_minutes


def add_submit_arguments(p: argparse.ArgumentParser, only_default: str | None) -> None:
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


def add_all_rungs(p: argparse.ArgumentParser) -> None:
    """``--all-rungs``, shared by ``submit`` and ``promote``."""
    p.add_argument(
        "--all-rungs",
        action="store_true",
        help="with the space file's halving: the later rungs follow by themselves (local: "
        "in this command; Slurm: a small promote job queued behind each rung's arrays)",
    )
