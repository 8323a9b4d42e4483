"""The submission options: one table, from which everything that names them is derived.

Each :class:`Option` is a request a submission may make (``--time 2h``, ``--bundle 4``):
its key (the key of a site profile's ``request:`` mapping and of the ledger's
``overrides``), its command-line flag, and where it applies. From :data:`OPTIONS` come

- the flags of ``submit``, ``resubmit`` and ``promote`` (:func:`add_arguments`) and the
  overrides they pass on (:func:`overrides_from_args`);
- the keys a site profile's ``request:`` may set and a submission may override
  (:data:`OVERRIDABLE`, checked by :func:`gridsearch.sites.resolve_request`);
- the flags a rung's promote job passes on (:data:`CARRIED_FLAGS`) and those a
  resubmission reuses from the campaign's last submission (:data:`REMEMBERED_FLAGS`).

A new option is one row here (and, for a cluster request, its use in the templates or the
backend's request rules). As submitit derives its parameters from one signature, nothing
else lists them. This module imports nothing of the project but its errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridsearch.errors import GridsearchError

AUTO = "auto"


def parse_bundle(value: Any, key: str = "--bundle") -> int | str:
    """``K`` (an integer >= 1) or ``"auto"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit():
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GridsearchError(
            message=f"expects a number of jobs per task (1, 2, ...) or 'auto', got {value!r}",
            key=key,
        )
    return value


@dataclass(frozen=True)
class Option:
    """One submission option.

    ``cli``: a flag of submit, resubmit and promote; ``request``: a key of a site
    profile's ``request:`` that a submission may override; ``carried``: a rung's promote
    job passes it on (the per-machine ``--workers``/``--threads`` of a local run are not).
    ``convert`` turns the flag's text into the override's value after parsing (its
    errors name the flag, as one ``error:`` line).
    """

    key: str
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    cli: bool = True
    request: bool = True
    carried: bool = True
    convert: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str:
        """``--gpu-type`` for ``gpu_type``."""
        return "--" + self.key.replace("_", "-")

    @property
    def dest(self) -> str:
        """The attribute argparse stores it under."""
        return self.key


#: Every submission option, in the order the help and the reused options list them.
OPTIONS: tuple[Option, ...] = (
    Option(
        "bundle",
        "run K jobs per task through 'python -m hepae_core.bundle' (same-shape models "
        "trained as one stack); 'auto' picks K from the task's cpus/gpus; default: the site "
        "profile's 'bundle' (1: one job per task). The walltime stays per job: a task asks "
        "for K x --time",
        metavar="K",
        request=False,
        convert=parse_bundle,
    ),
    Option("time", "time limit per job, e.g. 90 (minutes), 1:30:00, 2-00:00:00, 2h or 1h30m"),
    Option("mem", "memory per job, e.g. 4G"),
    Option("cpus", "cluster: cores per job", type=int, metavar="N"),
    Option("gpus", "cluster: GPUs per job", type=int, metavar="N"),
    Option("gpu_type", "cluster: GPU type, e.g. v100 or a100"),
    Option("partition", "cluster: Slurm partition"),
    Option("account", "cluster: project/account to charge"),
    Option("qos", "cluster: Slurm quality of service"),
    Option(
        "throttle",
        "cluster: at most N tasks of this submission at a time (all array chunks together)",
        type=int,
        metavar="N",
    ),
    Option("workers", "local: jobs at a time", type=int, metavar="N", request=False, carried=False),
    Option(
        "threads",
        "local: CPU threads per job",
        type=int,
        metavar="N",
        request=False,
        carried=False,
    ),
    # Site-profile requests without a flag of their own.
    Option("constraint", "Slurm node features (--constraint)", cli=False),
    Option("signal_before_s", "seconds of warning before the walltime", cli=False),
    Option("disk", "HTCondor: disk per job, e.g. 2G", cli=False),
    Option("max_restarts", "HTCondor: starts after which an interrupted job is left", cli=False),
)

BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}

#: Keys ``gridsearch submit`` may override per submission, and a profile's ``request:`` set.
OVERRIDABLE: tuple[str, ...] = tuple(o.key for o in OPTIONS if o.request)

#: The generic options as the cluster requests they mean: ``--threads`` is the cores per
#: job, ``--workers`` the jobs running at once (the array throttle).
OVERRIDE_ALIASES = {"threads": "cpus", "workers": "throttle"}

#: Override key -> flag, for the options a rung's promote job passes on.
CARRIED_FLAGS: dict[str, str] = {o.key: o.flag for o in OPTIONS if o.cli and o.carried}

#: Override key -> flag, for the options a resubmission reuses (every flag).
REMEMBERED_FLAGS: dict[str, str] = {o.key: o.flag for o in OPTIONS if o.cli}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flag of every command-line option to ``parser``."""
    for o in OPTIONS:
        if not o.cli:
            continue
        kwargs: dict[str, Any] = {"help": o.help, "dest": o.dest}
        if o.type is not None:
            kwargs["type"] = o.type
        if o.metavar is not None:
            kwargs["metavar"] = o.metavar
        parser.add_argument(o.flag, **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (converted), as override key -> value."""
    out: dict[str, Any] = {}
    for o in OPTIONS:
        value = getattr(args, o.dest, None) if o.cli else None
        if value is None:
            continue
        out[o.key] = o.convert(value) if o.convert is not None else value
    return out
