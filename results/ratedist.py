"""The rate-distortion plane of a campaign: curves from the metrics, and the verdict in words.

A job's metrics hold, per codec ``<s>`` (``sq<k>`` scalar quantisation, ``pca<k>`` PCA
transform coding, ``sz3_<k>`` and ``zfp<k>`` the error-bounded compressors at the k-bit
quantiser's bound, ``aeq<k>`` the quantised latent) and per bit depth ``k``, the payload
``<s>.bits_per_jet``, the bytes each writer stores (``<s>.payload_bytes``,
``<s>.side_bytes``, ``<s>.model_bytes``, over ``rate.jets`` test jets) and the residual
width of every variable (docs/metrics.md). This module turns them into curves: bits per
jet -> width (:func:`curve`, payload only) and compression ratio -> width
(:func:`rate_curve`: from the bytes, side information and the model counted, at a stated
file size), compares the autoencoder with its peers on both, and draws the plane
(:func:`draw_plane`), with the frontier of the campaign's rate-aware jobs (the ``aer`` point of
``train.rate_lambda`` runs, :func:`rate_frontier`). Numpy (and matplotlib in
:func:`draw_plane`) only.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepae_core.evaluation.metric_curves import (
    FILE_JETS,
    _finite,
    bit_depths,
    curve,
    width_at,
)

METHODS = ("sq", "sqe", "pca", "sz3_", "zfp", "aeq")
METHOD_LABELS = {
    "sq": "scalar quantiser",
    "sqe": "scalar quantiser, entropy-coded",
    "pca": "PCA transform coding",
    "sz3_": "SZ3 (quantiser's bound)",
    "zfp": "ZFP (quantiser's bound)",
    "aeq": "autoencoder, quantised latent",
}
# The peers the autoencoder's verdict names, in this order.
PEERS = ("sq", "sqe", "sz3_")
PEER_NAMES = {"sq": "the scalar quantiser", "sqe": "the entropy-coded quantiser", "sz3_": "SZ3"}
UNITS = {"relative": "relative", "angle": "rad", "absolute": "absolute"}


def has_curves(columns: Any) -> bool:
    return bool(bit_depths(columns, "sq"))


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points not beaten in both larger x and smaller y, by falling x."""
    order = np.lexsort((y, -x))
    front, best = [], math.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=np.int64)


@dataclass
class Comparison:
    """The autoencoder against the scalar quantiser at the same bits, for one variable."""

    var: str
    bits: float  # bits per jet of the autoencoder point
    ae: float  # its width
    sq: float  # the scalar quantiser's width at those bits (NaN: outside its curve)
    aeq_wins: list[int]  # latent bit depths k at which the quantised latent beats sq
    sq_bits: float = math.nan  # bits per jet of the quantiser point (fewer when off the top)
    pca: float = math.nan  # PCA transform coding's width at the same bits
    sq_min_bits: float = math.nan  # the quantiser curve's lowest rate

    @property
    def beats(self) -> bool | None:
        if not (math.isfinite(self.ae) and math.isfinite(self.sq)):
            return None
        return self.ae < self.sq


def compare(row: Mapping[str, Any], variables: list[str]) -> list[Comparison]:
    """Per variable: the float16-latent autoencoder point against the scalar quantiser."""
    out = []
    for v in variables:
        sq_b, sq_w = curve(row, "sq", v)
        b = row.get("ae_f16latent.bits_per_jet")
        if not _finite(b):
            latent = row.get("latent")
            b = 16 * float(latent) if _finite(latent) else math.nan
        w = row.get(f"ae_f16latent.{v}.width", math.nan)
        w = float(w) if _finite(w) else math.nan
        sq = width_at(sq_b, sq_w, float(b)) if math.isfinite(b) else math.nan
        sq_bits = float(b)
        if math.isfinite(b) and len(sq_b) and b > sq_b[-1]:
            # The autoencoder spends more bits than the finest quantiser: compare with that
            # one; if it is narrower with fewer bits, it wins outright.
            sq, sq_bits = float(sq_w[-1]), float(sq_b[-1])
        wins = []
        for k in bit_depths(row.keys(), "aeq"):
            kb, kw = row.get(f"aeq{k}.bits_per_jet"), row.get(f"aeq{k}.{v}.width")
            if _finite(kb) and _finite(kw):
                s = width_at(sq_b, sq_w, float(kb))
                if math.isfinite(s) and float(kw) < s:
                    wins.append(k)
        pca = width_at(*curve(row, "pca", v), float(b)) if math.isfinite(b) else math.nan
        low = float(sq_b[0]) if len(sq_b) else math.nan
        out.append(Comparison(v, float(b), w, sq, wins, sq_bits, pca, low))
    return out


def _sci(v: float) -> str:
    return f"{v:.2g}" if math.isfinite(v) else "n/a"


