"""Site profiles: packaged YAML files in ``sites/`` plus the user's own.

A profile names the scheduler ``kind`` (local, slurm, condor), the template, default
requests, the site's limits and how the Python environment is set up. A profile may
``extends:`` another; mappings merge key by key, the child winning.

User profiles are looked up, before the packaged ones, in the directories given with
``--sites-dir``, in ``$GRIDSEARCH_SITES`` (a ``:``-separated list) and in
``~/.config/gridsearch/sites``.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gridsearch.errors import GridsearchError

USER_SITES_ENV = "GRIDSEARCH_SITES"


def user_site_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Directories searched for user profiles, first match wins."""
    dirs = list(extra or [])
    env = os.environ.get(USER_SITES_ENV, "")
    dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path.home() / ".config" / "gridsearch" / "sites")
    return dirs


def _packaged(name: str) -> str | None:
    entry = resources.files("sites").joinpath(f"{name}.yaml")
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


def available(extra: list[Path] | None = None) -> dict[str, str]:
    """Profile name -> where it comes from (a path, or 'packaged')."""
    found: dict[str, str] = {}
    for entry in resources.files("sites").iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name[: -len(".yaml")]] = "packaged"
    for d in reversed(user_site_dirs(extra)):
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                found[p.stem] = str(p)
    return dict(sorted(found.items()))


def _read(name: str, extra: list[Path] | None) -> tuple[dict[str, Any], str]:
    for d in user_site_dirs(extra):
        p = d / f"{name}.yaml"
        if p.is_file():
            return _parse(p.read_text(encoding="utf-8"), str(p)), str(p)
    text = _packaged(name)
    if text is None:
        known = ", ".join(available(extra)) or "none"
        raise GridsearchError(
            f"no site profile named '{name}' (known: {known}); add one as "
            f"~/.config/gridsearch/sites/{name}.yaml or pass --sites-dir",
            key="--site",
        )
    return _parse(text, f"sites/{name}.yaml"), f"sites/{name}.yaml"


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GridsearchError(f"is not valid YAML: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise GridsearchError("a site profile must be a mapping", source=source)
    return data


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``child`` replaces."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_profile(name: str, extra: list[Path] | None = None) -> dict[str, Any]:
    """The resolved profile ``name``: its ``extends`` chain merged, ``name`` and ``source`` set."""
    chain: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()
    current: str | None = name
    while current is not None:
        if current in seen:
            raise GridsearchError(f"profile '{name}' extends itself through '{current}'")
        seen.add(current)
        data, source = _read(current, extra)
        chain.append((data, source))
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise GridsearchError("must name one profile", source=source, key="extends")
        current = parent
    profile: dict[str, Any] = {}
    for data, _ in reversed(chain):
        profile = merge(profile, {k: v for k, v in data.items() if k != "extends"})
    profile["name"] = name
    profile["source"] = chain[0][1]
    if profile.get("kind") not in ("local", "slurm", "condor"):
        raise GridsearchError("must be local, slurm or condor", source=chain[0][1], key="kind")
    return profile
