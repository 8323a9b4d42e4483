"""Successive halving by hand: ``gridsearch promote DIR --keep 1/3 --epochs x3 --site S``.

After a round, the best fraction of the finished jobs (by ``--metric`` of their
metrics.json, lower is better; per value of ``--per`` when given) is continued for more
epochs from the exact end of its training, and submitted as one compact array (bundled
with ``--bundle``).

How a job is promoted, under its job-dir lock, nothing written before every chosen job
was checked:

1. Its files of the round (config.yaml, state.json, metrics.json, history.csv, model.pt,
   evaluation.npz, promotion.json) are copied into ``previous/<time>-rung<R>/``.
2. ``promotion.json`` records the rung: ``{"rung": R, "from_epochs", "epochs", "metric",
   "value", "rank", "of", "group", "promotion", "time", "previous"}``. Rung 0 is the
   first round; a job promoted twice is at rung 2. The summary and ``status`` read it.
3. ``config.yaml`` is rewritten (atomically) with the new ``train.epochs``; nothing else
   changes, so the job keeps its id and directory (the id names the grid point, the rung
   says how far it was trained).
4. ``final.pt`` (the checkpoint a done job keeps, docs/jobdir.md) is copied to
   ``checkpoint.pt``, and state.json says ``interrupted`` (reason ``promoted to rung R``):
   the job resumes exactly where it ended, and if the submission below fails,
   ``gridsearch resubmit`` picks it up like any interrupted job.

Learning-rate schedules: ``constant`` and ``plateau`` extend naturally (plateau keeps its
state from the checkpoint). ``one_cycle`` is defined on the total number of steps, which
is fixed when the optimiser is built: a promoted one-cycle job would resume mid-cycle of
a schedule that ends where it ended. Such jobs are refused, with a message; plan a
one-cycle campaign with its final budget instead.

Only the jobs of the highest rung reached compete (a job left behind stays at its rung).
Without ``--keep``/``--epochs``, the space file's ``halving: {rungs: [10, 30, 90], keep:
1/3}`` gives them, rung by rung (gridsearch/halving/section.py).

Every promotion appends one record to ledger.jsonl:
``{"event": "promote", "promotion": ID, "time", "keep", "metric", "per", "jobs": {id:
{"rung", "from_epochs", "epochs", "value"}}}``.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from gridsearch import status as S
from gridsearch.campaign import Campaign
from gridsearch.errors import GridsearchError
from gridsearch.halving.section import campaign_halving
from hepae_core import contract, jobdir, yamlio
from hepae_core.contract import JobState, TaskState
from hepae_core.errors import did_you_mean

PROMOTION = contract.PROMOTION
#: The files of a round kept in previous/ when a job is promoted.
ROUND_FILES = (
    contract.CONFIG,
    contract.STATE,
    contract.METRICS,
    contract.HISTORY,
    contract.MODEL,
    contract.EVAL,
    PROMOTION,
)


@dataclass
class Promoted:
    """One job chosen for the next rung."""

    js: S.JobStatus
    value: float
    rank: int  # 1 = best of its group
    of: int  # jobs ranked in its group
    group: Any
    from_epochs: int = 0
    epochs: int = 0
    rung: int = 1


@dataclass
class PromoteReport:
    promotion: str
    chosen: list[Promoted]
    ranked: int
    skipped: dict[str, int] = field(default_factory=dict)  # why -> jobs not ranked
    submit: Any = None  # gridsearch.submit.SubmitReport


def new_epochs(spec: str, old: int) -> int:
    """``x3`` (times), ``+20`` (more) or ``90`` (in all); must be more than ``old``."""
    t = str(spec).strip().lower()
    m = re.fullmatch(r"(x|\+)?(\d+(?:\.\d+)?)", t)
    if not m:
        raise GridsearchError(
            message=f"expects x3 (three times the epochs), +20 (20 more) or 90 (in all), got "
            f"{spec!r}",
            key="--epochs",
        )
    how, number = m.group(1), float(m.group(2))
    if how == "x":
        total = math.ceil(old * number)
    elif how == "+":
        total = old + int(number)
    else:
        total = int(number)
    if total <= old:
        raise GridsearchError(
            message=f"{spec} gives {total} epochs, not more than the {old} already trained",
            key="--epochs",
        )
    return total


def rung_of(job_dir: Path) -> int:
    """The job's rung: 0 unless promotion.json says otherwise."""
    path = os.path.join(job_dir, PROMOTION)  # str, not Path: status asks for every job
    rec = jobdir.read_json(path) if os.path.isfile(path) else None
    try:
        return int((rec or {}).get("rung", 0))
    except (TypeError, ValueError):
        return 0


