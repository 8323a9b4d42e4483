"""The space file's ``evaluate_on:`` key: the second sample every summary is measured on.

A space file may name a sample of other jets (another process, another pT range)::

    evaluate_on: ../data/dijet_13TeV_pthat25_biased.root   # relative to this file

``gridsearch plan`` checks the value (a path, or ``bundled:NAME``); ``gridsearch summarize``
then evaluates the best run of each group on it by default, as ``--evaluate-on`` does
(``--evaluate-on none`` skips it, ``--evaluate-on OTHER`` replaces it). The campaign keeps
a copy of its space file (``space.yaml``); a relative path is resolved against the
directory of the original space file (``campaign.json``'s ``space.path``), else against
the campaign directory. The value itself is checked by :func:`gridsearch.samples.sample_path`
(what ``gridsearch plan`` runs).
"""

from __future__ import annotations

import json
from pathlib import Path

from gridsearch.samples import BUNDLED, SPACE_KEY, sample_path  # noqa: F401
from hepae_core.errors import UserError


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
