"""Space files: one YAML file describing a hyperparameter scan, and its expansion into points.

A space file has a ``name``, a ``base`` job config (any ``hepae_core`` key) and the axes:

* ``grid``: dotted key -> list of values; the cartesian product of all of them,
* ``zip``: dotted key -> list of values that vary together (one mapping, or a list of them,
  each one more axis of the product),
* ``repeat``: a number of seeds (``seed`` = base seed + 0, 1, ...) or a list of seeds,
* ``exclude``: rules; a point matching any of them is dropped,
* ``include``: rules; when given, only points matching at least one of them are kept.

A rule maps dotted keys to a value (equal), a list (one of) or a mapping of operators
(``eq ne lt le gt ge in not_in``). See docs/gridsearch.md.

This module is the syntax of a space (axes, rules, expansion); the file-level parser that
also reads the ``stages:`` section (:mod:`gridsearch.stages`) is
:func:`gridsearch.spacefile.load_space`, above both, so neither imports the other's
importer. Nothing here writes files or imports torch; :func:`expand` turns a space into
points without validating them as job configs (that is the planner's job, see
:mod:`gridsearch.plan`).
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridsearch.errors import GridsearchError
from hepae_core import yamlio
from hepae_core.config import PRESETS, SCHEMA, known_keys

# Refused before expanding, even with --yes: a scan this large is a mistake.
HARD_MAX_POINTS = 1_000_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOP_KEYS = (
    "name",
    "description",
    "base",
    "grid",
    "zip",
    "repeat",
    "include",
    "exclude",
    "halving",  # successive halving by `gridsearch promote` (gridsearch/halving.py)
    "stages",  # stages that depend on each other (gridsearch/stages.py)
    "bundle",  # default --bundle K of the campaign's submissions (gridsearch/bundles.py)
    "evaluate_on",  # the second sample every summary evaluates on (gridsearch/samples.py)
)
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in")


@dataclass
class Axis:
    """One axis of the product: one key (grid, repeat) or several varying together (zip)."""

    keys: list[str]
    values: list[tuple[Any, ...]]  # one tuple per step, one value per key
    kind: str  # grid, zip, repeat


@dataclass
class Rule:
    """An include or exclude rule: every key must match."""

    conditions: dict[str, Any]
    kind: str
    line: int | None


@dataclass
class Space:
    """A checked space file, not yet expanded."""

    path: Path
    text: str
    name: str
    base: dict[str, Any]
    axes: list[Axis]
    include: list[Rule]
    exclude: list[Rule]
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    #: Where this (sub-)space sits in the file: ``("stages", name)`` for a stage.
    prefix: tuple[Any, ...] = ()
    #: The stages of a staged space file (gridsearch/stages.py), in the order they run.
    stages: list[Any] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """All axis keys, in file order (of every stage, for a staged space)."""
        if self.stages:
            out: list[str] = []
            for stage in self.stages:
                out.extend(k for k in stage.keys if k not in out)
            return out
        return [k for axis in self.axes for k in axis.keys]

    def count(self) -> int:
        """Number of points of the product, before include/exclude."""
        return math.prod(len(a.values) for a in self.axes)

    def where(self, *path: Any) -> str:
        """``file:line`` of a key of the space file (the file alone when unknown)."""
        path = (*self.prefix, *path)
        for n in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)

    def where_key(self, dotted: str) -> str:
        """``file:line`` where a dotted job-config key is set: its axis, else the base."""
        for axis in self.axes:
            if dotted in axis.keys:
                if axis.kind != "zip":
                    return self.where(axis.kind, dotted)
                n = len(self.prefix)
                for path in self.lines:  # one zip mapping, or a list of them
                    in_zip = path[:n] == self.prefix and path[n : n + 1] == ("zip",)
                    if in_zip and path[-1] == dotted:
                        return self.where(*path[n:])
        return self.where("base", *dotted.split("."))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML text safely (hepae_core.yamlio); return the data and the line of every key."""
    return yamlio.parse(text, source, GridsearchError)


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_key(dotted: Any, where: str) -> str:
    """A dotted job-config key an axis or a rule may name; raise with a suggestion if not."""
    if not isinstance(dotted, str):
        raise GridsearchError(
            message="keys must be dotted config keys such as train.lr",
            source=where,
            key=str(dotted),
        )
    known = known_keys()
    if dotted in known and dotted != "name":
        return dotted
    parts = dotted.split(".")
    # entries of mapping settings, e.g. evaluate.residuals.pt or data.branches.pt
    if (
        len(parts) == 3
        and parts[0] in SCHEMA
        and parts[1] in SCHEMA[parts[0]]
        and isinstance(SCHEMA[parts[0]][parts[1]].default, dict)
        and parts[2]
    ):
        return dotted
    if dotted == "name":
        raise GridsearchError(
            message="is given by gridsearch to each point; it cannot be an axis",
            source=where,
            key=dotted,
        )
    raise GridsearchError(
        message="is not a key hepae_core knows" + _suggest(dotted, known), source=where, key=dotted
    )


