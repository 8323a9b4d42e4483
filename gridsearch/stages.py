"""Space files with stages: campaigns whose later stages train on the models of earlier ones.

A staged space file (docs/collective.md, "Campaigns with stages")::

    name: collective
    base: {...}                 # shared by every stage (a stage's base overrides it)
    stages:
      single:                   # an ordinary space: base, grid, zip, repeat, include, exclude
        grid: {model.latent: [2, 3], train.lr: [1e-3, 3e-3]}
      grouped:
        after: single           # the stage whose finished jobs it picks from
        stage1: {pick: best, by: ae.pt.width, per: [model.latent]}
        base: {data: {group: {by: sequence}}}
        zip: {data.group.size: [2, 4], model.latent: [4, 8]}

Each point of a dependent stage is planned once per group of candidates: with ``pick:
best``, the jobs of the ``after`` stage that share the values of the ``per`` keys (all of
them without ``per``); with ``pick: each``, every job of that stage alone. The point's
``model.stage1`` names its candidates (``{pick: best, by: ..., from: [../<id>, ...]}`` or
``../<id>``); the job itself picks the best finished one when it starts
(hepae_core.training.two_stage) and writes its choice into its job dir (``stage1.json``).

The manifest carries each job's ``stage`` and ``after`` (the job ids it depends on);
``status`` calls a job whose dependencies are not done ``waiting``; ``submit`` submits the
stages in order, a later one held by the scheduler until the earlier one ended.
Nothing here writes files or imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridsearch.errors import GridsearchError
from gridsearch.space import (
    NAME_RE,
    Point,
    Rule,
    Space,
    _lookup,
    _read_rules,
    check_key,
    matches,
    read_body,
    set_dotted,
)
from hepae_core.errors import did_you_mean

#: What one stage may hold.
STAGE_KEYS = ("after", "stage1", "base", "grid", "zip", "repeat", "include", "exclude")
#: Top-level keys a staged space file may have besides ``stages``.
STAGED_TOP_KEYS = ("name", "description", "base", "stages", "bundle")
PICKS = ("best", "each")
DEFAULT_BY = "best_val_loss"


@dataclass
class Stage:
    """One stage of a staged space: its own sub-space and what it depends on."""

    name: str
    space: Space
    after: str | None = None
    pick: str = "best"
    by: str = DEFAULT_BY
    per: list[str] = field(default_factory=list)
    where: list[Rule] = field(default_factory=list)  # only candidates matching one of them

    @property
    def keys(self) -> list[str]:
        """Its axis keys, then the labels of its stage-1 candidates."""
        return self.space.keys + self.label_keys

    @property
    def label_keys(self) -> list[str]:
        if self.after is None:
            return []
        if self.pick == "each":
            return ["stage1"]
        return [f"stage1.{k}" for k in self.per]


def _merge_base(top: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's base over the shared one, section by section."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in top.items()}
    for key, value in own.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def read_stages(space: Space, data: Mapping[str, Any]) -> None:
    """Read ``stages:`` into ``space.stages``, in the order they must run.

    Raises
    ------
    GridsearchError
        Axes outside the stages, an unknown stage key or ``after``, a cycle, a bad
        ``stage1`` section: one message naming the file, line and key.
    """
    _check_top_keys(space, data)
    stages = data["stages"]
    if not isinstance(stages, Mapping) or not stages:
        raise GridsearchError(
            message="must be a mapping of stage names to stages, e.g. {single: {grid: ...}, "
            "grouped: {after: single, grid: ...}}",
            source=space.where("stages"),
            key="stages",
        )
    top_base = data.get("base") or {}
    by_name = {name: _read_stage(space, name, body, top_base) for name, body in stages.items()}
    _check_afters(by_name, space)
    space.stages = _in_order(by_name, space)


def _check_top_keys(space: Space, data: Mapping[str, Any]) -> None:
    """Only :data:`STAGED_TOP_KEYS` beside ``stages:`` (axes belong to a stage)."""
    for key in data:
        if key not in STAGED_TOP_KEYS:
            raise GridsearchError(
                message="cannot stand beside 'stages:'; give each stage its own "
                + ("grid/zip/repeat" if key in ("grid", "zip", "repeat") else "keys")
                + " under stages.<name> (a stage holds "
                + ", ".join(STAGE_KEYS)
                + ")",
                source=space.where(key),
                key=str(key),
            )


def _read_stage(space: Space, name: Any, body: Any, top_base: Mapping[str, Any]) -> Stage:
    """One stage: its name and keys checked, its sub-space read, then its dependency."""
    _check_stage_body(space, name, body)
    own_base = body.get("base") or {}
    if not isinstance(own_base, Mapping):
        raise GridsearchError(
            message="must be a mapping of job config sections",
            source=space.where("stages", name, "base"),
            key=f"stages.{name}.base",
        )
    sub = Space(
        path=space.path,
        text=space.text,
        name=space.name,
        base=_merge_base(top_base, own_base),
        axes=[],
        include=[],
        exclude=[],
        lines=space.lines,
        prefix=("stages", name),
    )
    read_body(sub, body)
    stage = Stage(name=name, space=sub)
    _read_dependency(stage, body, space)
    return stage


def _check_stage_body(space: Space, name: Any, body: Any) -> None:
    """A stage name of safe characters, and a mapping of :data:`STAGE_KEYS`."""
    where = space.where("stages", name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridsearchError(
            message=f"a stage name must be letters, digits, '.', '_' or '-', got {name!r}",
            source=where,
            key="stages",
        )
    if not isinstance(body, Mapping):
        raise GridsearchError(
            message="must be a mapping with grid/zip/repeat (and after, stage1 for a "
            "stage that picks from another)",
            source=where,
            key=f"stages.{name}",
        )
    for key in body:
        if key not in STAGE_KEYS:
            raise GridsearchError(
                message="is not a stage key (expected one of "
                + ", ".join(STAGE_KEYS)
                + ")"
                + did_you_mean(str(key), STAGE_KEYS),
                source=space.where("stages", name, key),
                key=f"stages.{name}.{key}",
            )


def _check_afters(by_name: dict[str, Stage], space: Space) -> None:
    """Every ``after`` names a stage of the file."""
    for stage in by_name.values():
        if stage.after is not None and stage.after not in by_name:
            raise GridsearchError(
                message=f"names no stage of this file (stages: {', '.join(by_name)})"
                + did_you_mean(stage.after, list(by_name)),
                source=space.where("stages", stage.name, "after"),
                key=f"stages.{stage.name}.after",
            )


def _read_dependency(stage: Stage, body: Mapping[str, Any], space: Space) -> None:
    """``after`` and ``stage1`` of a stage: whom it picks from, how, and among which jobs."""
    if not _read_after(stage, body, space):
        return
    name = stage.name
    spec = body.get("stage1")
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping) or set(spec) - {"pick", "by", "per", "where"}:
        raise GridsearchError(
            message="expects {pick: best|each, by: <metric, lower is better>, per: [<keys>], "
            "where: <rule on the earlier stage's jobs>}",
            source=space.where("stages", name, "stage1"),
            key=f"stages.{name}.stage1",
        )
    pick = _read_pick(spec, name, space)
    by = _read_by(spec, name, space)
    per = _read_per(spec, name, space, pick)
    stage.pick, stage.by, stage.per = pick, by, per
    if spec.get("where") is not None:
        # the include/exclude rule syntax, read relative to this stage1 section
        holder = Space(
            path=space.path, text=space.text, name=space.name, base={}, axes=[], include=[],
            exclude=[], lines=space.lines, prefix=("stages", name, "stage1"),
        )  # fmt: skip
        stage.where = _read_rules(holder, spec, "where")


def _read_after(stage: Stage, body: Mapping[str, Any], space: Space) -> bool:
    """``stage.after`` from the body; False for a stage that picks from no other."""
    name = stage.name
    after = body.get("after")
    if after is None:
        if body.get("stage1") is not None:
            raise GridsearchError(
                message="needs 'after: <stage>': the stage whose jobs it picks from",
                source=space.where("stages", name, "stage1"),
                key=f"stages.{name}.stage1",
            )
        return False
    if not isinstance(after, str):
        raise GridsearchError(
            message=f"must be the name of one earlier stage, got {after!r}",
            source=space.where("stages", name, "after"),
            key=f"stages.{name}.after",
        )
    stage.after = after
    if "model.stage1" in stage.space.keys or (stage.space.base.get("model") or {}).get("stage1"):
        raise GridsearchError(
            message="is set by the stage's 'after'/'stage1' (one candidate list per point); "
            "remove model.stage1 from this stage",
            source=space.where("stages", name),
            key="model.stage1",
        )
    return True


def _read_pick(spec: Mapping[str, Any], name: str, space: Space) -> str:
    pick = spec.get("pick", "best")
    if pick not in PICKS:
        raise GridsearchError(
            message=f"is {pick!r}: use 'best' (the best finished job of each group, chosen "
            "when the job starts) or 'each' (one point per job of the earlier stage)",
            source=space.where("stages", name, "stage1", "pick"),
            key=f"stages.{name}.stage1.pick",
        )
    return str(pick)


def _read_by(spec: Mapping[str, Any], name: str, space: Space) -> str:
    """The metric candidates are ranked by, stripped; a misspelt one refused now, not once
    stage 1 has trained."""
    by = spec.get("by", DEFAULT_BY)
    if not isinstance(by, str) or not by.strip():
        raise GridsearchError(
            message=f"must be a metrics.json key such as ae.pt.width or best_val_loss, got {by!r}",
            source=space.where("stages", name, "stage1", "by"),
            key=f"stages.{name}.stage1.by",
        )
    from hepae_core.config import metric_key_problem

    problem = metric_key_problem(by.strip())
    if problem is not None:
        raise GridsearchError(
            message=problem,
            source=space.where("stages", name, "stage1", "by"),
            key=f"stages.{name}.stage1.by",
        )
    return by.strip()


def _read_per(spec: Mapping[str, Any], name: str, space: Space, pick: str) -> list[str]:
    """The keys whose values make a candidate group (``pick: best`` only)."""
    per = spec.get("per", [])
    per = [per] if isinstance(per, str) else per
    if not isinstance(per, list):
        raise GridsearchError(
            message="must be a list of dotted config keys, e.g. [model.latent]",
            source=space.where("stages", name, "stage1", "per"),
            key=f"stages.{name}.stage1.per",
        )
    for key in per:
        check_key(key, space.where("stages", name, "stage1", "per"))
    if pick == "each" and per:
        raise GridsearchError(
            message="'per' groups candidates for 'pick: best'; with 'pick: each' every job is "
            "its own candidate: remove 'per'",
            source=space.where("stages", name, "stage1", "per"),
            key=f"stages.{name}.stage1.per",
        )
    return list(per)


def _in_order(by_name: dict[str, Stage], space: Space) -> list[Stage]:
    """The stages ordered so that each comes after the one it names; a cycle is refused."""
    order: list[Stage] = []
    done: set[str] = set()
    for start in by_name:
        chain: list[str] = []
        name: str | None = start
        while name is not None and name not in done:
            if name in chain:
                loop = [*chain[chain.index(name) :], name]
                raise GridsearchError(
                    message="the stages depend on each other in a cycle ("
                    + " -> ".join(loop)
                    + "): a stage can only pick from a stage that does not wait on it",
                    source=space.where("stages", name, "after"),
                    key=f"stages.{name}.after",
                )
            chain.append(name)
            name = by_name[name].after
        for item in reversed(chain):
            done.add(item)
            order.append(by_name[item])
    return order


@dataclass
class CandidateGroup:
    """Stage-1 jobs a stage-2 point picks from, and the labels that say which group it is."""

    ids: list[str]
    labels: dict[str, Any]


def candidate_groups(
    stage: Stage, earlier: list[Any], raws: dict[str, dict]
) -> list[CandidateGroup]:
    """The candidate groups of a dependent stage, from the planned jobs of its ``after``
    stage (``earlier``: PlannedJob, in plan order; ``raws``: job id -> raw config)."""
    if stage.where:
        earlier = [j for j in earlier if any(matches(r, raws[j.id]) for r in stage.where)]
    if not earlier:
        raise GridsearchError(
            message=f"no job of stage '{stage.after}' matches 'where'; loosen it",
            source=stage.space.where("stage1"),
            key=f"stages.{stage.name}.stage1.where",
        )
    if stage.pick == "each":
        return [CandidateGroup([j.id], {"stage1": j.name}) for j in earlier]
    groups: dict[tuple[str, ...], CandidateGroup] = {}
    for job in earlier:
        values = {f"stage1.{k}": _lookup(raws[job.id], k) for k in stage.per}
        key = tuple(repr(v) for v in values.values())
        groups.setdefault(key, CandidateGroup([], values)).ids.append(job.id)
    return list(groups.values())


def stage1_setting(stage: Stage, group: CandidateGroup) -> Any:
    """The ``model.stage1`` value of a point picking from ``group`` (paths relative to its
    job dir: the jobs are siblings under jobs/)."""
    if stage.pick == "each":
        return f"../{group.ids[0]}"
    return {"pick": "best", "by": stage.by, "from": [f"../{i}" for i in group.ids]}


def dependent_points(stage: Stage, own: list[Point], groups: list[CandidateGroup]) -> list[Point]:
    """Each point of the stage once per candidate group, ``model.stage1`` set."""
    out = []
    for point in own:
        for group in groups:
            raw = dict(point.raw)
            set_dotted(raw, "model.stage1", stage1_setting(stage, group))
            out.append(Point(point.index, {**point.params, **group.labels}, raw))
    return out
