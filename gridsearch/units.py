"""Walltimes and memory sizes as users write them: the one parser of each.

Every place that reads a time limit (site profiles, ``--time`` for any site, the local
backend's timeout) or a memory request goes through these functions, so that what the
docs promise (``90``, ``1:30:00``, ``2-00:00:00``, ``2h``, ``30m``, ``1h30m``) holds for
every site alike.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gridsearch.errors import GridsearchError

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_UNITS = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+")
_UNIT_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


#: The longest walltime accepted: a year. Longer is a typo (and would overflow the
#: schedulers' fields: ``--time=69444444444444444-10:39:00``).
MAX_WALLTIME_S = 365 * 86400


def _positive(text: str, unit: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expects {unit} above zero, got {text!r}")
    return value


def positive_minutes(text: str) -> float:
    """An argparse type: a finite number of minutes above zero (``--lost-after``)."""
    return _positive(text, "minutes")


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero (``--interval``)."""
    return _positive(text, "seconds")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (``--lines``)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expects an integer >= 0, got {text!r}")
    return value


def parse_walltime(value: Any, key: str = "time") -> int:
    """Seconds of a walltime written the Slurm way or with units.

    Accepts an integer (minutes, as sbatch does), ``MM``, ``MM:SS``, ``HH:MM:SS``,
    ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``, or numbers with units, alone or combined:
    ``90s``, ``20m``, ``2h``, ``1h30m``, ``1d``, ``1w``. Zero and negative times are refused.
    """
    bad = GridsearchError(
        message="expects a walltime (minutes, HH:MM:SS, D-HH:MM:SS or 30m/2h/1h30m/1d), got "
        f"{value!r}",
        key=key,
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int):
        if value <= 0:
            raise bad
        return _at_most_a_year(value * 60, value, key)
    if not isinstance(value, str):
        raise bad
    text = value.strip().lower()
    if _UNITS.fullmatch(text):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _UNIT_PART.findall(text))
        if seconds <= 0 or not math.isfinite(seconds):
            raise bad
        return _at_most_a_year(math.ceil(seconds), value, key)
    days = 0
    m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?(?::(\d+))?", text)
    if m:
        days, hours = int(m.group(1)), int(m.group(2))
        minutes, seconds = int(m.group(3) or 0), int(m.group(4) or 0)
    elif re.fullmatch(r"\d+", text):
        hours, minutes, seconds = 0, int(text), 0
    elif re.fullmatch(r"\d+:\d+", text):
        hours, (minutes, seconds) = 0, map(int, text.split(":"))
    elif re.fullmatch(r"\d+:\d+:\d+", text):
        hours, minutes, seconds = map(int, text.split(":"))
    else:
        raise bad
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise bad
    return _at_most_a_year(total, value, key)


def _at_most_a_year(seconds: int, value: Any, key: str) -> int:
    if seconds > MAX_WALLTIME_S:
        raise GridsearchError(
            message=f"{value!r} is more than a year ({format_walltime(MAX_WALLTIME_S)}); "
            "give the walltime one job needs, e.g. 2h or 1-00:00:00",
            key=key,
        )
    return seconds


def format_walltime(seconds: int) -> str:
    """``HH:MM:SS``, or ``D-HH:MM:SS`` from one day on (both read by sbatch)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    hms = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{hms}" if days else hms


def parse_memory(value: Any, key: str = "mem") -> int:
    """Megabytes of a memory request: an integer (MB) or ``512M``, ``4G``, ``4GB``, ``1T``.

    Zero is refused: Slurm reads ``--mem=0`` as "all the node's memory", which nobody
    means when typing it for one small training.
    """
    bad = GridsearchError(
        message=f"expects a memory size above zero (e.g. 4000, 4000M, 4G), got {value!r}",
        key=key,
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int):
        if value <= 0:
            raise bad
        return _at_most_a_petabyte(value, value, key)
    if not isinstance(value, str):
        raise bad
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", value.strip(), flags=re.IGNORECASE)
    if not m:
        raise bad
    factor = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2).upper()]
    size = float(m.group(1)) * factor
    if not math.isfinite(size):
        raise bad
    mb = math.ceil(size)
    if mb <= 0:
        raise bad
    return _at_most_a_petabyte(mb, value, key)


#: The largest memory request accepted (1 PB): more is a typo no node has.
MAX_MEMORY_MB = 1024**3


def _at_most_a_petabyte(mb: int, value: Any, key: str) -> int:
    if mb > MAX_MEMORY_MB:
        raise GridsearchError(
            message=f"{value!r} is more than 1 PB; give the memory one job needs, e.g. 4G",
            key=key,
        )
    return mb
