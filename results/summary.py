"""Summarize a campaign: the table, the report, the LaTeX tables and the comparison plots.

:func:`summarize` is what ``gridsearch summarize`` runs. It writes, under
``<campaign>/summary/``: ``summary.h5`` and ``summary.csv`` (the table, see
:mod:`results.table`), ``report.txt`` (counts, best/median/worst run per group, what was
skipped and why, the figure index with the time each plot took), ``tables.tex`` and
``figures/<plot>.png`` (``.pdf``, ``.svg`` on request). Nothing a job wrote can make it
fail: failed, running and unreadable jobs are listed in the report, and the exit code says
whether anything was skipped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.collective import has_collective
from results.collective import report_lines as collective_lines
from results.errors import SummaryError
from results.names import PLOT_NAMES
from results.ratedist import report_lines
from results.report import (
    Group,
    bottom_line,
    group_text,
    latex_tables,
    rank,
    resolve,
    short,
    used_mask,
    write_text,
)
from results.table import CSV_NAME, H5_NAME, SUMMARY_DIR, Table, collect

# Plots drawn only when the campaign has what they show; by default, silently left out
# when it has not (asked for with --only, they are listed as not drawn).
OPTIONAL_PLOTS = ("collective",)
FORMATS = ("png", "pdf", "svg")
REPORT_NAME = "report.txt"
LATEX_NAME = "tables.tex"
FIGURES_DIR = "figures"


@dataclass
class Figure:
    """One plot of the index: its files, what it shows and how long it took."""

    plot: str
    stem: str
    files: list[Path]
    description: str


@dataclass
class SummaryReport:
    """What :func:`summarize` did; ``exit_code`` is 0 (all used) or 1 (something skipped)."""

    campaign: Path
    table: Table
    metric: str
    group_by: str | None
    groups: list[Group] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    n_used: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job_dir, why)
    notes: list[str] = field(default_factory=list)  # campaign- and plot-level problems
    figures: list[Figure] = field(default_factory=list)
    plots_skipped: list[tuple[str, str, bool]] = field(default_factory=list)  # name, why, problem
    plot_seconds: dict[str, float] = field(default_factory=dict)
    speed: list[str] = field(default_factory=list)  # training speed, stacks' included
    rate_distortion: list[str] = field(default_factory=list)  # the verdict, in words
    collective: list[str] = field(default_factory=list)  # collective vs single-jet, in words
    bottom_line: list[str] = field(default_factory=list)  # one sentence per question, first
    table_seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        problem_plots = any(p for _, _, p in self.plots_skipped)
        return 1 if (self.skipped or self.notes or problem_plots or not self.n_used) else 0

    def text(self, limit: int | None = None) -> str:
        """The report as text (what report.txt holds); ``limit`` caps the skipped-job list."""
        t = self.table
        out = [f"Summary of campaign {self.campaign}", ""]
        out += [*self.bottom_line, ""] if self.bottom_line else []
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.states.items()))
        out.append(f"{t.n_jobs} jobs ({states or 'none'}); {self.n_used} used")
        out.append(
            f"read {t.n_read} job(s), {t.n_cached} unchanged from the cache; table "
            f"{'written' if t.written else 'already up to date'} in {self.table_seconds:.2f} s"
        )
        out.append(f"metric: {self.metric} (lower is better)")
        out += self.speed
        for k in ("h5", "csv", "latex"):
            if k in self.files:
                out.append(f"{k:>5}: {self.files[k]}")
        out.append('  load: results.load("DIR") -> pandas.DataFrame (docs/results.md)')
        out.append("")
        if self.groups:
            out += group_text(self.groups, self.metric, self.group_by)
        else:
            out.append("No finished run with a finite metric: nothing to rank.")
        out.append("")
        if self.rate_distortion:
            out += self.rate_distortion
            out.append("")
        if self.collective:
            out += self.collective
            out.append("")
        out.append(f"Skipped jobs ({len(self.skipped)}):")
        shown = self.skipped if limit is None else self.skipped[:limit]
        for job, why in shown:
            out.append(f"  {job}: {why}")
        if len(shown) < len(self.skipped):
            more = len(self.skipped) - len(shown)
            out.append(f"  ... and {more} more: see {self.files.get('report', REPORT_NAME)}")
        if self.notes:
            out.append("")
            out.append(f"Other problems ({len(self.notes)}):")
            out += [f"  {n}" for n in self.notes]
        out.append("")
        out.append(f"Figures ({len(self.figures)} written):")
        for f in self.figures:
            names = ", ".join(p.name for p in f.files)
            out.append(f"  [{f.plot}] {names}: {f.description}")
        for name, why, problem in self.plots_skipped:
            out.append(f"  [{name}] {'SKIPPED' if problem else 'not drawn'}: {why}")
        if self.plot_seconds:
            times = ", ".join(f"{k} {v:.2f} s" for k, v in self.plot_seconds.items())
            out.append(f"  time per plot: {times}")
        out.append("")
        verdict = (
            "everything was used"
            if self.exit_code == 0
            else "something was skipped (listed above and in report.txt): exit code 1"
        )
        out.append(f"Result: {verdict}")
        return "\n".join(out) + "\n"


def speed_lines(used: Any) -> list[str]:
    """The training speed of the runs used: each model's own rate (train_jets_per_s, as if
    alone for a member of a stack) and, for runs trained in stacks, the stacks' rate."""
    import numpy as np

    if "train_jets_per_s" not in used:
        return []
    rate = np.asarray(used["train_jets_per_s"], dtype=float)
    rate = rate[np.isfinite(rate)]
    if not len(rate):
        return []
    line = f"speed: median {np.median(rate):,.0f} training jets/s per model"
    if "stack_size" in used and "stack_jets_per_s" in used:
        k = np.asarray(used["stack_size"], dtype=float)
        stacked = np.isfinite(k) & (k > 1)
        if stacked.any():
            srate = np.asarray(used["stack_jets_per_s"], dtype=float)[stacked]
            srate = srate[np.isfinite(srate)]
            line += (
                f"; {int(stacked.sum())} run(s) trained in stacks of up to {int(k[stacked].max())}"
                + (f", stacks at median {np.median(srate):,.0f} jets/s" if len(srate) else "")
            )
    return [line]


