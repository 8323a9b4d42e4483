"""The comparison plots of a campaign summary, in one house style (matplotlib, Agg).

Each plot function takes a :class:`PlotContext` and returns the figures it wrote as
``(stem, description)`` pairs, or raises :class:`PlotSkipped` saying why it could not be
drawn (``problem=True`` when something the user may fix was missing, such as a job's
``evaluation.npz``; ``False`` when the plot does not apply, such as a heat map of a
campaign that varies one parameter). Files go to ``summary/figures/<stem>.<format>``,
each written atomically.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from hepae_core.evaluation.plots import hist_in_out, residual_hist, unit
from hepae_core.evaluation.residuals import residuals
from hepae_core.jobdir import EVAL, HISTORY, atomic_path
from hepae_core.variables import default_residual_kind
from results import collective as collective_mod
from results.names import PLOT_FUNCTIONS
from results.ratedist import (
    METHOD_LABELS,
    compare,
    curve,
    has_curves,
    pareto_front,
    variables_of,
)
from results.report import Group, fmt, rank, resolve, short

# Okabe-Ito: distinguishable by colour-blind readers, prints in grey.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442"]  # fmt: skip
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
STYLE = {
    "figure.figsize": (6.4, 4.8),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.labelsize": 11,
    "axes.titlesize": 10,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.linewidth": 1.0,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "lines.linewidth": 1.5,
    "lines.markersize": 5,
    "image.cmap": "viridis",
}
EVALUATE_MODULE = "hepae_core.evaluation.evaluate_job"
STYLES = ("house", "atlas", "cms", "root")


def plot_style(name: str) -> dict[str, Any]:
    """The house style, or one of mplhep's (``atlas``, ``cms``, ``root``) with our palette.

    mplhep is optional (``pip install hepae-gridsearch[hepstyle]``): the house style stays
    the default because these are generator-level jets, not an experiment's, and the
    house palette is colour-blind safe.
    """
    if name == "house":
        return STYLE
    if name not in STYLES:
        from results.errors import SummaryError

        raise SummaryError(message=f"unknown style {name!r}; use {', '.join(STYLES)}")
    try:
        import mplhep
    except ImportError:
        from results.errors import SummaryError

        raise SummaryError(
            message=f"style {name!r} needs mplhep: pip install mplhep "
            "(or hepae-gridsearch[hepstyle]), or use the house style"
        ) from None
    base = {"atlas": mplhep.style.ATLAS, "cms": mplhep.style.CMS, "root": mplhep.style.ROOT}
    return {**base[name], "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "savefig.bbox": "tight"}  # fmt: skip


class PlotSkipped(Exception):
    """A plot that could not be drawn; ``problem`` says whether the user should act."""

    def __init__(self, reason: str, problem: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problem = problem


@dataclass
class PlotContext:
    """Everything a plot needs: the tables, the options and where to write."""

    root: Path
    df: Any  # every job
    used: Any  # the jobs that count (done, finite metric)
    metric: str
    group_by: str | None
    groups: list[Group]
    out: Path
    formats: list[str]
    top: int = 5
    heatmap: tuple[str, str] | None = None
    variable: str | None = None
    label: str = ""
    notes: list[str] = field(default_factory=list)  # problems met while drawing

    style_name: str = "house"

    @property
    def style(self) -> dict[str, Any]:
        """matplotlib settings of ``style_name`` (see :func:`plot_style`)."""
        return plot_style(self.style_name)

    def save(self, fig: Any, stem: str, tight: bool = True, close: bool = True) -> None:
        """Write ``fig`` in every format (``tight=False`` skips the tight-bbox pass;
        ``close=False`` keeps the figure open, to be drawn again with other data)."""
        self.out.mkdir(parents=True, exist_ok=True)
        bbox = "tight" if tight else fig.bbox_inches
        for f in self.formats:
            # zlib level 1: a few per cent larger files, a third of the encoding time
            extra = {"pil_kwargs": {"compress_level": 1}} if f == "png" else {}
            with atomic_path(self.out / f"{stem}.{f}") as tmp:
                fig.savefig(tmp, format=f, bbox_inches=bbox, **extra)
        if close:
            plt.close(fig)

    def stamp(self, ax: Any) -> None:
        """The house label in the top left corner of an axis."""
        ax.annotate("hepae-gridsearch", (0, 1), xytext=(0, 14), xycoords="axes fraction",
                    textcoords="offset points", ha="left", va="bottom", fontweight="bold",
                    fontstyle="italic", fontsize=9)  # fmt: skip
        if self.label:
            ax.annotate(self.label, (0, 1), xytext=(0, 3), xycoords="axes fraction",
                        textcoords="offset points", ha="left", va="bottom", fontsize=8)  # fmt: skip


METRIC_LABELS = {
    "best_val_loss": "best validation loss (MSE, normalised units)",
    "test_loss": "test loss (MSE, normalised units)",
    "final_val_loss": "final validation loss (MSE, normalised units)",
}


PARAM_WORDS = {"lr": "learning rate", "wd": "weight decay", "bs": "batch size",
               "latent": "latent size"}  # fmt: skip


def metric_label(metric: str) -> str:
    """An axis label of a ranking metric that says what it measures and in which units."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    m = re.match(r"^(.+)\.(.+)\.(width|rms|std|mean)$", metric)
    if m:
        return f"{m.group(2)} residual {m.group(3)} ({m.group(1)})"
    return short(metric)


def _col(ctx: PlotContext, name: str) -> str | None:
    try:
        return resolve(ctx.df.columns, name)
    except Exception:
        return None


def _panels(n: int) -> tuple[Any, Any]:
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")  # fmt: skip
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", fmt(v))


# --------------------------------------------------------------------------- 1


