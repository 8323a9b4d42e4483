"""The space file's ``evaluate_on:`` value: the second sample of a campaign's summaries.

Checked by ``gridsearch plan`` (:mod:`gridsearch.spacefile`) and read again by the summary
(:mod:`results.space_sample`, which imports it from here: results may import gridsearch,
not the reverse). No numpy: a login node plans without it.
"""

from __future__ import annotations

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
        return _bundled(text[len(BUNDLED) :], where, error)
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


def _bundled(name: str, where: str, error: type[UserError]) -> Path:
    """A sample shipped in the package (``hepae_core/data/NAME.root``), found as
    hepae_core.data.jets.bundled_path finds it, without importing it (numpy)."""
    from importlib import resources

    data = resources.files("hepae_core").joinpath("data")
    entry = data.joinpath(f"{name}.root")
    if not entry.is_file():
        known = sorted(p.name[: -len(".root")] for p in data.iterdir() if p.name.endswith(".root"))
        raise error(
            message=f"no bundled sample of that name; bundled samples: {', '.join(known)}",
            source=where,
            key=SPACE_KEY,
        )
    return Path(str(entry))
