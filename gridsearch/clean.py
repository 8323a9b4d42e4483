"""What ``gridsearch clean`` removes: decided from the campaign's layout and job states.

:func:`plan_removals` lists what the flags name and never a file a job in flight needs
(a running or queued job's dir, the submission files its task still reads);
:func:`remove` deletes the list and drops removed jobs from the manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gridsearch.campaign import SUMMARY, Campaign, write_manifest
from gridsearch.status import HELD, campaign_status
from hepae_core.contract import JobState
from hepae_core.jobdir import CHECKPOINT, CONFIG

FLAGS = ("checkpoints", "submit_files", "summary", "failed", "not_in_space")
_IN_FLIGHT = (*HELD, JobState.LOST)  # lost: kept until status is sure, like in flight


@dataclass
class Removal:
    what: str
    path: Path


@dataclass
class CleanPlan:
    """The removals, the job ids whose dirs go (dropped from the manifest), and notes."""

    removals: list[Removal] = field(default_factory=list)
    gone_ids: set[str] = field(default_factory=set)
    kept: list[str] = field(default_factory=list)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.removals:
            out[r.what] = out.get(r.what, 0) + 1
        return out

    def size(self) -> int:
        return sum(size_of(r.path) for r in self.removals)


def size_of(path: Path) -> int:
    """Bytes under ``path`` (a file or a tree)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(base, f))
    return total


def plan_removals(campaign: Campaign, flags: set[str]) -> CleanPlan:
    """What the ``flags`` (names of :data:`FLAGS`) remove now."""
    statuses = campaign_status(campaign, log_lines=0)
    plan = CleanPlan()
    busy_submissions = {js.submission for js in statuses if js.state in _IN_FLIGHT}
    busy_submissions |= {sub for sub, _ in campaign.intended_jobs().values()}
    for js in statuses:
        if "checkpoints" in flags and js.state == JobState.DONE and (js.dir / CHECKPOINT).exists():
            plan.removals.append(Removal("checkpoint", js.dir / CHECKPOINT))
        if "failed" in flags and js.state == JobState.FAILED:
            for name in sorted(os.listdir(js.dir)):
                if name != CONFIG:
                    plan.removals.append(Removal("output files of failed jobs", js.dir / name))
        if "not_in_space" in flags and not js.in_space:
            if js.state in _IN_FLIGHT:
                plan.kept.append(f"keeping {js.id}: it is {js.state}")
                continue
            plan.removals.append(Removal("job not in the space", js.dir))
            plan.gone_ids.add(js.id)
    if "submit_files" in flags and campaign.submit_root.is_dir():
        for entry in sorted(campaign.submit_root.iterdir()):
            if entry.name in busy_submissions:
                # its queued or running tasks still read jobs.txt and the scripts
                plan.kept.append(f"keeping submit/{entry.name}: its jobs are in flight")
                continue
            plan.removals.append(Removal("submission files", entry))
    if "summary" in flags and (campaign.root / SUMMARY).exists():
        plan.removals.append(Removal("summary", campaign.root / SUMMARY))
    plan.removals = [r for r in plan.removals if r.path.exists()]
    return plan


def remove(campaign: Campaign, plan: CleanPlan) -> None:
    """Delete what ``plan`` lists; drop removed jobs from the manifest (atomically)."""
    for r in plan.removals:
        if r.path.is_dir() and not r.path.is_symlink():
            shutil.rmtree(r.path)
        else:
            r.path.unlink()
    if plan.gone_ids:
        manifest = campaign.manifest()
        manifest["jobs"] = [j for j in manifest["jobs"] if j.get("id") not in plan.gone_ids]
        write_manifest(campaign.root, manifest)
