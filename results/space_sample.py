"""The space file's ``evaluate_on:`` key: the second sample every summary is measured on.

A space file may name a sample of other jets (another process, another pT range)::

    evaluate_on: ../data/dijet_13TeV_pthat25_biased.root   # relative to this file

``gridsearch plan`` checks the value (a path, or ``bundled:NAME``); ``gridsearch summarize``
then evaluates the best run of each group on it by default, as ``--evaluate-on`` does
(``--evaluate-on none`` skips it, ``--evaluate-on OTHER`` replaces it). The campaign keeps
a copy of its space file (``space.yaml``); a relative path is resolved against the
directory of the original space file (``campaign.json``'s ``space.path``), else against
the campaign directory. Light on purpose: no numpy, no pandas (``gridsearch plan`` imports
it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hepae_core.errors import UserError

SPACE_KEY = "evaluate_on"
BUNDLED = "bundled:"


def sample_path(
    value: Any,
    where: str,
    base_dir: Path,
    error: type[UserError] = UserError,
    must_exist: bool = True,
) -> Path:
    """The sample file an ``evaluate_on:`` value names.

    Parameters
    ----------
    value
        The YAML value: a path (relative to ``base_dir``) or ``bundled:NAME``.
    where
        ``file:line`` of the key, for messages.
    base_dir
        The directory a relative path is resolved against (the space file's).
    error
        The :class:`~hepae_core.errors.UserError` subclass to raise (GridsearchError at
        plan time, SummaryError in the summary).
    must_exist
        Refuse a path that names no file (the summary); at plan time the caller warns.

    Raises
    ------
    error
        One line naming ``where`` and the key: not a path, no such file.
    """
    if not isinstance(value, str) or not value.strip():
        raise error(
            message="must be the path of a sample file of jets (ROOT, HDF5 or CSV, relative "
            f"to the space file) or bundled:NAME, got {value!r}",
            source=where,
            key=SPACE_KEY,
        )
    text = value.strip()
    if text.startswith(BUNDLED):
        from hepae_core.data import bundled_path

        try:
            return bundled_path(text[len(BUNDLED) :])
        except UserError as exc:
            raise error(message=exc.message, source=where, key=SPACE_KEY) from None
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = Path(os.path.normpath(base_dir / path))
    if must_exist and not path.is_file():
        what = "is a directory, not a sample file" if path.is_dir() else "no such file"
        raise error(
            message=f"{text}: {what} ({path}); correct the path (relative to the space "
            "file), or summarize with --evaluate-on none",
            source=where,
            key=SPACE_KEY,
        )
    return path


def campaign_sample(root: Path, error: type[UserError] = UserError) -> Path | None:
    """The ``evaluate_on:`` sample of the campaign at ``root``, or None (no such key).

    Read from the campaign's copy of its space file (``space.yaml``); a relative path is
    taken from the original space file's directory (``campaign.json``), else from ``root``.
    Raises ``error`` (naming ``space.yaml:line`` and the key) when the file is missing.
    """
    from hepae_core import yamlio

    copy = Path(root) / "space.yaml"
    if not copy.is_file():
        return None
    data, lines = yamlio.parse(yamlio.read_text(copy, error), str(copy), error)
    if not isinstance(data, dict) or data.get(SPACE_KEY) is None:
        return None
    line = lines.get((SPACE_KEY,))
    where = f"{copy}:{line}" if line else str(copy)
    base = Path(root)
    try:
        info = json.loads((Path(root) / "campaign.json").read_text(encoding="utf-8"))
        original = Path(str(info["space"]["path"]))
        if original.parent.is_dir():
            base = original.parent
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no record of the original: relative to the campaign directory
    return sample_path(data[SPACE_KEY], where, base, error)
