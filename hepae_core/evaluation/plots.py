"""Per-run plots (loss curves, input vs output, residuals) and the axis labels, units and
histogram helpers the summary's plots share.

What a physicist should be able to read without asking: every axis names its variable and
unit (GeV for energies and momenta, rad for angles), a residual axis says whether it is
relative, absolute or an angle difference, the input/output histograms carry a ratio
panel and show the whole range of the data (a long tail gets logarithmic bins or, when a
few extreme values would squash the rest, over/underflow counts written on the panel),
and legends sit outside the data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from hepae_core.evaluation.residuals import residual_stats
from hepae_core.jobdir import atomic_path
from hepae_core.variables import ANGLE_RESIDUAL, ENERGY_VARIABLES

# mathtext symbols of the common jet variables; others are written as their names.
SYMBOL = {
    "pt": r"p_\mathrm{T}",
    "eta": r"\eta",
    "phi": r"\phi",
    "E": "E",
    "m": "m",
}
KIND_WORD = {"relative": "relative", "absolute": "absolute", "angle": "angle, wrapped to ±π"}
INPUT_STYLE = {"histtype": "step", "lw": 1.5, "color": "#0072B2", "label": "input (test jets)"}
OUTPUT_STYLE = {
    "histtype": "step",
    "lw": 1.2,
    "ls": "--",
    "color": "#D55E00",
    "label": "output (decoded)",
}


def unit(var: str) -> str:
    """The unit of a variable: GeV for energies and momenta, rad for angles, else ''."""
    if var in ENERGY_VARIABLES:
        return "GeV"
    if var in ANGLE_RESIDUAL or var.lower().endswith("phi"):
        return "rad"
    return ""


def var_label(var: str) -> str:
    """Axis label of a variable with its unit: ``$p_\\mathrm{T}$ [GeV]``."""
    name = f"${SYMBOL[var]}$" if var in SYMBOL else var
    u = unit(var)
    return f"{name} [{u}]" if u else name


def residual_label(var: str, kind: str) -> str:
    """Axis label of a residual that says what it is: relative, absolute or an angle."""
    if var in SYMBOL:
        s = SYMBOL[var]
        out, inp = rf"{s}^\mathrm{{out}}", rf"{s}^\mathrm{{in}}"
        diff = f"${out}-{inp}$" if kind != "relative" else f"$({out}-{inp})/{inp}$"
    else:
        diff = f"{var}_out − {var}_in" if kind != "relative" else f"({var}_out − {var}_in)/{var}_in"
    u = unit(var) if kind in ("absolute", "angle") else ""
    return f"{diff}{f' [{u}]' if u else ''} ({KIND_WORD.get(kind, kind)})"


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[np.isfinite(a)]


def binning(var: str, *samples: np.ndarray, n: int = 60) -> tuple[np.ndarray, bool]:
    """Bins that cover the data, tails included; ``True`` when they are logarithmic.

    Positive variables spanning more than a factor of 20 (5 for those in GeV: a falling
    jet pt or E spectrum) get logarithmic bins from the smallest to the largest value;
    angles the full [-pi, pi]; others the full range, unless a handful of extreme values
    would squash the rest into a few bins, in which case the range is the 0.05-99.95 %
    quantile band widened by its own width on each side, and :func:`hist_in_out` writes
    how many jets lie beyond it.
    """
    both = np.concatenate([_finite(s) for s in samples]) if samples else np.zeros(0)
    if both.size == 0:
        return np.linspace(0.0, 1.0, n + 1), False
    lo, hi = float(both.min()), float(both.max())
    if unit(var) == "rad" and lo >= -math.pi - 1e-6 and hi <= math.pi + 1e-6:
        return np.linspace(-math.pi, math.pi, n + 1), False
    pos = both[both > 0]
    span = 5 if unit(var) == "GeV" else 20  # a falling spectrum reads best on log bins
    if pos.size > 0.99 * both.size and pos.size and pos.max() / pos.min() > span:
        return np.geomspace(pos.min(), pos.max() * (1 + 1e-9), n + 1), True
    if hi <= lo:
        return np.linspace(lo - 0.5, lo + 0.5, n + 1), False
    q_lo, q_hi = np.percentile(both, [0.05, 99.95])
    if q_hi > q_lo and (q_hi - q_lo) < 0.2 * (hi - lo):
        # Far outliers: keep the core and its ordinary tails (a band as wide again on each
        # side), count what lies beyond.
        span = q_hi - q_lo
        return np.linspace(max(lo, q_lo - span), min(hi, q_hi + span), n + 1), False
    return np.linspace(lo, hi, n + 1), False


def _beyond(a: np.ndarray, bins: np.ndarray) -> tuple[int, int]:
    a = _finite(a)
    return int((a < bins[0]).sum()), int((a > bins[-1]).sum())


def io_grid(n: int, ncols: int = 3) -> tuple[Any, list[tuple[Any, Any]]]:
    """A figure with ``n`` (histogram, ratio panel) pairs, the ratio panel under each."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = plt.figure(figsize=(4.3 * ncols, 4.0 * nrows + 0.5), layout="constrained")
    gs = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3, 1] * nrows)
    pairs = []
    for i in range(n):
        r, c = divmod(i, ncols)
        ax = fig.add_subplot(gs[2 * r, c])
        rax = fig.add_subplot(gs[2 * r + 1, c], sharex=ax)
        pairs.append((ax, rax))
    return fig, pairs


