"""``gridsearch status [DIR] [--json] [--failed]``: what every job of a campaign is doing."""

from __future__ import annotations

import argparse
import json

from gridsearch.campaign import lock_holder, open_campaign
from gridsearch.status import DEFAULT_STALE_AFTER_S, FAILED, STATES, campaign_status, counts
from gridsearch.table import table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="counts and a table of the campaign's jobs, from their job-dir files",
        description="Decide each job's state from its directory (state.json), asking the "
        "scheduler only about jobs still in flight.",
    )
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--failed", action="store_true", help="only failed jobs, with reason and log lines"
    )
    p.add_argument("--state", choices=STATES, action="append", help="only jobs in this state")
    p.add_argument("--counts", action="store_true", help="only the counts")
    p.add_argument(
        "--stale-after",
        type=float,
        default=DEFAULT_STALE_AFTER_S / 60,
        metavar="MIN",
        help="a running job silent this long is stale (default %(default)g minutes)",
    )
    p.add_argument("--no-query", action="store_true", help="never ask the scheduler")
    p.add_argument("--lines", type=int, default=5, help="log lines shown per failed job")
    p.set_defaults(func=run)


def _info(js) -> str:
    if js.state == "running" and js.epoch is not None:
        return js.reason
    if js.state == "submitted":
        return js.scheduler_state or js.submission or ""
    return js.reason or ""


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    statuses = campaign_status(
        campaign,
        query=not args.no_query,
        stale_after_s=args.stale_after * 60,
        metrics=args.json,
        log_lines=args.lines,
    )
    wanted = set(args.state or [])
    if args.failed:
        wanted.add(FAILED)
    shown = [js for js in statuses if not wanted or js.state in wanted]
    total = counts(statuses)
    if args.json:
        print(
            json.dumps(
                {
                    "campaign": str(campaign.root),
                    "counts": total,
                    "jobs": [js.to_dict() for js in shown],
                },
                indent=1,
            )
        )
        return 0
    holder = lock_holder(campaign.root)
    if holder:
        print(f"note: {holder} holds the campaign lock")
    if not args.counts and shown:
        rows = [
            [
                js.index,
                js.id,
                js.name,
                js.state + ("" if js.in_space else " (not in space)"),
                f"{js.epoch}/{js.epochs}" if js.epoch is not None else None,
                js.train_loss,
                js.val_loss,
                _info(js),
            ]
            for js in shown
        ]
        print(table(["#", "id", "name", "state", "epoch", "train", "val", "info"], rows))
        if args.failed:
            for js in shown:
                if js.state == FAILED and js.log_tail:
                    print(f"\n{js.id} {js.name}: {js.reason}")
                    for line in js.log_tail:
                        print(f"  | {line}")
    summary = ", ".join(f"{n} {s}" for s, n in total.items())
    print(f"{len(statuses)} jobs: {summary}")
    return 0
