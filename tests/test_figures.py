"""Figures a physicist can read: units, residual kinds, ratio panels, tails, legends."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from hepae_core.evaluation import plots


@pytest.fixture
def jets() -> tuple[np.ndarray, np.ndarray]:
    """A falling pt spectrum with a hard tail, eta, phi in [-pi, pi], E; outputs a bit off."""
    rng = np.random.default_rng(3)
    n = 20_000
    pt = 20 + rng.exponential(25, n)
    pt[:8] = np.linspace(600, 916, 8)  # the hard jets a 0.5-99.5 % cut would hide
    eta = rng.uniform(-4.5, 4.5, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    e = pt * np.cosh(eta)
    x = np.column_stack([pt, eta, phi, e])
    y = x * (1 + 0.01 * rng.standard_normal(x.shape))
    y[:, 2] = np.mod(y[:, 2] + math.pi, 2 * math.pi) - math.pi
    return x, y


def test_labels_carry_units_and_residual_kinds() -> None:
    assert plots.var_label("pt") == r"$p_\mathrm{T}$ [GeV]"
    assert plots.var_label("E").endswith("[GeV]") and plots.var_label("phi").endswith("[rad]")
    assert plots.var_label("eta") == r"$\eta$"  # no unit: none is printed
    assert plots.residual_label("pt", "relative").endswith("(relative)")
    assert "/" in plots.residual_label("pt", "relative")
    assert "[rad]" in plots.residual_label("phi", "angle")
    assert plots.residual_label("eta", "absolute").endswith("(absolute)")
    assert plots.residual_label("Width", "absolute") == "Width_out − Width_in (absolute)"


def test_input_output_panels_show_the_tail_with_a_ratio_below(jets) -> None:
    x, y = jets
    fig, pairs = plots.io_grid(4)
    for (ax, rax), j, var in zip(pairs, range(4), ["pt", "eta", "phi", "E"]):
        plots.hist_in_out(ax, rax, x[:, j], y[:, j], var)
    (pt_ax, pt_r), _, (phi_ax, phi_r), _ = pairs
    # the hardest jet (916 GeV) is on the axis, not cut away
    assert pt_ax.get_xlim()[1] >= 916 and pt_ax.get_xscale() == "log"
    assert pt_r.get_xlabel() == r"$p_\mathrm{T}$ [GeV]" and pt_r.get_ylabel() == "out / in"
    # the ratio panel sits under its histogram and shares its x axis
    assert pt_r.get_position().y1 <= pt_ax.get_position().y0 + 1e-6
    assert pt_r.get_shared_x_axes().joined(pt_r, pt_ax)
    # phi on a linear axis over [-pi, pi], a flat distribution on a linear count axis
    assert phi_ax.get_xscale() == "linear" and phi_ax.get_yscale() == "linear"
    assert phi_ax.get_xlim() == pytest.approx((-math.pi, math.pi))
    assert phi_r.get_xlabel() == r"$\phi$ [rad]"
    # no legend inside any panel: the input/output key is the figure's
    assert all(ax.get_legend() is None for pair in pairs for ax in pair)
    plt.close(fig)


def test_extreme_outliers_are_counted_beyond_the_axis() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(10_000)
    a[:3] = [1e4, 2e4, -5e4]  # would squash everything into one bin
    fig, [(ax, rax)] = plots.io_grid(1)
    plots.hist_in_out(ax, rax, a, a, "Timing")
    assert ax.get_xlim()[1] < 100
    assert "in: 1 below, 2 above" in ax.get_title(loc="right")
    plt.close(fig)


def test_residual_panel_shows_the_whole_range_and_says_what_it_is(jets) -> None:
    x, y = jets
    r = (y[:, 0] - x[:, 0]) / x[:, 0]
    r[0] = 0.2  # one jet 20 % off: its bin must be on the axis
    fig, ax = plt.subplots()
    stats = plots.residual_hist(ax, r, "pt", "relative")
    assert ax.get_xlim()[1] >= 0.2 and ax.get_yscale() == "log"
    assert ax.get_xlabel().endswith("(relative)")
    assert f"width {stats['width']:.2e}" in ax.get_title(loc="left")
    assert ax.get_legend() is None
    plt.close(fig)


def test_per_run_figures_are_written(tmp_path, jets) -> None:
    x, y = jets
    plots.input_vs_output(x, y, ["pt", "eta", "phi", "E"], tmp_path / "io.png")
    from hepae_core.evaluation.residuals import residuals

    kinds = ["relative", "absolute", "angle", "relative"]
    res = residuals(x, y, kinds)
    plots.residual_histograms(res, ["pt", "eta", "phi", "E"], kinds, tmp_path / "res.png")
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e} for e in range(1, 6)]
    plots.loss_curves(history, tmp_path / "loss.png", "t")
    for name in ("io.png", "res.png", "loss.png"):
        assert (tmp_path / name).stat().st_size > 10_000