def _skipped(df: Any, mask: Any, metric: str) -> list[tuple[str, str]]:
    """(job_dir, why) of every job not used, or used with something of it skipped."""
    out = []
    cols = [c for c in ("job_dir", "state", "state_reason", "problems", "has_metrics") if c in df]
    # column lists zipped into rows: DataFrame.to_dict("records") is 10x slower
    records = (dict(zip(cols, row)) for row in zip(*(df[c].tolist() for c in cols)))
    for used, d in zip(mask, records):
        state, why = d.get("state"), d.get("problems")
        job = d.get("job_dir")
        if used:
            if isinstance(why, str) and why:
                out.append((job, f"used, but {why}"))
            continue
        if isinstance(why, str) and why:
            out.append((job, why))
        elif state != "done":
            reason = d.get("state_reason")
            detail = f": {reason}" if isinstance(reason, str) and reason else ""
            label = {"planned": "never started", "unknown": "state unknown"}.get(state, state)
            out.append((job, f"{label}{detail}"))
        elif not d.get("has_metrics"):
            out.append((job, "done but no metrics.json: rerun the job with --force"))
        else:
            out.append((job, f"no finite {metric}"))
    return out


def summarize(
    campaign_dir: str | Path,
    *,
    group_by: str | None = "latent",
    metric: str = "best_val_loss",
    top: int = 5,
    only: list[str] | None = None,
    formats: list[str] | None = None,
    heatmap: tuple[str, str] | None = None,
    variable: str | None = None,
    plots: bool = True,
    use_cache: bool = True,
    style: str = "house",
    evaluate_on: str | Path | None = None,
) -> SummaryReport:
    """Summarize the campaign at ``campaign_dir``; returns the report (also written).

    Parameters
    ----------
    group_by : column (or short name: latent, lr, wd, bs, encoder) to rank within, or None.
    metric : column to rank by, lower is better.
    top : runs in the training-curve plot.
    only : plot names to draw (default all): loss_vs_lr, widths, pareto, heatmap, curves,
        best_runs, collective (drawn by default only when the campaign has grouped or
        two-stage jobs).
    formats : figure formats (default png; pdf and svg on request).
    heatmap : two parameters for the heat map (default lr and wd when both vary).
    variable : the variable of the Pareto plot (default pt) and of the collective plots
        (default: every variable, up to nine).
    plots : False draws no plot.
    use_cache : False re-reads every job.
    style : plot style: house (default) or an mplhep style (atlas, cms, root).
    evaluate_on : a sample file: the best run of each group is evaluated on it
        (``hepae-data evaluate``, in a subprocess) and the report compares the widths.

    Raises
    ------
    SummaryError : the directory is not a campaign, or an option names no column.
    """
    if plots:  # matplotlib is imported only when something is drawn
        from results.plots import plot_style

        plot_style(style)  # an unknown style or a missing mplhep fails before any work
    formats, asked, only = _plot_options(formats, only)
    t0 = time.perf_counter()
    table = collect(campaign_dir, use_cache=use_cache)
    root = Path(campaign_dir)
    out_dir = root / SUMMARY_DIR
    df = table.frame()
    seconds = time.perf_counter() - t0
    metric_col, group_col, heatmap = _resolve_columns(df, metric, group_by, heatmap)
    mask = used_mask(df, metric_col) if len(df) else []
    used = df[mask] if len(df) else df
    report = SummaryReport(root, table, metric_col, group_col, table_seconds=seconds)
    report.states = dict(Counter(df["state"])) if len(df) else {}
    report.n_used = len(used)
    report.skipped = _skipped(df, mask, metric_col) if len(df) else []
    report.notes = list(table.notes)
    if not len(df):
        report.notes.append(f"{root}: the campaign has no jobs (plan it with `gridsearch plan`)")
    report.files = {"h5": out_dir / H5_NAME, "csv": out_dir / CSV_NAME}
    if len(used):
        _rank_and_tell(report, used, evaluate_on)
    else:
        (out_dir / LATEX_NAME).unlink(missing_ok=True)  # no stale table of an earlier run
    if plots and len(used):
        quiet = [p for p in OPTIONAL_PLOTS if p not in asked]
        _draw(report, df, used, only, formats, top, heatmap, variable, style, quiet)
    elif plots:
        report.plots_skipped.append(("all", "no finished run to plot", False))
    out_dir.mkdir(exist_ok=True)
    write_text(out_dir / REPORT_NAME, report.text())
    report.files["report"] = out_dir / REPORT_NAME
    return report