def loss_vs_lr(ctx: PlotContext) -> list[tuple[str, str]]:
    """Loss against learning rate, one panel per group, one line per (wd, bs)."""
    lr = _col(ctx, "lr")
    used = ctx.used
    if lr is None or used[lr].nunique() < 2:
        raise PlotSkipped("the learning rate is not varied")
    wd, bs = _col(ctx, "wd"), _col(ctx, "bs")
    wds = sorted(used[wd].dropna().unique()) if wd else [None]
    bss = sorted(used[bs].dropna().unique()) if bs else [None]
    cmap = plt.get_cmap("viridis")
    colour = {b: cmap(0.1 + 0.8 * i / max(1, len(bss) - 1)) for i, b in enumerate(bss)}
    marker = {w: MARKERS[i % len(MARKERS)] for i, w in enumerate(wds)}
    parts = (
        [(g, used[used[ctx.group_by] == g]) for g in sorted(used[ctx.group_by].dropna().unique())]
        if ctx.group_by
        else [(None, used)]
    )
    with plt.rc_context(ctx.style):
        fig, axes = _panels(len(parts))
        for ax, (g, sub) in zip(axes, parts):
            for w in wds:
                for b in bss:
                    sel = sub
                    if wd:
                        sel = sel[sel[wd] == w]
                    if bs:
                        sel = sel[sel[bs] == b]
                    if sel.empty:
                        continue
                    best = sel.groupby(lr)[ctx.metric].min().sort_index()
                    ax.plot(best.index, best.values, color=colour[b], marker=marker[w],
                            lw=1.2, alpha=0.9)  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Minor-tick labels of a short log axis overlap each other: label decades only.
            ax.xaxis.set_minor_formatter(NullFormatter())
            if g is not None:
                ax.set_title(f"{short(ctx.group_by)} = {fmt(g)}", loc="right")
        ncols = min(3, len(parts))
        for i, ax in enumerate(axes[: len(parts)]):
            if i + ncols >= len(parts):  # the lowest panel of its column
                ax.set_xlabel("learning rate")
                ax.xaxis.set_tick_params(labelbottom=True)
            if i % ncols == 0:
                ax.set_ylabel(metric_label(ctx.metric))
        ctx.stamp(axes[0])
        handles = [Line2D([], [], color=colour[b], lw=2, label=f"batch size {fmt(b)}")
                   for b in bss if b is not None]  # fmt: skip
        handles += [
            Line2D([], [], color="grey", marker=marker[w], lw=0, label=f"weight decay {fmt(w)}")
            for w in wds
            if w is not None
        ]
        if handles:
            fig.legend(handles=handles, loc="outside right center")
        ctx.save(fig, "loss_vs_lr")
    return [("loss_vs_lr", f"{short(ctx.metric)} against learning rate (best over the rest)")]


# --------------------------------------------------------------------------- 2


def _variables(df: Any, source: str = "ae") -> list[str]:
    pat = re.compile(rf"^{re.escape(source)}\.(.+)\.width$")
    found = [m.group(1) for c in df.columns if (m := pat.match(c))]
    # The campaign's own variable order (metrics.json "variables"), then any others.
    listed = df["variables"].dropna() if "variables" in df else []
    order = str(listed.iloc[0]).split(",") if len(listed) else []
    return [v for v in order if v in found] + [v for v in found if v not in order]


def _kinds_words(df: Any, variables: list[str]) -> str:
    """``pt, E: relative; eta: absolute; phi: angle [rad]``: which residual each variable has."""
    by: dict[str, list[str]] = {}
    for v in variables:
        col = f"residual.{v}"
        kind = str(df[col].dropna().iloc[0]) if col in df and df[col].notna().any() else None
        kind = kind or default_residual_kind(v)
        word = {"angle": "angle [rad]"}.get(kind, kind)
        if kind == "absolute" and unit(v):
            word = f"absolute [{unit(v)}]"
        by.setdefault(word, []).append(v)
    parts = [f"{', '.join(vs[:4])}{' ...' if len(vs) > 4 else ''}: {w}" for w, vs in by.items()]
    return "; ".join(parts)


