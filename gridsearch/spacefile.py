"""The space-file parser: one YAML file into a checked :class:`~gridsearch.space.Space`.

A space file is composed of two parts with a module each: the syntax of a space (``base``,
``grid``, ``zip``, ``repeat``, ``include``, ``exclude``, ``halving``: :mod:`gridsearch.space`)
and its ``stages:`` section (:mod:`gridsearch.stages`, which reads each stage with the
syntax module). This module sits above both and is the only one that reads a whole file,
so the two never import each other in a circle: stages imports space, spacefile imports
both. A new top-level section is read here (and listed in ``space.TOP_KEYS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gridsearch.errors import GridsearchError
from gridsearch.space import NAME_RE, TOP_KEYS, Space, _suggest, parse_yaml, read_body
from gridsearch.stages import read_stages
from hepae_core import yamlio
from hepae_core.config import SCHEMA

__all__ = ["load_space"]


def load_space(path: str | Path) -> Space:
    """Read and check a space file (structure, keys, axes, rules); does not expand it."""
    path = Path(path)
    src = str(path)
    text = yamlio.read_text(path, GridsearchError)
    data, lines = parse_yaml(text, src)
    space = Space(path=path, text=text, name="", base={}, axes=[], include=[], exclude=[])
    space.lines = lines
    if not isinstance(data, Mapping):
        raise GridsearchError(
            message="a space file must be a mapping with name, base and grid", source=src
        )
    for key in data:
        if key not in TOP_KEYS:
            raise GridsearchError(
                message="is not a space file key (expected one of "
                + ", ".join(TOP_KEYS)
                + ")"
                + _suggest(str(key), list(TOP_KEYS))
                + (
                    "; job settings go under 'base:' or 'grid:'"
                    if isinstance(key, str) and "." in key
                    else ""
                ),
                source=space.where(key),
                key=str(key),
            )
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridsearchError(
            message=f"must be a short name of letters, digits, '.', '_' or '-', got {name!r}",
            source=space.where("name"),
            key="name",
        )
    space.name = name
    base = data.get("base") or {}
    if not isinstance(base, Mapping):
        raise GridsearchError(
            message="must be a mapping of job config sections",
            source=space.where("base"),
            key="base",
        )
    for key, value in base.items():
        if key in SCHEMA and value is not None and not isinstance(value, Mapping):
            raise GridsearchError(
                message=f"must be a mapping of {key} settings, got {value!r}",
                source=space.where("base", key),
                key=key,
            )
    if data.get("bundle") is not None:
        from gridsearch.bundles import parse_space_bundle

        parse_space_bundle(data["bundle"], space.where("bundle"))
    if data.get("evaluate_on") is not None:
        from gridsearch.samples import sample_path

        sample_path(data["evaluate_on"], space.where("evaluate_on"), path.resolve().parent,
                    GridsearchError, must_exist=False)  # fmt: skip
    if data.get("stages") is not None:
        read_stages(space, data)
        return space
    space.base = dict(base)
    read_body(space, data)
    return space