def read_body(space: Space, data: Mapping[str, Any]) -> None:
    """The axes and rules of a space (or of one stage: ``space.prefix``), into ``space``;
    ``space.base`` is set before."""
    src = space.where()
    if data.get("halving") is not None:
        from gridsearch.halving import parse_halving

        parse_halving(data["halving"], space.where("halving"), space.base)
    _read_grid(space, data)
    _read_zip(space, data)
    _read_repeat(space, data)
    if data.get("halving") is not None:
        _check_halving_schedule(space)
    if not space.axes:
        raise GridsearchError(
            message="the space has no axes: add a 'grid:' (e.g. train.lr: [1e-2, 1e-3]), "
            "a 'zip:' or 'repeat:'",
            source=src,
        )
    seen: dict[str, str] = {}
    for axis in space.axes:
        for k in axis.keys:
            if k in seen:
                raise GridsearchError(
                    message=f"is an axis of both {seen[k]} and {axis.kind}; keep one",
                    source=space.where_key(k),
                    key=k,
                )
            seen[k] = axis.kind
    space.exclude = _read_rules(space, data, "exclude")
    space.include = _read_rules(space, data, "include")


def _values(space: Space, value: Any, *path: Any) -> list[Any]:
    key = str(path[-1])
    if not isinstance(value, list):
        raise GridsearchError(
            message=f"must be a list of values, got {value!r}; write [{value!r}] for a "
            "single value",
            source=space.where(*path),
            key=key,
        )
    if not value:
        raise GridsearchError(
            message="is an empty list: give at least one value", source=space.where(*path), key=key
        )
    return value


def _read_grid(space: Space, data: Mapping[str, Any]) -> None:
    if "grid" not in data:
        return
    grid = data["grid"]
    if not isinstance(grid, Mapping) or not grid:
        raise GridsearchError(
            message="is empty: give dotted keys with lists of values, e.g. 'train.lr: "
            "[1e-2, 1e-3]'",
            source=space.where("grid"),
            key="grid",
        )
    for key, value in grid.items():
        check_key(key, space.where("grid", key))
        values = _values(space, value, "grid", key)
        space.axes.append(Axis([key], [(v,) for v in values], "grid"))


def _read_zip(space: Space, data: Mapping[str, Any]) -> None:
    if "zip" not in data:
        return
    groups = data["zip"]
    paths: list[tuple[Any, ...]]
    if isinstance(groups, Mapping):
        groups, paths = [groups], [("zip",)]
    elif isinstance(groups, list) and groups:
        paths = [("zip", i) for i in range(len(groups))]
    else:
        raise GridsearchError(
            message="must be a mapping of dotted keys to lists of equal length (or a list of them)",
            source=space.where("zip"),
            key="zip",
        )
    for group, path in zip(groups, paths):
        if not isinstance(group, Mapping) or not group:
            raise GridsearchError(
                message="must be a non-empty mapping of dotted keys to lists",
                source=space.where(*path),
                key="zip",
            )
        keys, columns = [], []
        for key, value in group.items():
            check_key(key, space.where(*path, key))
            keys.append(key)
            columns.append(_values(space, value, *path, key))
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(c)}" for k, c in zip(keys, columns))
            raise GridsearchError(
                message=f"lists that vary together must have the same length ({sizes})",
                source=space.where(*path),
                key="zip",
            )
        space.axes.append(Axis(keys, list(zip(*columns)), "zip"))


