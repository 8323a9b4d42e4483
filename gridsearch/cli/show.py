"""``gridsearch show DIR JOB``: one job's state, parameters and headline metrics.

The default is a short block (a dozen lines); ``--all`` adds the whole config.yaml,
state.json, every metric and the end of job.log. The old order ``show JOB [DIR]`` still
works, with a line on stderr saying to swap the arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gridsearch.campaign import is_campaign, open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.status import JobState, JobStatus, campaign_status, log_tail
from gridsearch.text import safe, safe_text
from hepae_core.contract import CONFIG, METRICS, STAGE1_CHOICE, STATE
from hepae_core.jobdir import read_json

# The metrics the short view shows, in this order (docs/metrics.md); --all shows every key.
HEADLINE = (
    "best_val_loss",
    "test_loss",
    "best_epoch",
    "epochs_run",
    "compression_ratio",
    "train_time_s",
)
# Log lines the short view shows for a job that ended badly (--all: 20).
SHORT_LOG = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show",
        help="one job's state, parameters and headline metrics (--all: everything)",
        description="Show one job of a campaign: its state, parameters, headline metrics "
        "and, for a failed job, the end of its log. JOB is a job id (or a unique prefix of "
        "one), a readable name or an index. --all adds config.yaml, state.json, every metric "
        "and the last 20 lines of job.log. (The old order 'show JOB [DIR]' still works.)",
    )
    p.add_argument("campaign", metavar="DIR", help="campaign directory")
    p.add_argument(
        "job", metavar="JOB", nargs="?", help="job id, id prefix, readable name or index"
    )
    p.add_argument("--all", action="store_true", help="config, state, every metric, log tail")
    p.add_argument("--json", action="store_true", help="machine-readable output (everything)")
    p.set_defaults(func=run)


def find(statuses: list[JobStatus], key: str) -> JobStatus:
    """The job named by an id, a unique id prefix, a readable name or an index."""
    exact = [js for js in statuses if key in (js.id, js.name) or str(js.index) == key]
    if len(exact) == 1:
        return exact[0]
    prefix = exact if exact else [js for js in statuses if js.id.startswith(key)]
    if len(prefix) == 1:
        return prefix[0]
    if not prefix:
        raise GridsearchError(
            message="no job with this id, name or index; see 'gridsearch status'", key=key
        )
    raise GridsearchError(
        message=f"matches {len(prefix)} jobs ({', '.join(js.id for js in prefix[:5])}...); "
        "give more of the id",
        key=key,
    )


def _campaign_and_job(first: str, second: str | None) -> tuple[str, str]:
    """(campaign, job) from the arguments: ``DIR JOB``, or the old ``JOB [DIR]``."""
    if second is not None and is_campaign(Path(first)):
        return first, second
    if second is not None and is_campaign(Path(second)):
        print(
            f"note: 'show JOB DIR' is the old order; write 'gridsearch show {second} {first}'",
            file=sys.stderr,
        )
        return second, first
    if second is None:
        if is_campaign(Path(first)):
            raise GridsearchError(
                message="name a job: gridsearch show DIR JOB (an id, a name or an index; "
                "see 'gridsearch status DIR')",
                source=first,
            )
        if is_campaign(Path(".")):
            print(
                f"note: 'show JOB' is the old form; write 'gridsearch show . {first}'",
                file=sys.stderr,
            )
            return ".", first
    return first, second if second is not None else ""


def run(args: argparse.Namespace) -> int:
    where, key = _campaign_and_job(args.campaign, args.job)
    campaign = open_campaign(where)
    js = find(campaign_status(campaign, log_lines=0), key)
    tail = log_tail(js.dir, 20)
    try:
        config = (js.dir / CONFIG).read_text(encoding="utf-8")
    except OSError:
        config = None
    state = read_json(js.dir / STATE)
    metrics = read_json(js.dir / METRICS)
    choice = read_json(js.dir / STAGE1_CHOICE)
    if args.json:
        out: dict[str, Any] = {
            "status": js.to_dict(),
            "config": config,
            "state": state,
            "metrics": metrics,
        }
        out["stage1"] = choice
        out["log_tail"] = tail
        print(json.dumps(out, indent=1))
        return 0
    print(safe(f"job {js.id}  {js.name}  (#{js.index}, {js.state.word})"))
    print(safe(f"dir: {js.dir}"))
    if js.params:
        print("params:")
        for k, v in js.params.items():
            print(safe(f"  {k}: {v}"))
    if js.epoch_text:
        print(f"epoch: {js.epoch_text}")
    if js.reason:
        print(safe(f"reason: {js.reason}"))
    if js.stage:
        print(
            safe(f"stage: {js.stage}" + (f", waits on {len(js.after)} job(s)" if js.after else ""))
        )
    if js.out_of_date:
        print(safe(f"out of date: {js.out_of_date}"))
    if choice:
        cands = choice.get("candidates") or []
        print(
            safe(
                f"stage 1: {choice.get('chosen_id')} chosen at {choice.get('time')} by "
                f"{choice.get('by')} = {choice.get('value')} of {len(cands)} candidate(s): "
                + ", ".join(f"{c.get('id')} {c.get('state')} {c.get('value')}" for c in cands)
            )
        )
    if not args.all:
        if metrics:
            shown = [k for k in HEADLINE if k in metrics]
            print("metrics: " + ", ".join(safe(f"{k}: {metrics[k]}") for k in shown))
        if tail and js.state not in (JobState.DONE, JobState.RUNNING):
            print(f"--- job.log (last {min(SHORT_LOG, len(tail))} lines) ---")
            print(safe_text("\n".join(tail[-SHORT_LOG:])))
        more = len(metrics or {}) - len([k for k in HEADLINE if k in (metrics or {})])
        extra = f", {more} more metric(s)" if more else ""
        print(f"(--all adds config.yaml, state.json{extra} and the end of job.log)")
        return 0
    print("\n--- config.yaml ---")
    print(safe_text((config or "(missing)").rstrip()))
    print("\n--- state.json ---")
    print(safe_text(json.dumps(state, indent=1, sort_keys=True)) if state else "(never started)")
    if metrics:
        print("\n--- metrics.json ---")
        for k, value in sorted(metrics.items()):
            print(safe(f"{k}: {value}"))
    if tail:
        print("\n--- job.log (last lines) ---")
        print(safe_text("\n".join(tail)))
    return 0
