"""HTCondor's request rules: walltime classes, disk, restarts, file transfer, extra commands.

The common request keys are checked by :func:`gridsearch.sites.resolve_request`, which
then calls :meth:`CondorBackend.check_request` for these: ``flavour`` (the smallest
``+JobFlavour`` of the site's ``flavours`` that holds the walltime, lxplus), ``disk_kb``,
``max_restarts`` (starts after which an interrupted job leaves the queue),
``transfer_files`` (YES, NO or IF_NEEDED) and ``extra`` (a mapping of submit commands, each
value one line HTCondor cannot read as a macro).
"""

from __future__ import annotations

import re
from typing import Any

from gridsearch.errors import GridsearchError
from gridsearch.render import condor_value
from gridsearch.sites import _count, _token
from gridsearch.units import format_walltime, parse_memory, parse_walltime

#: A submit command name of ``request.extra`` (``+JobFlavour``, ``requirements``).
_CONDOR_KEY = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")


def check_request(profile: dict[str, Any], request: dict[str, Any]) -> None:
    """Check and complete HTCondor's request keys of ``request`` in place."""
    request["flavour"] = choose_flavour(profile, request["time_s"])
    request["disk_kb"] = (
        None
        if request.get("disk") is None
        else parse_memory(request["disk"], "request.disk") * 1024
    )
    request["max_restarts"] = _count(request.get("max_restarts", 5), "request.max_restarts")
    request["transfer_files"] = _token(
        request.get("transfer_files", "IF_NEEDED"), "request.transfer_files"
    ).upper()
    if request["transfer_files"] not in ("YES", "NO", "IF_NEEDED"):
        raise GridsearchError(message="expects YES, NO or IF_NEEDED", key="request.transfer_files")
    extra = request.get("extra") or {}
    if not isinstance(extra, dict):
        raise GridsearchError(message="expects a mapping of submit commands", key="request.extra")
    for k, v in extra.items():
        if not isinstance(k, str) or not _CONDOR_KEY.match(k):
            raise GridsearchError(message="is not a submit command name", key=f"request.extra.{k}")
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise GridsearchError(message="expects a one-line value", key=f"request.extra.{k}")
        try:
            condor_value(v)
        except GridsearchError as exc:
            raise GridsearchError(
                message=f"expects a one-line value: {exc.message}", key=f"request.extra.{k}"
            ) from None
    request["extra"] = {k: str(v) for k, v in extra.items()}


def choose_flavour(profile: dict[str, Any], time_s: int) -> str | None:
    """The smallest walltime class (``+JobFlavour`` at CERN) that holds ``time_s``."""
    flavours = profile.get("flavours") or {}
    if not flavours:
        return None
    for name in flavours:
        # the name is written into the submit description as +JobFlavour = "NAME"
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_]+$", name):
            raise GridsearchError(
                message=f"{name!r} is not a plain walltime class name (letters, digits, _ only)",
                source=profile.get("source"),
                key="flavours",
            )
    ranked = sorted(
        ((parse_walltime(v, f"flavours.{k}"), k) for k, v in flavours.items()), key=lambda x: x[0]
    )
    for limit, name in ranked:
        if time_s <= limit:
            return str(name)
    limit, name = ranked[-1]
    raise GridsearchError(
        message=f"walltime {format_walltime(time_s)} is over the longest job flavour at "
        f"{profile.get('name')} ({name}: {format_walltime(limit)})",
        key="request.time",
    )
