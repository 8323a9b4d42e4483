"""Ranking of the runs and the text and LaTeX reports of a summary.

The runs that count are the jobs in state ``done`` with a finite value of the chosen metric
(default ``best_val_loss``, lower is better). They are grouped (default: per latent size);
in each group the best, the median (the lower median when the count is even) and the worst
run are reported with the parameters that vary across the campaign and the minimum
validation loss at its epoch.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
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


# --- the bottom line: one sentence per question, before any table -------------------------

_AEQ = re.compile(r"^aeq(\d+)\.bits_per_jet$")
_SQ = re.compile(r"^sq(\d+)\.bits_per_jet$")


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _variables(row: Mapping[str, Any]) -> list[str]:
    """The variables of a run (``variables`` in its metrics, else those with an ae width)."""
    found = [k[3:-6] for k in row if k.startswith("ae.") and k.endswith(".width")]
    listed = row.get("variables")
    order = str(listed).split(",") if isinstance(listed, str) and listed else []
    return [v for v in order if v in found] + [v for v in found if v not in order]


def _width_words(row: Mapping[str, Any], variables: list[str], source: str = "ae") -> str:
    """``pt 0.91 % (relative), eta 0.0031, phi 0.0029 rad``: widths a physicist can read."""
    parts = []
    for v in variables[:6]:
        w = _num(row.get(f"{source}.{v}.width"))
        if not math.isfinite(w):
            continue
        kind = row.get(f"residual.{v}")
        if kind == "relative":
            parts.append(f"{v} {100 * w:.2g}%")
        elif kind == "angle":
            parts.append(f"{v} {w:.2g} rad")
        else:
            parts.append(f"{v} {w:.2g}")
    more = f" (and {len(variables) - 6} more)" if len(variables) > 6 else ""
    return ", ".join(parts) + more


def _sq_width_at(row: Mapping[str, Any], var: str, bits: float) -> float:
    """The scalar quantiser's width of ``var`` at ``bits`` per jet (log-linear; NaN outside)."""
    pts = []
    for key in row:
        m = _SQ.match(str(key))
        if m:
            b, w = _num(row[key]), _num(row.get(f"sq{m.group(1)}.{var}.width"))
            if math.isfinite(b) and w > 0:
                pts.append((b, w))
    if not pts:
        return math.nan
    pts.sort()
    xs = np.array([p[0] for p in pts])
    ys = np.log([p[1] for p in pts])
    if bits < xs[0] - 1e-9 or bits > xs[-1] + 1e-9:
        return math.nan
    return float(np.exp(np.interp(bits, xs, ys)))


def _span(values: list[float], fmt_one: str = "{:.1f}") -> str:
    a, b = fmt_one.format(min(values)), fmt_one.format(max(values))
    return a if a == b else f"{a} to {b}"


def _ks(ks: list[int]) -> str:
    return str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]}"


def _file_ratio_curves() -> tuple[Any, Any] | None:
    """results.ratedist's ratio from bytes (``file_ratio``, ``rate_curve``) when it has them."""
    try:
        from results import ratedist
    except ImportError:
        return None
    fr, rc = getattr(ratedist, "file_ratio", None), getattr(ratedist, "rate_curve", None)
    return (fr, rc) if fr is not None and rc is not None else None


