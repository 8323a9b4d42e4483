"""Ranking of the runs and the text and LaTeX reports of a summary.

The runs that count are the jobs in state ``done`` with a finite value of the chosen metric
(default ``best_val_loss``, lower is better). They are grouped (default: per latent size);
in each group the best, the median (the lower median when the count is even) and the worst
run are reported with the parameters that vary across the campaign and the minimum
validation loss at its epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import SummaryError

# Short names accepted wherever a column is asked for (--group-by, --heatmap, --metric).
ALIASES = {
    "latent": "param.model.latent",
    "z": "param.model.latent",
    "lr": "param.train.lr",
    "wd": "param.train.weight_decay",
    "weight_decay": "param.train.weight_decay",
    "bs": "param.train.batch_size",
    "batch_size": "param.train.batch_size",
    "encoder": "param.model.encoder",
    "activation": "param.model.activation",
    "seed": "param.seed",
    "loss": "best_val_loss",
}
SHORT = {v: k for k, v in reversed(list(ALIASES.items()))}


def resolve(columns: Any, name: str, what: str = "column") -> str:
    """The column that ``name`` means: exact, an alias, ``param.<name>`` or ``*.<name>``."""
    cols = list(columns)
    if name in ALIASES and ALIASES[name] in cols:
        return ALIASES[name]
    if name in cols:
        return name
    if f"param.{name}" in cols:
        return f"param.{name}"
    ends = [c for c in cols if c.endswith("." + name)]
    if len(ends) == 1:
        return ends[0]
    params = ", ".join(c for c in cols if c.startswith("param."))
    hint = f"ambiguous: {', '.join(ends)}" if ends else f"parameters: {params or 'none'}"
    raise SummaryError(message=f"no {what} named {name!r} in the summary ({hint})", key=name)


def short(col: str) -> str:
    """A readable label of a column: ``lr`` for ``param.train.lr``."""
    if col in SHORT:
        return SHORT[col]
    return col.split(".")[-1] if col.startswith("param.") else col


def fmt(v: Any) -> str:
    """A compact, exact-enough rendering of a table value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        v = float(v)
        if v == 0:
            return "0"
        if v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"
    return str(v)


@dataclass
class Pick:
    """One reported run: its rank label, job, metric, epoch and varied parameters."""

    label: str  # best | median | worst
    job_id: str
    name: str
    job_dir: str
    value: float
    best_epoch: Any
    best_val_loss: Any
    params: dict[str, Any]
    rung: int = 0  # successive halving: the rung it reached (0: never promoted)


@dataclass
class Group:
    """One group (one value of the group-by column) and its picks."""

    value: Any
    n_runs: int
    picks: list[Pick] = field(default_factory=list)


def used_mask(df: Any, metric: str) -> np.ndarray:
    """Rows that count: state done and a finite metric."""
    values = np.asarray(df[metric], dtype=float) if metric in df else np.full(len(df), np.nan)
    return (np.asarray(df["state"] == "done")) & np.isfinite(values)


def varied(df: Any) -> list[str]:
    """The parameter columns with more than one distinct value among ``df``'s rows."""
    out = []
    for c in df.columns:
        if c.startswith("param.") and df[c].nunique(dropna=True) > 1:
            out.append(c)
    return out


def rank(df: Any, metric: str, group_by: str | None) -> list[Group]:
    """Best, median and worst run of each group of the used rows ``df`` (lower is better)."""
    params = varied(df)
    groups: list[Group] = []
    if group_by is None:
        parts = [(None, df)]
    else:
        parts = [(k, g) for k, g in df.groupby(group_by, sort=True, dropna=True)]
    for value, g in parts:
        g = g.sort_values(metric, kind="stable")
        n = len(g)
        picks = []
        for label, i in (("best", 0), ("median", (n - 1) // 2), ("worst", n - 1)):
            r = g.iloc[i]
            picks.append(
                Pick(
                    label,
                    str(r["job_id"]),
                    str(r["name"]),
                    str(r["job_dir"]),
                    float(r[metric]),
                    r.get("best_epoch"),
                    r.get("best_val_loss"),
                    {p: r[p] for p in params if p != group_by},
                    _rung(r.get("rung")),
                )
            )
        groups.append(Group(value, n, picks))
    return groups


def latex_escape(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):  # fmt: skip
        out = out.replace(a, b)
    return out


def latex_sci(v: float) -> str:
    """``$1.23\\times10^{-4}$``, or ``-`` when not finite."""
    if not math.isfinite(v):
        return "-"
    if v == 0:
        return "$0$"
    exp = math.floor(math.log10(abs(v)))
    return f"${v / 10**exp:.2f}\\times10^{{{exp}}}$"


def latex_tables(groups: list[Group], metric: str, group_by: str | None) -> str:
    """One booktabs table of the best, median and worst run per group."""
    params = list(groups[0].picks[0].params) if groups and groups[0].picks else []
    head = ([short(group_by)] if group_by else []) + ["run"] + [short(p) for p in params]
    head += [short(metric), "epoch"]
    lines = [
        "% Written by `gridsearch summarize`; needs \\usepackage{booktabs}.",
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{Best, median and worst run per {latex_escape(short(group_by or 'campaign'))}"
        f" by {latex_escape(short(metric))}.}}",
        "\\begin{tabular}{" + "l" * (len(head) - 2) + "rr}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in head) + " \\\\",
        "\\midrule",
    ]
    for gi, g in enumerate(groups):
        if gi:
            lines.append("\\midrule")
        for p in g.picks:
            cells = [latex_escape(fmt(g.value))] if group_by else []
            cells += [p.label] + [latex_escape(fmt(p.params.get(k))) for k in params]
            cells += [latex_sci(p.value)]
            cells += [latex_escape(fmt(p.best_epoch))]
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _rung(value: Any) -> int:
    try:
        return int(value) if value is not None and np.isfinite(float(value)) else 0
    except (TypeError, ValueError):
        return 0


def group_text(groups: list[Group], metric: str, group_by: str | None) -> list[str]:
    lines = []
    title = f"per {short(group_by)}" if group_by else "over the campaign"
    lines.append(f"Best, median and worst run {title} (by {metric}, lower is better)")
    for g in groups:
        label = f"{short(group_by)} = {fmt(g.value)}" if group_by else "all runs"
        lines.append(f"  {label}  ({g.n_runs} runs)")
        for p in g.picks:
            params = "  ".join(f"{short(k)}={fmt(v)}" for k, v in p.params.items())
            epoch = fmt(p.best_epoch)
            loss = fmt(p.best_val_loss)
            promoted = f"  promoted to rung {p.rung}" if p.rung else ""
            lines.append(
                f"    {p.label:<6}  {p.name}  [{p.job_dir}]  {metric}={p.value:.4e}  "
                f"min val loss {loss} at epoch {epoch}{promoted}"
            )
            if params:
                lines.append(f"            {params}")
    return lines


def write_text(path: Path, text: str) -> None:
    from hepae_core.jobdir import atomic_write_text

    atomic_write_text(path, text)
