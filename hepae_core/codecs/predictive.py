"""Error-bounded predictive coding: each variable's residual against a prediction from the
variables already decoded, quantised to the user's bound and entropy-coded.

The user gives one bound per variable: relative for scale variables (pt, E, m, the track
sum, the leading constituent: ``|x' - x| <= b |x|``), absolute for the rest (eta, phi, the
widths and fractions, in the file's units). Variables are coded one after the other in an
order the codec chooses. For variable ``j``:

1. ``t`` = its natural-space value (log for a relative bound, the value itself otherwise);
2. ``p`` = a prediction computed from the *decoded* (dequantised) values of the variables
   before it, so that the decoder, which has exactly those values, computes the same ``p``;
3. ``c = rint((t - p) / step)`` with ``step = 2 log1p(b)`` (relative) or ``2 b``
   (absolute): a uniform quantiser of the residual whose half step is the bound;
4. the decoded value ``from_space(p + c step)`` is checked against the bound on EVERY
   value; a value that misses (float rounding at a cell edge, a code outside the file's
   alphabet, a non-finite or non-positive scale value) is stored raw (float64) behind an
   escape symbol and counted (:attr:`Encoded.clipped`). A value of exactly 0 has its own
   symbol and decodes to 0; so has an absolute variable's exactly 1 (a fraction's edge).

The symbols of each variable (and, for the learned predictor, of each of its contexts) are
coded by one ANS stream (``constriction``) with a categorical distribution fitted on this
file: its table (counts, log-quantised to one byte a symbol, zlib) is side information.

Predictors (``predictor=``):

``none``
    ``p = 0``: the plain quantiser at the bound, entropy-coded (the baseline).
``physics``
    ``log E`` predicted as ``log pt + log cosh eta`` (``E >= p = pt cosh eta``) when pt and
    eta come before E; every other variable as ``none``.
``linear``
    a least-squares regression per variable on a degree-2 polynomial of the natural-space
    values decoded before it (clipped to the training range, standardised, plus
    ``log cosh eta``); periodic variables (phi) are neither predicted nor used. The jets
    are split into ``contexts`` groups, each with its own table: ``contexts / value_bins``
    bins of the residual's size, predicted by a second regression (the coder knows where
    the residual will be narrow, E at large |eta|, and where wide), times ``value_bins``
    bins of the predicted value (a fraction predicted near 0 has its exact 0 likely and
    its residual cut off below); bins at training quantiles. Parameters are float32 model
    bytes.

Learned predictors (a network per variable, the autoencoder as predictor) build on this
class: :mod:`hepae_core.codecs.pred_learned`.

Order (``order=``): ``"given"`` (the variables' order, or a list of the names) or
``"greedy"``: on a training subsample, repeatedly take the variable whose residual codes,
given those already taken, have the least empirical entropy (the cheapest next variable).
Greedy is myopic: on the dijet jets it takes E before eta (E given pt is cheap) and then
pays for eta given pt and E, whose sign the polynomial cannot recover; a physics order
(four-vector, m before E so that E is the four-vector's energy, charged_frac before the
track sum) stores less (docs/compression.md, "Error-bounded predictive coding").
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from hepae_core.codecs.codec_base import BaseCodec, Encoded
from hepae_core.variables import ANGLE_RESIDUAL, ENERGY_VARIABLES, RELATIVE_RESIDUAL

# symbol 0: value stored raw; 1: exactly 0; 2: exactly 1 (absolute variables: a fraction
# at its upper edge, e.g. a jet of charged constituents only); 3..: residual codes
ESC, ZERO, ONE, OFFSET = 0, 1, 2, 3
#: The symbol layouts a stream can have: 1 (tool 0.1.0 before the exact-1 symbol: ESC,
#: ZERO, codes from 2; one value bin) and 2 (ESC, ZERO, ONE, codes from 3). Files record
#: theirs (``symbols``); a file without it is layout 1, so what was written stays readable.
SYMBOL_LAYOUTS = (1, 2)
MAX_ALPHABET = 1 << 16
TABLE_LEVELS = 8  # table entries: round(8 log2(count + 1)), one byte each
PREDICTORS = ("none", "physics", "linear")


def default_kind(name: str) -> str:
    """relative (scale variables), angle (phi) or absolute."""
    if name in ANGLE_RESIDUAL:
        return "angle"
    if name in RELATIVE_RESIDUAL or name in ENERGY_VARIABLES:
        return "relative"
    return "absolute"


def step_of(kind: str, bound: float) -> float:
    """Quantiser step in the natural space for a bound ``bound`` of kind ``kind``."""
    return 2.0 * math.log1p(bound) if kind == "relative" else 2.0 * bound


def to_natural(x: np.ndarray, kind: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if kind == "relative":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)
    return x


def from_natural(t: np.ndarray, kind: str) -> np.ndarray:
    return np.exp(t) if kind == "relative" else t


def within(decoded: np.ndarray, x: np.ndarray, kind: str, bound: float) -> np.ndarray:
    """True where ``decoded`` meets the bound on ``x`` (the check every value passes)."""
    err = np.abs(decoded - x)
    with np.errstate(invalid="ignore"):
        if kind == "relative":
            return err <= bound * np.abs(x)
        return err <= bound


def quantise_residual(r: np.ndarray, step: float) -> np.ndarray:
    """Residual codes: the nearest multiple of ``step`` (half step = the bound)."""
    with np.errstate(invalid="ignore"):
        return np.rint(r / step)


def table_of(counts: np.ndarray) -> np.ndarray:
    """Counts -> one byte a symbol (log-quantised); 0 stays 0, any count > 0 stays > 0."""
    c = np.asarray(counts, np.float64)
    q = np.ceil(TABLE_LEVELS * np.log2(c + 1.0))
    return np.clip(q, 0, 255).astype(np.uint8)


def probs_of(table: np.ndarray) -> np.ndarray:
    q = np.asarray(table, np.float64)
    p = np.where(q > 0, np.exp2(q / TABLE_LEVELS) - 1.0, 0.0)
    return p / p.sum()


def _categorical(table: np.ndarray) -> Any:
    import constriction

    return constriction.stream.model.Categorical(probs_of(table), perfect=False)


def entropy_bits(symbols: np.ndarray) -> float:
    """Empirical entropy of ``symbols``, in bits, times their number (the ideal size)."""
    _, c = np.unique(np.asarray(symbols), return_counts=True)
    p = c / c.sum()
    return float(-(c * np.log2(p)).sum())


# -- the learned predictor ------------------------------------------------------------------


class _Features:
    """Degree-2 polynomial features of the decoded natural-space values (clipped, scaled)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, std: np.ndarray):
        self.lo, self.hi, self.mean, self.std = lo, hi, mean, std

    @staticmethod
    def base(t: np.ndarray, names: list[str], kinds: list[str]) -> np.ndarray:
        """The decoded values plus the physics a polynomial in them cannot form.

        ``log cosh eta``; with pt, eta and m: ``log E`` of the four-vector; with pt, eta, E
        and not m: ``log m``; with pt and charged_frac: ``log(pt charged_frac)`` (the track
        sum's estimate). Scale variables enter as logs.
        """
        cols = [t[:, i] for i in range(t.shape[1])]
        have = {v: t[:, i] for i, v in enumerate(names) if kinds[i] != "angle"}
        rel = {v for v, k in zip(names, kinds) if k == "relative"}
        if "eta" in have:
            lcosh = np.log(np.cosh(np.clip(have["eta"], -10, 10)))
            cols.append(lcosh)
            if {"pt", "m"} <= rel:
                lp = np.clip(have["pt"] + lcosh, -50, 50)  # log |p|
                lm = np.clip(np.where(np.isfinite(have["m"]), have["m"], -50), -50, 50)
                cols.append(0.5 * np.logaddexp(2 * lp, 2 * lm))
            elif {"pt", "E"} <= rel:
                lp = np.clip(have["pt"] + lcosh, -50, 50)
                le = np.clip(have["E"], -50, 50)
                m2 = np.exp(2 * le) - np.exp(2 * lp)
                cols.append(0.5 * np.log(np.maximum(m2, np.exp(2 * le) * 1e-6)))
        if "pt" in rel and "charged_frac" in have:
            cols.append(have["pt"] + np.log(np.clip(have["charged_frac"], 1e-3, None)))
        return np.stack(cols, axis=1) if cols else np.empty((len(t), 0))

    def apply(self, b: np.ndarray, coefs: list[np.ndarray]) -> list[np.ndarray]:
        """``self(b) @ c`` for each ``c`` of ``coefs``, without forming the features.

        Element-wise multiply-adds in a fixed order (no BLAS): the same numbers on any
        machine, so a decoder elsewhere picks the encoder's contexts; and 5-10x faster
        than the feature matrix (u^2/2 passes over n values instead of n x u^2/2 floats).
        """
        z = np.ascontiguousarray(((np.clip(b, self.lo, self.hi) - self.mean) / self.std).T)
        u, n = z.shape
        iu, ku = np.triu_indices(u)
        out = []
        tmp = np.empty(n)
        for c in coefs:
            acc = np.full(n, c[0])
            quad = c[1 + u :]
            q = 0
            for i in range(u):
                inner = np.full(n, c[1 + i])
                while q < len(quad) and iu[q] == i:  # a linear c: no quadratic terms
                    np.multiply(z[ku[q]], quad[q], out=tmp)
                    inner += tmp
                    q += 1
                inner *= z[i]
                acc += inner
            out.append(acc)
        return out

    def __call__(self, b: np.ndarray) -> np.ndarray:
        z = (np.clip(b, self.lo, self.hi) - self.mean) / self.std
        n, u = z.shape
        parts = [np.ones((n, 1)), z]
        if u:
            iu, ku = np.triu_indices(u)
            parts.append(z[:, iu] * z[:, ku])
        return np.concatenate(parts, axis=1)