def _interp_log(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """log(width) linear in log(ratio) between the points of a curve; NaN outside it."""
    ok = (xs > 0) & (ys > 0)
    xs, ys = xs[ok], ys[ok]
    if not len(xs) or not x > 0 or x < xs.min() * (1 - 1e-9) or x > xs.max() * (1 + 1e-9):
        return math.nan
    order = np.argsort(xs)
    return float(np.exp(np.interp(np.log(x), np.log(xs[order]), np.log(ys[order]))))


def codec_sentence(row: Mapping[str, Any], variables: list[str]) -> str:
    """Where the quantised-latent autoencoder beats the scalar quantiser, in one sentence.

    The comparison is at equal compression ratio from the bytes a file of
    ``rate.file_jets`` jets would hold, model and stored ranges counted (as the
    rate-distortion figure draws it), when results.ratedist provides that ratio and the
    metrics have the bytes; otherwise at equal code bits per jet.
    """
    ks = sorted(int(m.group(1)) for k in row if (m := _AEQ.match(str(k))))
    n_in = len(variables)
    by_bytes = _file_ratio_curves()
    steps = []  # (k, ratio, class, losing variables)
    for k in ks:
        bits = _num(row.get(f"aeq{k}.bits_per_jet"))
        if not bits > 0:
            continue
        ratio = 32 * n_in / bits  # the codes alone
        if by_bytes is not None:
            ratio = _num(by_bytes[0](row, f"aeq{k}"))
        lose, n_cmp = [], 0
        for v in variables:
            ae = _num(row.get(f"aeq{k}.{v}.width"))
            if by_bytes is not None:
                sq = _interp_log(ratio, *by_bytes[1](row, "sq", v))
            else:
                sq = _sq_width_at(row, v, bits)
            if math.isfinite(ae) and math.isfinite(sq):
                n_cmp += 1
                if ae >= sq:
                    lose.append(v)
        if n_cmp:
            cls = "wins" if not lose else ("loses" if len(lose) == n_cmp else "mixed")
            steps.append((k, ratio, cls, lose))
    if not steps:
        return (
            "Autoencoder vs scalar quantiser: no comparison at equal size (the metrics have "
            "no quantised-latent and quantiser curves at common rates; evaluate.baselines)."
        )
    runs: list[list[tuple[int, float, str, list[str]]]] = []
    for s in steps:
        if runs and runs[-1][-1][2] == s[2]:
            runs[-1].append(s)
        else:
            runs.append([s])
    words = {"wins": "wins", "loses": "loses", "mixed": "is mixed"}
    parts = []
    for r in runs:
        k_list = [s[0] for s in r]
        if r[0][2] == "mixed":
            lose = sorted({v for s in r for v in s[3]}, key=variables.index)
            why = f"wider on {', '.join(lose[:4])}{' ...' if len(lose) > 4 else ''}"
        else:
            why = f"{'narrower' if r[0][2] == 'wins' else 'wider'} on every variable"
        span = _span([s[1] for s in r])
        parts.append(f"{words[r[0][2]]} at ratio {span} (k = {_ks(k_list)}: {why})")
    if by_bytes is not None and _num(row.get("rate.jets")) > 0:
        fj_num = _num(row.get("rate.file_jets"))
        fj = int(fj_num) if fj_num > 0 else 1_000_000
        ratio_words = (
            f"ratio = float32 bytes / bytes written for {fj:,} jets, model and stored ranges "
            "counted, as in the rate-distortion figure"
        )
    else:
        ratio_words = "ratio = float32 input bits per jet / code bits per jet"
    body = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    tail = ""
    if steps[-1][2] != "wins" and any(s[2] == "wins" for s in steps):
        tail = (
            ", where the quantiser keeps halving its error with every added bit while the "
            "autoencoder stops at its own reconstruction error"
        )
    elif all(s[2] == "loses" for s in steps):
        tail = ": at these sizes plain quantisation of the inputs is the better codec"
    return (
        f"Autoencoder vs scalar quantiser at equal size: the autoencoder {body}{tail} (best "
        f"run, its latent quantised to k bits per value; {ratio_words})."
    )


def evaluated_row(evaluate_csv: Path | None, job_id: Any) -> dict[str, Any] | None:
    """The ``--evaluate-on`` record of one job (its ``on.`` prefix removed), or None."""
    if evaluate_csv is None:
        return None
    import pandas as pd

    try:
        table = pd.read_csv(evaluate_csv)
    except (OSError, ValueError):
        return None
    mine = table[table["job_id"].astype(str) == str(job_id)]
    if not len(mine):
        return None
    rec = mine.iloc[0].to_dict()
    return {k[3:]: v for k, v in rec.items() if str(k).startswith("on.")}


def _ks_words(ks: list[int]) -> str:
    """``k = 6-9, 12`` from a sorted list of bit depths."""
    runs: list[list[int]] = []
    for k in ks:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return "k = " + ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def bound_sentence(points: list[Any], sample: str | None = None) -> str:
    """Which codec is best at each error bound, and where the learned one wins, in words.

    ``points``: :func:`results.ratedist.bound_points` of the best run. The learned
    error-bounded codec is the predictive codec (``pred<k>``: its predictor fitted on the
    training jets); it wins at a bound where its ratio is the highest of all.
    """
    from results.ratedist import BOUNDED_LABELS, LEARNED_BOUNDED

    if not points:
        return (
            "Best codec per error bound: not measured (the metrics have no quantiser and "
            "SZ3 points; evaluate.baselines)."
        )
    fj_words = "ratios from the bytes written, model counted"
    parts = []
    best_by: dict[str, list[int]] = {}
    for p in points:
        if p.best:
            best_by.setdefault(p.best, []).append(p.k)
    named = "; ".join(f"{BOUNDED_LABELS[f]} at {_ks_words(ks)}" for f, ks in best_by.items())
    parts.append(f"Best error-bounded codec per bound (the k-bit quantiser's half step): {named}")
    learned = [f for f in LEARNED_BOUNDED if any(f in p.first or f in p.second for p in points)]
    if not learned:
        parts.append(
            "no learned error-bounded codec was measured (a second sample, `evaluate_on:` in "
            "the space file or `gridsearch summarize --evaluate-on SAMPLE`, measures the "
            "predictive codec fitted on the best runs' training jets); the autoencoder's "
            "quantised latent bounds no error (compared at equal size below)"
        )
        return "; ".join(parts) + f" ({fj_words})."
    for f in learned:
        for which, where in (("first", "on its own test jets"), ("second", f"on {sample}")):
            pts = [p for p in points if f in getattr(p, which)]
            if not pts:
                continue
            wins: list[tuple[int, float, str]] = []
            loses: list[tuple[int, float, str]] = []
            for p in pts:
                ratios = getattr(p, which)
                missed = p.missed_first if which == "first" else p.missed_second
                others = {g: r for g, r in ratios.items()
                          if g != f and math.isfinite(r) and not missed.get(g)}  # fmt: skip
                if not others or not math.isfinite(ratios[f]):
                    continue
                peer = max(others, key=lambda g: others[g])
                factor = ratios[f] / others[peer]
                (wins if factor > 1 else loses).append((p.k, factor, peer))
            if not wins and not loses:
                continue
            text = f"{where} the {BOUNDED_LABELS[f]} "
            said = []
            if wins:
                lo, hi = min(w[1] for w in wins), max(w[1] for w in wins)
                span = f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}x"
                said.append(f"wins at {_ks_words([w[0] for w in wins])} ({span} the best peer)")
            if loses:
                peers = sorted({BOUNDED_LABELS[w[2]] for w in loses})
                lo = min(w[1] for w in loses)
                said.append(f"loses at {_ks_words([w[0] for w in loses])} to "
                            f"{' and '.join(peers)} (down to {lo:.2f}x)")  # fmt: skip
            parts.append(text + " and ".join(said))
    return "; ".join(parts) + f" ({fj_words})."


