"""``halving: {rungs: [10, 30, 90], keep: 1/3}`` in a space file: successive halving run
rung by rung by ``gridsearch promote DIR --site S`` (no --keep/--epochs), or to its last
rung by ``submit --all-rungs`` (gridsearch/halving/rungs.py).

``rungs`` are the total epochs of rung 0, 1, 2...: the jobs are planned with the first
(``train.epochs`` in ``base`` must equal it when set there); each ``promote`` ranks the
done jobs of the highest rung reached and continues the best ``keep`` of them to the
next rung's epochs. ``keep`` is a fraction (``1/3``, ``0.25``) or a count.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

from gridsearch.campaign import SPACE
from gridsearch.errors import GridsearchError
from hepae_core import yamlio
from hepae_core.errors import did_you_mean


def parse_halving(
    value: Any, source: str, base: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The checked ``halving`` section: ``{"rungs": [int...], "keep": Fraction | int}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise GridsearchError(
            message="expects a mapping {rungs: [10, 30, 90], keep: 1/3}", source=source,
            key="halving",
        )  # fmt: skip
    for key in value:
        if key not in ("rungs", "keep"):
            raise GridsearchError(
                message=f"unknown key{did_you_mean(str(key), ['rungs', 'keep'])}; halving takes "
                "rungs: [10, 30, 90] and keep: 1/3",
                source=source,
                key=f"halving.{key}",
            )
    rungs = value.get("rungs")
    if (
        not isinstance(rungs, list)
        or len(rungs) < 2
        or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rungs)
        or any(b <= a for a, b in itertools.pairwise(rungs))
    ):
        raise GridsearchError(
            message=f"expects at least two increasing epoch counts, e.g. [10, 30, 90], got "
            f"{rungs!r}",
            source=source,
            key="halving.rungs",
        )
    try:
        keep: Fraction | int = parse_keep(str(value.get("keep", "1/3")))
    except GridsearchError as exc:
        raise GridsearchError(message=exc.message, source=source, key="halving.keep") from None
    epochs = ((base or {}).get("train") or {}).get("epochs")
    if epochs is not None and epochs != rungs[0]:
        raise GridsearchError(
            message=f"base train.epochs is {epochs} but the first rung is {rungs[0]}: plan "
            "the jobs with the first rung's epochs",
            source=source,
            key="halving.rungs",
        )
    return {"rungs": list(rungs), "keep": keep}


def campaign_halving(root: Path) -> dict[str, Any] | None:
    """The halving section of the campaign's copy of its space file, checked."""
    path = Path(root) / SPACE
    try:
        data, _ = yamlio.parse(path.read_text(encoding="utf-8"), str(path), GridsearchError)
    except OSError:
        return None
    if not isinstance(data, dict):
        return None
    return parse_halving(data.get("halving"), str(path), data.get("base"))


def parse_keep(text: str) -> Fraction | int:
    """``1/3``, ``0.25`` (fractions of each group) or ``5`` (the best 5 of each group)."""
    t = str(text).strip()
    try:
        if "/" in t or "." in t:
            value = Fraction(t)
            if 0 < value <= 1:
                return value
        elif int(t) >= 1:
            return int(t)
    except (ValueError, ZeroDivisionError):
        pass
    raise GridsearchError(
        message=f"expects a fraction in (0, 1] such as 1/3 or 0.25, or a count such as 5, "
        f"got {text!r}",
        key="--keep",
    )
