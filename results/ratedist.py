"""The rate-distortion plane of a campaign: curves from the metrics, and the verdict in words.

A job's metrics hold, per method ``<s>`` (``sq<k>`` scalar quantisation, ``pca<k>`` PCA
transform coding, ``aeq<k>`` the quantised latent) and per bit depth ``k``, the payload
``<s>.bits_per_jet`` and the residual width of every variable (docs/metrics.md). This
module turns them into curves (bits per jet -> width) and compares the autoencoder with
the scalar quantiser at equal bits. Numpy only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("sq", "pca", "aeq")
METHOD_LABELS = {
    "sq": "scalar quantiser",
    "pca": "PCA transform coding",
    "aeq": "autoencoder, quantised latent",
}


def bit_depths(columns: Any, method: str) -> list[int]:
    """The ``k`` of every ``<method><k>.bits_per_jet`` column, ascending."""
    pat = re.compile(rf"^{method}(\d+)\.bits_per_jet$")
    return sorted({int(m.group(1)) for c in columns if (m := pat.match(str(c)))})


def has_curves(columns: Any) -> bool:
    return bool(bit_depths(columns, "sq"))


def curve(row: Mapping[str, Any], method: str, var: str) -> tuple[np.ndarray, np.ndarray]:
    """(bits per jet, width of ``var``) of one job's ``method`` curve, by rising bits."""
    xs, ys = [], []
    for k in bit_depths(row.keys(), method):
        b, w = row.get(f"{method}{k}.bits_per_jet"), row.get(f"{method}{k}.{var}.width")
        if _finite(b) and _finite(w):
            xs.append(float(b))
            ys.append(float(w))
    order = np.argsort(xs)
    return np.asarray(xs)[order], np.asarray(ys)[order]


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def width_at(bits: np.ndarray, widths: np.ndarray, b: float) -> float:
    """Width of a curve at ``b`` bits per jet: log-linear interpolation; NaN outside it.

    Quantiser widths halve with each added bit per value, so log(width) is close to linear
    in bits: the interpolation is exact for an ideal quantiser.
    """
    ok = widths > 0
    bits, widths = bits[ok], widths[ok]
    if not len(bits) or b < bits[0] - 1e-9 or b > bits[-1] + 1e-9:
        return math.nan
    return float(np.exp(np.interp(b, bits, np.log(widths))))


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


def verdict_lines(row: Mapping[str, Any], variables: list[str], worst: int = 4) -> list[str]:
    """The comparison in words (for one group's best run); ``worst`` caps long lists."""
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
    return lines
