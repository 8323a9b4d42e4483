"""What a submission did, as ``submit``, ``resubmit`` and ``promote`` print it."""

from __future__ import annotations

from gridsearch.backends import get_backend
from gridsearch.backends.base import format_command
from gridsearch.status import counts
from hepae_core.contract import JobState


def print_report(campaign, site: str, report, dry_run: bool = False) -> int:
    """What a submission did, for ``submit``, ``resubmit`` and ``promote``; the exit code.

    For a backend that blocks until its jobs end (local), 1 unless every job ended done.
    A staged campaign's stages are reported one by one.
    """
    left = ", ".join(f"{n} {s}" for s, n in report.skipped.items()) or "none"
    for note in report.notes:
        print(f"note: {note}")
    if not report.selected:
        print(f"nothing to submit (jobs left alone: {left}); see 'gridsearch status'")
        return 0
    parts = report.parts or [report]
    rec = report.record or {}
    blocking = get_backend(str(rec.get("kind"))).blocking
    for part in parts:
        _print_part(campaign, site, part, dry_run, blocking)
    unconfirmed = {k: n for k, n in report.skipped.items() if k.startswith("in submission")}
    for key, n in unconfirmed.items():
        print(f"left alone: {n} {key}")
    waiting = {k: n for k, n in report.skipped.items() if k.startswith("waiting")}
    for key, n in waiting.items():
        print(f"left alone: {n} {key}")
    if blocking and not dry_run:
        from gridsearch.status import campaign_status

        ids = {js.id for js in report.selected}
        done = [js for js in campaign_status(campaign, query=False) if js.id in ids]
        summary = ", ".join(f"{n} {s}" for s, n in counts(done).items())
        print(f"local run ended: {summary}")
        return 0 if all(js.state == JobState.DONE for js in done) else 1
    return 0


def _print_part(campaign, site: str, part, dry_run: bool, blocking: bool) -> None:
    rec = part.record or {}
    sub = part.submission
    what = "would submit" if dry_run else "submitted"
    stage = f"stage '{part.stage}': " if part.stage else ""
    if blocking and not dry_run and sub is not None and sub.scheduler_ids:
        return  # a local run said "submitted ... as <id>" before its jobs ran
    print(
        f"{stage}{what} {len(part.selected)} jobs to {site} ({rec.get('kind')}) as "
        f"{rec.get('submission')}; files in {campaign.root / rec.get('dir', '')}"
    )
    for note in sub.notes if sub is not None and not blocking else []:
        print(f"note: {note}")
    if rec.get("command") and not blocking:
        print("command: " + format_command(rec["command"]))
    if rec.get("scheduler_ids") and not dry_run and not blocking:
        print("scheduler ids: " + ", ".join(rec["scheduler_ids"]))