def _next_rung(
    campaign: Campaign, rungs: dict[str, int], keep: Fraction | int | None, epochs: str | None
) -> tuple[Fraction | int, str]:
    """``keep`` and ``epochs`` of the next rung of the space file's halving, where not given."""
    halving = campaign_halving(campaign.root)
    if halving is None:
        raise GridsearchError(
            message="give --keep and --epochs, or declare 'halving: {rungs: [10, 30, "
            "90], keep: 1/3}' in the space file",
            source=str(campaign.root),
        )
    top = max(rungs.values(), default=0)
    if top + 1 >= len(halving["rungs"]):
        raise GridsearchError(
            message=f"all {len(halving['rungs'])} rungs of the space file's halving "
            f"({halving['rungs']}) are reached; nothing left to promote",
            source=str(campaign.root),
        )
    keep = halving["keep"] if keep is None else keep
    epochs = str(halving["rungs"][top + 1]) if epochs is None else epochs
    return keep, epochs


def choose(
    statuses: list[S.JobStatus],
    keep: Fraction | int,
    metric: str,
    per: str | None,
    rungs: dict[str, int] | None = None,
) -> tuple[list[Promoted], int, dict[str, int]]:
    """The best ``keep`` of the done jobs of each ``per`` group, by ``metric`` (lower wins);
    in a staged campaign, of each stage separately.

    With ``rungs`` (job id -> rung), only the jobs of the highest rung reached compete:
    jobs left at a lower rung stay there.
    """
    skipped: dict[str, int] = {}
    top = max((rungs or {}).values(), default=0)
    groups: dict[str, list[tuple[float, S.JobStatus]]] = {}
    known_params = sorted({k for js in statuses for k in js.params})
    if per is not None and per not in known_params:
        raise GridsearchError(
            message=f"no grid parameter {per!r}{did_you_mean(per, known_params)} (the grid has: "
            f"{', '.join(known_params) or 'none'})",
            key="--per",
        )
    for js in statuses:
        if rungs is not None and rungs.get(js.id, 0) < top:
            why = f"left at a lower rung than {top}"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if js.state != JobState.DONE:
            why = f"not done ({js.state.name.lower()})"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        value = (js.metrics or {}).get(metric)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise GridsearchError(
                message=f"{metric!r} is not a number in metrics.json of {js.name} (it is "
                f"{value!r}): rank by a numeric key, lower is better, such as best_val_loss "
                "or ae.pt.width",
                key="--metric",
            )
        if not isinstance(value, int | float) or not math.isfinite(value):
            if js.metrics and metric not in js.metrics:
                raise GridsearchError(
                    message=f"metrics.json of {js.name} has no {metric!r}"
                    f"{did_you_mean(metric, list(js.metrics))}",
                    key="--metric",
                )
            skipped["no finite metric"] = skipped.get("no finite metric", 0) + 1
            continue
        # the stages of a staged campaign never compete with each other
        key = f"{js.stage or ''}|" + (repr(js.params.get(per)) if per else "")
        groups.setdefault(key, []).append((float(value), js))
    chosen: list[Promoted] = []
    ranked = 0
    for members in groups.values():
        members.sort(key=lambda p: (p[0], p[1].index))
        n = len(members)
        ranked += n
        count = keep if isinstance(keep, int) else max(1, math.ceil(n * keep))
        for rank, (value, js) in enumerate(members[: min(count, n)], start=1):
            group = js.params.get(per) if per else None
            chosen.append(Promoted(js, value, rank, n, group))
    return chosen, ranked, skipped


def _check(p: Promoted, spec: str) -> dict[str, Any]:
    """The job's config, checked for promotion; fills ``from_epochs``, ``epochs``, ``rung``."""
    d = p.js.dir
    cfg, _, _ = yamlio.load(d / jobdir.CONFIG, GridsearchError)
    train = cfg.get("train") or {}
    if train.get("schedule") == "one_cycle":
        raise GridsearchError(
            message=f"{p.js.name} uses train.schedule: one_cycle, whose learning rate is "
            "defined on the total number of steps and cannot be extended; promote only "
            "constant or plateau schedules (--per or a smaller grid), or plan one-cycle jobs "
            "with their final epochs",
            source=str(d / jobdir.CONFIG),
            key="train.schedule",
        )
    if not (d / jobdir.FINAL_CHECKPOINT).is_file():
        raise GridsearchError(
            message=f"{p.js.name} has no {jobdir.FINAL_CHECKPOINT} (the checkpoint a done job "
            "keeps; jobs finished by older versions delete it): it cannot be continued "
            "exactly; rerun it with more epochs instead",
            source=str(d),
        )
    from hepae_core.config import load

    p.from_epochs = int(load(d / jobdir.CONFIG)["train"]["epochs"])
    p.epochs = new_epochs(spec, p.from_epochs)
    p.rung = rung_of(d) + 1
    return cfg


