"""Collective compression in a summary: single-jet, grouped and two-stage jobs compared.

Each job is one of three kinds (docs/collective.md):

* ``single``: one jet per input (no ``data.group``, or a group of one),
* ``grouped``: G > 1 jets per input (``data.group.size``), no ``model.stage1``,
* ``two-stage``: ``model.stage1`` set (a second autoencoder on groups of stage-1 latents).

For each kind and variable ``v`` the front is the Pareto front of (ratio per jet, width of
``v``): higher ``compression_ratio`` (float32 bytes in per jet over latent bytes per jet)
and lower ``ae.<v>.width`` are better. The collective models (grouped and two-stage
together) are compared with the single-jet front at equal ratio: the single-jet front is
interpolated linearly in log(width) against ratio between its points and never
extrapolated, so a collective model outside the single-jet front's ratios is not compared.
The verdict is "beats" only when one collective model is narrower than the single-jet
front on every variable at its own ratio: one model has to compress all variables.
The scalar-quantiser baseline comes from :mod:`results.ratedist`. Numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from results.ratedist import curve, pareto_front, variables_of, width_at

KINDS = ("single", "grouped", "two-stage")
KIND_LABELS = {"single": "single-jet", "grouped": "grouped", "two-stage": "two-stage"}
COLLECTIVE = ("grouped", "two-stage")
# The columns the summary table derives from each job's metrics (results.table).
DERIVED = ("kind", "group_size", "stage1_id")
RATIO = "compression_ratio"


# --------------------------------------------------------------------------- kinds


def _present(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, float | np.floating):
        return not math.isnan(v)
    return not (isinstance(v, str) and v.strip() in ("", "null", "None"))


def _number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def group_size_of(row: Mapping[str, Any]) -> float:
    """G of a job: ``group.size`` (metrics), else its ``data.group`` setting; NaN if unknown.

    A job without ``data.group`` (or with ``{}`` or ``size: null``) has G = 1.
    """
    g = _number(row.get("group.size"))
    if math.isfinite(g):
        return g
    g = _number(row.get("param.data.group.size"))  # a space that varies data.group.size
    if math.isfinite(g):
        return g
    setting = row.get("param.data.group")  # metrics.json holds the mapping as JSON
    if isinstance(setting, str) and setting.strip():
        try:
            obj = json.loads(setting)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            g = _number(obj.get("size"))
            return g if math.isfinite(g) else 1.0
    if row.get("has_metrics") is False and not _present(setting):
        return math.nan  # a job that never ran and whose manifest says nothing
    return 1.0


def kind_of(row: Mapping[str, Any]) -> str:
    """``single``, ``grouped`` or ``two-stage``; ``""`` when the row cannot tell.

    ``row["after"] is True`` (the manifest's ``after``: the job picks its stage-1 model
    from an earlier stage's jobs) marks a two-stage job that has not run yet.
    """
    if (
        _present(row.get("param.model.stage1"))
        or _present(row.get("stage1.latent"))
        or row.get("after") is True
    ):
        return "two-stage"
    g = group_size_of(row)
    if not math.isfinite(g):
        return ""
    return "grouped" if g > 1 else "single"


def stage1_id_of(row: Mapping[str, Any]) -> str:
    """The stage-1 job id a two-stage job's metrics name (``stage1.id``), else ``""``."""
    v = row.get("stage1.id")
    return str(v) if _present(v) else ""


def derive(
    columns: Mapping[str, np.ndarray], n: int, after: list[bool] | None = None
) -> dict[str, list[Any]]:
    """The derived columns (:data:`DERIVED`) of a table's rows, as lists of values.

    ``after``: per row, whether the manifest lists jobs it depends on (a stage-2 job).
    """
    keys = [
        k
        for k in (
            "group.size",
            "param.data.group.size",
            "param.data.group",
            "param.model.stage1",
            "stage1.latent",
            "stage1.id",
            "has_metrics",
        )
        if k in columns
    ]
    out: dict[str, list[Any]] = {k: [] for k in DERIVED}
    for i in range(n):
        row = {k: columns[k][i] for k in keys}
        if "has_metrics" in row:
            row["has_metrics"] = bool(row["has_metrics"])
        if after is not None:
            row["after"] = bool(after[i])
        kind = kind_of(row)
        g = group_size_of(row)
        out["kind"].append(kind or None)
        out["group_size"].append(int(g) if math.isfinite(g) else None)
        out["stage1_id"].append(stage1_id_of(row) or None)
    return out


def kinds(df: Any) -> list[str]:
    """The kind of every row of a summary frame (its ``kind`` column when it has one)."""
    if "kind" in df:
        return ["" if not isinstance(k, str) else k for k in df["kind"].tolist()]
    return [kind_of(r) for r in df.to_dict("records")]


def has_collective(df: Any) -> bool:
    """Whether any row of ``df`` is a grouped or two-stage job."""
    return len(df) > 0 and any(k in COLLECTIVE for k in kinds(df))


# --------------------------------------------------------------------------- fronts


@dataclass
class Point:
    """One job on the (ratio per jet, width) plane of one variable."""

    job_id: str
    name: str
    kind: str
    group_size: float
    latent: float
    ratio: float
    width: float

    def label(self) -> str:
        g = f"G={self.group_size:g} " if self.kind != "single" else ""
        z = f"z={self.latent:g}" if math.isfinite(self.latent) else "z=?"
        return f"{KIND_LABELS[self.kind]} {g}{z} ({self.name})"


def rows_of(df: Any) -> list[tuple[str, dict[str, Any]]]:
    """(kind, row as a dict) of every row of a summary frame."""
    return list(zip(kinds(df), df.to_dict("records")))


def points(rows: Any, var: str, kind: str | tuple[str, ...]) -> list[Point]:
    """The rows of ``kind`` (one or several) with a finite ratio and width of ``var``.

    ``rows``: a summary frame or :func:`rows_of` of one.
    """
    if not isinstance(rows, list):
        rows = rows_of(rows)
    want = (kind,) if isinstance(kind, str) else tuple(kind)
    key = f"ae.{var}.width"
    out = []
    for k, r in rows:
        if k not in want:
            continue
        ratio, width = _number(r.get(RATIO)), _number(r.get(key))
        if not (math.isfinite(ratio) and math.isfinite(width) and ratio > 0):
            continue
        latent = _number(r.get("param.model.latent"))
        if not math.isfinite(latent):
            latent = _number(r.get("latent"))
        out.append(
            Point(
                str(r.get("job_id")),
                str(r.get("name", r.get("job_id"))),
                k,
                group_size_of(r),
                latent,
                ratio,
                width,
            )
        )
    return out


def front(pts: list[Point]) -> list[Point]:
    """The Pareto front of ``pts`` (higher ratio, lower width), by rising ratio."""
    if not pts:
        return []
    x = np.array([p.ratio for p in pts])
    y = np.array([p.width for p in pts])
    return [pts[i] for i in pareto_front(x, y)[::-1]]


def width_on_front(fr: list[Point], ratio: float) -> float:
    """The front's width at ``ratio``: linear in log(width) between its points.

    NaN outside the front's ratios (no extrapolation) or when a width is not positive.
    """
    fr = [p for p in fr if p.width > 0]
    if not fr or ratio < fr[0].ratio - 1e-9 or ratio > fr[-1].ratio + 1e-9:
        return math.nan
    xs = np.array([p.ratio for p in fr])
    ys = np.log([p.width for p in fr])
    return float(np.exp(np.interp(ratio, xs, ys)))


def quantiser_curve(rows: Any, var: str) -> tuple[np.ndarray, np.ndarray]:
    """The scalar quantiser's (ratio per jet, width of ``var``), by rising ratio.

    From :func:`results.ratedist.curve` of one job (a single-jet job when there is one: the
    quantiser is per jet and the same for every kind); ratio = input bits per jet / bits.
    ``rows``: a summary frame or :func:`rows_of` of one.
    """
    if not isinstance(rows, list):
        rows = rows_of(rows)
    for _, r in sorted(rows, key=lambda kr: kr[0] != "single"):  # stable: single-jet first
        bits, widths = curve(r, "sq", var)
        if len(bits):
            in_bits = 8 * _number(r.get("input_bytes_per_jet"))
            if not math.isfinite(in_bits):
                n_in = len(str(r.get("variables") or "").split(",")) or 1
                in_bits = 32.0 * n_in
            ratio = in_bits / bits
            order = np.argsort(ratio)
            return ratio[order], widths[order]
    return np.array([]), np.array([])


def quantiser_width(q: tuple[np.ndarray, np.ndarray], ratio: float) -> float:
    """The quantiser's width at ``ratio`` (log-linear in bits, as results.ratedist)."""
    r, w = q
    if not len(r):
        return math.nan
    # width_at wants rising bits: bits are proportional to 1 / ratio
    return width_at(1.0 / r[::-1], w[::-1], 1.0 / ratio)


# --------------------------------------------------------------------------- verdict


@dataclass
class Compared:
    """One collective front point against the single-jet front at its ratio."""

    point: Point
    single: float  # the single-jet front's width at point.ratio (NaN: outside its ratios)
    quantiser: float = math.nan  # the scalar quantiser's width at that ratio

    @property
    def beats(self) -> bool | None:
        if not math.isfinite(self.single):
            return None
        return self.point.width < self.single


@dataclass
class VariableComparison:
    """Per variable: the fronts and the collective front's points against the single one."""

    var: str
    fronts: dict[str, list[Point]]
    compared: list[Compared]

    @property
    def beats(self) -> bool | None:
        """True: some collective front point is narrower; None: nothing could be compared."""
        known = [c.beats for c in self.compared if c.beats is not None]
        return any(known) if known else None


@dataclass
class ModelWin:
    """A collective job narrower than the single-jet front on every variable."""

    job_id: str
    label: str
    ratio: float
    widths: dict[str, tuple[float, float]]  # var -> (its width, single-jet front's)


@dataclass
class Verdict:
    """The comparison of a campaign's collective and single-jet models."""

    counts: dict[str, int]
    variables: list[str]
    per_variable: list[VariableComparison] = field(default_factory=list)
    winners: list[ModelWin] = field(default_factory=list)
    status: str = "none"  # beats | does not beat | no single | no overlap | none
    sentence: str = ""


def compare(df: Any, variables: list[str] | None = None) -> Verdict:
    """Compare the collective models of ``df`` (used rows) with its single-jet models."""
    variables = list(variables or variables_of(df))
    ks = kinds(df)
    counts = {k: ks.count(k) for k in KINDS}
    v = Verdict(counts, variables)
    if not (counts["grouped"] or counts["two-stage"]):
        v.sentence = "no grouped or two-stage jobs: nothing to compare"
        return v
    rows = rows_of(df)
    single_fronts: dict[str, list[Point]] = {}
    own: dict[str, dict[str, Point]] = {}  # var -> job id -> its collective point
    for var in variables:
        fronts = {k: front(points(rows, var, k)) for k in KINDS}
        pts = points(rows, var, COLLECTIVE)
        own[var] = {p.job_id: p for p in pts}
        single_fronts[var] = fronts["single"]
        q = quantiser_curve(rows, var)
        compared = [
            Compared(p, width_on_front(fronts["single"], p.ratio), quantiser_width(q, p.ratio))
            for p in front(pts)
        ]
        v.per_variable.append(VariableComparison(var, fronts, compared))
    named = ", ".join(variables)
    if not any(single_fronts.values()):
        v.status = "no single"
        v.sentence = (
            "no verdict: the campaign has no finished single-jet jobs to compare with; plan "
            "per-jet models (no data.group) at the same ratios"
        )
        return v
    # One model must win on every variable: the single-jet reference may be another
    # single-jet model per variable, which only makes the test harder to pass.
    n_compared = 0
    for p in own[variables[0]].values() if variables else []:
        widths: dict[str, tuple[float, float]] = {}
        for var in variables:
            mine = own[var].get(p.job_id)
            ref = width_on_front(single_fronts[var], p.ratio)
            if mine is None or not math.isfinite(ref):
                break
            widths[var] = (mine.width, ref)
        else:
            n_compared += 1
            if all(w < r for w, r in widths.values()):
                v.winners.append(ModelWin(p.job_id, p.label(), p.ratio, widths))
    if not n_compared:
        lo = min(fr[0].ratio for fr in single_fronts.values() if fr)
        hi = max(fr[-1].ratio for fr in single_fronts.values() if fr)
        v.status = "no overlap"
        v.sentence = (
            f"no verdict: no collective model lies within the single-jet front's ratios "
            f"({lo:.3g} to {hi:.3g}) on every variable; plan per-jet models at the "
            "collective models' ratios"
        )
        return v
    narrower = [c.var for c in v.per_variable if c.beats]
    if v.winners:
        w = min(v.winners, key=lambda m: -m.ratio)
        v.status = "beats"
        v.sentence = (
            f"collective compression beats single-jet compression at equal ratio on this "
            f"sample (variables {named}): {w.label} at ratio {w.ratio:.3g} is narrower than "
            "the single-jet front on all of them"
            + (f" ({len(v.winners)} such models)" if len(v.winners) > 1 else "")
        )
    else:
        v.status = "does not beat"
        where = (
            f"the collective fronts are narrower somewhere on {', '.join(narrower)} only"
            if narrower
            else "the collective fronts are nowhere narrower"
        )
        v.sentence = (
            f"collective compression does not beat single-jet compression at equal ratio on "
            f"this sample (variables {named}): no collective model is narrower than the "
            f"single-jet front on every variable; {where}"
        )
    return v


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "n/a"


def report_lines(used: Any) -> list[str]:
    """The "Collective compression" section of the summary report ([] without such jobs)."""
    if not has_collective(used):
        return []
    v = compare(used)
    c = v.counts
    lines = [
        "Collective compression: grouped and two-stage models against single-jet models "
        "at equal ratio",
        "  (ratio = compression_ratio per jet, float32 latent; width = ae.<v>.width; the "
        "single-jet front is",
        "  interpolated linearly in log(width) between its points, never extrapolated; "
        "docs/collective.md)",
        f"  jobs: {c['single']} single-jet, {c['grouped']} grouped, {c['two-stage']} two-stage",
    ]
    for vc in v.per_variable:
        parts = []
        for k in KINDS:
            fr = vc.fronts[k]
            if fr:
                pts = ", ".join(f"{p.ratio:.3g}: {p.width:.3g}" for p in fr)
                parts.append(f"{KIND_LABELS[k]} {pts}")
        lines.append(f"  {vc.var} fronts (ratio: width): {'; '.join(parts) or 'none'}")
        for cp in vc.compared:
            p = cp.point
            sq = f"; scalar quantiser {_g(cp.quantiser)}" if math.isfinite(cp.quantiser) else ""
            if cp.beats is None:
                lines.append(
                    f"    ratio {p.ratio:.3g}: {p.label()} {_g(p.width)}: outside the "
                    f"single-jet front's ratios, not compared{sq}"
                )
                continue
            if cp.beats:
                words = f"collective {cp.single / p.width:.3g}x narrower"
            else:
                words = f"single-jet {p.width / cp.single:.3g}x narrower" if cp.single > 0 \
                    else "single-jet narrower"  # fmt: skip
            lines.append(
                f"    ratio {p.ratio:.3g}: {p.label()} {_g(p.width)}, single-jet front "
                f"{_g(cp.single)}: {words}{sq}"
            )
    if v.winners:
        lines.append("  collective models narrower than the single-jet front on every variable:")
        for w in v.winners:
            ws = ", ".join(f"{var} {a:.3g} < {b:.3g}" for var, (a, b) in w.widths.items())
            lines.append(f"    {w.label} at ratio {w.ratio:.3g}: {ws}")
    lines.append(f"  Verdict: {v.sentence}.")
    return lines