def widths_vs_latent(ctx: PlotContext) -> list[tuple[str, str]]:
    """Residual width (top, log axis) and signed mean (below, linear axis) per variable
    against latent size, for the best and the median run of each latent size."""
    latent = _col(ctx, "latent") or ("latent" if "latent" in ctx.df else None)
    variables = _variables(ctx.used)
    if latent is None:
        raise PlotSkipped("no latent size column")
    if not variables:
        raise PlotSkipped("no ae.<variable>.width columns in the metrics", problem=True)
    groups = rank(ctx.used, ctx.metric, latent)
    zs = [float(g.value) for g in groups]
    row = {r["job_id"]: r for _, r in ctx.used.iterrows()} if len(ctx.used) < 2000 else None

    def value(job_id: str, key: str) -> float:
        if row is not None:
            return float(row[job_id].get(key, np.nan))
        sel = ctx.used.loc[ctx.used["job_id"] == job_id, key] if key in ctx.used else []
        return float(sel.iloc[0]) if len(sel) else math.nan

    kinds = _kinds_words(ctx.used, variables)
    with plt.rc_context(ctx.style):
        # Widths span decades (log axis); signed means cross zero (linear axis of their own).
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.2), sharex=True, sharey="row",
                                 height_ratios=[3, 2], layout="constrained")  # fmt: skip
        for col, label in enumerate(("best", "median")):
            ax, mx = axes[0, col], axes[1, col]
            for i, v in enumerate(variables):
                c = PALETTE[i % len(PALETTE)] if len(variables) <= len(PALETTE) else \
                    plt.get_cmap("turbo")(i / max(1, len(variables) - 1))  # fmt: skip
                picks = [next(p for p in g.picks if p.label == label) for g in groups]
                w = [value(p.job_id, f"ae.{v}.width") for p in picks]
                m = [value(p.job_id, f"ae.{v}.mean") for p in picks]
                ax.plot(zs, w, "-o", color=c, label=v)
                mx.plot(zs, m, "-o", color=c, ms=3, lw=1.0)
                for src, ls in (("float16", ":"), ("bfloat16", "-.")):
                    key = f"{src}.{v}.width"
                    if key in ctx.used and ctx.used[key].notna().any():
                        ref = float(ctx.used[key].median())
                        if ref > 0:
                            ax.axhline(ref, color=c, ls=ls, lw=0.8)
            ax.set_yscale("log")
            mx.axhline(0.0, color="black", lw=0.6)
            mx.set_xlabel("latent size")
            ax.set_title(f"{label} run per latent size", loc="right")
            mx.set_xticks(zs)
            mx.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axes[0, 0].set_ylabel(f"residual width\n({kinds})")
        axes[1, 0].set_ylabel("signed mean of the residual")
        ctx.stamp(axes[0, 0])
        handles = axes[0, 0].get_legend_handles_labels()[0]
        handles += [Line2D([], [], color="grey", ls=":", label="float16 cast width"),
                    Line2D([], [], color="grey", ls="-.", label="bfloat16 cast width")]  # fmt: skip
        fig.legend(handles=handles, loc="outside right center", ncols=1 + len(handles) // 16)
        ctx.save(fig, "widths_vs_latent")
    return [("widths_vs_latent", "residual width (log axis) and signed mean (linear axis) per "
             "variable against latent size, best and median run, with the float16/bfloat16 "
             "cast widths")]  # fmt: skip


# --------------------------------------------------------------------------- 3


def pareto(ctx: PlotContext) -> list[tuple[str, str]]:
    """The rate-distortion plot; campaigns without baseline curves get the old Pareto plot."""
    if has_curves(ctx.used.columns):
        return rate_distortion(ctx)
    return pareto_ratio(ctx)


def _rd_panels(ctx: PlotContext, variables: list[str], best_rows: list[Any]) -> list[str]:
    """All variables up to six; beyond, the six where the best runs trail the quantiser most."""
    if ctx.variable:
        return [ctx.variable]
    if len(variables) <= 6:
        return variables
    score = {}
    for v in variables:
        rel = [c.ae / c.sq for r in best_rows for c in compare(r, [v])
               if c.sq > 0 and math.isfinite(c.ae)]  # fmt: skip
        score[v] = max(rel) if rel else -math.inf
    return sorted(variables, key=lambda v: score[v], reverse=True)[:6]


def _width_variables(ctx: PlotContext) -> list[str]:
    """The variables with residual widths; PlotSkipped when none, or not ``--variable``."""
    variables = variables_of(ctx.used)
    if not variables:
        raise PlotSkipped("no ae.<variable>.width columns in the metrics", problem=True)
    if ctx.variable and ctx.variable not in variables:
        raise PlotSkipped(f"no residual width of variable {ctx.variable!r} (have "
                          f"{', '.join(variables)})", problem=True)  # fmt: skip
    return variables


def _best_rows(ctx: Any, used: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(group value, metrics row) of each group's best run, in the groups' order."""
    rows_by_id = {r["job_id"]: r for r in used.to_dict("records")}
    best = []
    for g in ctx.groups or rank(used, ctx.metric, ctx.group_by):
        pick = next(p for p in g.picks if p.label == "best")
        if pick.job_id in rows_by_id:
            best.append((g.value, rows_by_id[pick.job_id]))
    return best


def rate_distortion(ctx: PlotContext) -> list[tuple[str, str]]:
    """The rate-distortion plane, one panel per variable, drawn by
    :func:`results.ratedist.draw_plane` (ratio from the bytes written, the crossovers with
    the scalar quantiser marked, the lossless point on the ratio axis); the bits-per-jet
    version below when that is not available."""
    from results import ratedist

    draw = getattr(ratedist, "draw_plane", None)
    if draw is None:
        return rate_distortion_bits(ctx)
    used = ctx.used
    variables = _width_variables(ctx)
    best = _best_rows(ctx, used)
    if not best:
        raise PlotSkipped("no best run with metrics", problem=True)
    panels = _rd_panels(ctx, variables, [r for _, r in best])
    records = used.to_dict("records")  # the rate-aware jobs' frontier is drawn over all runs

    def name(value: Any) -> str:
        return f"AE {short(ctx.group_by)}={fmt(value)}" if ctx.group_by else "AE, best run"

    with plt.rc_context(ctx.style):
        fig, axes = _panels_free(len(panels))
        for ax, v in zip(axes, panels):
            (v0, row0), rest = best[0], best[1:]
            extra = [(r, PALETTE[(i + 1) % len(PALETTE)], name(val)) for i, (val, r) in
                     enumerate(rest)]  # fmt: skip
            draw(ax, row0, v, color=PALETTE[0], label=name(v0), extra_rows=extra,
                 frontier_rows=records)  # fmt: skip
            ax.set_title(v, loc="right", fontweight="bold")
        # the full ratio definition once under the panels, a short label on each
        full = axes[0].get_xlabel()
        for ax in axes[: len(panels)]:
            ax.set_xlabel("compression ratio")
        if full:
            fig.supxlabel(full, fontsize=9)
        ctx.stamp(axes[0])
        handles: dict[str, Any] = {}
        for ax in axes[: len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if not lab.startswith("lossless"):
                    handles.setdefault(lab, h)
        handles["lossless gzip (width 0, on the ratio axis)"] = Line2D(
            [], [], marker="v", color="#009E73", ls="none", ms=8
        )
        if not any(lab.startswith("crossover") for lab in handles):
            handles["crossover with the scalar quantiser"] = Line2D(
                [], [], marker="*", color="grey", mec="black", ls="none", ms=10
            )
        fig.legend(list(handles.values()), list(handles), loc="outside right center",
                   fontsize=7)  # fmt: skip
        ctx.save(fig, "rate_distortion")
    what = "each variable" if len(panels) == len(variables) else f"the {len(panels)} worst"
    return [("rate_distortion", f"compression ratio (from the bytes written, model counted) "
             f"against the residual width of {what}: the best run of each group with its "
             "latent quantised at k bits, the scalar quantiser (plain and entropy-coded), SZ3, "
             "ZFP, PCA, the crossovers, the lossless point and, with rate-aware runs "
             "(train.rate_lambda), their frontier (predicted bits, model counted)")]  # fmt: skip


def rate_distortion_bits(ctx: PlotContext) -> list[tuple[str, str]]:
    """Bits per jet against residual width: autoencoders, quantisers, PCA, casts, lossless.

    One panel per variable (the worst six of many). Each group's best run gives its
    quantised-latent curve (solid) and its PCA curve at as many components as its latent
    (dashed); the scalar-quantiser curve, the casts and the lossless point are drawn once.
    """
    used = ctx.used
    variables = _width_variables(ctx)
    best = _best_rows(ctx, used)
    panels = _rd_panels(ctx, variables, [r for _, r in best])
    n_in = len(variables)
    ref = best[0][1] if best else next(iter(used.to_dict("records")))
    with plt.rc_context(ctx.style):
        fig, axes = _panels(len(panels))
        for ax, v in zip(axes, panels):
            x, y = curve(ref, "sq", v)
            ax.plot(x, y, "-", color="black", lw=2.0, label=METHOD_LABELS["sq"])
            for i, (value, row) in enumerate(best):
                c = PALETTE[i % len(PALETTE)]
                name = f"{short(ctx.group_by)}={fmt(value)}" if ctx.group_by else "best run"
                x, y = curve(row, "aeq", v)
                ax.plot(x, y, "-o", color=c, ms=3, label=f"AE {name}, quantised latent")
                x, y = curve(row, "pca", v)
                ax.plot(x, y, "--", color=c, lw=1.0, label=f"PCA, {fmt(row.get('pca.z'))} comp.")
                for src, mk in (("ae_f16latent", "s"), ("ae", "D")):
                    b, w = row.get(f"{src}.bits_per_jet"), row.get(f"{src}.{v}.width")
                    if b is not None and w is not None and np.isfinite([b, w]).all():
                        ax.plot([b], [w], mk, color=c, mfc="none", ms=6)
            for src, mk, c in (("float16", "*", PALETTE[2]), ("bfloat16", "P", PALETTE[3])):
                k = f"{src}.{v}.width"
                if k in used and used[k].notna().any():
                    ax.plot([16 * n_in], [float(used[k].median())], mk, color=c, ms=10,
                            ls="none", label=f"{src} cast")  # fmt: skip
            if "lossless.bits_per_jet" in used and used["lossless.bits_per_jet"].notna().any():
                ax.axvline(float(used["lossless.bits_per_jet"].median()), color="grey", ls=":",
                           lw=1.0, label="lossless gzip (width 0)")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.text(0.97, 0.95, v, transform=ax.transAxes, ha="right", va="top",
                    fontweight="bold")  # fmt: skip

            def to_ratio(b: Any) -> Any:  # bits per jet <-> ratio: the same map both ways
                return 32 * n_in / np.maximum(b, 1e-9)

            top = ax.secondary_xaxis("top", functions=(to_ratio, to_ratio))
            top.set_xlabel("compression ratio", fontsize=8)
            # powers of two read better than 2x10^1 on both axes
            for axis, ticks in ((ax.xaxis, [8, 16, 32, 64, 128, 256, 512, 1024]),
                                (top.xaxis, [1, 2, 4, 8, 16, 32])):  # fmt: skip
                axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
                axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
        for ax in axes[: len(panels)]:
            ax.set_xlabel("bits per jet")
            ax.tick_params(labelbottom=True)
        axes[0].set_ylabel("residual width")
        handles = axes[0].get_legend_handles_labels()[0]
        handles += [Line2D([], [], color="grey", marker="s", mfc="none", ls="none",
                           label="AE, float16 latent"),
                    Line2D([], [], color="grey", marker="D", mfc="none", ls="none",
                           label="AE, float32 latent")]  # fmt: skip
        fig.legend(handles=handles, loc="outside right center", fontsize=7)
        ctx.save(fig, "rate_distortion")
    what = "each variable" if len(panels) == n_in else f"the {len(panels)} worst variables"
    return [("rate_distortion", f"bits per jet (ratio on top) against the residual width of "
             f"{what}: the best run of each group with its latent quantised at k bits, PCA "
             "transform coding, the scalar quantiser, the float16/bfloat16 casts and the "
             "lossless gzip point")]  # fmt: skip


def pareto_ratio(ctx: PlotContext) -> list[tuple[str, str]]:
    """Compression ratio against the residual width of one variable, front highlighted."""
    variables = _variables(ctx.used)
    if not variables:
        raise PlotSkipped("no ae.<variable>.width columns in the metrics", problem=True)
    v = ctx.variable or ("pt" if "pt" in variables else variables[0])
    if v not in variables:
        raise PlotSkipped(f"no residual width of variable {v!r} (have {', '.join(variables)})",
                          problem=True)  # fmt: skip
    if "compression_ratio" not in ctx.used:
        raise PlotSkipped("no compression_ratio in the metrics", problem=True)
    sel = ctx.used[["compression_ratio", f"ae.{v}.width"]].dropna()
    x = sel["compression_ratio"].to_numpy(float)
    y = sel[f"ae.{v}.width"].to_numpy(float)
    front = pareto_front(x, y)
    with plt.rc_context(ctx.style):
        fig, ax = plt.subplots()
        ax.scatter(x, y, s=10, color="#999999", alpha=0.6, lw=0, label=f"runs ({len(x)})")
        ax.plot(x[front], y[front], "-o", color=PALETTE[1], label="Pareto front")
        key = f"ae_f16latent.{v}.width"
        if key in ctx.used and "compression_ratio_f16" in ctx.used:
            s2 = ctx.used[["compression_ratio_f16", key]].dropna()
            if len(s2):
                x2, y2 = s2.iloc[:, 0].to_numpy(float), s2.iloc[:, 1].to_numpy(float)
                f2 = pareto_front(x2, y2)
                ax.plot(x2[f2], y2[f2], "--s", color=PALETTE[0], ms=4,
                        label="front, float16 latent")  # fmt: skip
        for src, mk, c in (("float16", "*", PALETTE[2]), ("bfloat16", "P", PALETTE[3])):
            k = f"{src}.{v}.width"
            if k in ctx.used and ctx.used[k].notna().any():
                ax.plot([2.0], [float(ctx.used[k].median())], mk, color=c, ms=11,
                        label=f"{src} cast")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("compression ratio (input bytes / stored bytes)")
        ax.set_ylabel(f"{v} residual width ({_kinds_words(ctx.used, [v]).split(': ')[-1]})")
        ctx.stamp(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ctx.save(fig, "pareto")
    return [("pareto", f"compression ratio against the {v} residual width, Pareto front "
             "and the plain float16/bfloat16 casts")]  # fmt: skip


# --------------------------------------------------------------------------- 4


def heatmap(ctx: PlotContext) -> list[tuple[str, str]]:
    """The best metric over two parameters."""
    if ctx.heatmap:
        a, b = (resolve(ctx.df.columns, n, "parameter") for n in ctx.heatmap)
    else:
        lr, wd = _col(ctx, "lr"), _col(ctx, "wd")
        vary = [c for c in ctx.used.columns if c.startswith("param.")
                and ctx.used[c].nunique() > 1]  # fmt: skip
        if lr in vary and wd in vary:
            a, b = lr, wd
        elif len(vary) >= 2:
            a, b = vary[0], vary[1]
        else:
            raise PlotSkipped("fewer than two parameters are varied")
    table = ctx.used.pivot_table(index=b, columns=a, values=ctx.metric, aggfunc="min")
    if table.empty:
        raise PlotSkipped(f"no runs with both {a} and {b}", problem=True)
    data = table.to_numpy(float)
    with plt.rc_context({**ctx.style, "xtick.minor.visible": False, "ytick.minor.visible": False}):
        fig, ax = plt.subplots(figsize=(1.2 + 1.0 * data.shape[1], 1.0 + 0.7 * data.shape[0]))
        positive = data[np.isfinite(data) & (data > 0)]
        norm = LogNorm(positive.min(), positive.max()) if positive.size else None
        im = ax.imshow(data, norm=norm, aspect="auto", origin="lower")
        ax.set_xticks(range(data.shape[1]), [fmt(c) for c in table.columns])
        ax.set_yticks(range(data.shape[0]), [fmt(i) for i in table.index])
        ax.tick_params(top=False, right=False)
        if data.size <= 150:
            mid = math.sqrt(positive.min() * positive.max()) if positive.size else 0
            for (i, j), val in np.ndenumerate(data):
                if math.isfinite(val):
                    ax.text(j, i, f"{val:.2e}", ha="center", va="center", fontsize=7,
                            color="white" if val < mid else "black")  # fmt: skip
        ax.set_xlabel(PARAM_WORDS.get(short(a), short(a)))
        ax.set_ylabel(PARAM_WORDS.get(short(b), short(b)))
        fig.colorbar(im, ax=ax, label=f"{metric_label(ctx.metric)}\n(lowest per cell)")
        ctx.stamp(ax)
        stem = f"heatmap_{short(a)}_{short(b)}"
        ctx.save(fig, stem)
    return [(stem, f"best {short(ctx.metric)} over {short(a)} and {short(b)}")]


# --------------------------------------------------------------------------- 5


def read_history(path: Path) -> dict[str, np.ndarray] | None:
    """history.csv as columns, or None when missing or unreadable."""
    try:
        data = np.genfromtxt(path, delimiter=",", names=True, dtype=float, ndmin=1)
    except (OSError, ValueError):
        return None
    if data.dtype.names is None or "epoch" not in data.dtype.names or data.size == 0:
        return None
    return {n: np.atleast_1d(data[n]) for n in data.dtype.names}


def _rungs(df: Any) -> np.ndarray:
    """Each row's rung of successive halving (0: never promoted; promotion.json)."""
    if "rung" not in df:
        return np.zeros(len(df))
    return np.nan_to_num(np.asarray(df["rung"], dtype=float), nan=0.0)


def curves(ctx: PlotContext) -> list[tuple[str, str]]:
    """Training curves (validation solid, training dashed) of the top-k runs, each ending
    in a dot where it stopped; with successive halving also every run's validation curve
    and the rung boundaries (``curves_halving``)."""
    top = ctx.used.nsmallest(max(1, ctx.top), ctx.metric)
    rungs = dict(zip(ctx.used["job_id"], _rungs(ctx.used)))
    with plt.rc_context(ctx.style):
        fig, ax = plt.subplots()
        drawn = 0
        for i, (_, r) in enumerate(top.iterrows()):
            h = read_history(ctx.root / r["job_dir"] / HISTORY)
            if h is None or "val_loss" not in h:
                ctx.notes.append(f"{r['job_dir']}: no readable {HISTORY}, left out of the curves")
                continue
            c = PALETTE[i % len(PALETTE)]
            rung = int(rungs.get(r["job_id"], 0))
            mark = f" (rung {rung})" if rung else ""
            ax.plot(h["epoch"], h["val_loss"], color=c, label=f"{i + 1}. {r['name']}{mark}")
            ax.plot(h["epoch"][-1:], h["val_loss"][-1:], "o", color=c, ms=4)
            if "train_loss" in h:
                ax.plot(h["epoch"], h["train_loss"], color=c, ls="--", lw=1.0)
            drawn += 1
        if not drawn:
            plt.close(fig)
            raise PlotSkipped(f"none of the top {len(top)} runs has a readable {HISTORY}",
                              problem=True)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss: MSE in normalised units")
        ctx.stamp(ax)
        handles = ax.get_legend_handles_labels()[0]
        handles += [Line2D([], [], color="grey", label="validation"),
                    Line2D([], [], color="grey", ls="--", lw=1.0, label="training"),
                    Line2D([], [], color="grey", marker="o", ls="none", ms=4,
                           label="where it stopped")]  # fmt: skip
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ctx.save(fig, "curves_top")
    out = [("curves_top", f"training curves of the top {drawn} runs by {short(ctx.metric)}")]
    if _rungs(ctx.used).max(initial=0) > 0:
        out += _halving_curves(ctx)
    return out


def _halving_curves(ctx: PlotContext) -> list[tuple[str, str]]:
    """Every run's validation curve, coloured by the rung it reached, a dot where it
    stopped, dotted lines where jobs were promoted: successive halving at a glance."""
    rows = ctx.used
    rungs = _rungs(rows)
    top_rung = int(rungs.max())
    bounds = sorted(
        {int(v) for v in np.asarray(rows.get("promoted_from_epochs", []), dtype=float)
         if np.isfinite(v)}
    )  # fmt: skip
    with plt.rc_context(ctx.style):
        fig, ax = plt.subplots()
        drawn = 0
        for (_, r), rung in zip(rows.iterrows(), rungs):
            h = read_history(ctx.root / r["job_dir"] / HISTORY)
            if h is None or "val_loss" not in h:
                continue
            c = PALETTE[int(rung) % len(PALETTE)] if rung else "0.6"
            lw = 1.0 + 0.6 * rung
            ax.plot(h["epoch"], h["val_loss"], color=c, lw=lw, alpha=0.9 if rung else 0.6)
            ax.plot(h["epoch"][-1:], h["val_loss"][-1:], "o", color=c, ms=3 + rung)
            drawn += 1
        if not drawn:
            plt.close(fig)
            return []
        for b in bounds:
            ax.axvline(b, color="0.3", ls=":", lw=1.0)
        handles = [
            Line2D([], [], color=PALETTE[k % len(PALETTE)] if k else "0.6", marker="o",
                   label=f"stopped at rung {k}")
            for k in range(top_rung + 1)
        ]  # fmt: skip
        handles.append(Line2D([], [], color="0.3", ls=":", label="where a run was last promoted"))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss: MSE in normalised units")
        ctx.stamp(ax)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ctx.save(fig, "curves_halving")
    return [("curves_halving", f"successive halving: {drawn} runs, where each stopped")]


# --------------------------------------------------------------------------- 6


def load_evaluation(job_dir: Path, reevaluate: bool = True) -> tuple[dict[str, Any] | None, str]:
    """A job's evaluation.npz, re-evaluating from model.pt when missing and possible."""
    path = job_dir / EVAL
    why = ""
    if not path.exists() and reevaluate:
        if importlib.util.find_spec(EVALUATE_MODULE) is None:
            why = f"no {EVAL} and no {EVALUATE_MODULE} to re-evaluate the saved model"
        else:
            cmd = [sys.executable, "-m", EVALUATE_MODULE, str(job_dir)]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if res.returncode != 0:
                    tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
                    why = f"no {EVAL}, and re-evaluation failed (exit {res.returncode}): {tail[0]}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                why = f"re-evaluation failed: {exc}"
    if not path.exists():
        return None, why or f"no {EVAL}"
    try:
        with np.load(path, allow_pickle=False) as z:
            ev = {k: z[k] for k in ("inputs", "outputs", "variables")}
            ev["residual_kinds"] = z.get("residual_kinds")
    except (OSError, ValueError, KeyError) as exc:
        return None, f"{EVAL} is unreadable ({exc}); rerun the job's evaluation"
    ev["variables"] = [str(v) for v in ev["variables"]]
    if ev["residual_kinds"] is None:
        from hepae_core.variables import default_residual_kind

        ev["residual_kinds"] = [default_residual_kind(v) for v in ev["variables"]]
    else:
        ev["residual_kinds"] = [str(k) for k in ev["residual_kinds"]]
    if ev["inputs"].shape != ev["outputs"].shape or ev["inputs"].ndim != 2:
        return None, f"{EVAL}: inputs and outputs differ in shape"
    return ev, ""


def _grid(n: int) -> tuple[Any, Any]:
    ncols, nrows = min(3, n), math.ceil(n / 3)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.3 * nrows + 0.4), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.1, top=0.9, hspace=0.35, wspace=0.3)
    for ax in axes.flat:
        _fix_xlabel(ax)
    return fig, axes


