"""Planning: a space file into a campaign directory with one job directory per point.

Every point is validated as a complete job config (``hepae_core.config.resolve``) before
anything is written. A job's id is the first 12 hex digits of the sha256 of its canonical
resolved config (``hepae_core.config.dump`` without ``name``), so planning again gives the
same ids, and a changed point a new one. Planning again never touches a job that started,
never deletes anything, and says what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gridsearch
from gridsearch import campaign as C
from gridsearch.errors import GridsearchError
from gridsearch.space import Point, Space, absolute_source, expand
from gridsearch.spacefile import load_space

if TYPE_CHECKING:
    from gridsearch.stages import Stage
from hepae_core import yamlio
from hepae_core.config import canonical_form, resolve, variables_of
from hepae_core.errors import ConfigError
from hepae_core.jobdir import CONFIG, STATE, atomic_write_json, atomic_write_text, now_iso

DEFAULT_MAX_POINTS = 5000
ID_LENGTH = 12


class _Canon:
    """``hepae_core.config.dump`` of resolved configs, fast for many similar configs.

    The dump of a block mapping is the concatenation of the dumps of its keys, so each
    top-level entry is dumped once per distinct value and cached (the result is byte for
    byte ``dump``'s; a test checks it). ``canonical_form`` acts on each section alone (it
    drops a section's later keys at their default), so it runs once per distinct section
    too, on a cache miss, not once per config (a new dict of the train section per point).
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], str] = {}

    def piece(self, key: str, value: Any) -> str:
        ck = (key, repr(value))  # equal reprs of plain YAML values are equal dumps
        text = self.cache.get(ck)
        if text is None:
            value = canonical_form({key: value})[key]
            # a lone scalar would make the one-key mapping a flow mapping: force block there
            flow = None if isinstance(value, dict | list) else False
            text = yamlio.dump({key: value}, sort_keys=True, default_flow_style=flow)
            self.cache[ck] = text
        return text

    def dump(self, cfg: Mapping[str, Any], skip: str | None = None) -> str:
        piece = self.piece
        return "".join([piece(k, cfg[k]) for k in sorted(cfg) if k != skip])


