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
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gridsearch.backends.registry import backend_class, check_kind
from gridsearch.errors import GridsearchError
from gridsearch.options import CARRIED_FLAGS, OVERRIDABLE, OVERRIDE_ALIASES
from gridsearch.units import format_walltime, parse_memory, parse_walltime
from hepae_core import yamlio
from hepae_core.contract import SITES_ENV
from hepae_core.errors import did_you_mean

#: The request overrides a rung's promote job carries on: profile key -> command-line flag
#: (derived from the one table of submission options, :mod:`gridsearch.options`).
OVERRIDE_FLAGS = CARRIED_FLAGS

USER_SITES_ENV = SITES_ENV


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


def _read(
    name: str, extra: list[Path] | None, used: set[str] | None = None
) -> tuple[dict[str, Any], str]:
    """The first profile ``name`` along the search path whose source is not in ``used``.

    Skipping used sources lets a user profile extend the packaged one of the same name
    (``~/.config/gridsearch/sites/kebnekaise.yaml`` with ``extends: kebnekaise``).
    """
    used = used or set()
    for d in user_site_dirs(extra):
        p = d / f"{name}.yaml"
        if p.is_file() and str(p) not in used:
            return _parse(p.read_text(encoding="utf-8"), str(p)), str(p)
    text = _packaged(name) if f"sites/{name}.yaml" not in used else None
    if text is None:
        known = ", ".join(available(extra)) or "none"
        raise GridsearchError(
            message=f"no site profile named '{name}' (known: {known}); add one as "
            f"~/.config/gridsearch/sites/{name}.yaml or pass --sites-dir",
            key="--site",
        )
    return _parse(text, f"sites/{name}.yaml"), f"sites/{name}.yaml"


def _parse(text: str, source: str) -> dict[str, Any]:
    data, _ = yamlio.parse(text, source, GridsearchError)
    if not isinstance(data, dict):
        raise GridsearchError(message="a site profile must be a mapping", source=source)
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
    used: set[str] = set()
    current: str | None = name
    while current is not None:
        if len(chain) > 20:
            raise GridsearchError(message=f"profile '{name}' extends itself through '{current}'")
        try:
            data, source = _read(current, extra, used)
        except GridsearchError:
            if any(Path(s).stem == current for s in used):
                raise GridsearchError(
                    message=f"profile '{name}' extends itself through '{current}'"
                ) from None
            raise
        used.add(source)
        chain.append((data, source))
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise GridsearchError(message="must name one profile", source=source, key="extends")
        current = parent
    profile: dict[str, Any] = {}
    for data, _ in reversed(chain):
        profile = merge(profile, {k: v for k, v in data.items() if k != "extends"})
    profile["name"] = name
    profile["source"] = chain[0][1]
    check_kind(profile.get("kind"), chain[0][1])
    check_profile_values(profile)
    return profile


#: Profile keys that are booleans: a real YAML ``true``/``false`` only (``no`` and
#: ``"false"`` are strings in YAML 1.2 and would read as true).
BOOLEAN_KEYS = ("env.module_purge",)


def _lookup(profile: dict[str, Any], dotted: str) -> Any:
    value: Any = profile
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def check_profile_values(profile: dict[str, Any]) -> None:
    """Refuse profile values that would reach a job script or submit description as
    something other than what they say: template names outside the template directories,
    a ``gpu_request`` other than ``gres``/``gpus``, walltime class names that are not plain
    words, booleans given as strings, local options that are not counts.
    """
    from gridsearch.render import check_template_name

    src = profile.get("source")
    for key in ("template", "script_template"):
        if profile.get(key) is not None:
            check_template_name(profile[key], key, src)
    for key in BOOLEAN_KEYS:
        value = _lookup(profile, key)
        if value is not None and not isinstance(value, bool):
            raise GridsearchError(
                message=f"expects true or false, got {value!r} (a string such as 'no' or "
                "'false' would read as true): write true or false without quotes",
                source=src,
                key=key,
            )
    _check_scheduler_words(profile, src)
    _check_limits_shape(profile, src)
    _check_local_options(profile, src)