def _ridge(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = f.T @ f
    a[np.diag_indices_from(a)] += 1e-6 * len(f) + 1e-9
    return np.linalg.solve(a, f.T @ y)


class _Coded:
    """What :meth:`PredictiveCodec.encode` gathers, table by table: the ANS blocks (symbols
    and their table), the tables and their counts, each position's alphabet (first code and
    size) and the values stored raw."""

    def __init__(self) -> None:
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.tables: list[np.ndarray] = []
        self.counts_of: list[np.ndarray] = []  # per table: symbol counts (descriptive)
        self.cmins: list[int] = []
        self.sizes: list[int] = []
        self.raws: list[np.ndarray] = []
        self.n_raw = 0

    def table(self, counts: np.ndarray) -> np.ndarray:
        """The table of ``counts`` (kept, with them)."""
        table = table_of(counts)
        self.tables.append(table)
        self.counts_of.append(counts)
        return table

    def context_tables(self, sym: np.ndarray, ctx: np.ndarray, size: int, contexts: int) -> float:
        """One table and block a context (a table for an empty context too, none of its
        block); returns the symbols' empirical entropy within their contexts, in bits."""
        ideal = 0.0
        for c in range(contexts):
            s = sym[ctx == c]
            counts = np.bincount(s, minlength=size)
            nz = counts[counts > 0]
            ideal += float(-(nz * np.log2(nz / nz.sum())).sum()) if len(s) else 0.0
            table = self.table(counts)
            if len(s):
                self.blocks.append((s.astype(np.int32), table))
        return ideal


class PredictiveCodec(BaseCodec):
    """Error-bounded predictive coding (see the module doc).

    Parameters
    ----------
    variables, kinds
        Variables and their bound kinds (``relative``, ``absolute``, ``angle``; default by
        name, :func:`default_kind`).
    bounds
        Bound per variable (a number, or a dict by name; default 1e-3).
    predictor
        ``none``, ``physics`` or ``linear``.
    order
        ``given`` or ``greedy`` (``linear`` only; the others keep the given order).
    contexts
        Residual tables per variable for ``linear`` (1: one table): ``value_bins`` bins of
        the predicted value (training quantiles), times ``contexts / value_bins`` bins of
        the residual's predicted size (``value_bins`` is 1 where it does not divide
        ``contexts``).
    value_bins
        See ``contexts``.
    """

    family = "pred"
    kinds: list[str]  # always set here (by name where not given)

    def __init__(
        self,
        variables: list[str],
        kinds: list[str] | None = None,
        bits: int | None = None,
        bounds: float | dict[str, float] | None = None,
        predictor: str = "linear",
        order: str | list[str] = "given",
        contexts: int = 16,
        value_bins: int = 4,
        max_fit_rows: int = 100_000,
        symbols: int = 2,
        order_rows: int = 20_000,
        seed: int = 0,
    ):
        super().__init__(variables, kinds, None)
        if predictor not in PREDICTORS:
            raise ValueError(f"unknown predictor {predictor!r} (have {', '.join(PREDICTORS)})")
        self.kinds = list(kinds) if kinds else [default_kind(v) for v in self.variables]
        if bounds is None:
            bounds = 1e-3
        if isinstance(bounds, dict):
            missing = [v for v in self.variables if v not in bounds]
            if missing:
                raise ValueError(f"no error bound for {', '.join(missing)}")
            self.bounds = [float(bounds[v]) for v in self.variables]
        else:
            self.bounds = [float(bounds)] * len(self.variables)
        if not all(b > 0 and math.isfinite(b) for b in self.bounds):
            raise ValueError("error bounds must be numbers > 0")
        self.steps = [step_of(k, b) for k, b in zip(self.kinds, self.bounds)]
        self.predictor = predictor
        self.order_mode = "given"
        self.order: list[int] = list(range(len(self.variables)))
        if isinstance(order, str) and order not in ("given", "greedy"):
            raise ValueError(f"unknown order {order!r} (given, greedy or a list of names)")
        if not isinstance(order, str):
            if sorted(order) != sorted(self.variables):
                raise ValueError("order: name every variable once")
            self.order = [self.variables.index(v) for v in order]
        elif predictor == "linear":
            self.order_mode = order
        self.n_contexts = max(1, int(contexts)) if predictor == "linear" else 1
        if symbols not in SYMBOL_LAYOUTS:
            raise ValueError(f"unknown symbol layout {symbols!r} (have 1, 2)")
        self.symbols = symbols
        # layout 1 has no exact-1 symbol and codes from 2 (and no value bins)
        self.offset = OFFSET if symbols == 2 else OFFSET - 1
        if symbols == 1:
            value_bins = 1
        vb = max(1, int(value_bins))
        self.n_value = vb if self.n_contexts % vb == 0 else 1
        self.n_scale = self.n_contexts // self.n_value
        self.max_fit_rows, self.order_rows, self.seed = max_fit_rows, order_rows, seed
        self.feat: list[_Features | None] = []
        self.coef: list[np.ndarray | None] = []
        self.scale_coef: list[np.ndarray | None] = []
        self.thresholds: list[np.ndarray] = []
        self.edges: list[np.ndarray] = []  # per position: thresholds of the predicted value
        self.fitted = predictor != "linear"
        # the dtype the decoded values are written in (a file's float32 columns): the
        # bound is checked on the values as written, so rounding cannot break it
        self.store_dtype: Any = None

    @property
    def name(self) -> str:
        return f"pred_{self.predictor}"

    # -- fitting -----------------------------------------------------------------------

    # Subclasses (hepae_core.codecs.pred_learned) may code ``n_latent`` latent values per jet
    # before the variables (``_latent``, step ``latent_step``) and derive from them
    # ``aux_names`` natural-space columns (``_aux``) that the predictors may use: the
    # decoded table ``dec_t`` holds the variables, then those columns.
    n_latent = 0
    latent_step = 1.0
    aux_names: list[str] = []

    def _latent(self, x: np.ndarray) -> np.ndarray:
        """(n, n_latent) latent values of the jets (the encoder's side only)."""
        return np.empty((len(x), 0))

    def _aux(self, zq: np.ndarray) -> np.ndarray:
        """(n, len(aux_names)) columns computed from the dequantised latent."""
        return np.empty((len(zq), 0))

    def _usable(self, pos: int) -> list[int]:
        """Columns of ``dec_t`` (variables decoded before position ``pos``, in order, then
        the auxiliary columns) usable as features."""
        d = len(self.variables)
        own = [j for j in self.order[:pos] if self.kinds[j] != "angle"]
        return own + list(range(d, d + len(self.aux_names)))

    def _base(self, t: np.ndarray, cols: list[int]) -> np.ndarray:
        names = self.variables + self.aux_names
        kinds = self.kinds + ["aux"] * len(self.aux_names)
        return _Features.base(t[:, cols], [names[j] for j in cols], [kinds[j] for j in cols])

    def _natural(self, x: np.ndarray) -> np.ndarray:
        """Natural-space table of the variables, then the auxiliary columns (fitting)."""
        t = np.stack([to_natural(x[:, j], k) for j, k in enumerate(self.kinds)], axis=1)
        if not self.aux_names:
            return t
        z = self._latent(x)
        zq = np.rint(np.where(np.isfinite(z), z, 0.0) / self.latent_step) * self.latent_step
        return np.concatenate([t, self._aux(zq)], axis=1)

    def _fit_one(
        self, t: np.ndarray, cols: list[int], j: int
    ) -> tuple[_Features | None, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
        """Regression of variable ``j`` on ``cols`` (and of its residual's size), and the
        value bins: (features, coefficients, size coefficients, size thresholds, edges)."""
        none = None, None, None, np.empty(0), np.empty(0)
        y = t[:, j]
        ok = np.isfinite(y) & np.isfinite(t[:, cols]).all(axis=1) & (y != 0)  # 0: a symbol
        if self.kinds[j] == "angle" or not cols or ok.sum() < 10:
            return none
        b = self._base(t[ok], cols)
        lo, hi = b.min(axis=0), b.max(axis=0)
        mean, std = b.mean(axis=0), b.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        feat = _Features(*(a.astype(np.float32).astype(np.float64) for a in (lo, hi, mean, std)))
        f = feat(b)
        coef = _ridge(f, y[ok]).astype(np.float32).astype(np.float64)
        pred = f @ coef
        r = (y[ok] - pred) / self.steps[j]
        scale, thr, edges = None, np.empty(0), np.empty(0)
        if self.n_scale > 1:
            a = np.log(np.abs(r) + 0.5)
            # the residual's size from the linear terms only: half the cost of a prediction
            lin = f[:, : 1 + b.shape[1]]
            scale = _ridge(lin, a).astype(np.float32).astype(np.float64)
            qs = np.quantile(lin @ scale, np.arange(1, self.n_scale) / self.n_scale)
            thr = np.asarray(qs, np.float32).astype(np.float64)
        if self.n_value > 1:
            # the predicted value itself: a fraction predicted near 0 or 1 has its residual
            # cut off on one side and its exact 0 or 1 likely, a mass or width near its
            # lower end a skewed residual (quantiles over every jet, the exact zeros
            # included: where they are likely is the point)
            every = np.isfinite(y) & np.isfinite(t[:, cols]).all(axis=1)
            pred = feat(self._base(t[every], cols)) @ coef
            qs = np.quantile(pred, np.arange(1, self.n_value) / self.n_value)
            edges = np.asarray(qs, np.float32).astype(np.float64)
        return feat, coef, scale, thr, edges

    def _coef(self, pos: int) -> np.ndarray:
        c = self.coef[pos]
        assert c is not None
        return c

    def _value_bin(self, pos: int, p: np.ndarray) -> np.ndarray:
        """The value bin of prediction ``p`` at ``pos`` (0 without value bins)."""
        e = self.edges[pos] if self.edges else np.empty(0)
        if self.n_value == 1 or not len(e):
            return np.zeros(len(p), np.int64)
        return np.searchsorted(e, p)

    def fit(self, train: np.ndarray) -> None:
        if self.predictor != "linear":
            return
        x = np.asarray(train, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        if len(x) > self.max_fit_rows:
            x = x[rng.choice(len(x), self.max_fit_rows, replace=False)]
        t = self._natural(x)
        if self.order_mode == "greedy":
            self.order = self._greedy(t[: self.order_rows])
        self.feat, self.coef, self.scale_coef, self.thresholds, self.edges = [], [], [], [], []
        for pos, j in enumerate(self.order):
            feat, coef, scale, thr, edges = self._fit_one(t, self._usable(pos), j)
            self.feat.append(feat)
            self.coef.append(coef)
            self.scale_coef.append(scale)
            self.thresholds.append(thr)
            self.edges.append(edges)
        self.fitted = True

    def _greedy(self, t: np.ndarray) -> list[int]:
        """Cheapest next variable (least residual-code entropy given those chosen)."""
        chosen: list[int] = []
        left = list(range(len(self.variables)))
        while left:
            cols = [j for j in chosen if self.kinds[j] != "angle"]
            best, best_h = left[0], math.inf
            for j in left:
                y = t[:, j]
                feat, coef = self._fit_one(t, cols, j)[:2] if cols else (None, None)
                ok = np.isfinite(y) & np.isfinite(t[:, cols]).all(axis=1)
                p = feat(self._base(t[ok], cols)) @ coef if feat is not None else 0.0
                h = entropy_bits(quantise_residual(y[ok] - p, self.steps[j])) / max(ok.sum(), 1)
                if h < best_h:
                    best, best_h = j, h
            chosen.append(best)
            left.remove(best)
        return chosen

    # -- model bytes -------------------------------------------------------------------

    def _n_base(self, pos: int) -> int:
        cols = self._usable(pos)
        width = len(self.variables) + len(self.aux_names)
        return self._base(np.zeros((1, width)), cols).shape[1] if cols else 0

    def model_blob(self) -> bytes | None:
        """The learned parameters as a file stores them once: the order (one byte a
        variable), then per position with a regression its float32 clip ranges, means,
        scales, coefficients (and the size regression and context thresholds).
        None for ``none`` and ``physics`` (nothing learnt)."""
        if self.predictor != "linear":
            return None
        parts = [np.asarray(self.order, np.uint8).tobytes()]
        for pos, feat in enumerate(self.feat):
            if feat is None:
                continue
            arrays = [feat.lo, feat.hi, feat.mean, feat.std, self.coef[pos]]
            if self.scale_coef[pos] is not None:
                arrays += [self.scale_coef[pos], self.thresholds[pos]]
            arrays.append(self.edges[pos])
            parts += [np.asarray(a, np.float32).tobytes() for a in arrays]
        return b"".join(parts)

    def load_model_blob(self, blob: bytes) -> None:
        """Take the parameters :meth:`model_blob` wrote (same variables, kinds, bounds,
        predictor and contexts): what a reader of the file needs besides the file."""
        if self._load_blob(blob) != len(blob):
            raise ValueError("predictive model: the parameters do not fit this codec")
        self.fitted = True

    def _load_blob(self, blob: bytes) -> int:
        """Read :meth:`model_blob`'s part from the start of ``blob``; bytes read."""
        d = len(self.variables)
        self.order = [int(v) for v in np.frombuffer(blob[:d], np.uint8)]
        off = d
        self.feat, self.coef, self.scale_coef, self.thresholds, self.edges = [], [], [], [], []

        def take(k: int) -> np.ndarray:
            nonlocal off
            a = np.frombuffer(blob[off : off + 4 * k], np.float32).astype(np.float64)
            off += 4 * k
            return a

        for pos, j in enumerate(self.order):
            u = self._n_base(pos)
            if self.kinds[j] == "angle" or not u:
                self.feat.append(None)
                self.coef.append(None)
                self.scale_coef.append(None)
                self.thresholds.append(np.empty(0))
                self.edges.append(np.empty(0))
                continue
            p = 1 + u + u * (u + 1) // 2
            self.feat.append(_Features(take(u), take(u), take(u), take(u)))
            self.coef.append(take(p))
            if self.n_scale > 1:
                self.scale_coef.append(take(1 + u))
                self.thresholds.append(take(self.n_scale - 1))
            else:
                self.scale_coef.append(None)
                self.thresholds.append(np.empty(0))
            self.edges.append(take(self.n_value - 1) if self.n_value > 1 else np.empty(0))
        if off > len(blob):
            raise ValueError("predictive model: the parameters do not fit this codec")
        return off

    @property
    def model_bytes(self) -> int:  # type: ignore[override]
        blob = self.model_blob()
        return len(blob) if blob else 0

    # -- prediction (shared by encoder and decoder) ------------------------------------

    def _predict(self, dec_t: np.ndarray, pos: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, context) of the variable at ``pos`` from decoded natural values."""
        j = self.order[pos]
        ctx = np.zeros(n, np.int64)
        if self.predictor == "physics":
            names = self.variables
            before = {names[i] for i in self.order[:pos]}
            if names[j] == "E" and {"pt", "eta"} <= before:
                pt = dec_t[:, names.index("pt")]
                eta = np.clip(dec_t[:, names.index("eta")], -20, 20)
                if self.kinds[names.index("pt")] != "relative":
                    pt = np.log(np.abs(pt))
                p = pt + np.log(np.cosh(eta))
                return np.where(np.isfinite(p), p, 0.0), ctx
            return np.zeros(n), ctx
        if self.predictor == "none" or not self.feat or self.feat[pos] is None:
            return np.zeros(n), ctx
        feat = self.feat[pos]
        assert feat is not None
        b = self._base(dec_t, self._usable(pos))
        b = np.where(np.isfinite(b), b, feat.lo)  # a raw/zero value: clipped
        scale = self.scale_coef[pos]
        coefs = [self._coef(pos)] + ([scale] if scale is not None else [])
        out = feat.apply(b, coefs)
        if scale is not None:
            ctx = np.searchsorted(self.thresholds[pos], out[1])
        return out[0], ctx * self.n_value + self._value_bin(pos, out[0])

    # -- coding ------------------------------------------------------------------------

    def encode(self, x: np.ndarray) -> Encoded:
        import constriction

        if not self.fitted:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        x = np.asarray(x, dtype=np.float64)
        n, d = x.shape
        # decoded natural-space values (the predictors' input), then the auxiliary columns
        dec_t = np.full((n, d + len(self.aux_names)), np.nan)
        acc = _Coded()
        latent_bits = self._encode_latent(x, dec_t, acc) if self.n_latent else []
        ideal_bits: list[float] = []  # empirical entropy per jet, per position (descriptive)
        for pos in range(len(self.order)):
            sym, ctx, size = self._encode_position(x, dec_t, pos, acc)
            ideal = acc.context_tables(sym, ctx, size, self.n_contexts)
            ideal_bits.append(round(ideal / max(n, 1), 3))
        coder = constriction.stream.stack.AnsCoder()
        for s, table in reversed(acc.blocks):  # a stack: decoded in the opposite order
            coder.encode_reverse(s, _categorical(table))
        words = coder.get_compressed().astype(np.uint32)
        tables = zlib.compress(np.concatenate(acc.tables).tobytes(), 9)
        side: dict[str, np.ndarray] = {
            "tables": np.frombuffer(tables, np.uint8),
            "cmin": np.asarray(acc.cmins, np.int32),
            "size": np.asarray(acc.sizes, np.int32),
            "raw": np.concatenate(acc.raws) if acc.raws else np.empty(0),
        }
        attrs = {"predictor": self.predictor, "order": list(self.order),
                 "contexts": self.n_contexts, "bounds": list(self.bounds),
                 "kinds": list(self.kinds), "ideal_bits": ideal_bits,
                 "latent_bits": latent_bits}  # fmt: skip
        # the symbol counts of each table of the last encode, with each position's cmin
        # (descriptive: the cross-entropy of one file's symbols under another's tables)
        self.last_counts = (acc.counts_of, list(acc.cmins), self.n_contexts)
        return Encoded(n, {"ans": words}, side, acc.n_raw, attrs)

    def _encode_latent(self, x: np.ndarray, dec_t: np.ndarray, acc: _Coded) -> list[float]:
        """Code the latent (before the variables); fills ``dec_t``'s auxiliary columns.
        Returns each latent's empirical entropy per jet (descriptive)."""
        # its codes need no bound (any value is a valid latent), so out-of-alphabet codes
        # are clamped, never escaped
        n, d = x.shape
        z = self._latent(x)
        code = np.rint(np.where(np.isfinite(z), z, 0.0) / self.latent_step)
        latent_bits = []
        for col in code.T:
            cmin, cmax = _alphabet(col, self.offset)
            col[:] = np.clip(col, cmin, cmax)
            sym = (col - cmin + self.offset).astype(np.int64)
            size = cmax - cmin + 1 + self.offset
            table = acc.table(np.bincount(sym, minlength=size))
            acc.blocks.append((sym.astype(np.int32), table))
            acc.cmins.append(cmin)
            acc.sizes.append(size)
            latent_bits.append(round(entropy_bits(sym) / max(n, 1), 3))
        dec_t[:, d:] = self._aux(code * self.latent_step)
        return latent_bits

    def _encode_position(
        self, x: np.ndarray, dec_t: np.ndarray, pos: int, acc: _Coded
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The symbols of the variable at ``pos``, each value checked against its bound
        (a miss goes raw, into ``acc``); fills its decoded column of ``dec_t``. Returns
        (symbols, contexts, alphabet size)."""
        n = len(x)
        j = self.order[pos]
        kind, bound, step = self.kinds[j], self.bounds[j], self.steps[j]
        xj = x[:, j]
        t = to_natural(xj, kind)
        p, ctx = self._predict(dec_t, pos, n)
        code = quantise_residual(t - p, step)
        finite = np.isfinite(code)
        cmin, cmax = _alphabet(code[finite], self.offset)
        sym = np.full(n, ESC, np.int64)
        inside = finite & (code >= cmin) & (code <= cmax)
        sym[inside] = (code[inside] - cmin + self.offset).astype(np.int64)
        value = from_natural(p + np.where(inside, code, 0.0) * step, kind)
        # the bound, checked on every value: a miss goes raw
        stored = value if self.store_dtype is None else value.astype(self.store_dtype)
        good = inside & within(stored.astype(np.float64), xj, kind, bound)
        sym[~good] = ESC
        # exactly 0 has its own symbol: a scale variable's log has none, and a
        # fraction's point mass at 0 (no neutral hadrons: 42 % of the dijet jets)
        # costs one likely symbol instead of the predictor's spread around it; so
        # has an absolute variable's exactly 1 (the fraction's other edge)
        zero = xj == 0
        sym[zero] = ZERO
        value[zero] = 0.0
        if kind == "absolute" and self.symbols == 2:
            one = xj == 1.0
            sym[one] = ONE
            value[one] = 1.0
        value[sym == ESC] = xj[sym == ESC]
        acc.raws.append(xj[sym == ESC])
        acc.n_raw += int((sym == ESC).sum())
        dec_t[:, j] = to_natural(value, kind)
        size = cmax - cmin + 1 + self.offset
        acc.cmins.append(cmin)
        acc.sizes.append(size)
        return sym, ctx, size

    def decode(self, enc: Encoded) -> np.ndarray:
        import constriction

        n, d = enc.n, len(self.variables)
        tables = np.frombuffer(zlib.decompress(enc.side["tables"].tobytes()), np.uint8)
        cmin = enc.side["cmin"].astype(np.int64)
        sizes = enc.side["size"].astype(np.int64)
        if len(cmin) != self.n_latent + d or len(sizes) != len(cmin):
            raise ValueError("the codes' alphabets are not one per variable")
        raw = np.asarray(enc.side["raw"], np.float64)
        coder = constriction.stream.stack.AnsCoder(np.asarray(enc.payload["ans"], np.uint32))
        dec_t = np.full((n, d + len(self.aux_names)), np.nan)
        out = np.empty((n, d))
        off = raw_off = 0
        if self.n_latent:
            code = np.empty((n, self.n_latent))
            for i in range(self.n_latent):
                table = tables[off : off + sizes[i]]
                off += sizes[i]
                code[:, i] = coder.decode(_categorical(table), n) - self.offset + cmin[i]
            dec_t[:, d:] = self._aux(code * self.latent_step)
        for pos, j in enumerate(self.order):
            at = self.n_latent + pos
            kind, step = self.kinds[j], self.steps[j]
            p, ctx = self._predict(dec_t, pos, n)
            sym = np.empty(n, np.int64)
            for c in range(self.n_contexts):
                table = tables[off : off + sizes[at]]
                off += sizes[at]
                idx = np.flatnonzero(ctx == c)
                if len(idx):
                    sym[idx] = coder.decode(_categorical(table), len(idx))
            code = np.where(sym >= self.offset, sym - self.offset + cmin[at], 0).astype(np.float64)
            value = from_natural(p + code * step, kind)
            value[sym == ZERO] = 0.0
            if self.symbols == 2:
                value[sym == ONE] = 1.0
            esc = np.flatnonzero(sym == ESC)
            value[esc] = raw[raw_off : raw_off + len(esc)]
            raw_off += len(esc)
            out[:, j] = value
            dec_t[:, j] = to_natural(value, kind)
        return out


def _alphabet(codes: np.ndarray, offset: int = OFFSET) -> tuple[int, int]:
    """The file's code range; codes beyond ``MAX_ALPHABET`` symbols around the median go
    raw (escape)."""
    if not codes.size:
        return 0, 0
    lo, hi = int(codes.min()), int(codes.max())
    if hi - lo + 1 + offset > MAX_ALPHABET:
        mid = int(np.median(codes))
        half = (MAX_ALPHABET - offset) // 2 - 1
        lo, hi = max(lo, mid - half), min(hi, mid + half)
    return lo, hi