def _plot_options(
    formats: list[str] | None, only: list[str] | None
) -> tuple[list[str], list[str], list[str]]:
    """The figure formats, the plots asked for by name and the plots to draw; a
    SummaryError for an unknown format or plot."""
    # png only unless asked: a pdf draws every figure again (half of the plots' time)
    formats = list(formats or ["png"])
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise SummaryError(message=f"unknown figure format {bad[0]!r}; use {', '.join(FORMATS)}")
    asked = list(only or [])
    only = list(only) if only else list(PLOT_NAMES)
    bad = [p for p in only if p not in PLOT_NAMES]
    if bad:
        raise SummaryError(message=f"unknown plot {bad[0]!r}; choose from {', '.join(PLOT_NAMES)}")
    return formats, asked, only


def _resolve_columns(
    df: Any, metric: str, group_by: str | None, heatmap: tuple[str, str] | None
) -> tuple[str, str | None, tuple[str, str] | None]:
    """The columns of the metric, the grouping and the heat map's parameters; a
    SummaryError for a name that is no column (unless nothing finished: then there are no
    metric columns to check against) or a metric that is not numeric."""
    any_metrics = bool(len(df)) and bool(df["has_metrics"].any())
    try:
        metric_col = resolve(df.columns, metric, "metric")
    except SummaryError:
        if any_metrics:
            raise
        metric_col = metric  # nothing finished: no metric columns to check against
    if metric_col in df and df[metric_col].dtype.kind not in "fiub":
        raise SummaryError(
            message=f"column {metric_col!r} is not numeric: choose a numeric --metric"
        )
    group_col = None
    if group_by:
        try:
            group_col = resolve(df.columns, group_by, "group-by column")
        except SummaryError:
            if any_metrics:
                raise
    if heatmap and any_metrics:
        heatmap = (
            resolve(df.columns, heatmap[0], "parameter"),
            resolve(df.columns, heatmap[1], "parameter"),
        )
    return metric_col, group_col, heatmap