def other_sample_sentence(evaluate_csv: Path | None, row: Mapping[str, Any]) -> str:
    """How the best run does on the --evaluate-on sample, against its own test jets."""
    if evaluate_csv is None:
        return (
            "Other sample: not measured (gridsearch summarize DIR --evaluate-on SAMPLE.root "
            "evaluates the best runs on it)."
        )
    import pandas as pd

    try:
        table = pd.read_csv(evaluate_csv)
    except (OSError, ValueError) as exc:
        return f"Other sample: {evaluate_csv} could not be read ({exc})."
    mine = table[table["job_id"].astype(str) == str(row.get("job_id"))]
    if not len(mine):
        return f"Other sample: the best run was not evaluated on it (see {evaluate_csv})."
    on = mine.iloc[0].to_dict()
    variables = _variables(row)
    ratios = []
    for v in variables:
        a, b = _num(on.get(f"on.ae.{v}.width")), _num(row.get(f"ae.{v}.width"))
        if not (math.isfinite(a) and b > 0):
            a, b = (
                _num(on.get(f"on.ae_f16latent.{v}.width")),
                _num(row.get(f"ae_f16latent.{v}.width")),
            )
        if math.isfinite(a) and b > 0:
            ratios.append((v, a / b))
    sample = str(on.get("on.sample") or Path(str(evaluate_csv)).stem.removeprefix("evaluate_on_"))
    counts = []
    for key, what in (
        ("on.outside_training", "outside the training ranges"),
        ("on.norm_domain_errors", "outside the normalisation's domain"),
        ("on.latent_saturated", "on a saturated latent code"),
    ):
        n = _num(on.get(key))
        if math.isfinite(n):
            counts.append(f"{int(n)} {what}")
    jets = _num(on.get("on.sample_jets"))
    head = f"On {sample} ({int(jets)} jets)" if math.isfinite(jets) else f"On {sample}"
    if not ratios:
        return f"{head}: no residual widths to compare{'; ' if counts else ''}{'; '.join(counts)}."
    worst = max(ratios, key=lambda t: t[1])
    verdict = (
        "about as wide as on its own test jets"
        if worst[1] < 1.2
        else f"up to {worst[1]:.1f}x wider than on its own test jets ({worst[0]})"
    )
    each = ", ".join(f"{v} {r:.2f}x" for v, r in ratios[:6])
    jets_words = f"; jets {', '.join(counts)}" if counts else ""
    return f"{head}: the best run's residuals are {verdict} [{each}]{jets_words}."


