"""Which jobs a submission takes: by state, never one the scheduler still holds.

``gridsearch submit`` takes the planned jobs; ``gridsearch resubmit`` the ones that ended
without finishing (failed, interrupted, lost, cancelled); ``--only`` names exactly the
states to take. Jobs the scheduler still holds (queued, requeued, running, or named by a
submission whose ids were never recorded) and done jobs are never taken without ``force``,
whatever ``--only`` says: two tasks on one job dir waste a slot at best.
:func:`recovery_hints` is the same rule said to the user: the one command that reruns
what ended unfinished (``gridsearch status`` prints it).
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable

from gridsearch.campaign import parse_time
from gridsearch.errors import GridsearchError
from gridsearch.status import JobStatus, counts
from hepae_core.contract import JobState

#: States ``--only`` accepts (older words too: submitted, pending -> queued; stale -> lost).
SELECTABLE = (
    JobState.PLANNED,
    JobState.WAITING,
    JobState.FAILED,
    JobState.INTERRUPTED,
    JobState.LOST,
    JobState.CANCELLED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.DONE,
)
#: In flight or finished: taken only with ``force``.
NEEDS_FORCE = (JobState.QUEUED, JobState.RUNNING, JobState.DONE)
#: What ``gridsearch resubmit`` takes by default.
RESUBMIT_DEFAULT = (
    JobState.FAILED,
    JobState.INTERRUPTED,
    JobState.LOST,
    JobState.CANCELLED,
    JobState.WAITING,
)
#: What ``gridsearch submit`` takes by default: never started (a waiting one once its
#: dependencies are done, in flight, or submitted with it).
SUBMIT_DEFAULT = (JobState.PLANNED, JobState.WAITING)


def words(states: Iterable[JobState]) -> str:
    """``failed,interrupted``: states as ``--only`` takes them."""
    return ",".join(s.word for s in states)


def parse_only(text: str | Iterable[str] | None) -> set[JobState] | None:
    """``failed,interrupted`` -> {FAILED, INTERRUPTED}; refuse unknown state names."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip() for s in items if str(s).strip()]
    states, bad = set(), []
    for name in names:
        try:
            state = JobState.from_word(name)
        except ValueError:
            bad.append(name)
            continue
        if state in SELECTABLE:
            states.add(state)
        else:
            bad.append(name)
    if bad or not states:
        raise GridsearchError(
            message=f"unknown state(s) {', '.join(bad) or '(none)'}; use a comma-separated list "
            "of " + ", ".join(s.word for s in SELECTABLE),
            key="--only",
        )
    return states


def select_jobs(
    statuses: list[JobStatus],
    only: set[JobState] | None = None,
    force: bool = False,
    intended: dict[str, tuple[str, float]] | None = None,
    out_of_date: bool = False,
) -> tuple[list[JobStatus], dict[str, int]]:
    """The jobs to submit, and how many of each state were left alone.

    Refuses (unless ``force``) to take queued, running or done jobs, and to take any job
    whose scheduler could not be asked whether it still holds it. ``intended`` (job id ->
    (submission, time) of submissions without an outcome, from
    :meth:`Campaign.intended_jobs`) is a second guard: status already calls such jobs
    queued, unless they wrote a state after that submission.

    In a staged campaign a waiting job is taken only when each job it waits for is done,
    in flight, or taken too (before it: the stages are in order), and never while the
    scheduler holds it. ``out_of_date`` also takes the done jobs whose stage-1 jobs changed
    since they picked (their outputs are moved aside as for a forced done job).
    """
    wanted = only if only is not None else set(SUBMIT_DEFAULT)
    blocked = [s.word for s in NEEDS_FORCE if s in wanted] if not force else []
    if blocked:
        raise GridsearchError(
            message=f"{', '.join(blocked)} jobs are in flight or finished and are not "
            "submitted again; add --force if you really mean it",
            key="--only",
        )
    chosen: list[JobStatus] = []
    skipped: dict[str, int] = {}
    intended = intended or {}
    by_id = {js.id: js for js in statuses}
    taken: set[str] = set()
    for js in statuses:
        if not force and _in_intended(js, intended):
            key = f"in submission {intended[js.id][0]} (not confirmed: see 'gridsearch adopt')"
            skipped[key] = skipped.get(key, 0) + 1
        elif js.held and not force:
            skipped["waiting (queued behind its stage)"] = (
                skipped.get("waiting (queued behind its stage)", 0) + 1
            )
        elif js.in_space and (
            js.state in wanted or (out_of_date and js.state == JobState.DONE and js.out_of_date)
        ):
            if js.after and not force and not _deps_ready(js, by_id, taken):
                key = "waiting on stage-1 jobs that ended unfinished (resubmit those first)"
                skipped[key] = skipped.get(key, 0) + 1
                continue
            chosen.append(js)
            taken.add(js.id)
        else:
            key = js.state.word if js.in_space else "not in space"
            skipped[key] = skipped.get(key, 0) + 1
    unasked = [js for js in chosen if js.asked is False]
    if unasked and not force:
        raise GridsearchError(
            message=f"{len(unasked)} of the jobs to submit (e.g. {unasked[0].name}) may still "
            f"be held by {unasked[0].kind}, which could not be asked ({unasked[0].reason}); "
            "try again when it answers, or add --force",
        )
    return chosen, skipped