def _check_scheduler_words(profile: dict[str, Any], src: Any) -> None:
    """``gpu_request`` and the walltime classes (``flavours``): words written into scripts."""
    gpu_request = profile.get("gpu_request", "gres")
    if gpu_request not in ("gres", "gpus"):
        raise GridsearchError(
            message=f"expects gres (#SBATCH --gres=gpu:N) or gpus (#SBATCH --gpus=N), "
            f"got {gpu_request!r}",
            source=src,
            key="gpu_request",
        )
    flavours = profile.get("flavours")
    if flavours is not None:
        if not isinstance(flavours, dict):
            raise GridsearchError(
                message="expects a mapping NAME: walltime", source=src, key="flavours"
            )
        for name, limit in flavours.items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_]+$", name):
                raise GridsearchError(
                    message=f"{name!r} is not a plain walltime class name (letters, digits, "
                    "_ only)",
                    source=src,
                    key="flavours",
                )
            parse_walltime(limit, f"flavours.{name}")


def _check_limits_shape(profile: dict[str, Any], src: Any) -> None:
    """The ``request``, ``limits``, ``env`` mappings, ``required`` and the limits' counts."""
    for key in ("request", "limits", "env"):
        if profile.get(key) is not None and not isinstance(profile[key], dict):
            raise GridsearchError(message="must be a mapping", source=src, key=key)
    if profile.get("required") is not None:
        required = profile["required"]
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise GridsearchError(
                message="expects a list of request keys, e.g. [account]", source=src, key="required"
            )
    limits = profile.get("limits") or {}
    partitions = limits.get("partitions")
    if partitions is not None and (
        not isinstance(partitions, dict)
        or not all(isinstance(v, dict | None) for v in partitions.values())
    ):
        raise GridsearchError(
            message="expects a mapping NAME: {max_time: ..., cpus_per_node: ..., "
            "gpus_per_node: ...}",
            source=src,
            key="limits.partitions",
        )
    for where, holder in [("limits", limits)] + [
        (f"limits.partitions.{n}", p or {}) for n, p in (partitions or {}).items()
    ]:
        for key in ("max_gpus", "max_cpus", "gpus_per_node", "cpus_per_node"):
            value = holder.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise GridsearchError(
                    message=f"expects an integer >= 0 or null, got {value!r}",
                    source=src,
                    key=f"{where}.{key}",
                )
    types = limits.get("gpu_types")
    if types is not None and (
        not isinstance(types, list) or not all(isinstance(t, str) for t in types)
    ):
        raise GridsearchError(
            message="expects a list of GPU type names", source=src, key="limits.gpu_types"
        )


def _check_local_options(profile: dict[str, Any], src: Any) -> None:
    """The local backend's ``options``: counts and module names."""
    options = profile.get("options")
    if options is not None and not isinstance(options, dict):
        raise GridsearchError(message="must be a mapping", source=src, key="options")
    for key in ("workers", "threads"):
        value = (options or {}).get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise GridsearchError(
                message=f"expects a positive integer, got {value!r}",
                source=src,
                key=f"options.{key}",
            )
    for key in ("job_module", "bundle_module"):
        value = (options or {}).get(key)
        if value is not None and (not isinstance(value, str) or not _MODULE.match(value)):
            raise GridsearchError(
                message=f"expects a Python module name, got {value!r}",
                source=src,
                key=f"options.{key}",
            )


# --------------------------------------------------------------------------------------
# Requests: walltime, memory, cores, GPUs, checked against the site's limits.

