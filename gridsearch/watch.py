"""``gridsearch status DIR --watch``: a campaign's progress, refreshed until nothing is in flight.

Each refresh is one :func:`gridsearch.status.campaign_status` (one scheduler query per
backend kind, never one per job) and shows: a campaign progress bar (ended jobs plus the
epoch fraction of running ones), the jobs per state, the epochs of the running jobs and
an ETA. The ETA is rough by design: each running job's seconds per epoch (its
history.csv) times its epochs left, or what is left of the mean wall time of the jobs
that ended (state.json: reading the data and evaluating included) when that is longer;
jobs still queued are counted as taking that mean wall time (or the running jobs'
projected time when longer), run as many at a time as are running now.

On a terminal the block is redrawn in place; otherwise (a log file, a pipe) one plain
line is printed per refresh. It ends when no job is queued, waiting or running (exit 0),
or at Ctrl-C (exit 130).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from gridsearch.campaign import Campaign
from gridsearch.halving import rungs
from gridsearch.status import JobStatus, campaign_status, counts
from gridsearch.text import safe
from hepae_core.contract import HISTORY, JobState

ENDED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)
BAR_WIDTH = 30
MAX_RUNNING_SHOWN = 8


def epoch_seconds(js: JobStatus) -> float | None:
    """Mean seconds per epoch of a job so far (its history.csv), or None."""
    try:
        with open(js.dir / HISTORY, newline="", encoding="utf-8") as f:
            secs = [float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds")]
    except (OSError, ValueError, KeyError):
        return None
    return sum(secs) / len(secs) if secs else None


def speed_text(js: JobStatus) -> str:
    """The speed of the job's last epoch, as ``, N jets/s`` (its own rate, as if alone) and
    `` in a stack of K`` when stacked; empty when its state.json does not tell."""
    try:
        rate, k = float(js.jets_per_s or 0), int(js.stack_size or 1)
    except (TypeError, ValueError):
        return ""
    if not rate > 0:
        return ""
    return f", {rate:,.0f} jets/s" + (f" in a stack of {k}" if k > 1 else "")


def progress(statuses: list[JobStatus]) -> float:
    """Fraction of the campaign done: ended jobs count 1, running ones epoch/epochs."""
    if not statuses:
        return 1.0
    total = 0.0
    for js in statuses:
        if js.state in ENDED:
            total += 1
        elif js.state == JobState.RUNNING and js.epochs:
            total += min(1.0, (js.epoch or 0) / js.epochs)
    return total / len(statuses)


def eta_s(
    statuses: list[JobStatus],
    per_epoch: dict[str, float],
    walls: list[float] | None = None,
    elapsed: dict[str, float] | None = None,
) -> float | None:
    """Seconds until nothing is in flight (see the module docstring), or None.

    ``walls``: wall seconds of jobs of the campaign that ended (start to finish, data
    reading and evaluation included); ``elapsed``: seconds each running job has run. With
    them a job's time counts what its epochs do not (reading the data, evaluating), which
    dominates small jobs; without them only the epochs count.
    """
    walls = [w for w in walls or [] if w > 0]
    elapsed = elapsed or {}
    mean_wall = sum(walls) / len(walls) if walls else None
    running = [js for js in statuses if js.state == JobState.RUNNING]
    waiting = sum(js.state in (JobState.QUEUED, JobState.WAITING) for js in statuses)
    lefts, whole = [], []
    for js in running:
        s = per_epoch.get(js.id)
        if s is None or not js.epochs:
            continue
        left = s * max(0, js.epochs - (js.epoch or 0))
        ran = elapsed.get(js.id)
        if mean_wall is not None and ran is not None:
            left = max(left, mean_wall - ran)  # what is left of a typical job's wall time
        lefts.append(left)
        whole.append(ran + left if ran is not None else s * js.epochs)
    if not lefts:
        if mean_wall is not None and (waiting or running):
            return (math.ceil(waiting / max(1, len(running))) + bool(running)) * mean_wall
        return None if waiting or running else 0.0
    rounds = math.ceil(waiting / max(1, len(running)))
    per_job = sum(whole) / len(whole)
    if mean_wall is not None:
        per_job = max(per_job, mean_wall)
    return max(lefts) + rounds * per_job


def _seconds(start: str | None, end: str | None = None) -> float | None:
    from datetime import datetime

    try:
        t0 = datetime.fromisoformat(str(start))
        t1 = datetime.fromisoformat(str(end)) if end else datetime.now(t0.tzinfo)
    except (TypeError, ValueError):
        return None
    return (t1 - t0).total_seconds()


def timings(statuses: list[JobStatus], limit: int = 50) -> tuple[list[float], dict[str, float]]:
    """(wall seconds of up to ``limit`` done jobs, seconds each running job has run), from
    their state.json's ``started`` and ``finished`` as status read them."""
    done = [js for js in statuses if js.state == JobState.DONE][-limit:]
    walls = [w for js in done if js.started and (w := _seconds(js.started, js.finished))]
    elapsed = {
        js.id: max(0.0, e)
        for js in statuses
        if js.state == JobState.RUNNING and js.started and (e := _seconds(js.started)) is not None
    }
    return walls, elapsed


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render(
    statuses: list[JobStatus],
    per_epoch: dict[str, float],
    walls: list[float] | None = None,
    elapsed: dict[str, float] | None = None,
) -> list[str]:
    """The lines of one refresh."""
    frac = progress(statuses)
    filled = round(frac * BAR_WIDTH)
    per_state = ", ".join(f"{n} {s}" for s, n in counts(statuses).items())
    eta = eta_s(statuses, per_epoch, walls, elapsed)
    lines = [
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {frac:6.1%}  {len(statuses)} jobs: "
        f"{per_state}  ETA {duration(eta)}"
    ]
    running = [js for js in statuses if js.state == JobState.RUNNING]
    for js in running[:MAX_RUNNING_SHOWN]:
        s = per_epoch.get(js.id)
        lines.append(
            f"  {safe(js.name)}: epoch {js.epoch_text or '?'}"
            + (f", {s:.1f} s/epoch" if s else "")
            + speed_text(js)
            + (f", val {js.val_loss:.4g}" if isinstance(js.val_loss, float) else "")
        )
    if len(running) > MAX_RUNNING_SHOWN:
        lines.append(f"  ... and {len(running) - MAX_RUNNING_SHOWN} more running")
    return lines