def verdict_lines(
    row: Mapping[str, Any], variables: list[str], worst: int = 4, file_jets: int | None = None
) -> list[str]:
    """The comparison in words (for one group's best run); ``worst`` caps long lists.

    First the float16-latent point against the quantiser at equal payload bits, then, from
    the bytes each codec's writer stores (model and side information counted, at a file of
    ``file_jets`` jets, default the job's ``rate.file_jets``), one sentence per variable:
    where the quantised latent beats the scalar quantiser and SZ3, where it loses, by how
    much and at which ratios (:func:`byte_verdict_lines`).
    """
    return _bits_verdict_lines(row, variables, worst) + byte_verdict_lines(
        row, variables, worst, file_jets
    )


def _bits_verdict_lines(row: Mapping[str, Any], variables: list[str], worst: int) -> list[str]:
    comps = compare(row, variables)
    if not comps or not math.isfinite(comps[0].bits):
        return ["    rate-distortion: no bits-per-jet figures in the metrics"]
    if not any(math.isfinite(c.sq) or math.isfinite(c.pca) for c in comps):
        if math.isfinite(comps[0].sq_min_bits) and comps[0].bits < comps[0].sq_min_bits:
            return [f"    rate-distortion: {comps[0].bits:.0f} bits per jet is below the scalar "
                    f"quantiser's lowest rate ({comps[0].sq_min_bits:.0f}) and no PCA curve "
                    "reaches it"]  # fmt: skip
        return ["    rate-distortion: no baseline curves at these bits (evaluate.baselines)"]
    b = comps[0].bits
    n_in = len(variables)
    ratio = 32 * n_in / b if b else math.nan
    lines = [f"    rate-distortion at {b:.0f} bits per jet (float16 latent, ratio {ratio:.2f}):"]
    shown = comps
    if len(comps) > worst:
        # the variables where the autoencoder does worst relative to the quantiser
        def rel(c: Comparison) -> float:
            ref = c.sq if math.isfinite(c.sq) else c.pca
            return c.ae / ref if ref > 0 and math.isfinite(c.ae / ref) else math.inf

        shown = sorted(comps, key=rel, reverse=True)[:worst]
        n_cmp = sum(1 for c in comps if c.beats is not None)
        n_beats = sum(1 for c in comps if c.beats)
        n_pca = sum(1 for c in comps if math.isfinite(c.pca))
        n_pca_beats = sum(1 for c in comps if math.isfinite(c.pca) and c.ae < c.pca)
        said = []
        if n_cmp:
            said.append(f"beats the scalar quantiser on {n_beats} of {n_cmp} variables")
        else:
            said.append(
                "cannot be compared with the scalar quantiser (this rate is below its curve)"
            )
        if n_pca:
            said.append(f"beats PCA on {n_pca_beats} of {n_pca}")
        lines.append(
            f"      the autoencoder {'; '.join(said)}; the {len(shown)} where it does worst:"
        )
    for c in shown:
        pca = ""
        if math.isfinite(c.pca) and math.isfinite(c.ae):
            verb = "beats" if c.ae < c.pca else "does not beat"
            pca = f"; PCA at the same bits {_sci(c.pca)}: the autoencoder {verb} it"
        if c.beats is None:
            why = (
                f"below the quantiser's lowest rate ({c.sq_min_bits:.0f} bits per jet)"
                if math.isfinite(c.sq_min_bits) and c.bits < c.sq_min_bits
                else "no quantiser figure"
            )
            lines.append(f"      {c.var}: autoencoder width {_sci(c.ae)}, {why}{pca}")
            continue
        if c.beats:
            words = f"the autoencoder beats it ({c.sq / c.ae:.1f}x narrower)"
        else:
            words = (
                f"the scalar quantiser is {c.ae / c.sq:.1f}x narrower: "
                "the autoencoder does not beat it"
            )
        wins = (
            f"; quantised latent beats it at k = {','.join(map(str, c.aeq_wins))}"
            if c.aeq_wins
            else "; quantised latent beats it at no k"
        )
        at = (
            "at the same bits"
            if c.sq_bits == c.bits
            else f"at only {c.sq_bits:.0f} bits per jet (its finest)"
        )
        lines.append(
            f"      {c.var}: autoencoder width {_sci(c.ae)}, scalar quantiser {_sci(c.sq)} "
            f"{at}: {words}{wins}{pca}"
        )
    return lines


def file_ratio(row: Mapping[str, Any], src: str, file_jets: int | None = None) -> float:
    """Compression ratio of codec ``src`` at a file of ``file_jets`` jets, from its bytes.

    float32 input bytes / (payload x file_jets / rate.jets + side + model bytes): the
    payload grows with the file, the side information and the model are paid once. Falls
    back to ``<src>.ratio_file`` (the file size the job used) and then to the payload-only
    ratio 32 d / bits_per_jet for metrics written before the bytes were kept.
    """
    n = row.get("rate.jets")
    payload = row.get(f"{src}.payload_bytes")
    d = row.get("n_inputs") or _n_variables(row)
    fj = file_jets or row.get("rate.file_jets") or FILE_JETS
    if _finite(n) and float(n) > 0 and _finite(payload) and d:
        side = float(row.get(f"{src}.side_bytes") or 0)
        model = float(row.get(f"{src}.model_bytes") or 0)
        stored = float(payload) * float(fj) / float(n) + side + model
        return 4.0 * float(d) * float(fj) / stored if stored > 0 else math.nan
    if file_jets is None and _finite(row.get(f"{src}.ratio_file")):
        return float(row[f"{src}.ratio_file"])
    b = row.get(f"{src}.bits_per_jet")
    return 32.0 * float(d) / float(b) if d and _finite(b) and float(b) > 0 else math.nan