def hist_in_out(ax: Any, rax: Any, x: np.ndarray, y: np.ndarray, var: str) -> None:
    """Input and output histograms of one variable, with the output/input ratio below."""
    bins, log = binning(var, x, y)
    hx, _, _ = ax.hist(_finite(x), bins=bins, **INPUT_STYLE)
    hy, _, _ = ax.hist(_finite(y), bins=bins, **OUTPUT_STYLE)
    filled = np.concatenate([hx[hx > 0], hy[hy > 0]])
    if filled.size and filled.max() / filled.min() > 50:  # a flat one (phi) stays linear
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.15 * filled.max() if filled.size else 1)
    ax.set_ylabel("jets / bin")
    if log:
        ax.set_xscale("log")
        # 20, 30, 50, 100 GeV read better than 2x10^1; minor labels would overlap.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlim(bins[0], bins[-1])
    notes = []
    for what, arr in (("in", x), ("out", y)):
        under, over = _beyond(arr, bins)
        if under or over:
            notes.append(f"{what}: {under} below, {over} above")
    if notes:
        ax.set_title("beyond the axis: " + "; ".join(notes), loc="right", fontsize=7)
    centres = np.sqrt(bins[1:] * bins[:-1]) if log else 0.5 * (bins[1:] + bins[:-1])
    ok = hx > 0
    ratio = np.where(ok, hy / np.where(ok, hx, 1), np.nan)
    err = np.where(ok & (hy > 0), np.sqrt(np.maximum(hy, 1)) / np.where(ok, hx, 1), np.nan)
    rax.axhline(1.0, color="0.4", lw=0.8)
    rax.errorbar(centres[ok], ratio[ok], yerr=err[ok], fmt="o", ms=2, lw=0.8, color="black")
    # A ratio far from 1 in an empty tail bin must not hide the rest: clip the axis and
    # mark what lies beyond it with arrows at the edge.
    top, bottom = 2.0, 0.0
    rax.set_ylim(bottom, top)
    hi_pts = ok & (ratio > top)
    if hi_pts.any():
        rax.plot(centres[hi_pts], np.full(hi_pts.sum(), top * 0.96), "^", ms=3, color="#D55E00")
    rax.set_ylabel("out / in")
    rax.set_xlabel(var_label(var))


def residual_hist(ax: Any, r: np.ndarray, var: str, kind: str) -> dict[str, float]:
    """Residual histogram over its whole range (log y, so the tails show); mean and width
    written above the panel, not on the data. Returns the statistics."""
    r = _finite(r)
    s = residual_stats(r)
    if r.size:
        # The whole range, unless a few extreme jets lie far beyond the 0.01-99.99 %
        # quantiles (more than 8 times as far): then twice those, and the count beyond the
        # axis is written above the panel.
        q = float(np.max(np.abs(np.percentile(r, [0.01, 99.99]))))
        full = float(np.max(np.abs(r)))
        lim = max(full if full <= 8 * q else 2 * q, 5 * s["width"], 1e-12)
        if kind == "angle":
            lim = min(lim, math.pi)
        bins = np.linspace(-lim, lim, 101)
        ax.hist(r, bins=bins, histtype="step", lw=1.5, color="#0072B2")
        under, over = _beyond(r, bins)
        ax.set_xlim(-lim, lim)
        ax.set_yscale("log")
        ax.axvline(0.0, color="0.5", lw=0.6)
        extra = f"; {under + over} beyond the axis" if under or over else ""
        ax.set_title(f"mean {s['mean']:+.2e}, width {s['width']:.2e}{extra}", fontsize=8,
                     loc="left")  # fmt: skip
    ax.set_xlabel(residual_label(var, kind), fontsize=9)
    ax.set_ylabel("jets / bin")
    return s


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.3 * cols, 3.5 * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))
    plt.close(fig)


def loss_curves(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """Train and validation loss against epoch, log y; the legend above the axes."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2), layout="constrained")
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss: MSE in normalised units")
    if title:
        fig.suptitle(title, fontsize=9)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False, fontsize=8)
    _save(fig, path)


def input_vs_output(
    inputs: np.ndarray, outputs: np.ndarray, variables: list[str], path: Path
) -> None:
    """Histograms of each variable, input and reconstruction overlaid, ratio below."""
    fig, pairs = io_grid(len(variables))
    for j, ((ax, rax), var) in enumerate(zip(pairs, variables)):
        hist_in_out(ax, rax, inputs[:, j], outputs[:, j], var)
    handles, labels = pairs[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2, frameon=False)
    _save(fig, path)


def residual_histograms(
    res: np.ndarray, variables: list[str], kinds: list[str], path: Path
) -> None:
    """Residual histograms per variable, whole range, mean and width above each panel."""
    fig, axes = _grid(len(variables))
    for j, (ax, var) in enumerate(zip(axes, variables)):
        residual_hist(ax, res[:, j], var, kinds[j])
    _save(fig, path)