def _deps_ready(js: JobStatus, by_id: dict[str, JobStatus], taken: set[str]) -> bool:
    """Whether every job ``js`` waits for is done, in flight, or taken in this submission."""
    for dep_id in js.after:
        dep = by_id.get(dep_id)
        if dep is None:
            return False
        if dep.id in taken or dep.state == JobState.DONE or dep.in_flight:
            continue
        return False
    return True


def _in_intended(js: JobStatus, intended: dict[str, tuple[str, float]]) -> bool:
    """True when ``js`` may be held by an intended submission: nothing it wrote is newer."""
    if js.id not in intended:
        return False
    updated = parse_time(js.updated)
    return updated is None or updated < intended[js.id][1]


def recovery_hints(
    statuses: list[JobStatus], root: str, options_for: Callable[[str], str] | None = None
) -> list[str]:
    """The one command that reruns the jobs that ended unfinished, and notes for the rest.

    ``options_for(site)``: the submit options ``resubmit`` reuses at that site (shown, so
    the hint says what will run)."""
    lines = []
    rerun = [
        js
        for js in statuses
        if js.in_space and js.state in RESUBMIT_DEFAULT and js.state != JobState.WAITING
    ]
    if rerun:
        sites = Counter(js.site for js in rerun if js.site)
        site = sites.most_common(1)[0][0] if sites else "SITE"
        what = ", ".join(f"{n} {s}" for s, n in counts(rerun).items())
        reused = options_for(site) if options_for is not None and sites else ""
        lines.append(
            f"to rerun the {what} job{'s' if len(rerun) > 1 else ''} (interrupted and lost "
            f"ones resume from their checkpoints): gridsearch resubmit {shlex.quote(root)} "
            f"--site {shlex.quote(site)}"
            + (f" (reuses {reused} of the last submission)" if reused else "")
        )
        bad = [js for js in rerun if js.error_kind == "bad_input"]
        if bad:
            lines.append(
                f"  {len(bad)} of them failed on bad input (e.g. {bad[0].name}): they fail again "
                "until the input is fixed; see 'gridsearch status --failed'"
            )
    on_hold = [js for js in statuses if js.on_hold]
    if on_hold:
        lines.append(
            f"{len(on_hold)} queued job(s) are held by the scheduler and start only once "
            f"released (e.g. {on_hold[0].name}: {on_hold[0].reason}); resubmit leaves them alone"
        )
    stale = [js for js in statuses if js.in_space and js.out_of_date]
    if stale:
        sites = Counter(js.site for js in stale if js.site) or Counter(
            js.site for js in statuses if js.site
        )
        site = (
            f"--site {shlex.quote(sites.most_common(1)[0][0])}"
            if sites
            else "--site <the site you submit to>"
        )
        lines.append(
            f"{len(stale)} done job(s) are out of date (a stage-1 job they picked from changed; "
            f"e.g. {stale[0].name}: {stale[0].out_of_date}); to rerun them: gridsearch "
            f"resubmit {shlex.quote(root)} --out-of-date {site}"
        )
    intended = sorted(
        {
            js.submission
            for js in statuses
            if js.state == JobState.QUEUED and js.outcome == "intended" and js.submission
        }
    )
    for sub in intended:
        lines.append(
            f"submission {sub} has no scheduler ids recorded, so its jobs count as queued: "
            f"'gridsearch adopt {shlex.quote(root)} {sub} --ids ID[,ID...]' records the ids "
            "it printed, or '--none' if the scheduler holds nothing of it"
        )
    unasked = [js for js in statuses if js.asked is False]
    if unasked:
        lines.append(
            f"the scheduler could not be asked about {len(unasked)} job(s); their states come "
            "from the job dirs alone"
        )
    return lines