def _n_variables(row: Mapping[str, Any]) -> int:
    listed = row.get("variables")
    if isinstance(listed, str) and listed:
        return len(listed.split(","))
    return len({k.split(".")[1] for k in row if k.startswith("ae.") and k.endswith(".width")})


def rate_curve(
    row: Mapping[str, Any], method: str, var: str, file_jets: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(compression ratio from bytes at ``file_jets`` jets, width of ``var``), by rising ratio."""
    xs, ys = [], []
    for k in bit_depths(row.keys(), method):
        r, w = file_ratio(row, f"{method}{k}", file_jets), row.get(f"{method}{k}.{var}.width")
        if _finite(r) and _finite(w) and float(w) > 0:
            xs.append(float(r))
            ys.append(float(w))
    order = np.argsort(xs)
    return np.asarray(xs)[order], np.asarray(ys)[order]


def _log_interp(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    # log(width) against log(ratio); the curves are monotone in ratio for every codec
    return np.exp(np.interp(np.log(x), np.log(xs), np.log(ys)))


@dataclass
class Stretch:
    """A range of ratios over which one curve stays narrower (or wider) than another."""

    lo: float
    hi: float
    wins: bool
    factor: float  # the largest width ratio in the stretch (>= 1: how much narrower/wider)


def stretches(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], points: int = 400
) -> list[Stretch]:
    """Where curve ``a`` is narrower than ``b`` at equal ratio, over the ratios both reach."""
    (ra, wa), (rb, wb) = a, b
    if len(ra) < 2 or len(rb) < 2:
        return []
    lo, hi = max(ra[0], rb[0]), min(ra[-1], rb[-1])
    if not lo < hi:
        return []
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), points))
    q = _log_interp(grid, ra, wa) / _log_interp(grid, rb, wb)
    wins = q < 1
    out: list[Stretch] = []
    start = 0
    for i in range(1, points + 1):
        if i == points or wins[i] != wins[start]:
            seg = q[start:i]
            factor = float(np.max(1 / seg) if wins[start] else np.max(seg))
            # a boundary lies between two grid points: quote the crossing's ratio
            s_lo = grid[start] if start == 0 else float(np.sqrt(grid[start - 1] * grid[start]))
            s_hi = grid[i - 1] if i == points else float(np.sqrt(grid[i - 1] * grid[i]))
            out.append(Stretch(float(s_lo), float(s_hi), bool(wins[start]), factor))
            start = i
    return out


def crossovers(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """The ratios at which curve ``a`` crosses curve ``b``."""
    return [s.lo for s in stretches(a, b)[1:]]


def _stretch_words(parts: list[Stretch]) -> str:
    said = []
    for s in parts:
        verb = "beats" if s.wins else "loses to"
        how = "narrower" if s.wins else "wider"
        said.append(f"{verb} it at ratio {s.lo:.2f}-{s.hi:.2f} (up to {s.factor:.1f}x {how})")
    return ", ".join(said)


def _fmt_jets(n: float) -> str:
    return f"{n:,.0f}" if math.isfinite(n) else "never"


def byte_verdict_lines(
    row: Mapping[str, Any], variables: list[str], worst: int = 4, file_jets: int | None = None
) -> list[str]:
    """The autoencoder against the quantiser (plain, entropy-coded) and SZ3 at equal ratio.

    Every ratio from the bytes written, side information and model counted. One sentence
    per variable (the ``worst`` where the autoencoder does worst) and one on
    what the model costs. Empty when the metrics hold no byte counts.
    """
    if not bit_depths(row.keys(), "aeq") or not any(k.endswith(".payload_bytes") for k in row):
        return []
    fj = int(file_jets or row.get("rate.file_jets") or FILE_JETS)
    ks = bit_depths(row.keys(), "aeq")
    mb = row.get(f"aeq{ks[0]}.model_bytes")
    lines = [f"    from the bytes written, at a file of {fj:,} jets (model.pt "
             f"{_fmt_jets(float(mb or 0))} bytes counted, side information counted):"]  # fmt: skip
    scored = []
    for v in variables:
        ae = rate_curve(row, "aeq", v, fj)
        found = []
        loss = 1.0
        for peer in PEERS:
            ref = rate_curve(row, peer, v, fj)
            parts = stretches(ae, ref)
            label = PEER_NAMES[peer]
            if not parts:
                if len(ae[0]) and len(ref[0]):
                    span = (f"ratio {ae[0][0]:.2f}-{ae[0][-1]:.2f}, {label} "
                            f"{ref[0][0]:.2f}-{ref[0][-1]:.2f}")  # fmt: skip
                    if ae[0][-1] < ref[0][0]:
                        loss = math.inf
                        found.append(f"loses to {label} at every ratio: it stores more "
                                     f"at every bit depth ({span})")  # fmt: skip
                    else:
                        found.append(f"is never at the same ratio as {label} ({span})")
                continue
            loss = max([loss] + [s.factor for s in parts if not s.wins])
            if all(not s.wins for s in parts):
                found.append(f"loses to {label} at every common ratio "
                             f"({parts[0].lo:.2f}-{parts[-1].hi:.2f}, up to "
                             f"{max(s.factor for s in parts):.1f}x wider)")  # fmt: skip
            elif all(s.wins for s in parts):
                found.append(f"beats {label} at every common ratio "
                             f"({parts[0].lo:.2f}-{parts[-1].hi:.2f}, up to "
                             f"{max(s.factor for s in parts):.1f}x narrower)")  # fmt: skip
            else:
                cross = ", ".join(f"{c.lo:.2f}" for c in parts[1:])
                found.append(f"against {label} {_stretch_words(parts)}; crossover at "
                             f"ratio {cross}")  # fmt: skip
        if found:
            scored.append((loss, f"      {v}: the autoencoder " + "; ".join(found) + "."))
    if not scored:
        return []
    shown = scored if len(scored) <= worst else sorted(scored, key=lambda t: -t[0])[:worst]
    if len(shown) < len(scored):
        lines.append(f"      (the {len(shown)} of {len(scored)} variables where it does worst)")
    lines += [text for _, text in shown]
    k = 12 if 12 in ks else ks[len(ks) // 2]
    on_test = row.get(f"aeq{k}.ratio")
    be = row.get(f"aeq{k}.break_even_jets")
    has_be = f"aeq{k}.break_even_jets" in row  # null in metrics.json: inf, never
    if _finite(on_test):
        n = row.get("rate.jets")
        extra = ""
        if has_be and _finite(be):
            extra = (f"; it stores less than the {k}-bit scalar quantiser from "
                     f"{_fmt_jets(float(be))} jets on")  # fmt: skip
        elif has_be:
            extra = f"; it never stores less than the {k}-bit scalar quantiser"
        lines.append(f"      the {k}-bit latent: ratio {float(on_test):.2f} on the "
                     f"{_fmt_jets(float(n or math.nan))} test jets, "
                     f"{file_ratio(row, f'aeq{k}', fj):.2f} at {fj:,} jets{extra}.")  # fmt: skip
    return lines


def _jets_short(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1e6:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1e3:g}k"
    return str(n)


def _unit(row: Mapping[str, Any], var: str) -> str:
    kind = row.get(f"residual.{var}")
    return UNITS.get(str(kind), str(kind)) if kind else ""


# -- the rate-aware frontier ------------------------------------------------------------

FRONTIER_COLOR = "#D55E00"
FRONTIER_LABEL = "rate-aware frontier (train.rate_lambda; predicted bits, model counted)"
_AEQ_MODEL = re.compile(r"^aeq(\d+)\.model_bytes$")


def _num(v: Any) -> float:
    """``v`` as a float, NaN when it is missing or not a finite number."""
    return float(v) if _finite(v) else math.nan


def _model_bytes(row: Mapping[str, Any]) -> float:
    """model.pt's bytes as the job's other codec points count them (0 when not kept)."""
    if _finite(row.get("aer.model_bytes")):
        return _num(row["aer.model_bytes"])
    # the quantised latent's points count model.pt; the rate-aware point is the same model
    kept = sorted((int(m.group(1)), _num(v)) for key, v in row.items()
                  if (m := _AEQ_MODEL.match(str(key))) and _finite(v))  # fmt: skip
    return kept[0][1] if kept else 0.0


def aer_file_ratio(row: Mapping[str, Any], file_jets: int | None = None) -> float:
    """Ratio of a rate-aware job's codec point ``aer`` at a file of ``file_jets`` jets.

    float32 bytes over the predicted payload (``aer.bits_per_jet``, the prior's
    cross-entropy of the rounded latent on the test jets) for ``file_jets`` jets plus the
    model's bytes once, as :func:`file_ratio` counts the quantised latent's model; NaN
    for a job without the point. The payload is predicted, not written: it has no side
    information (the prior is in the model).
    """
    bits = _num(row.get("aer.bits_per_jet"))
    d = _num(row.get("n_inputs") or _n_variables(row))
    if not (bits > 0 and d > 0):  # NaN compares False
        return math.nan
    fj = float(file_jets or row.get("rate.file_jets") or FILE_JETS)
    stored = bits / 8.0 * fj + _model_bytes(row)
    return 4.0 * d * fj / stored


@dataclass
class FrontierPoint:
    """One rate-aware job on the frontier of ratio against a variable's width."""

    job_id: str
    ratio: float
    width: float
    bits_per_jet: float
    rate_lambda: float  # NaN when the metrics do not name it


def rate_frontier(
    rows: Iterable[Mapping[str, Any]], var: str, file_jets: int | None = None
) -> tuple[list[FrontierPoint], int]:
    """The rate-aware jobs not beaten in both ratio and ``aer.<var>.width``, by rising ratio.

    Every row with the codec point ``aer`` (a job trained with ``train.rate_lambda``)
    counts; its ratio is :func:`aer_file_ratio`. Returns (the frontier, how many rate-aware
    jobs were considered).
    """
    pts: list[FrontierPoint] = []
    for r in rows:
        ratio, w = aer_file_ratio(r, file_jets), _num(r.get(f"aer.{var}.width"))
        if not (math.isfinite(ratio) and w > 0):
            continue
        pts.append(FrontierPoint(str(r.get("job_id", "")), ratio, w,
                                 _num(r.get("aer.bits_per_jet")),
                                 _num(r.get("param.train.rate_lambda"))))  # fmt: skip
    if not pts:
        return [], 0
    front = pareto_front(np.array([p.ratio for p in pts]), np.array([p.width for p in pts]))
    return [pts[i] for i in front[::-1]], len(pts)


def _span(lo: str, hi: str) -> str:
    return lo if lo == hi else f"{lo}-{hi}"


def frontier_lines(
    rows: list[Mapping[str, Any]], variables: list[str], file_jets: int | None = None
) -> list[str]:
    """The rate-aware frontier in words: the jobs on it, the ratios and widths it spans.

    Variables whose frontier holds the same jobs share one sentence (a campaign over lambda
    alone usually puts every job on every variable's frontier).
    """
    groups: dict[tuple[str, ...], list[tuple[str, list[FrontierPoint], int]]] = {}
    for v in variables:
        front, n = rate_frontier(rows, v, file_jets)
        if front:
            groups.setdefault(tuple(p.job_id for p in front), []).append((v, front, n))
    if not groups:
        return []
    kept = [r["rate.file_jets"] for r in rows if _finite(r.get("rate.file_jets"))]
    fj = int(file_jets or (kept[0] if kept else FILE_JETS))
    out = [f"  rate-aware frontier (predicted bits per jet, model counted, at {fj:,} jets):"]
    for members in groups.values():
        _, front, n = members[0]
        names = ", ".join(v for v, _, _ in members)
        lams = ", ".join(f"{p.rate_lambda:g}" for p in front if math.isfinite(p.rate_lambda))
        ratio = _span(f"{front[0].ratio:.2f}", f"{front[-1].ratio:.2f}")
        head = (f"{names}: {len(front)} of {n} rate-aware jobs on the frontier, ratio {ratio}"
                + (f" (lambda {lams}, by rising ratio)" if lams else "") + "; width ")  # fmt: skip
        widths = ", ".join((f"{v} " if len(members) > 1 else "")
                           + _span(_sci(f[0].width), _sci(f[-1].width))
                           for v, f, _ in members)  # fmt: skip
        out += textwrap.wrap(head + widths + ".", width=96, initial_indent="    ",
                             subsequent_indent="      ", break_on_hyphens=False)  # fmt: skip
    return out


# -- the plane, drawn ----------------------------------------------------------------------


class _Panel:
    """An axis and the points drawn on it (the limits hug them)."""

    def __init__(self, ax: Any) -> None:
        self.ax = ax
        self.xs: list[float] = []
        self.ys: list[float] = []

    def plot(self, r: np.ndarray, w: np.ndarray, *args: Any, **kw: Any) -> None:
        if len(r):
            self.ax.plot(r, w, *args, **kw)
            self.xs.extend(np.asarray(r, dtype=float).tolist())
            self.ys.extend(np.asarray(w, dtype=float).tolist())


def _plot_peers(panel: _Panel, row: Mapping[str, Any], var: str, fj: int) -> None:
    """The scalar quantiser (plain and entropy-coded), SZ3 and ZFP at the same bounds."""
    panel.plot(*rate_curve(row, "sq", var, fj), "-", color="black", lw=2.0,
               label=METHOD_LABELS["sq"])  # fmt: skip
    panel.plot(*rate_curve(row, "sqe", var, fj), "-", color="black", lw=0.8,
               label="scalar quantiser, entropy-coded")  # fmt: skip
    panel.plot(*rate_curve(row, "sz3_", var, fj), "--", color="#555555", marker="x", ms=4,
               lw=1.2, label="SZ3, same bound")  # fmt: skip
    panel.plot(*rate_curve(row, "zfp", var, fj), ":", color="#999999", marker="+", ms=5,
               lw=1.2, label="ZFP, same bound")  # fmt: skip


def _mark_crossover(ax: Any, x: float, w: float, c: str, labelled: bool) -> None:
    """A star where an autoencoder crosses the quantiser, its ratio on the ratio axis."""
    ax.plot([x], [w], marker="*", color=c, ms=11, mec="black", mew=0.6, ls="none",
            zorder=5, label=None if labelled else "crossover with the scalar quantiser "
            "(its ratio on the axis)")  # fmt: skip
    # the ratio is written on the ratio axis, under the star, joined by a dotted line: it
    # never sits on a curve, and reads like a tick
    ax.annotate(f"{x:.2f}", xy=(x, w), xycoords="data", xytext=(x, 0.02),
                textcoords=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=7, color=c, fontweight="bold",
                arrowprops={"arrowstyle": "-", "ls": ":", "color": c, "lw": 0.8})  # fmt: skip


def _plot_models(
    panel: _Panel,
    models: list[tuple[Mapping[str, Any], str, str]],
    var: str,
    fj: int,
    peers: bool,
) -> None:
    """Each autoencoder's quantised latent (and its PCA), the crossovers with the quantiser."""
    starred = False
    for r_row, c, name in models:
        ae = rate_curve(r_row, "aeq", var, fj)
        panel.plot(*ae, "-o", color=c, ms=3, label=f"{name}, quantised latent")
        if peers:
            pca = rate_curve(r_row, "pca", var, fj)
            z = r_row.get("pca.z")
            panel.plot(*pca, "-.", color=c, lw=1.0, label=f"PCA, {z} comp." if z else "PCA")
        for x in crossovers(ae, rate_curve(r_row, "sq", var, fj)):
            w = float(_log_interp(np.array([x]), *ae)[0])
            _mark_crossover(panel.ax, x, w, c, starred)
            starred = True


def _plot_frontier(
    panel: _Panel, rows: list[Mapping[str, Any]], var: str, fj: int
) -> list[FrontierPoint]:
    """The rate-aware frontier over ``rows``, its two ends labelled with their lambda."""
    front, _ = rate_frontier(rows, var, fj)
    if not front:
        return front
    panel.plot(np.array([p.ratio for p in front]), np.array([p.width for p in front]), "-s",
               color=FRONTIER_COLOR, ms=4, lw=1.6, zorder=4, label=FRONTIER_LABEL)  # fmt: skip
    # lambda at the two ends only: the points between sit too close to label each
    # (below the low-ratio end, above the high-ratio end: inside the axes, off the curves)
    ends = [(front[0], (0, -10), "center"), (front[-1], (0, 5), "center")][: len(front)]
    for p, offset, ha in ends:
        if math.isfinite(p.rate_lambda):
            panel.ax.annotate(f"lambda {p.rate_lambda:g}", xy=(p.ratio, p.width),
                              xytext=offset, textcoords="offset points", fontsize=6,
                              ha=ha, color=FRONTIER_COLOR)  # fmt: skip
    return front


def _fit_limits_and_lossless(panel: _Panel, row: Mapping[str, Any], fj: int) -> None:
    """Log axes that hug the points, the lossless point on the ratio axis (width 0)."""
    import matplotlib.transforms as mtransforms

    ax = panel.ax
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not panel.xs:
        return
    lo, hi = min(panel.xs), max(panel.xs)
    lossless = file_ratio(row, "lossless", fj)
    if _finite(lossless):
        lo, hi = min(lo, lossless), max(hi, lossless)
    ax.set_xlim(lo / 1.08, hi * 1.08)
    ax.set_ylim(min(panel.ys) / 1.5, max(panel.ys) * 1.5)
    if _finite(lossless):
        # width 0 has no place on a log axis: the point sits on the ratio axis itself
        tr = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot([lossless], [0.0], marker="v", color="#009E73", ms=9, ls="none",
                transform=tr, clip_on=False, zorder=6,
                label=f"lossless (width 0), ratio {lossless:.2f}")  # fmt: skip


def _label_axes(ax: Any, row: Mapping[str, Any], var: str, fj: int) -> None:
    import matplotlib.ticker as mticker

    # plain numbers on the ratio axis (1.5, 2, 3, 4, 6, ...), not 2x10^0
    ax.xaxis.set_major_locator(mticker.FixedLocator([1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64]))
    ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    unit = _unit(row, var)
    ax.set_xlabel(f"compression ratio (bytes written, {_jets_short(fj)} jets, model counted)")
    ax.set_ylabel(f"{var} residual width" + (f" [{unit}]" if unit else ""))


def draw_plane(
    ax: Any,
    row: Mapping[str, Any],
    var: str,
    *,
    file_jets: int | None = None,
    color: str = "#0072B2",
    label: str = "autoencoder",
    peers: bool = True,
    extra_rows: list[tuple[Mapping[str, Any], str, str]] | None = None,
    frontier_rows: list[Mapping[str, Any]] | None = None,
) -> None:
    """One panel of the rate-distortion figure: ratio (from bytes) against the width of ``var``.

    The scalar quantiser, SZ3, ZFP and PCA (``peers``) and the autoencoder's quantised
    latent of ``row``, plus ``extra_rows`` ((row, colour, label) of more autoencoders),
    every ratio from the bytes written at ``file_jets`` jets with the model counted; the
    frontier of the rate-aware jobs among ``frontier_rows`` (the campaign's runs,
    :func:`rate_frontier`). Marks where each autoencoder crosses the scalar quantiser, puts
    the lossless point on the ratio axis (its width is zero) and fits the limits to the
    data (no empty quarter).
    """
    fj = int(file_jets or row.get("rate.file_jets") or FILE_JETS)
    panel = _Panel(ax)
    if peers:
        _plot_peers(panel, row, var, fj)
    _plot_models(panel, [(row, color, label), *(extra_rows or [])], var, fj, peers)
    if frontier_rows:
        _plot_frontier(panel, frontier_rows, var, fj)
    _fit_limits_and_lossless(panel, row, fj)
    _label_axes(ax, row, var, fj)


def variables_of(df: Any) -> list[str]:
    """Variables with an ``ae.<v>.width`` column, in the campaign's own order."""
    pat = re.compile(r"^ae\.(.+)\.width$")
    found = [m.group(1) for c in df.columns if (m := pat.match(str(c)))]
    listed = df["variables"].dropna() if "variables" in df else []
    order = str(listed.iloc[0]).split(",") if len(listed) else []
    return [v for v in order if v in found] + [v for v in found if v not in order]


def report_lines(used: Any, groups: list[Any], label: str) -> list[str]:
    """The rate-distortion section of the summary report: one verdict per group."""
    if not len(used) or not has_curves(used.columns):
        return []
    variables = variables_of(used)
    rows = used.set_index("job_id", drop=False)
    lines = [
        "Rate-distortion: best run of each group against the scalar quantiser at equal bits",
        "  (scalar quantiser: each variable uniform in its natural space, ranges from the",
        "  training jets; widths = half the 16-84 % interval of the residual)",
    ]
    for g in groups:
        best = next(p for p in g.picks if p.label == "best")
        if best.job_id not in rows.index:
            continue
        row = rows.loc[best.job_id]
        if hasattr(row, "iloc") and getattr(row, "ndim", 1) > 1:
            row = row.iloc[0]
        head = f"{label} = {g.value}" if label else "all runs"
        lines.append(f"  {head}: best run {best.name}")
        lines += verdict_lines(row.to_dict(), variables)
    return lines + frontier_lines(used.to_dict("records"), variables)


# -- the best codec per error bound ---------------------------------------------------------

#: The error-bounded codecs the summary ranks at each bound, learned first. All run at the
#: k-bit scalar quantiser's half step per variable (natural space): ``pred<k>`` the
#: predictive codec (its predictor fitted on the training jets; `hepae-data evaluate`
#: measures it, docs/compression.md), ``sqe<k>``/``sq<k>`` the quantiser with and without
#: entropy coding, ``sz3_<k>``, ``zfp<k>``.
BOUNDED = ("pred", "sqe", "sq", "sz3_", "zfp")
#: Of those, the ones with a learned (fitted) model.
LEARNED_BOUNDED = ("pred",)
BOUNDED_LABELS = {
    "pred": "predictive codec (fitted predictor)",
    "sqe": "scalar quantiser, entropy-coded",
    "sq": "scalar quantiser",
    "sz3_": "SZ3",
    "zfp": "ZFP",
}
#: The codecs whose values beyond their training ranges are clipped (the bound missed).
CLIPPING = ("sq", "sqe")
BOUNDED_SHORT = {"pred": "pred", "sqe": "sq+ANS", "sq": "sq", "sz3_": "SZ3", "zfp": "ZFP"}


@dataclass
class BoundPoint:
    """One error bound (the k-bit quantiser's half step) and each codec's ratio there."""

    k: int
    first: dict[str, float]  # family -> ratio on the run's own test jets
    second: dict[str, float]  # family -> ratio on the other sample (empty: not measured)
    # family -> values that missed the bound (the quantiser clips values beyond its
    # training ranges): such a codec is not error-bounded on that sample, and not ranked
    missed_first: dict[str, int] = field(default_factory=dict)
    missed_second: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, float] = field(default_factory=dict)  # variable -> bound (pred<k>.bound.*)

    @staticmethod
    def _best(ratios: dict[str, float], missed: dict[str, int]) -> str | None:
        ok = {f: r for f, r in ratios.items() if math.isfinite(r) and not missed.get(f)}
        return max(ok, key=lambda f: (ok[f], -BOUNDED.index(f))) if ok else None

    @property
    def best(self) -> str | None:
        """The family with the highest ratio on the run's own test jets (of those that kept
        every value within the bound)."""
        return self._best(self.first, self.missed_first)

    @property
    def best_second(self) -> str | None:
        return self._best(self.second, self.missed_second)