def _grid_pages(n: int) -> list[range]:
    return [range(i, min(n, i + 9)) for i in range(0, n, 9)]


def _io_figure(n: int) -> tuple[Any, list[tuple[Any, Any]]]:
    """Like hepae_core.evaluation.plots.io_grid, on fixed margins instead of a layout engine: the
    figure is drawn once per best run and format, and constrained layout would be solved
    again for each (it was most of the time of these plots)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    w, h = 4.3 * ncols, 4.0 * nrows + 0.5
    fig = plt.figure(figsize=(w, h))
    outer = fig.add_gridspec(nrows, ncols, left=0.75 / w, right=1 - 0.1 / w, bottom=0.6 / h,
                             top=1 - 0.5 / h, wspace=0.22, hspace=0.24)  # fmt: skip
    pairs = []
    for i in range(n):
        r, c = divmod(i, ncols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        _fix_xlabel(rax)
        pairs.append((ax, rax))
    return fig, pairs


def _fix_xlabel(ax: Any) -> None:
    """Put the x label at a fixed distance under the axis, as far as the tick labels reach,
    instead of placing it from their measured boxes at each draw (a layout pass per axis
    and format, a good part of what these figures cost)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.transforms import ScaledTranslation

    rc = matplotlib.rcParams
    size = FontProperties(size=rc["xtick.labelsize"]).get_size_in_points()
    length = rc["xtick.major.size"] if rc["xtick.direction"] != "in" else 0.0
    below = (1.25 * size + rc["xtick.major.pad"] + length + rc["axes.labelpad"]) / 72
    shift = ScaledTranslation(0, -below, ax.figure.dpi_scale_trans)
    ax.xaxis.set_label_coords(0.5, 0.0, transform=ax.transAxes + shift)