def _check_halving_schedule(space: Space) -> None:
    """Halving continues jobs to more epochs; a one_cycle schedule cannot be continued."""
    schedules = [((space.base.get("train") or {}).get("schedule"), space.where("base"))]
    for axis in space.axes:
        if "train.schedule" in axis.keys:
            k = axis.keys.index("train.schedule")
            where = space.where_key("train.schedule")
            schedules.extend((values[k], where) for values in axis.values)
    for schedule, where in schedules:
        if schedule == "one_cycle":
            raise GridsearchError(
                message="is one_cycle, which 'halving:' cannot continue: its learning rate "
                "is laid out over the total number of steps, so a job trained to the first "
                "rung has already annealed and cannot be extended to the next rung's "
                "epochs; use constant or plateau, or drop 'halving:' and plan one-cycle "
                "jobs with their final epochs",
                source=where,
                key="train.schedule",
            )


def _read_repeat(space: Space, data: Mapping[str, Any]) -> None:
    if "repeat" not in data:
        return
    rep = data["repeat"]
    where = space.where("repeat")
    base_seed = space.base.get("seed", 0)
    if isinstance(rep, bool) or not (
        (isinstance(rep, int) and rep > 0)
        or (isinstance(rep, list) and rep and all(type(s) is int and s >= 0 for s in rep))
    ):
        raise GridsearchError(
            message=f"must be a number of seeds (>= 1) or a list of seeds, got {rep!r}",
            source=where,
            key="repeat",
        )
    if isinstance(rep, int) and rep > HARD_MAX_POINTS:
        # checked before the seed list is built: 10**8 seeds would not fit in memory
        raise GridsearchError(
            message=f"{rep:,} seeds are more than a campaign may have points "
            f"({HARD_MAX_POINTS:,}); ask for fewer",
            source=where,
            key="repeat",
        )
    if isinstance(rep, int):
        if type(base_seed) is not int:
            base_seed = 0
        seeds = [base_seed + i for i in range(rep)]
    else:
        seeds = list(rep)
    space.axes.append(Axis(["seed"], [(s,) for s in seeds], "repeat"))


def _read_rules(space: Space, data: Mapping[str, Any], kind: str) -> list[Rule]:
    if kind not in data:
        return []
    rules = data[kind]
    if isinstance(rules, Mapping):
        rules = [rules]
    if not isinstance(rules, list) or not rules:
        raise GridsearchError(
            message="must be a list of rules, each a mapping of dotted keys to values or operators",
            source=space.where(kind),
            key=kind,
        )
    out = []
    for i, rule in enumerate(rules):
        path = (kind, i) if isinstance(data[kind], list) else (kind,)
        if not isinstance(rule, Mapping) or not rule:
            raise GridsearchError(
                message="a rule must be a non-empty mapping such as {model.latent: {lt: 12}}",
                source=space.where(*path),
                key=kind,
            )
        for key, cond in rule.items():
            where = space.where(*path, key)
            check_key(key, where)
            if isinstance(cond, Mapping):
                for op in cond:
                    if op not in OPERATORS:
                        raise GridsearchError(
                            message=f"unknown operator {op!r}; use one of " + ", ".join(OPERATORS),
                            source=where,
                            key=key,
                        )
                    if op in ("in", "not_in") and not isinstance(cond[op], list):
                        raise GridsearchError(
                            message=f"'{op}' needs a list of values", source=where, key=key
                        )
        out.append(Rule(dict(rule), kind, space.lines.get((*space.prefix, *path))))
    return out


def _lookup(raw: Mapping[str, Any], dotted: str) -> Any:
    """A dotted key of a raw (unresolved) config: as set, else from the preset, else default."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return raw.get(parts[0], 0 if parts[0] == "seed" else None)
    section = raw.get(parts[0]) or {}
    if parts[1] in section:
        value = section[parts[1]]
        return value.get(parts[2]) if len(parts) == 3 and isinstance(value, Mapping) else value
    if parts[0] == "model" and section.get("preset") in PRESETS:
        preset = PRESETS[section["preset"]]
        if parts[1] in preset:
            return preset[parts[1]]
    default = SCHEMA[parts[0]][parts[1]].default
    return default.get(parts[2]) if len(parts) == 3 else default


def _match(value: Any, cond: Any) -> bool:
    if isinstance(cond, Mapping):
        for op, ref in cond.items():
            if op == "eq":
                ok = value == ref
            elif op == "ne":
                ok = value != ref
            elif op == "in":
                ok = value in ref
            elif op == "not_in":
                ok = value not in ref
            else:
                try:
                    ok = {
                        "lt": value < ref,
                        "le": value <= ref,
                        "gt": value > ref,
                        "ge": value >= ref,
                    }[op]
                except TypeError:
                    return False
            if not ok:
                return False
        return True
    if isinstance(cond, list):
        return value in cond
    return value == cond


def matches(rule: Rule, raw: Mapping[str, Any]) -> bool:
    """Whether a raw point config matches every condition of a rule."""
    return all(_match(_lookup(raw, k), c) for k, c in rule.conditions.items())


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b`` (or ``a.b.c``) in a nested config, copying the mappings it changes."""
    _set_all(cfg, [dotted.split(".")], [value])


