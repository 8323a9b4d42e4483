"""The scheduler kinds: the one list of them, and how each backend is found.

:data:`BACKENDS` maps a kind (the ``kind:`` of a site profile) to the subpackage that
implements it and its :class:`~gridsearch.backends.base.Backend` subclass. A subpackage is
imported only when its kind is first asked for, so that planning never loads submitit and
a missing optional dependency (HTCondor's bindings) fails only where it is used. A new
scheduler is one subpackage ``gridsearch/backends/<kind>/`` and one entry here
(docs/architecture.md).
"""

from __future__ import annotations

import importlib

from gridsearch.backends.base import Backend
from gridsearch.errors import GridsearchError

#: Kind -> (module, class name). The only list of the scheduler kinds.
BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("gridsearch.backends.local", "LocalBackend"),
    "slurm": ("gridsearch.backends.slurm", "SlurmBackend"),
    "condor": ("gridsearch.backends.condor", "CondorBackend"),
}

KINDS: tuple[str, ...] = tuple(BACKENDS)


def check_kind(kind: object, source: str | None = None) -> str:
    """``kind`` when it is a known scheduler kind; else the error naming the known ones."""
    if kind not in BACKENDS:
        if source is not None:  # a site profile's kind: the message says which file
            names = ", ".join(KINDS[:-1]) + f" or {KINDS[-1]}"
            raise GridsearchError(message=f"must be {names}", source=source, key="kind")
        raise GridsearchError(
            message=f"unknown scheduler kind {kind!r}; use one of " + ", ".join(KINDS), key="kind"
        )
    return str(kind)


def backend_class(kind: str) -> type[Backend]:
    """The :class:`Backend` subclass of a scheduler kind (its subpackage imported now)."""
    module_name, class_name = BACKENDS[check_kind(kind)]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise GridsearchError(
                message=f"the {kind} backend cannot be loaded: {exc}; install what it needs"
            ) from None
        raise GridsearchError(
            message=f"the {kind} backend is not available in this installation ({module_name} is "
            "missing); update hepae-gridsearch or use --site local"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise GridsearchError(message=f"{module_name} defines no Backend subclass {class_name}")
    return cls


def get_backend(kind: str) -> Backend:
    """The backend for a scheduler kind (``local``, ``slurm``, ``condor``)."""
    return backend_class(kind)()