def watch(
    campaign: Campaign,
    *,
    interval: float = 5.0,
    query: bool = True,
    lost_after_s: float,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_refreshes: int | None = None,
) -> list[JobStatus]:
    """Refresh until nothing is in flight; return the last statuses."""
    out = out or sys.stdout
    tty = out.isatty()
    drawn = 0
    n = 0
    while True:
        statuses = campaign_status(campaign, query=query, lost_after_s=lost_after_s, log_lines=0)
        per_epoch = {
            js.id: s
            for js in statuses
            if js.state == JobState.RUNNING and (s := epoch_seconds(js)) is not None
        }
        lines = render(statuses, per_epoch, *timings(statuses))
        chain = rungs.link_state(campaign, query=query)  # submit --all-rungs: the next rung
        # the next rung's promote job (submit --all-rungs) keeps the watch going while it
        # is queued or running, even in the moment describe() has nothing to say of it
        chain_busy = rungs.in_flight(chain)
        chain_note = rungs.describe(campaign, chain) if chain_busy else None
        if chain_note:
            lines.append(safe(chain_note))
        stamp = time.strftime("%H:%M:%S")
        if tty:
            if drawn:
                out.write(f"\x1b[{drawn}F\x1b[J")  # back to the block's start, clear below
            out.write("\n".join(lines) + "\n")
            drawn = len(lines)
        else:
            out.write(f"{stamp} {lines[0]}\n")
            if chain_note:
                out.write(f"{stamp} {lines[-1]}\n")
        out.flush()
        n += 1
        # Ends when nothing will move by itself: a waiting job nobody queued, or a task the
        # scheduler holds until someone releases it; a queued promote job of the next rung
        # (submit --all-rungs) moves by itself.
        if not chain_busy and not any(js.in_flight and not js.on_hold for js in statuses):
            held = sum(js.on_hold for js in statuses)
            if held:
                out.write(
                    f"{held} job{'s' if held > 1 else ''} held by the scheduler: "
                    f"{'they start' if held > 1 else 'it starts'} only once released "
                    "(gridsearch status says how)\n"
                )
            return statuses
        if max_refreshes is not None and n >= max_refreshes:
            return statuses
        sleep(interval)
