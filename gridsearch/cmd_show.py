"""``gridsearch show JOB [DIR]``: one job's config, state and metrics."""

from __future__ import annotations

import argparse
import json

from gridsearch.campaign import open_campaign
from gridsearch.errors import GridsearchError
from gridsearch.status import JobStatus, campaign_status, log_tail
from gridsearch.text import safe, safe_text
from hepae_core.jobdir import CONFIG, METRICS, STAGE1_CHOICE, read_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show",
        help="one job's config, state and metrics",
        description="JOB is a job id (or a unique prefix of one), a readable name or an index.",
    )
    p.add_argument("job", help="job id, id prefix, readable name or index")
    p.add_argument("campaign", nargs="?", default=".", help="campaign directory (default: .)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
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


def run(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign)
    js = find(campaign_status(campaign, log_lines=0), args.job)
    tail = log_tail(js.dir, 20)
    try:
        config = (js.dir / CONFIG).read_text(encoding="utf-8")
    except OSError:
        config = None
    state = read_json(js.dir / "state.json")
    metrics = read_json(js.dir / METRICS)
    choice = read_json(js.dir / STAGE1_CHOICE)
    if args.json:
        out = {"status": js.to_dict(), "config": config, "state": state, "metrics": metrics}
        out["stage1"] = choice
        out["log_tail"] = tail
        print(json.dumps(out, indent=1))
        return 0
    print(safe(f"job {js.id}  {js.name}  (#{js.index}, {js.state.word})"))
    print(safe(f"dir: {js.dir}"))
    if js.params:
        print(safe("params: " + ", ".join(f"{k}={v}" for k, v in js.params.items())))
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
    print("\n--- config.yaml ---")
    print(safe_text((config or "(missing)").rstrip()))
    print("\n--- state.json ---")
    print(safe_text(json.dumps(state, indent=1, sort_keys=True)) if state else "(never started)")
    if metrics:
        print("\n--- metrics.json ---")
        for key, value in sorted(metrics.items()):
            print(safe(f"{key}: {value}"))
    if tail:
        print("\n--- job.log (last lines) ---")
        print(safe_text("\n".join(tail)))
    return 0
