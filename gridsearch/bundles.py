"""Bundles on the scheduler: one task runs K job directories (``--bundle K``).

A bundle task runs ``python -m hepae_core.bundle DIR...`` (docs/bundles.md): every member
stays an independent job dir, same-shape members are trained as one stack. This module
decides K, groups the jobs into bundles and scales the task's request for them; the
backends and templates use what it returns.

- **K**: ``--bundle K``, else the space file's top-level ``bundle:`` (read from the
  campaign's ``space.yaml`` at submit time), else the site profile's ``bundle:`` key, else
  1 (one job per task, the plain job script). ``auto`` picks K from the allocation: on a
  GPU task 64 (a tiny model leaves the device nearly idle), on CPU ``4 x cpus`` between 4
  and 16 (the stack's per-model gain is best at K = 4..16 on one thread; docs/bundles.md,
  Speed). K never exceeds the number of jobs.
- **Grouping**: jobs are ordered by the shape of what they train (the ``model`` section,
  ``train.batch_size``, ``train.device``; stable, so the campaign's order stays otherwise),
  then cut into consecutive bundles of K, so that same-shape jobs share a bundle and are
  stacked. Bundle ``b`` is task index ``b`` (0, 1, ...): a compact array whatever the
  jobs' campaign indices.
- **Request**: the members of a bundle run one stack after another with the task's
  threads, so cores are not scaled (``train.threads`` and the bundle never use more than
  the allocation); the walltime is per job and the task asks for ``K x time`` (a stack of
  K takes at most the time of its K members in sequence); that total is checked against
  the site's limits with a message naming the largest K that fits. Memory is per task and
  not scaled: members with the same ``data`` section share one copy of the jets; give
  ``--mem`` for bundles of jobs reading different data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridsearch.errors import GridsearchError
from gridsearch.options import AUTO, parse_bundle
from gridsearch.units import format_walltime
from hepae_core.jobdir import CONFIG

#: The module a bundle task runs (profiles may name another with ``bundle_module:``).
BUNDLE_MODULE = "hepae_core.bundle"
#: The space file's top-level key for the campaign's bundle size.
SPACE_KEY = "bundle"


def parse_space_bundle(value: Any, where: str) -> int | str:
    """The space file's top-level ``bundle:`` (K or ``auto``); ``where`` is its
    ``file:line``, named with the key when the value is bad."""
    try:
        return parse_bundle(value, SPACE_KEY)
    except GridsearchError as exc:
        raise GridsearchError(message=exc.message, source=where, key=SPACE_KEY) from None


def space_default(campaign_root: Path) -> int | str | None:
    """The ``bundle:`` of the campaign's copy of its space file (``space.yaml`` in the
    campaign dir, written by ``gridsearch plan``), or None (no such key, or no copy)."""
    from gridsearch.campaign import SPACE
    from hepae_core import yamlio

    path = Path(campaign_root) / SPACE
    if not path.is_file():
        return None
    data, lines = yamlio.parse(yamlio.read_text(path, GridsearchError), str(path), GridsearchError)
    if not isinstance(data, dict) or data.get(SPACE_KEY) is None:
        return None
    line = lines.get((SPACE_KEY,))
    return parse_space_bundle(data[SPACE_KEY], f"{path}:{line}" if line else str(path))


def with_space_default(overrides: dict[str, Any], campaign_root: Path) -> dict[str, Any]:
    """``overrides`` with the space file's bundle size when ``--bundle`` was not given.

    Precedence: ``--bundle`` > the space file's ``bundle:`` > the site profile's
    ``bundle:`` (local: ``options.bundle``) > 1. The backends read ``overrides["bundle"]``
    before the profile's, so the space file's value goes there.
    """
    if overrides.get("bundle") is not None:
        return overrides
    default = space_default(campaign_root)
    return overrides if default is None else {**overrides, "bundle": default}


def choose_size(
    wanted: int | str | None, cpus: int, gpus: int, n_jobs: int, profile_default: Any = None
) -> int:
    """The bundle size K for ``n_jobs`` jobs (see the module docstring)."""
    value = wanted if wanted is not None else profile_default
    if value is None:
        return 1
    value = parse_bundle(value, "--bundle" if wanted is not None else "bundle")
    if value == AUTO:
        value = 64 if gpus > 0 else min(16, max(4, 4 * cpus))
    return max(1, min(int(value), max(1, n_jobs)))


def shape_key(job_dir: Path) -> str:
    """What decides whether two jobs can be stacked, as a sortable text ('' if unreadable)."""
    from hepae_core import yamlio

    try:
        cfg, _, _ = yamlio.load(Path(job_dir) / CONFIG)
    except Exception:  # a broken config fails in its job, with its own message
        return ""
    if not isinstance(cfg, dict):
        return ""
    section = cfg.get("train")
    train = section if isinstance(section, dict) else {}
    return json.dumps(
        [cfg.get("model"), train.get("batch_size"), train.get("device")],
        sort_keys=True,
        default=str,
    )


def make_bundles(jobs: list[Any], k: int) -> list[tuple[int, Any]]:
    """``(task index, job)`` pairs: same-shape jobs together, K per task index."""
    if k <= 1:
        raise ValueError("make_bundles needs k >= 2")
    keys = [shape_key(Path(j.dir)) for j in jobs]
    order = sorted(range(len(jobs)), key=lambda i: keys[i])
    return [(pos // k, jobs[i]) for pos, i in enumerate(order)]


def scaled_time(time_s: int, k: int) -> str:
    """The walltime a bundle task of K asks for."""
    return format_walltime(int(time_s) * k)


def time_overrides(
    profile: dict[str, Any], overrides: dict[str, Any], k: int
) -> tuple[dict[str, Any], int]:
    """``overrides`` with the bundle's walltime (K x the per-job one) and that per-job time."""
    from gridsearch import sites

    per_job = sites.resolve_request(profile, overrides)
    return {**overrides, "time": scaled_time(per_job["time_s"], k)}, per_job["time_s"]


