"""The rate-distortion curves of a job, read from its flat metrics (``<method><k>.bits_per_jet``,
``<method><k>.<var>.width``; docs/metrics.md), and the default file size of its ratios.

Numpy only: the summary (:mod:`results.ratedist`) and ``hepae-data evaluate`` read the same
keys through these functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

FILE_JETS = 1_000_000  # default file size at which ratios with side and model bytes are quoted


def bit_depths(columns: Any, method: str) -> list[int]:
    """The ``k`` of every ``<method><k>.bits_per_jet`` column, ascending."""
    pat = re.compile(rf"^{method}(\d+)\.bits_per_jet$")
    return sorted({int(m.group(1)) for c in columns if (m := pat.match(str(c)))})


def curve(row: Mapping[str, Any], method: str, var: str) -> tuple[np.ndarray, np.ndarray]:
    """(bits per jet, width of ``var``) of one job's ``method`` curve, by rising bits."""
    xs, ys = [], []
    for k in bit_depths(row.keys(), method):
        b, w = row.get(f"{method}{k}.bits_per_jet"), row.get(f"{method}{k}.{var}.width")
        if b is not None and w is not None and _finite(b) and _finite(w):
            xs.append(float(b))
            ys.append(float(w))
    order = np.argsort(xs)
    return np.asarray(xs)[order], np.asarray(ys)[order]


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def width_at(bits: np.ndarray, widths: np.ndarray, b: float) -> float:
    """Width of a curve at ``b`` bits per jet: log-linear interpolation; NaN outside it.

    Quantiser widths halve with each added bit per value, so log(width) is close to linear
    in bits: the interpolation is exact for an ideal quantiser.
    """
    ok = widths > 0
    bits, widths = bits[ok], widths[ok]
    if not len(bits) or b < bits[0] - 1e-9 or b > bits[-1] + 1e-9:
        return math.nan
    return float(np.exp(np.interp(b, bits, np.log(widths))))