def _own_view(on: Mapping[str, Any] | None, row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``own.*`` keys of an evaluate-on record (the codecs it measured on the job's
    own test jets), as a row of their own."""
    if not on:
        return {}
    view = {k[4:]: v for k, v in on.items() if str(k).startswith("own.")}
    if view:
        view.setdefault("n_inputs", row.get("n_inputs") or _n_variables(row))
        view.setdefault("rate.file_jets", row.get("rate.file_jets"))
    return view


def bound_points(
    row: Mapping[str, Any], on: Mapping[str, Any] | None = None, file_jets: int | None = None
) -> list[BoundPoint]:
    """Each error bound of the run's metrics with every error-bounded codec's ratio.

    ``row``: the run's metrics; ``on``: its ``hepae-data evaluate`` record on another sample
    (keys without the ``on.`` prefix), whose ``own.<s>`` keys fill in codecs the run's
    metrics lack (the predictive codec) on its own test jets. Ratios from the bytes written
    at a file of ``file_jets`` jets (default the run's ``rate.file_jets``), side
    information and model counted (:func:`file_ratio`).
    """
    fj = int(file_jets or row.get("rate.file_jets") or FILE_JETS)
    own = _own_view(on, row)
    on_row = dict(on or {})
    if on_row:
        on_row.setdefault("n_inputs", row.get("n_inputs") or _n_variables(row))
    ks = sorted(set(bit_depths(row.keys(), "sq")) | set(bit_depths(own.keys(), "pred")))
    out = []
    for k in ks:
        first: dict[str, float] = {}
        second: dict[str, float] = {}
        missed: tuple[dict[str, int], dict[str, int]] = ({}, {})
        for fam in BOUNDED:
            src = f"{fam}{k}"
            for i, (ratios, where) in enumerate(((first, row), (second, on_row))):
                if (
                    i == 0
                    and f"{src}.payload_bytes" not in row
                    and src + ".bits_per_jet" not in row
                ):
                    where = own  # the run's metrics lack it: the evaluate record's own.*
                if f"{src}.payload_bytes" in where or f"{src}.bits_per_jet" in where:
                    ratios[fam] = file_ratio(where, src, fj)
                    clipped = where.get(f"{src}.clipped")
                    n_clipped = float(clipped) if _finite(clipped) else 0.0  # type: ignore[arg-type]
                    if fam in CLIPPING and n_clipped > 0:
                        missed[i][fam] = int(n_clipped)
        # only the bounds where an error-bounded peer beside the plain quantiser exists
        bounds: dict[str, float] = {}
        for where in (row, own, on_row):
            head = f"pred{k}.bound."
            found = {str(key)[len(head):]: float(v) for key, v in where.items()
                     if str(key).startswith(head) and _finite(v)}  # fmt: skip
            bounds = bounds or found
        order = {v: i for i, v in enumerate(str(row.get("variables") or "").split(","))}
        bounds = dict(sorted(bounds.items(), key=lambda t: order.get(t[0], len(order))))
        if len([f for f, r in first.items() if math.isfinite(r)]) >= 2:
            out.append(BoundPoint(int(k), first, second, *missed, bounds))
    return out


def _r(v: float | None) -> str:
    return f"{v:.2f}" if v is not None and math.isfinite(v) else "-"


def bound_table_lines(
    points: list[BoundPoint], sample: str | None = None, file_jets: int = FILE_JETS
) -> list[str]:
    """The table of :func:`bound_points`: per bound, the best codec and its ratio on the
    run's own test jets (and, with ``sample``, the best on the other sample), then every
    codec's ratio (``own/other``)."""
    if not points:
        return []
    fams = [f for f in BOUNDED if any(f in p.first or f in p.second for p in points)]
    legend = ", ".join(f"{BOUNDED_SHORT[f]} = {BOUNDED_LABELS[f]}" for f in fams)
    cells = "own test jets / " + sample if sample else "own test jets"
    text = (
        "Best codec per error bound: every value within the bound; bound k = the k-bit scalar "
        "quantiser's half step per variable (natural space); ratio = float32 bytes / bytes "
        f"written for {file_jets:,} jets, side information and model counted; cells: {cells} "
        f"({legend})."
    )
    lines = textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="  ")
    width = 12 if sample else 8
    head = f"    {'k':>3}  {'best':<7}{'ratio':>6}"
    if sample:
        head += f"   {'other: best':<12}{'ratio':>6}"
    lines.append(head + "  " + "".join(f"{BOUNDED_SHORT[f]:>{width}}" for f in fams))
    for p in points:
        b = p.best or ""
        text = f"    {p.k:>3}  {BOUNDED_SHORT.get(b, '-'):<7}{_r(p.first.get(b)):>6}"
        if sample:
            b2 = p.best_second or ""
            text += f"   {BOUNDED_SHORT.get(b2, '-'):<12}{_r(p.second.get(b2)):>6}"
        row = []
        for f in fams:
            c = _r(p.first.get(f)) + ("*" if p.missed_first.get(f) else "")
            if sample:
                c += "/" + _r(p.second.get(f)) + ("*" if p.missed_second.get(f) else "")
            row.append(f"{c:>{width}}")
        lines.append(text + "  " + "".join(row))
    shown = next((p for p in points if p.k == 12 and p.bounds), None) or next(
        (p for p in points if p.bounds), None
    )
    if shown is not None:
        words = ", ".join(f"{v} {b:.2g}" for v, b in shown.bounds.items())
        lines.append(f"    bounds at k = {shown.k}: {words} (relative for the log-space "
                     "variables, e.g. pt, E); each added bit halves them")  # fmt: skip
    if any(p.missed_first or p.missed_second for p in points):
        lines.append("    * values beyond the quantiser's training ranges were clipped: the bound "
                     "was missed there, so it is not ranked")  # fmt: skip
    return lines