def check_scaled(
    profile: dict[str, Any], overrides: dict[str, Any], k: int, n_tasks: int
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``sites.check_submission`` for a bundled submission: request, environment, per-job
    seconds. A walltime over the site's limit names the largest K that fits."""
    from gridsearch import sites

    scaled, per_job_s = time_overrides(profile, overrides, k)
    try:
        request, environment = sites.check_submission(profile, scaled, n_tasks)
    except GridsearchError as exc:
        if exc.key != "request.time":
            raise
        fits = max(k - 1, 1)
        while fits > 1:
            try:
                sites.resolve_request(profile, {**overrides, "time": scaled_time(per_job_s, fits)})
                break
            except GridsearchError:
                fits -= 1
        raise GridsearchError(
            message=f"a bundle of {k} jobs asks for {k} x {format_walltime(per_job_s)} "
            f"(its members run one after another): {exc.message}; use --bundle {fits} "
            "or a shorter --time",
            key="--bundle",
        ) from None
    request["bundle"] = k
    request["job_time"] = format_walltime(per_job_s)
    environment["bundle_module"] = str(profile.get("bundle_module") or BUNDLE_MODULE)
    return request, environment, per_job_s


@dataclass
class Tasks:
    """What a cluster backend submits: K, the ``(task index, job)`` pairs (a bundle is
    several pairs with one index), the checked request and environment, and a note."""

    k: int
    pairs: list[tuple[int, Any]]
    request: dict[str, Any]
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def bundled(self) -> bool:
        return self.k > 1

    @property
    def n_tasks(self) -> int:
        return len({index for index, _ in self.pairs})


def plan_tasks(jobs: list[Any], profile: dict[str, Any], overrides: dict[str, Any]) -> Tasks:
    """K, the tasks and the checked request of a cluster submission (Slurm, HTCondor).

    ``overrides`` may hold ``bundle`` (from ``--bundle`` or the space file); it is not
    passed on to the request. Without bundles (K = 1) each job is its own task under its
    campaign index (:func:`gridsearch.render.task_indices`); with bundles the tasks are
    0, 1, ... (:func:`make_bundles`) and the walltime is scaled (:func:`check_scaled`).
    """
    from gridsearch import render, sites

    overrides = dict(overrides)
    wanted = overrides.pop("bundle", None)
    alloc = sites.resolve_request(profile, overrides)
    k = choose_size(wanted, alloc["cpus"], alloc["gpus"], len(jobs), profile.get("bundle"))
    for job in jobs:
        render.check_job_dir(Path(job.dir))
    if k <= 1:
        request, environment = sites.check_submission(profile, overrides, len(jobs))
        return Tasks(1, list(zip(render.task_indices(jobs), jobs)), request, environment)
    pairs = make_bundles(jobs, k)
    n_tasks = pairs[-1][0] + 1
    request, environment, _ = check_scaled(profile, overrides, k, n_tasks)
    flavour = f", flavour {request['flavour']}" if request.get("flavour") else ""
    note = (
        f"bundles of {k}: {len(jobs)} jobs in {n_tasks} tasks, each asking {request['time']} "
        f"({k} x {request['job_time']} per job{flavour}), {request['cpus']} cpus shared by "
        "its members"
    )
    return Tasks(k, pairs, request, environment, [note])
