"""``gridsearch clean [DIR] --FLAG...``: remove only what a flag names, after confirmation.

What is removed is decided in :mod:`gridsearch.clean`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gridsearch.campaign import open_campaign
from gridsearch.clean import FLAGS, plan_removals, remove
from gridsearch.errors import GridsearchError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean",
        help="remove files a flag names (checkpoints, submit files...), after confirmation",
        description="Removes only what the flags name, never a running or queued job.",
    )
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument("--checkpoints", action="store_true", help="checkpoint.pt of done jobs")
    p.add_argument(
        "--submit-files", action="store_true", help="rendered files and logs under submit/"
    )
    p.add_argument("--summary", action="store_true", help="the summary/ directory")
    p.add_argument(
        "--failed",
        action="store_true",
        help="the outputs of failed jobs (all but config.yaml): they become planned again",
    )
    p.add_argument(
        "--not-in-space",
        action="store_true",
        help="job dirs no longer in the space (and their manifest entries)",
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def run(args: argparse.Namespace, confirm: Callable[[str], bool] | None = None) -> int:
    flags = {f for f in FLAGS if getattr(args, f)}
    if not flags:
        raise GridsearchError(
            message="name what to remove: --checkpoints, --submit-files, --summary, --failed or "
            "--not-in-space"
        )
    campaign = open_campaign(args.campaign)
    with campaign.lock("clean", wait_s=5.0):
        plan = plan_removals(campaign, flags)
        for note in plan.kept:
            print(note, file=sys.stderr)
        if not plan.removals:
            print("nothing to remove")
            return 0
        size = plan.size()
        listing = ", ".join(f"{n} {k}" for k, n in plan.kinds().items())
        question = f"remove {listing} ({_human(size)}) from {campaign.root}? [y/N] "
        if not args.yes:
            if confirm is None:
                if not sys.stdin.isatty():
                    raise GridsearchError(
                        message="asks for confirmation; pass --yes to run unattended"
                    )
                confirm = lambda q: input(q).strip().lower() in ("y", "yes")  # noqa: E731
            if not confirm(question):
                print("nothing removed")
                return 1
        remove(campaign, plan)
        print(f"removed {listing} ({_human(size)})")
    return 0