def _sample_name(on: Mapping[str, Any] | None, evaluate_csv: Path | None) -> str | None:
    """The other sample's file name (short), from its record or the table's name."""
    if evaluate_csv is None:
        return None
    sample = (on or {}).get("sample")
    if isinstance(sample, str) and sample:
        return Path(sample).name
    return Path(str(evaluate_csv)).stem.removeprefix("evaluate_on_")


def bottom_line(used: Any, metric: str, evaluate_csv: Path | None = None) -> list[str]:
    """The report's first lines: which model is best, where it beats the scalar quantiser
    and where it loses, and how it does on another sample; one sentence each.

    Never raises: a summary must be written whatever the metrics hold; a question the
    metrics cannot answer says so in its sentence.
    """
    if not len(used) or metric not in used:
        return []
    try:
        best = used.sort_values(metric, kind="stable").iloc[0].to_dict()
        variables = _variables(best)
        shown = {short(p): fmt(best.get(p)) for p in varied(used)}
        # a setting this run does not have (a per-jet run's empty data.group) says nothing
        params = "  ".join(f"{k}={v}" for k, v in shown.items() if v not in ("{}", "[]", "-"))
        widths = _width_words(best, variables)
        ratio = _num(best.get("compression_ratio"))
        first = (
            f"Best model: {best.get('name')} ({params or 'the only setting'}), "
            f"{metric} {fmt(best.get(metric))}, the lowest of {len(used)} runs"
        )
        if math.isfinite(ratio):
            first += f"; compression ratio {ratio:.3g} (float32 latent)"
        if widths:
            first += f"; residual widths (half the 16-84 % interval) {widths}"
        job_dir = best.get("job_dir")
        if job_dir:
            first += f" [{job_dir}: the model of `hepae-data compress --model best --campaign DIR`]"
        from results.ratedist import bound_points, bound_table_lines

        on = evaluated_row(evaluate_csv, best.get("job_id"))
        sample = _sample_name(on, evaluate_csv)
        points = bound_points(best, on)
        sentences = [f"{first}.", bound_sentence(points, sample), codec_sentence(best, variables)]
        sentences.append(other_sample_sentence(evaluate_csv, best))
        lines = ["Bottom line"]
        for s in sentences:
            lines += textwrap.wrap(s, 96, initial_indent="  ", subsequent_indent="    ")
        fj_num = _num(best.get("rate.file_jets"))
        fj = int(fj_num) if fj_num > 0 else 1_000_000
        lines += bound_table_lines(points, sample if on else None, fj)
        return lines
    except Exception as exc:  # the summary must not fail on a sentence
        return ["Bottom line", f"  (could not be worded: {type(exc).__name__}: {exc})"]
