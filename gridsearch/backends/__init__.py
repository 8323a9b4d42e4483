"""Submission backends: one subpackage per scheduler kind, found through the registry.

``get_backend(kind)`` returns an instance of the kind's
:class:`gridsearch.backends.base.Backend` subclass (the base owns the submission flow and
declares the hooks a backend must fill in; ``query`` answers status; ``blocking`` is a
class attribute). The kinds are :data:`gridsearch.backends.registry.BACKENDS`, the only
list of them; each subpackage (``local/``, ``slurm/``, ``condor/``) owns its submission,
queries, request rules and state words.
"""

from __future__ import annotations

from gridsearch.backends.base import Backend
from gridsearch.backends.registry import KINDS, backend_class, get_backend

__all__ = ["KINDS", "Backend", "backend_class", "get_backend"]