def _promote_one(p: Promoted, cfg: dict[str, Any], meta: dict[str, Any]) -> None:
    d = p.js.dir
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    prev = d / "previous" / f"{stamp}-rung{p.rung - 1}"
    prev.mkdir(parents=True, exist_ok=True)
    for name in ROUND_FILES:
        if (d / name).is_file():
            shutil.copy2(d / name, prev / name)
    record = {
        "rung": p.rung,
        "from_epochs": p.from_epochs,
        "epochs": p.epochs,
        "metric": meta["metric"],
        "value": p.value,
        "rank": p.rank,
        "of": p.of,
        "group": p.group,
        "promotion": meta["promotion"],
        "time": jobdir.now_iso(),
        "previous": prev.relative_to(d).as_posix(),
    }
    jobdir.atomic_write_json(d / PROMOTION, record)
    cfg.setdefault("train", {})["epochs"] = p.epochs
    jobdir.atomic_write_text(d / jobdir.CONFIG, yamlio.dump(cfg))
    with jobdir.atomic_path(d / jobdir.CHECKPOINT) as tmp:
        shutil.copyfile(d / jobdir.FINAL_CHECKPOINT, tmp)
    jobdir.write_state(
        d,
        jobdir.INTERRUPTED,
        reason=f"promoted to rung {p.rung}: continues from epoch {p.from_epochs} to {p.epochs}",
        epoch=p.from_epochs,
        epochs=p.epochs,
        signal=None,
        exit_code=None,
        error_kind=None,
    )


#: How long promote waits for the tasks of chosen done jobs to end in the scheduler.
TASK_END_WAIT_S = 90.0


def _wait_for_tasks_to_end(jobs: list[S.JobStatus], wait_s: float | None = None) -> None:
    """Wait until the scheduler no longer runs the tasks of these done jobs.

    A job writes ``done`` before its task ends (the script still copies its log lines);
    promoted in that moment, it would be submitted while the scheduler still runs the
    old task, so submit would leave it alone as held and it would stay ``interrupted``.
    Raises when they do not end in time; nothing is promoted then.
    """
    from gridsearch.backends import get_backend
    from gridsearch.backends.base import SchedulerUnavailable

    wait_s = TASK_END_WAIT_S if wait_s is None else wait_s
    by_kind: dict[str, list[str]] = {}
    for js in jobs:
        if js.task_id and js.kind and not get_backend(js.kind).blocking:
            by_kind.setdefault(js.kind, []).append(js.task_id)
    deadline = time.monotonic() + wait_s
    while by_kind:
        still: dict[str, list[str]] = {}
        for kind, task_ids in by_kind.items():
            try:
                answer = get_backend(kind).query(task_ids)
            except SchedulerUnavailable:
                continue  # cannot tell: the job dirs say done
            busy = [
                t
                for t in task_ids
                if t in answer and answer[t].state in (TaskState.QUEUED, TaskState.RUNNING)
            ]
            if busy:
                still[kind] = busy
        if not still:
            return
        if time.monotonic() > deadline:
            tasks = ", ".join(t for ts in still.values() for t in ts)
            raise GridsearchError(
                message=f"the scheduler still runs the tasks of {sum(map(len, still.values()))} "
                f"chosen job(s) ({tasks}) although they wrote done; promote again when they "
                "ended (nothing was promoted)",
            )
        by_kind = still
        time.sleep(2.0)


def promote(
    campaign: Campaign,
    *,
    keep: Fraction | int | None = None,
    epochs: str | None = None,
    metric: str = "best_val_loss",
    per: str | None = None,
    site: str | None = None,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    sites_dir: list[Path] | None = None,
) -> PromoteReport:
    """Choose, check, promote and (with ``site``) submit; see the module docstring.

    Without ``keep`` and ``epochs``, the space file's ``halving`` section decides them
    (gridsearch/halving/section.py): the next rung's epochs, its ``keep``.
    """
    from gridsearch.submit import submit

    promotion = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-promote-{secrets.token_hex(2)}"
    with campaign.lock("promote", 10.0):
        statuses = S.campaign_status(campaign, metrics=True, log_lines=0, query=False)
        rungs = {js.id: rung_of(js.dir) for js in statuses}
        if keep is None or epochs is None:
            keep, epochs = _next_rung(campaign, rungs, keep, epochs)
        chosen, ranked, skipped = choose(statuses, keep, metric, per, rungs)
        report = PromoteReport(promotion, chosen, ranked, skipped)
        if not chosen:
            return report
        configs = [_check(p, epochs) for p in chosen]  # everything checked before writing
        if dry_run:
            return report
        _wait_for_tasks_to_end([p.js for p in chosen])
        meta = {"metric": metric, "promotion": promotion}
        for p, cfg in zip(chosen, configs, strict=True):
            with jobdir.job_lock(p.js.dir):
                _promote_one(p, cfg, meta)
        campaign.append_ledger(
            {
                "event": "promote",
                "promotion": promotion,
                "time": jobdir.now_iso(),
                "keep": str(keep),
                "metric": metric,
                "per": per,
                "jobs": {
                    p.js.id: {
                        "rung": p.rung,
                        "from_epochs": p.from_epochs,
                        "epochs": p.epochs,
                        "value": p.value,
                    }
                    for p in chosen
                },
            }
        )
    if site is not None:
        report.submit = submit(
            campaign,
            site,
            only={JobState.INTERRUPTED},
            ids={p.js.id for p in chosen},
            overrides=overrides,
            sites_dir=sites_dir,
        )
    return report
