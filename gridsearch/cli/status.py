"""``gridsearch status [DIR] [--json] [--failed]``: what every job of a campaign is doing."""

from __future__ import annotations

import argparse
import json
import sys

from gridsearch.campaign import lock_holder, open_campaign
from gridsearch.selection import recovery_hints
from gridsearch.status import DEFAULT_LOST_AFTER_S, JobStatus, campaign_status, counts
from gridsearch.table import table
from gridsearch.text import safe
from gridsearch.units import non_negative_int, positive_minutes, positive_seconds
from hepae_core.contract import JobState


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="counts and a table of the campaign's jobs, from their job-dir files",
        description="Decide each job's state from its directory (state.json, heartbeat, "
        "lock), asking the scheduler only about jobs it may still hold.",
    )
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--failed", action="store_true", help="only failed and lost jobs, with log lines"
    )
    p.add_argument(
        "--state",
        type=_state_word,
        action="append",
        metavar="STATE",
        help="only jobs in this state (repeatable): " + ", ".join(s.word for s in JobState),
    )
    p.add_argument("--counts", action="store_true", help="only the counts")
    p.add_argument(
        "--lost-after",
        type=positive_minutes,
        default=DEFAULT_LOST_AFTER_S / 60,
        metavar="MIN",
        help="without a scheduler answer, a running job silent this long is lost "
        "(default %(default)g minutes)",
    )
    p.add_argument("--no-query", action="store_true", help="never ask the scheduler")
    p.add_argument(
        "--lines", type=non_negative_int, default=5, help="log lines shown per failed job"
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="refresh (in place on a terminal) until no job is queued or running",
    )
    p.add_argument(
        "--interval",
        type=positive_seconds,
        default=5.0,
        metavar="S",
        help="--watch: seconds per refresh",
    )
    p.set_defaults(func=run)


def _state_word(text: str) -> JobState:
    try:
        return JobState.from_word(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _info(js: JobStatus) -> str:
    if js.out_of_date:
        return js.out_of_date
    if js.state == JobState.QUEUED and not js.reason:
        return js.scheduler_state or js.submission or ""
    return js.reason or ""


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    if args.watch:
        from gridsearch.watch import watch

        if args.interval <= 0:
            print("error: --interval: must be above zero seconds", file=sys.stderr)
            return 2
        try:
            watch(
                campaign,
                interval=args.interval,
                query=not args.no_query,
                lost_after_s=args.lost_after * 60,
            )
        except KeyboardInterrupt:
            return 130
    statuses = campaign_status(
        campaign,
        query=not args.no_query,
        lost_after_s=args.lost_after * 60,
        metrics=args.json,
        log_lines=args.lines,
    )
    from gridsearch.halving import rungs as R
    from gridsearch.halving.promote import rung_of

    rungs = {js.id: rung_of(js.dir) for js in statuses}  # promotion.json; 0: never promoted
    link = R.link_state(campaign, query=not args.no_query)  # --all-rungs: the promote job
    wanted = set(args.state or [])
    if args.failed:
        wanted |= {JobState.FAILED, JobState.LOST}
    shown = [js for js in statuses if not wanted or js.state in wanted]
    total = counts(statuses)
    if args.json:
        print(
            json.dumps(
                {
                    "campaign": str(campaign.root),
                    "counts": total,
                    "jobs": [{**js.to_dict(), "rung": rungs[js.id]} for js in shown],
                    "rung_chain": None
                    if link is None
                    else {
                        **link[0],
                        "state": None if link[1] is None else link[1].state,
                        "in_flight": R.in_flight(link),
                        "info": R.describe(campaign, link, statuses),
                    },
                },
                indent=1,
            )
        )
        return 0
    holder = lock_holder(campaign.root)
    if holder:
        print(f"note: {safe(holder)} holds the campaign lock")
    if not args.counts and shown:
        _print_table(shown, rungs, args.failed)
    summary = ", ".join(f"{n} {s}" for s, n in total.items())
    print(f"{len(statuses)} jobs: {summary}")
    from gridsearch.submit import format_options, remembered_options

    def options_for(site: str) -> str:
        return format_options(remembered_options(campaign, site)[0])

    for line in recovery_hints(statuses, str(campaign.root), options_for):
        print(safe(line))
    chain = R.describe(campaign, link, statuses)
    if chain:
        print(safe(chain))
    return 0


def _print_table(shown: list[JobStatus], rungs: dict[str, int], failed: bool) -> None:
    """The jobs' table (a rung column when any job was promoted); with ``failed`` the end
    of each shown job's log."""
    rows = [
        [
            js.index,
            js.id,
            js.name,
            js.state.word
            + ("" if js.in_space else " (not in space)")
            + (" (out of date)" if js.out_of_date else ""),
            js.epoch_text,
            js.train_loss,
            js.val_loss,
            _info(js),
        ]
        for js in shown
    ]
    head = ["#", "id", "name", "state", "epoch", "train", "val", "info"]
    if any(rungs.values()):  # successive halving: the rung after the epochs
        head.insert(5, "rung")
        for row, js in zip(rows, shown, strict=True):
            row.insert(5, rungs[js.id])
    print(table(head, rows))
    if failed:
        for js in shown:
            if js.log_tail:
                print(f"\n{safe(js.id)} {safe(js.name)}: {safe(js.reason)}")
                for line in js.log_tail:
                    print(f"  | {safe(line)}")