def _clear(ax: Any) -> None:
    """Empty an axis for the next run's data, keeping its ticks and labels objects (making
    these again is what a new figure costs)."""
    for artist in [*ax.lines, *ax.patches, *ax.collections, *ax.texts, *ax.images]:
        artist.remove()
    ax.containers.clear()
    for loc in ("left", "center", "right"):
        ax.set_title("", loc=loc)
    ax.set_xscale("linear")
    ax.set_yscale("linear")
    ax.relim()
    ax.set_autoscale_on(True)


class _Reused:
    """The figures of best_runs, made once per shape and redrawn for each best run."""

    def __init__(self) -> None:
        self.figs: dict[tuple[str, Any], Any] = {}

    def get(self, kind: str, shape: Any, make: Callable[[Any], Any]) -> tuple[Any, bool]:
        """The figure of ``kind`` and ``shape`` (made by ``make(shape)`` the first time),
        and whether it was drawn before."""
        key = (kind, shape)
        if key in self.figs:
            return self.figs[key], True
        self.figs[key] = make(shape)
        return self.figs[key], False

    def close(self) -> None:
        for made in self.figs.values():
            plt.close(made[0])
        self.figs.clear()


def _corr_figure(names: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """The correlation matrix of ``names`` on fixed margins (inches), wide enough for the
    names and the two-line title: no tight-bbox pass, which draws the figure twice."""
    n = len(names)
    size = matplotlib.rcParams["font.size"] / 72  # inches per character, roughly
    label = 0.25 + 0.62 * size * max(len(v) for v in names)
    m = max(0.45 * n, 1.0)
    w = max(label + m + 1.5, label + 3.4)
    h = label + m + 0.75
    fig = plt.figure(figsize=(w, h))
    ax = fig.add_axes((label / w, label / h, m / w, m / h))
    cax = fig.add_axes(((label + m + 0.15) / w, label / h, 0.18 / w, m / h))
    im = ax.imshow(np.zeros((n, n)), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.tick_params(which="minor", bottom=False, left=False, top=False, right=False)
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_yticks(range(n), names)
    fig.colorbar(im, cax=cax, label="residual correlation")
    return fig, ax, im


def best_runs(ctx: PlotContext) -> list[tuple[str, str]]:
    """Input/output and residual histograms and residual correlations of each best run.

    The figures of one shape are made once and redrawn for each best run (their axes,
    ticks and labels kept, the data replaced): making a figure costs more than drawing it.
    """
    written: list[tuple[str, str]] = []
    missing = []
    figs = _Reused()
    try:
        # A title at a fixed height (axes.titley) is not moved above the tick labels, which
        # would take a layout pass per axis and draw; no tick labels sit on top here.
        rc: dict[str, Any] = {
            "xtick.minor.visible": False,
            "ytick.minor.visible": False,
            "axes.titley": 1.0,
        }
        with plt.rc_context({**ctx.style, **rc}):
            for g in ctx.groups:
                best = g.picks[0]
                ev, why = load_evaluation(ctx.root / best.job_dir)
                tag = f"{short(ctx.group_by)}{_slug(g.value)}" if ctx.group_by else "all"
                if ev is None:
                    missing.append(f"{best.job_dir} (best of {tag}): {why}")
                    continue
                written += _best_run(ctx, figs, best.name, tag, ev)
    finally:
        figs.close()
    for m in missing:
        ctx.notes.append(f"best-run plots skipped for {m}")
    if not written:
        raise PlotSkipped("no best run has evaluation outputs: " + "; ".join(missing),
                          problem=True)  # fmt: skip
    return written


def _best_run(
    ctx: PlotContext, figs: _Reused, name: str, tag: str, ev: dict[str, Any]
) -> list[tuple[str, str]]:
    """The figures of one best run, drawn on the reused figures of ``figs``."""
    written = []
    x, y, names = ev["inputs"], ev["outputs"], ev["variables"]
    res = residuals(x, y, ev["residual_kinds"])
    pages = _grid_pages(len(names))
    for pi, page in enumerate(pages):
        suffix = f"_{pi + 1}" if len(pages) > 1 else ""
        # the whole range (tails included), units, output/input ratio below
        (fig, pairs), again = figs.get("io", len(page), _io_figure)
        for (ax, rax), i in zip(pairs, page):
            if again:
                _clear(ax)
                _clear(rax)
            hist_in_out(ax, rax, x[:, i], y[:, i], names[i])
        if not again:
            fig.legend(*pairs[0][0].get_legend_handles_labels(), loc="upper right",
                       bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)  # fmt: skip
        fig.suptitle(f"{name}: input vs output ({tag}, best)", x=0.02, ha="left")
        stem = f"best_{tag}_inputs_outputs{suffix}"
        ctx.save(fig, stem, tight=False, close=False)
        written.append((stem, f"input vs output of every variable, best run of {tag}"))
        (fig, axes), again = figs.get("residuals", len(page), _grid)
        for ax, i in zip(axes.flat, page):
            if again:
                _clear(ax)
            residual_hist(ax, res[:, i], names[i], ev["residual_kinds"][i])
        for ax in axes.flat[len(page) :]:
            ax.set_visible(False)
        fig.suptitle(f"{name}: residuals ({tag}, best)")
        stem = f"best_{tag}_residuals{suffix}"
        ctx.save(fig, stem, tight=False, close=False)
        written.append((stem, f"residual histograms, best run of {tag}"))
    ok = np.all(np.isfinite(res), axis=1)
    corr = np.corrcoef(res[ok].T) if ok.sum() > 2 else np.full((len(names),) * 2, np.nan)
    corr = np.atleast_2d(corr)
    n = len(names)
    (fig, ax, im), again = figs.get("correlation", tuple(names), _corr_figure)
    if again:
        for t in [*ax.texts]:
            t.remove()
    im.set_data(corr)
    if n <= 12:
        for (i, j), val in np.ndenumerate(corr):
            ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(val) > 0.6 else "black")  # fmt: skip
    ax.set_title(f"{name}\n({tag}, best)", loc="left", fontsize=9)
    stem = f"best_{tag}_residual_correlation"
    ctx.save(fig, stem, tight=False, close=False)
    written.append((stem, f"residual correlation matrix, best run of {tag}"))
    return written


# --------------------------------------------------------------------------- 7

KIND_STYLE = {  # kind -> (colour, marker, line style)
    "single": (PALETTE[0], "o", "-"),
    "grouped": (PALETTE[1], "s", "-"),
    "two-stage": (PALETTE[2], "^", "--"),
}


def _collective_panels(ctx: PlotContext, variables: list[str]) -> list[str]:
    if ctx.variable:
        return [ctx.variable]
    return variables[:9]  # 3 x 3 panels at most: collective campaigns are few-variable ones


def _best_per_cell(ctx: PlotContext, rows: list[tuple[str, dict[str, Any]]]) -> dict:
    """(kind, latent, G) -> the row with the lowest metric: one point per cell."""
    best: dict[tuple[str, float, float], dict[str, Any]] = {}
    for kind, r in rows:
        if kind not in collective_mod.KINDS:
            continue
        z = r.get("param.model.latent", r.get("latent"))
        g = collective_mod.group_size_of(r)
        try:
            z, m = float(z), float(r.get(ctx.metric, math.nan))
        except (TypeError, ValueError):
            continue
        if not (math.isfinite(z) and math.isfinite(g)):
            continue
        key = (kind, z, g)
        old = best.get(key)
        if old is None or (math.isfinite(m) and m < float(old.get(ctx.metric, math.inf))):
            best[key] = r
    return best


def collective(ctx: PlotContext) -> list[tuple[str, str]]:
    """Grouped and two-stage models: width against group size, and the ratio-width fronts.

    Drawn only when the campaign has grouped or two-stage jobs (results.collective).
    """
    used = ctx.used
    if not collective_mod.has_collective(used):
        raise PlotSkipped("no grouped or two-stage jobs in the campaign")
    variables = _width_variables(ctx)
    panels = _collective_panels(ctx, variables)
    rows = collective_mod.rows_of(used)
    written = [_width_vs_group_size(ctx, panels, rows), _fronts(ctx, panels, rows)]
    if len(panels) < len(variables):
        ctx.notes.append(f"collective plots show the first {len(panels)} of {len(variables)} "
                         "variables; --variable picks another")  # fmt: skip
    return written


def _width_vs_group_size(
    ctx: PlotContext, panels: list[str], rows: list[tuple[str, dict[str, Any]]]
) -> tuple[str, str]:
    cells = _best_per_cell(ctx, rows)
    latents = sorted({z for _, z, _ in cells})
    colour = {z: PALETTE[i % len(PALETTE)] for i, z in enumerate(latents)}
    sizes = sorted({g for _, _, g in cells})
    with plt.rc_context(ctx.style):
        fig, axes = _panels_free(len(panels))
        for ax, v in zip(axes, panels):
            for kind in collective_mod.KINDS:
                _, mk, ls = KIND_STYLE[kind]
                for z in latents:
                    cell = [(g, r) for (k, zz, g), r in cells.items() if k == kind and zz == z]
                    pts = sorted((g, float(r.get(f"ae.{v}.width", math.nan))) for g, r in cell)
                    pts = [(g, w) for g, w in pts if math.isfinite(w) and w > 0]
                    if pts:
                        g, w = zip(*pts)
                        single = kind == "single"
                        ax.plot(g, w, marker=mk, ls="none" if single else ls, color=colour[z],
                                mfc="none" if single else colour[z])  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(sizes, [fmt(g) for g in sizes])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(v, loc="right", fontweight="bold")
            ax.set_xlabel("group size G (jets per input)")
            ax.tick_params(labelbottom=True)
        axes[0].set_ylabel(f"residual width\n({_kinds_words(ctx.used, panels)})")
        ctx.stamp(axes[0])
        handles = [Line2D([], [], color=colour[z], lw=2, label=f"latent size {fmt(z)}")
                   for z in latents]  # fmt: skip
        for kind in collective_mod.KINDS:
            if any(k == kind for k, _, _ in cells):
                _, mk, ls = KIND_STYLE[kind]
                handles.append(Line2D([], [], color="grey", marker=mk, ls=ls if kind != "single"
                                      else "none", mfc="none" if kind == "single" else "grey",
                                      label=collective_mod.KIND_LABELS[kind]))  # fmt: skip
        fig.legend(handles=handles, loc="outside right center")
        ctx.save(fig, "widths_vs_group_size")
    return ("widths_vs_group_size", "residual width of each variable against group size, one "
            "line per latent size and kind (best run of each by the metric); per-jet models "
            "at G = 1")  # fmt: skip


def _panels_free(n: int) -> tuple[Any, Any]:
    """Like _panels, but each panel keeps its own y axis (variables differ in scale)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _fronts(
    ctx: PlotContext, panels: list[str], rows: list[tuple[str, dict[str, Any]]]
) -> tuple[str, str]:
    with plt.rc_context(ctx.style):
        fig, axes = _panels_free(len(panels))
        ratios: set[float] = set()
        for ax, v in zip(axes, panels):
            for kind in collective_mod.KINDS:
                c, mk, ls = KIND_STYLE[kind]
                pts = collective_mod.points(rows, v, kind)
                pts = [p for p in pts if p.width > 0]
                if not pts:
                    continue
                ax.scatter([p.ratio for p in pts], [p.width for p in pts], s=12, color=c,
                           alpha=0.35, lw=0)  # fmt: skip
                fr = collective_mod.front(pts)
                ax.plot([p.ratio for p in fr], [p.width for p in fr], marker=mk, ls=ls,
                        color=c, label=f"{collective_mod.KIND_LABELS[kind]} front")  # fmt: skip
                ratios.update(p.ratio for p in pts)
            qr, qw = collective_mod.quantiser_curve(rows, v)
            if len(qr):
                ax.plot(qr, qw, "-", color="black", lw=2.0, label=METHOD_LABELS["sq"])
                ratios.update(qr.tolist())
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(v, loc="right", fontweight="bold")
            ax.set_xlabel("ratio per jet (float32 in / latent)")
        axes[0].set_ylabel(f"residual width\n({_kinds_words(ctx.used, panels)})")
        ctx.stamp(axes[0])
        handles = {}
        for ax in axes[: len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles), loc="outside right center")
        ctx.save(fig, "collective_fronts")
    return ("collective_fronts", "compression ratio per jet against the residual width of each "
            "variable: the single-jet, grouped and two-stage fronts (all runs faint) and the "
            "scalar quantiser")  # fmt: skip


#: The registry of :data:`results.names.PLOT_FUNCTIONS`, resolved: name -> function.
PLOTS: dict[str, Callable[[PlotContext], list[tuple[str, str]]]] = {
    name: globals()[function] for name, function in PLOT_FUNCTIONS.items()
}
