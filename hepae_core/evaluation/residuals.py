"""Residuals and their statistics: numpy only, so the summarizer can use them without torch."""

from __future__ import annotations

import numpy as np

STATS = ("mean", "std", "rms", "width", "frac_1pct", "frac_5pct")


def residuals(inputs: np.ndarray, outputs: np.ndarray, kinds: list[str]) -> np.ndarray:
    """Per-variable residuals: relative, absolute, or an angle difference wrapped to [-pi, pi].

    Relative residuals of inputs equal to zero are NaN (and then left out of statistics).
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    out = y - x
    for j, kind in enumerate(kinds):
        if kind == "relative":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.where(x[:, j] != 0, out[:, j] / x[:, j], np.nan)
        elif kind == "angle":
            out[:, j] = (out[:, j] + np.pi) % (2 * np.pi) - np.pi
    return out


def residual_stats(res: np.ndarray) -> dict[str, float]:
    """mean, std, rms, robust width (half the 16-84 % interval), tail fractions of one column."""
    r = res[np.isfinite(res)]
    if r.size == 0:
        return dict.fromkeys(STATS, float("nan"))
    q16, q84 = np.percentile(r, [16, 84])
    a = np.abs(r)
    return {
        "mean": float(r.mean()),
        "std": float(r.std()),
        "rms": float(np.sqrt(np.mean(r * r))),
        "width": float((q84 - q16) / 2),
        "frac_1pct": float(np.mean(a > 0.01)),
        "frac_5pct": float(np.mean(a > 0.05)),
    }


def stats_table(
    prefix: str, res: np.ndarray, variables: list[str], stats: tuple[str, ...] = STATS
) -> dict[str, float]:
    """Flat ``{prefix.var.stat: value}`` for every column of ``res`` (only ``stats``)."""
    out: dict[str, float] = {}
    for j, var in enumerate(variables):
        for stat, value in residual_stats(res[:, j]).items():
            if stat in stats:
                out[f"{prefix}.{var}.{stat}"] = value
    return out
