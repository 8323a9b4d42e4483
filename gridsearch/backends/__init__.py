"""Submission backends, one module per scheduler kind, imported when first asked for.

``get_backend(kind)`` returns a :class:`gridsearch.backends.base.Backend` subclass instance
(the base owns the submission flow; ``query`` answers status; ``blocking`` is a class
attribute). A backend module ``gridsearch.backends.<kind>`` provides either a function
``backend()`` or a class named ``<Kind>Backend`` (``LocalBackend``, ``SlurmBackend``,
``CondorBackend``) constructible without arguments.
"""

from __future__ import annotations

import importlib

from gridsearch.backends.base import Backend
from gridsearch.errors import GridsearchError

KINDS = ("local", "slurm", "condor")


def get_backend(kind: str) -> Backend:
    """The backend for a scheduler kind (``local``, ``slurm``, ``condor``)."""
    if kind not in KINDS:
        raise GridsearchError(
            message=f"unknown scheduler kind {kind!r}; use one of " + ", ".join(KINDS), key="kind"
        )
    module_name = f"gridsearch.backends.{kind}"
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
    factory = getattr(module, "backend", None) or getattr(
        module, f"{kind.capitalize()}Backend", None
    )
    if factory is None:
        raise GridsearchError(
            message=f"{module_name} defines no backend() nor {kind.capitalize()}Backend"
        )
    return factory()


__all__ = ["KINDS", "Backend", "get_backend"]