def job_id_of(canonical: str) -> str:
    """The job id of a canonical config text."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_LENGTH]


# Short labels of common keys in readable names; others use their last part.
LABELS = {
    "model.latent": "z",
    "model.encoder": "enc",
    "model.decoder": "dec",
    "model.activation": "",
    "model.batch_norm": "bn",
    "model.dropout": "do",
    "model.preset": "",
    "train.lr": "lr",
    "train.weight_decay": "wd",
    "train.batch_size": "bs",
    "train.epochs": "ep",
    "train.optimizer": "",
    "train.schedule": "",
    "normalisation.kind": "",
    "data.variables": "v",
    "data.max_jets": "nj",
    "seed": "s",
    "stage1": "on-",  # pick: each, the stage-1 job's readable name
}
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value == 0:
            return "0"
        short = f"{value:.0e}"
        return short if float(short) == value else f"{value:.3g}"
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, str):
        value = os.path.splitext(os.path.basename(value))[0] or value
    return "".join(c for c in str(value) if c in _SAFE)[:24]


def readable_name(
    params: Mapping[str, Any], varied: list[str], cache: dict[tuple[str, str], str] | None = None
) -> str:
    """E.g. ``z3_lr1e-03_wd1e-06_bs256``: built from the varied keys; never used as a path."""
    cache = {} if cache is None else cache
    parts = []
    for key in varied:
        value = params[key]
        ck = (key, repr(value))
        part = cache.get(ck)
        if part is None:
            if key.startswith("stage1."):  # a candidate group of a dependent stage
                inner = key[len("stage1.") :]
                label = "s1" + LABELS.get(inner, inner.rsplit(".", 1)[-1])
            else:
                label = LABELS.get(key, key.rsplit(".", 1)[-1])
            part = "".join(c for c in label if c in _SAFE) + _fmt(value)
            cache[ck] = part
        parts.append(part)
    return "_".join(p for p in parts if p) or "point"


@dataclass
class PlannedJob:
    """One point, validated: its id, readable name, parameters and config text."""

    index: int
    id: str
    name: str
    params: dict[str, Any]
    canonical: str  # dump of the resolved config without name
    variables: list[str] = field(default_factory=list)  # what it trains on
    stage: str | None = None  # its stage, in a staged space (gridsearch/stages.py)
    after: list[str] = field(default_factory=list)  # job ids it waits for (earlier stage)

    def config_text(self, space_name: str) -> str:
        header = f"# planned by gridsearch from space '{space_name}', point {self.index}\n"
        return header + f"name: {json.dumps(self.name)}\n" + self.canonical

    def manifest_entry(self, in_space: bool = True) -> dict[str, Any]:
        entry = {
            "index": self.index,
            "id": self.id,
            "name": self.name,
            "params": self.params,
            "dir": f"{C.JOBS}/{self.id}",
            "in_space": in_space,
        }
        if self.stage is not None:
            entry.update(stage=self.stage, after=list(self.after))
        return entry


@dataclass
class PlanReport:
    """What a plan did (or would do, for a dry run)."""

    root: Path
    space: Space
    jobs: list[PlannedJob]
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # planned before, no longer in the space
    returning: list[str] = field(default_factory=list)  # flagged gone before, back now
    new_campaign: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)


def _point_desc(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) < 120 else text[:117] + "..."


def validate(space: Space, points: list[Point], keys: list[str] | None = None) -> list[PlannedJob]:
    """Resolve every point as a job config and give it its id and readable name.

    ``keys``: the parameter keys of the points (default: the space's axis keys).

    Raises
    ------
    GridsearchError
        On the first invalid point (naming the line of the key that set it) or on two
        points that resolve to the same config.
    """
    canon = _Canon()
    space_dir = space.path.resolve().parent
    keys = space.keys if keys is None else keys
    resolved: list[tuple[Point, str, str, list[str]]] = []
    first_of: dict[str, Point] = {}
    sources: dict[str, str] = {}
    for point in points:
        absolute_source(point.raw, space_dir, sources)
        try:
            cfg = resolve(point.raw, str(space.path))
        except ConfigError as exc:
            key = exc.key or ""
            hint = ""
            if key in point.params and key in ("model.encoder", "model.decoder"):
                hint = "; a list-valued setting is one value: write [[200, 100, 50]] in a grid"
            raise GridsearchError(
                message=f"{exc.message}{hint} (point {point.index}: {_point_desc(point.params)})",
                source=space.where_key(key) if key else str(space.path),
                key=key or None,
            ) from None
        text = canon.dump(cfg, skip="name")
        jid = job_id_of(text)
        if jid in first_of:
            other = first_of[jid]
            raise GridsearchError(
                message=f"points {other.index} ({_point_desc(other.params)}) and {point.index} "
                f"({_point_desc(point.params)}) are the same job config; remove the "
                "duplicate value or the axis that changes nothing",
                source=str(space.path),
            )
        first_of[jid] = point
        resolved.append((point, jid, text, variables_of(cfg)))
    varied = [k for k in keys if _varies([p.params[k] for p, _, _, _ in resolved])]
    jobs = []
    parts: dict[tuple[str, str], str] = {}
    for point, jid, text, variables in resolved:
        name = readable_name(point.params, varied, parts) if varied else space.name
        jobs.append(PlannedJob(point.index, jid, name, point.params, text, variables))
    # readable names are for people; make clashes (rare: sanitised strings) distinct
    count: dict[str, int] = {}
    for job in jobs:
        count[job.name] = count.get(job.name, 0) + 1
    for job in jobs:
        if count[job.name] > 1:
            job.name = f"{job.name}_{job.id[:6]}"
    return jobs


def _varies(values: list[Any]) -> bool:
    """Whether the values are not all equal (compared by repr, as YAML values are)."""
    first = repr(values[0]) if values else ""
    return any(repr(v) != first for v in values)


def validate_staged(
    space: Space, *, max_points: int = DEFAULT_MAX_POINTS, yes: bool = False
) -> tuple[list[Point], list[PlannedJob]]:
    """The points and validated jobs of every stage of a staged space, in run order.

    A dependent stage's points are its own points once per group of candidates of its
    ``after`` stage (gridsearch/stages.py); readable names start with the stage's name.
    """
    from gridsearch.stages import candidate_groups, dependent_points

    all_points: list[Point] = []
    all_jobs: list[PlannedJob] = []
    by_stage: dict[str, list[PlannedJob]] = {}
    raws: dict[str, dict[str, Any]] = {}
    first_stage: dict[str, str] = {}
    for stage in space.stages:
        own = expand(stage.space, max_points=None)
        if stage.after is not None:
            earlier = by_stage[stage.after]
            groups = candidate_groups(stage, earlier, raws)
            points = dependent_points(stage, own, groups)
        else:
            points = own
        total = len(all_points) + len(points)
        if total > max_points and not yes:
            raise GridsearchError(
                message=f"the stages have {total:,} points or more, more than --max-points "
                f"{max_points:,}; check the grids, then pass --yes to plan them all",
                source=str(space.path),
            )
        for k, point in enumerate(points):
            point.index = len(all_points) + k
        jobs = validate(stage.space, points, keys=stage.keys)
        for point, job in zip(points, jobs):
            raws[job.id] = point.raw
            job.stage = stage.name
            job.name = f"{stage.name}_{job.name}" if job.name != space.name else stage.name
            job.after = _after_ids(point.raw) if stage.after is not None else []
            if job.id in first_stage:
                raise GridsearchError(
                    message=f"a point of stage '{stage.name}' is the same job config as one of "
                    f"stage '{first_stage[job.id]}'; make the stages differ",
                    source=stage.space.where(),
                )
            first_stage[job.id] = stage.name
        if stage.after is not None:
            _check_variables(stage, jobs, by_stage[stage.after])
            _check_latents(stage, jobs, by_stage[stage.after])
        by_stage[stage.name] = jobs
        all_points.extend(points)
        all_jobs.extend(jobs)
    return all_points, all_jobs


def _after_ids(raw: dict[str, Any]) -> list[str]:
    """The job ids a point's ``model.stage1`` names (``../<id>`` entries)."""
    value = (raw.get("model") or {}).get("stage1")
    paths = value.get("from", []) if isinstance(value, dict) else [value]
    return [os.path.basename(str(p).rstrip("/")) for p in paths if p]


def _check_variables(stage: Stage, jobs: list[PlannedJob], earlier: list[PlannedJob]) -> None:
    """A dependent stage must train on the variables of the jobs it picks from."""
    trained = {j.id: j.variables for j in earlier}
    for job in jobs:
        for dep in job.after:
            if trained.get(dep) != job.variables:
                raise GridsearchError(
                    message=f"stage '{stage.name}' reads {', '.join(job.variables)} but its "
                    f"stage-1 jobs (stage '{stage.after}') train on "
                    f"{', '.join(trained.get(dep) or [])}: a stage-2 model needs the stage-1 "
                    "model's variables; set the same data.variables in both stages",
                    source=stage.space.where_key("data.variables"),
                    key="data.variables",
                )


def _check_latents(stage: Stage, jobs: list[PlannedJob], earlier: list[PlannedJob]) -> None:
    """A stage-2 latent must be below G x z1 of every stage-1 job it may pick: the job
    would refuse it when it starts, after stage 1 has trained (hepae_core/training/two_stage.py)."""
    import yaml

    def settings(job: PlannedJob) -> tuple[Any, Any]:
        cfg = yaml.safe_load(job.canonical) or {}
        group = (cfg.get("data") or {}).get("group") or {}
        return (cfg.get("model") or {}).get("latent"), group.get("size")

    z1 = {j.id: settings(j)[0] for j in earlier}
    for job in jobs:
        z2, size = settings(job)
        if not isinstance(z2, int) or not isinstance(size, int):
            continue
        for dep in job.after:
            if isinstance(z1.get(dep), int) and z2 >= size * z1[dep]:
                n = size * z1[dep]
                raise GridsearchError(
                    message=f"is {z2} in stage '{stage.name}', but a group of {size} latent "
                    f"vectors of stage '{stage.after}' (latent {z1[dep]}) has {n} values: "
                    f"choose a latent below {n}, or a larger data.group.size",
                    source=stage.space.where_key("model.latent"),
                    key="model.latent",
                )


# What a plan writes before campaign.json exists: another plan may be making the campaign.
_PLAN_IN_PROGRESS = frozenset({C.LOCK, C.JOBS})


def _check_target(root: Path, space: Space, racing: bool = False) -> bool:
    """Whether ``root`` is an existing campaign of this space; refuse anything else.

    With ``racing`` (the check before the lock is taken) a directory holding only what a
    plan writes first is accepted: another plan may be creating the campaign right now,
    and the check is made again, strictly, under the lock.
    """
    if root.exists() and not root.is_dir():
        raise GridsearchError(
            message="exists and is not a directory; choose another -o", source=str(root)
        )
    if C.is_campaign(root):
        try:
            info = json.loads((root / C.CAMPAIGN).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GridsearchError(
                message=f"campaign.json cannot be read ({exc})", source=str(root)
            ) from None
        if info.get("name") != space.name:
            raise GridsearchError(
                message=f"is the campaign '{info.get('name')}', but the space is named "
                f"'{space.name}'; choose another -o",
                source=str(root),
            )
        return True
    allowed = _PLAN_IN_PROGRESS if racing else frozenset({C.LOCK})

    def in_progress(name: str) -> bool:
        # also campaign.json's temp file, there for an instant before its rename
        return name in allowed or (
            racing and name.startswith(f".{C.CAMPAIGN}.") and name.endswith(".tmp")
        )

    if root.is_dir() and any(not in_progress(p.name) for p in root.iterdir()):
        raise GridsearchError(
            message="exists, is not empty and is not a campaign directory (no campaign.json); "
            "choose a new or empty directory with -o",
            source=str(root),
        )
    return False


def _write_job(jobs_dir: str, job: PlannedJob, text: str) -> None:
    """Create ``jobs/<id>/config.yaml`` (no fsync, no rename: the fewest file operations).

    A crash can leave at most a job dir that the manifest, written last, does not name yet;
    the next plan rewrites those (see :func:`plan`), so no campaign names a half-written job.
    """
    path = os.path.join(jobs_dir, job.id)
    os.mkdir(path)
    fd = os.open(os.path.join(path, CONFIG), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def plan(
    space_path: str | Path,
    out: str | Path | None = None,
    *,
    dry_run: bool = False,
    yes: bool = False,
    max_points: int = DEFAULT_MAX_POINTS,
    lock_wait_s: float = 30.0,
) -> PlanReport:
    """Plan (or re-plan) the campaign of a space file.

    Parameters
    ----------
    space_path
        The space YAML file.
    out
        The campaign directory; default ``./<space name>``.
    dry_run
        Validate and compare with an existing campaign, write nothing.
    yes
        Allow more than ``max_points`` points.
    """
    space = load_space(space_path)
    if space.stages:
        points, jobs = validate_staged(space, max_points=max_points, yes=yes)
    else:
        points = expand(space, max_points=max_points, yes=yes)
        jobs = validate(space, points)
    root = Path(out) if out is not None else Path(space.name)
    exists = _check_target(root, space, racing=not dry_run)
    report = PlanReport(root=root, space=space, jobs=jobs, new_campaign=not exists)
    report.dry_run = dry_run
    sources = {(p.raw.get("data") or {}).get("source") for p in points} - {None}
    for source in sorted(s for s in sources if isinstance(s, str)):
        if not source.startswith("bundled:") and "://" not in source and not Path(source).exists():
            report.warnings.append(f"data file {source} does not exist (yet)")
    if dry_run:
        old = _old_manifest(root) if exists else {}
        _compare(report, old, {p.name for p in _scan(root / C.JOBS)} if exists else set())
        return report
    root.mkdir(parents=True, exist_ok=True)
    with C.campaign_lock(root, "plan", lock_wait_s):
        # again under the lock: another plan may have made it meanwhile
        report.new_campaign = not _check_target(root, space)
        jobs_dir = root / C.JOBS
        jobs_dir.mkdir(exist_ok=True)
        old = _old_manifest(root)
        present = {e.name for e in _scan(jobs_dir)}
        _compare(report, old, present)
        _write_campaign(root, space)
        by_id = {j.id: j for j in jobs}
        for jid in report.added:
            _write_job(str(jobs_dir), by_id[jid], by_id[jid].config_text(space.name))
        # rewrite (atomically) renamed jobs and jobs an interrupted plan left unnamed, unless
        # they started: a job that ran is never touched
        unnamed = [jid for jid in report.unchanged if jid not in old]
        for jid in [*report.renamed, *unnamed]:
            job_dir = jobs_dir / jid
            if not (job_dir / STATE).exists():
                atomic_write_text(job_dir / CONFIG, by_id[jid].config_text(space.name))
        entries = [j.manifest_entry() for j in jobs]
        gone_entries = [dict(old[jid], in_space=False) for jid in report.gone]
        for i, entry in enumerate(gone_entries, start=len(entries)):
            entry["index"] = i
        header: dict[str, Any] = {
            "name": space.name,
            "planned": now_iso(),
            "space_sha256": _sha(space.text),
            "axes": space.keys,
        }
        if space.stages:
            header["stages"] = [{"name": st.name, "after": st.after} for st in space.stages]
        C.write_manifest(root, {**header, "jobs": entries + gone_entries})
        # Only a plan that completed is recorded: a killed one left no manifest update,
        # and the next plan counts what it really adds.
        _record_plan(root, space, report)
    return report


def _scan(path: Path, hidden: bool = False) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return [e for e in it if hidden or not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _old_manifest(root: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((root / C.MANIFEST).read_text(encoding="utf-8"))
        return {e["id"]: e for e in data.get("jobs", []) if isinstance(e, dict) and "id" in e}
    except (OSError, ValueError, TypeError):
        return {}


def _compare(report: PlanReport, old: dict[str, dict[str, Any]], present: set[str]) -> None:
    ids = set()
    for job in report.jobs:
        ids.add(job.id)
        if job.id not in present:
            report.added.append(job.id)
            continue
        report.unchanged.append(job.id)
        before = old.get(job.id)
        if before is not None and before.get("name") != job.name:
            report.renamed.append(job.id)
        if before is not None and before.get("in_space") is False:
            report.returning.append(job.id)
    report.gone = [jid for jid in old if jid not in ids]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_campaign(root: Path, space: Space) -> None:
    """campaign.json (what makes the directory a campaign) and space.yaml, before the jobs."""
    sha = _sha(space.text)
    path = root / C.CAMPAIGN
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {"name": space.name, "created": now_iso(), "plans": []}
    previous = info.get("space", {}).get("sha256")
    if previous and previous != sha and (root / C.SPACE).exists():
        # keep the grid that ran before: history/space-<sha12>.yaml
        (root / C.HISTORY).mkdir(exist_ok=True)
        kept = root / C.HISTORY / f"space-{previous[:12]}.yaml"
        if not kept.exists():
            shutil.copyfile(root / C.SPACE, kept)
    info.update(
        name=space.name,
        tool_version=gridsearch.__version__,
        space={"path": str(space.path.resolve()), "sha256": sha},
    )
    info.setdefault("plans", [])
    atomic_write_json(path, info)
    if previous != sha or not (root / C.SPACE).exists():
        atomic_write_text(root / C.SPACE, space.text)


def _record_plan(root: Path, space: Space, report: PlanReport) -> None:
    """Append the completed plan to campaign.json's ``plans``."""
    path = root / C.CAMPAIGN
    info = json.loads(path.read_text(encoding="utf-8"))
    info.setdefault("plans", []).append(
        {
            "time": now_iso(),
            "space_sha256": _sha(space.text),
            "points": len(report.jobs),
            "added": len(report.added),
            "unchanged": len(report.unchanged),
            "not_in_space": len(report.gone),
        }
    )
    atomic_write_json(path, info)