def _set_all(raw: dict[str, Any], split: list[list[str]], values: list[Any]) -> None:
    """:func:`set_dotted` of every key (``split``: the keys' parts) in order, copying each
    section once per point rather than once per key: a point of four train axes made four
    copies of its train section (the result is the same)."""
    own: set[str] = set()  # sections already copied for this point
    for parts, value in zip(split, values):
        head = parts[0]
        if len(parts) == 1:
            raw[head] = value
            own.discard(head)  # a value of the grid: copied again if a later key sets inside
            continue
        if head in own:
            section = raw[head]
        else:
            section = raw[head] = dict(raw.get(head) or {})
            own.add(head)
        if len(parts) == 2:
            section[parts[1]] = value
        else:
            sub = dict(section.get(parts[1]) or {})
            sub[parts[2]] = value
            section[parts[1]] = sub


@dataclass
class Point:
    """One expanded point: its position, the axis values and its raw job config."""

    index: int
    params: dict[str, Any]
    raw: dict[str, Any]


def iter_points(space: Space) -> Iterator[Point]:
    """Expand the product of the axes, apply the rules; raw configs are base + params."""
    keys = space.keys
    split = [k.split(".") for k in keys]
    index = 0
    for combo in itertools.product(*(a.values for a in space.axes)):
        values = [v for step in combo for v in step]
        raw = dict(space.base)
        _set_all(raw, split, values)
        if space.exclude and any(matches(r, raw) for r in space.exclude):
            continue
        if space.include and not any(matches(r, raw) for r in space.include):
            continue
        yield Point(index, dict(zip(keys, values)), raw)
        index += 1


def expand(space: Space, max_points: int | None = None, yes: bool = False) -> list[Point]:
    """All points of the space, refusing oversized spaces before expanding them.

    Parameters
    ----------
    max_points
        More points than this need ``yes`` (the ``--yes`` flag).
    """
    total = space.count()
    if total > HARD_MAX_POINTS:
        raise GridsearchError(
            message=f"the space has {total:,} points, more than gridsearch plans "
            f"({HARD_MAX_POINTS:,}); "
            "split it into several spaces or use fewer values",
            source=str(space.path),
        )
    points = list(iter_points(space))
    if not points:
        raise GridsearchError(
            message=f"include/exclude rules leave no point of the {total:,} in the grid; "
            "loosen them",
            source=space.where("exclude" if space.exclude else "include"),
        )
    if max_points is not None and len(points) > max_points and not yes:
        raise GridsearchError(
            message=f"the space has {len(points):,} points, more than --max-points {max_points:,}; "
            "check the grid, then pass --yes to plan them all",
            source=str(space.path),
        )
    return points


def absolute_source(
    raw: dict[str, Any], space_dir: Path, cache: dict[str, str] | None = None
) -> None:
    """Make a relative ``data.source`` absolute against the space file's directory.

    ``cache``: source -> absolute source, shared by the points of one space (the planner
    passes one, so 10,000 points with one source make its path once).
    """
    data = raw.get("data")
    if not isinstance(data, Mapping):
        return
    source = data.get("source")
    if not isinstance(source, str) or not source or source.startswith("bundled:"):
        return
    if "://" in source:
        return
    expanded = cache.get(source) if cache is not None else None
    if expanded is None:
        expanded = os.path.expanduser(source)
        if not os.path.isabs(expanded):
            expanded = os.path.normpath(os.path.join(space_dir, expanded))
        if cache is not None:
            cache[source] = expanded
    if expanded != source:
        raw["data"] = {**data, "source": expanded}