# Scheduler option values go into ``#SBATCH`` lines and submit descriptions, which are
# not shell; they must be plain tokens (no spaces, quotes, newlines, ``$``).
_TOKEN = re.compile(r"^[A-Za-z0-9_.:,+=@%/\-]+$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.:,+=@%/\-&|\[\]*!()]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _count(value: Any, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GridsearchError(message=f"expects an integer >= {minimum}, got {value!r}", key=key)
    return value


def _token(value: Any, key: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise GridsearchError(message=f"expects a name, got {value!r}", key=key)
    text = str(value)
    if not pattern.match(text):
        raise GridsearchError(
            message=f"{text!r} is not a plain scheduler value (letters, digits and "
            "_.:,+=@%/- only; "
            "no spaces, quotes, newlines or $)",
            key=key,
        )
    return text


def _str_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GridsearchError(message="expects a list of non-empty strings", key=key)
    return list(value)


def submitting_python() -> tuple[str, str]:
    """The interpreter that runs this command, and where it comes from (for messages).

    Jobs use it by default: on a cluster the login node and the compute nodes share the
    file system holding the user's venv or conda environment, while the ``python3`` of the
    module system on the node does not have the package.
    """
    prefix = sys.prefix
    if prefix != sys.base_prefix:
        return sys.executable, f"the venv that ran gridsearch ({prefix})"
    if os.environ.get("CONDA_PREFIX") == prefix or (Path(prefix) / "conda-meta").is_dir():
        return sys.executable, f"the conda environment that ran gridsearch ({prefix})"
    return sys.executable, "the Python that ran gridsearch"


def check_environment(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile's ``python``, ``module`` and ``env`` section, checked and completed.

    These values are rendered into the job script quoted for the shell, so any string is
    safe; they are only checked for shape. Unless the profile names ``python`` or an
    ``env.venv`` / ``env.conda`` to activate, jobs run with the Python that runs this
    command (:func:`submitting_python`); ``origin`` says which was chosen and why.
    """
    src = profile.get("source")
    python = profile.get("python")
    if python is not None and (not isinstance(python, str) or not python.strip() or "\n" in python):
        raise GridsearchError(
            message="expects one interpreter name or path (or null: the Python running gridsearch)",
            source=src,
            key="python",
        )
    module = profile.get("module", "hepae_core.job")
    if not isinstance(module, str) or not _MODULE.match(module):
        raise GridsearchError(message="expects a Python module name", source=src, key="module")
    env = profile.get("env") or {}
    if not isinstance(env, dict):
        raise GridsearchError(message="must be a mapping", source=src, key="env")
    known = {"module_purge", "modules", "source", "conda", "venv", "variables"}
    for k in env:
        if k not in known:
            raise GridsearchError(
                message=f"unknown key{did_you_mean(k, known)} (known: {', '.join(sorted(known))})",
                source=src,
                key=f"env.{k}",
            )
    purge = env.get("module_purge", False)
    if not isinstance(purge, bool):
        raise GridsearchError(
            message=f"expects true or false, got {purge!r} (a string such as 'no' or 'false' "
            "would read as true): write true or false without quotes",
            source=src,
            key="env.module_purge",
        )
    out: dict[str, Any] = {
        "module_purge": purge,
        "modules": _str_list(env.get("modules"), "env.modules"),
        "source": _str_list(env.get("source"), "env.source"),
        "conda": env.get("conda"),
        "venv": env.get("venv"),
        "variables": {},
    }
    for k in ("conda", "venv"):
        if out[k] is not None and (not isinstance(out[k], str) or not out[k]):
            raise GridsearchError(message="expects a string or null", source=src, key=f"env.{k}")
    variables = env.get("variables") or {}
    if not isinstance(variables, dict):
        raise GridsearchError(
            message="must be a mapping NAME: value", source=src, key="env.variables"
        )
    for name, value in variables.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise GridsearchError(
                message="is not a shell variable name", source=src, key=f"env.variables.{name}"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise GridsearchError(
                message="expects a string or number", source=src, key=f"env.variables.{name}"
            )
        out["variables"][name] = str(value)
    if python is not None:
        origin = f"the profile's python ({src})"
    elif out["venv"] or out["conda"]:
        which = "venv" if out["venv"] else "conda"
        python, origin = "python", f"'python' of the profile's env.{which} {out[which]}"
    else:
        python, origin = submitting_python()
    return {"python": python, "module": module, "env": out, "origin": origin}


def resolve_request(
    profile: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The profile's requests with ``overrides`` applied, checked against its limits.

    Returns the request mapping with normalised extra keys: ``time_s`` (seconds), ``time``
    (``HH:MM:SS``), ``mem_mb`` (or None), ``cpus``, ``gpus``, ``signal_before_s`` and,
    for sites with walltime classes, ``flavour``. Raises :class:`GridsearchError` naming
    the key and the limit when a required value is missing or a request breaks a limit;
    nothing has been written at that point.
    """
    site = profile.get("name", "?")
    src = profile.get("source")
    request = dict(profile.get("request") or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        key = OVERRIDE_ALIASES.get(key, key)
        if key not in OVERRIDABLE:
            raise GridsearchError(
                message=f"cannot be overridden (known: {', '.join(OVERRIDABLE)})", key=key
            )
        request[key] = value
    for key in profile.get("required") or []:
        if request.get(key) in (None, ""):
            raise GridsearchError(
                message=f"is required at site '{site}' and not set: add `request: "
                f"{{{key}: ...}}` to a "
                f"user profile (e.g. ~/.config/gridsearch/sites/{site}.yaml with "
                f"`extends: {site}`) or pass --{key.replace('_', '-')} to submit",
                source=src,
                key=f"request.{key}",
            )
    for key in ("account", "partition", "qos", "gpu_type"):
        if request.get(key) is not None:
            request[key] = _token(request[key], f"request.{key}")
    if request.get("constraint") is not None:
        request["constraint"] = _token(request["constraint"], "request.constraint", _CONSTRAINT)
    request["time_s"] = parse_walltime(request.get("time", "01:00:00"), "request.time")
    request["time"] = format_walltime(request["time_s"])
    request["mem_mb"] = (
        None if request.get("mem") is None else parse_memory(request["mem"], "request.mem")
    )
    request["cpus"] = _count(request.get("cpus", 1), "request.cpus", 1)
    request["gpus"] = _count(request.get("gpus", 0), "request.gpus", 0)
    if request.get("throttle") is not None:
        request["throttle"] = _count(request["throttle"], "request.throttle", 1)
    signal = _count(request.get("signal_before_s", 300), "request.signal_before_s", 0)
    # A warning that would come before the job starts is useless: keep half the walltime.
    request["signal_before_s"] = signal if signal < request["time_s"] else request["time_s"] // 2
    _check_limits(profile, request)
    # The scheduler's own keys (HTCondor's flavour, disk, transfer rules; the sbatch
    # options of `extra`) are its backend's (gridsearch/backends/<kind>/request.py).
    backend_class(str(profile.get("kind"))).check_request(profile, request)
    return request


def _check_limits(profile: dict[str, Any], request: dict[str, Any]) -> None:
    site = profile.get("name", "?")
    limits = profile.get("limits") or {}
    partitions = limits.get("partitions") or {}
    partition = request.get("partition")
    plimits: dict[str, Any] = {}
    where = f"site '{site}'"
    if partitions and partition is not None:
        if partition not in partitions:
            raise GridsearchError(
                message=f"partition '{partition}' is not one of {site}'s partitions "
                f"({', '.join(partitions)})",
                key="request.partition",
            )
        plimits = partitions[partition] or {}
        where = f"partition '{partition}' at {site}"
    max_time = plimits.get("max_time", limits.get("max_time"))
    if max_time is not None:
        max_s = parse_walltime(max_time, "limits.max_time")
        if request["time_s"] > max_s:
            raise GridsearchError(
                message=f"walltime {request['time']} is over the limit {format_walltime(max_s)} "
                f"(max_time) of {where}",
                key="request.time",
            )
    max_gpus = plimits.get("gpus_per_node", limits.get("max_gpus"))
    if max_gpus is not None and request["gpus"] > max_gpus:
        raise GridsearchError(
            message=f"{request['gpus']} GPUs per job is more than the {max_gpus} a node has "
            f"(gpus_per_node / max_gpus) in {where}",
            key="request.gpus",
        )
    max_cpus = plimits.get("cpus_per_node", limits.get("max_cpus"))
    if max_cpus is not None and request["cpus"] > max_cpus:
        raise GridsearchError(
            message=f"{request['cpus']} cores per job is more than the {max_cpus} a node has "
            f"(cpus_per_node / max_cpus) in {where}",
            key="request.cpus",
        )
    types = limits.get("gpu_types") or []
    if request.get("gpu_type") is not None and types and request["gpu_type"] not in types:
        raise GridsearchError(
            message=f"GPU type '{request['gpu_type']}' is not one of {site}'s ({', '.join(types)})",
            key="request.gpu_type",
        )


def max_jobs_per_submission(profile: dict[str, Any]) -> int | None:
    """The site's limit on jobs in one submission, or None."""
    value = (profile.get("limits") or {}).get("max_jobs_per_submission")
    return None if value is None else _count(value, "limits.max_jobs_per_submission", 1)


def check_submission(
    profile: dict[str, Any], overrides: dict[str, Any] | None, n_jobs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checks every cluster submission makes before writing anything.

    Returns the resolved request and environment; raises naming the value or limit broken.
    """
    if n_jobs == 0:
        raise GridsearchError(message="nothing to submit: no jobs given")
    request = resolve_request(profile, overrides)
    environment = check_environment(profile)
    limit = max_jobs_per_submission(profile)
    if limit is not None and n_jobs > limit:
        raise GridsearchError(
            message=f"{n_jobs} jobs are more than site '{profile.get('name')}' takes in one "
            f"submission (max_jobs_per_submission: {limit}); submit in parts",
            key="limits.max_jobs_per_submission",
        )
    return request, environment


def show(profile: dict[str, Any]) -> str:
    """A resolved profile as YAML text, for ``gridsearch sites show``."""
    return yaml.safe_dump(profile, sort_keys=False, default_flow_style=False)
