"""``gridsearch clean [DIR] --FLAG...``: remove only what a flag names, after confirmation."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridsearch.campaign import SUBMIT, SUMMARY, open_campaign, write_manifest
from gridsearch.errors import GridsearchError
from gridsearch.status import HELD, campaign_status
from hepae_core.jobdir import CHECKPOINT, CONFIG
from hepae_core.states import JobState


@dataclass
class Removal:
    what: str
    path: Path


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


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(base, f))
    return total


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def run(args: argparse.Namespace, confirm: Callable[[str], bool] | None = None) -> int:
    flags = ("checkpoints", "submit_files", "summary", "failed", "not_in_space")
    if not any(getattr(args, f) for f in flags):
        raise GridsearchError(
            message="name what to remove: --checkpoints, --submit-files, --summary, --failed or "
            "--not-in-space"
        )
    campaign = open_campaign(args.campaign)
    with campaign.lock("clean", wait_s=5.0):
        statuses = campaign_status(campaign, log_lines=0)
        removals: list[Removal] = []
        gone_ids: set[str] = set()
        for js in statuses:
            if args.checkpoints and js.state == JobState.DONE and (js.dir / CHECKPOINT).exists():
                removals.append(Removal("checkpoint", js.dir / CHECKPOINT))
            if args.failed and js.state == JobState.FAILED:
                for name in sorted(os.listdir(js.dir)):
                    if name != CONFIG:
                        removals.append(Removal("output files of failed jobs", js.dir / name))
            if args.not_in_space and not js.in_space:
                if js.state in HELD:
                    print(f"keeping {js.id}: it is {js.state}", file=sys.stderr)
                    continue
                removals.append(Removal("job not in the space", js.dir))
                gone_ids.add(js.id)
        if args.submit_files and (campaign.root / SUBMIT).is_dir():
            for entry in sorted((campaign.root / SUBMIT).iterdir()):
                removals.append(Removal("submission files", entry))
        if args.summary and (campaign.root / SUMMARY).exists():
            removals.append(Removal("summary", campaign.root / SUMMARY))
        removals = [r for r in removals if r.path.exists()]
        if not removals:
            print("nothing to remove")
            return 0
        kinds: dict[str, int] = {}
        for r in removals:
            kinds[r.what] = kinds.get(r.what, 0) + 1
        size = sum(_size(r.path) for r in removals)
        listing = ", ".join(f"{n} {k}" for k, n in kinds.items())
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
        for r in removals:
            if r.path.is_dir() and not r.path.is_symlink():
                shutil.rmtree(r.path)
            else:
                r.path.unlink()
        if gone_ids:
            manifest = campaign.manifest()
            manifest["jobs"] = [j for j in manifest["jobs"] if j.get("id") not in gone_ids]
            write_manifest(campaign.root, manifest)
        print(f"removed {listing} ({_human(size)})")
    return 0
