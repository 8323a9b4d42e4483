"""Per-run plots: loss curves, input vs output histograms, residual histograms."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hepae_core.jobdir import atomic_path
from hepae_core.residuals import residual_stats

RESIDUAL_LABEL = {
    "relative": r"$(x_{out}-x_{in})/x_{in}$",
    "absolute": r"$x_{out}-x_{in}$",
    "angle": r"$\Delta$ (wrapped)",
}


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))
    plt.close(fig)


def loss_curves(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """Train and validation loss against epoch, log y."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (normalised units)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    _save(fig, path)


def input_vs_output(
    inputs: np.ndarray, outputs: np.ndarray, variables: list[str], path: Path
) -> None:
    """Histograms of each variable, input and reconstruction overlaid."""
    fig, axes = _grid(len(variables))
    for j, (ax, var) in enumerate(zip(axes, variables)):
        x, y = inputs[:, j], outputs[:, j]
        both = np.concatenate([x, y])
        both = both[np.isfinite(both)]
        lo, hi = np.percentile(both, [0.1, 99.9]) if both.size else (0, 1)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 80)
        ax.hist(x, bins=bins, histtype="step", label="input", linewidth=1.4)
        ax.hist(y, bins=bins, histtype="step", label="output", linestyle="--")
        ax.set_xlabel(var)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    _save(fig, path)


def residual_histograms(
    res: np.ndarray, variables: list[str], kinds: list[str], path: Path
) -> None:
    """Residual histograms per variable with mean and robust width printed on them."""
    fig, axes = _grid(len(variables))
    for j, (ax, var) in enumerate(zip(axes, variables)):
        r = res[:, j][np.isfinite(res[:, j])]
        s = residual_stats(r)
        half = 5 * s["width"] if s["width"] > 0 else 1.0
        ax.hist(r, bins=np.linspace(s["mean"] - half, s["mean"] + half, 100), histtype="step")
        ax.set_xlabel(f"{var}: {RESIDUAL_LABEL[kinds[j]]}")
        ax.text(
            0.03,
            0.95,
            f"mean {s['mean']:.2e}\nwidth {s['width']:.2e}\nrms {s['rms']:.2e}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
    _save(fig, path)