def _rank_and_tell(report: SummaryReport, used: Any, evaluate_on: str | Path | None) -> None:
    """Rank the runs used and put the verdicts in words into the report (speed, rate and
    distortion, collective, the other sample's widths, the bottom line); write the LaTeX
    tables."""
    out_dir = report.campaign / SUMMARY_DIR
    metric_col, group_col = report.metric, report.group_by
    report.groups = rank(used, metric_col, group_col)
    report.speed = speed_lines(used)
    report.rate_distortion = report_lines(used, report.groups, short(group_col or ""))
    if has_collective(used):
        report.collective = collective_lines(used)
    if evaluate_on:
        from results.evaluate_on import evaluate_best

        lines, problems, path = evaluate_best(
            report.campaign, out_dir, used, report.groups, group_col, Path(evaluate_on)
        )
        report.rate_distortion += ["", *lines] if lines else []
        report.notes += problems
        if path:
            report.files["evaluate_on"] = path
    report.bottom_line = bottom_line(used, metric_col, report.files.get("evaluate_on"))
    write_text(out_dir / LATEX_NAME, latex_tables(report.groups, metric_col, group_col))
    report.files["latex"] = out_dir / LATEX_NAME


def _draw(
    report: SummaryReport,
    df: Any,
    used: Any,
    only: list[str],
    formats: list[str],
    top: int,
    heatmap: tuple[str, str] | None,
    variable: str | None,
    style: str = "house",
    quiet: list[str] | None = None,
) -> None:
    from results.plots import PLOTS, PlotContext, PlotSkipped

    label = f"{report.campaign.resolve().name}, {len(used)} runs"
    ctx = PlotContext(
        root=report.campaign,
        df=df,
        used=used,
        metric=report.metric,
        group_by=report.group_by,
        groups=report.groups,
        out=report.campaign / SUMMARY_DIR / FIGURES_DIR,
        formats=formats,
        top=top,
        heatmap=heatmap,
        variable=variable,
        label=label,
        style_name=style,
    )
    for name in only:
        t0 = time.perf_counter()
        try:
            for stem, desc in PLOTS[name](ctx):
                files = [ctx.out / f"{stem}.{f}" for f in formats]
                report.figures.append(Figure(name, stem, files, desc))
        except PlotSkipped as exc:
            if name in (quiet or []) and not exc.problem:
                continue  # does not apply and was not asked for: not even listed
            report.plots_skipped.append((name, exc.reason, exc.problem))
        except SummaryError:
            raise
        except Exception as exc:  # a plot must never take the summary down
            report.plots_skipped.append((name, f"failed: {type(exc).__name__}: {exc}", True))
        report.plot_seconds[name] = time.perf_counter() - t0
    report.notes += ctx.notes
