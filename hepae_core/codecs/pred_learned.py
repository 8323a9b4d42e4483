"""Learned predictors for the error-bounded predictive codec (:mod:`hepae_core.codecs.predictive`).

Two ways a network can be the predictor, both coding every value to its bound exactly as
:class:`~hepae_core.codecs.predictive.PredictiveCodec` does (the residual against the prediction,
quantised to twice the bound, checked on every value, ANS-coded per file):

:class:`MLPPredictiveCodec` (``pred_mlp``)
    conditional prediction: per variable, a small ReLU network on the same inputs as the
    polynomial (the variables decoded before it) adds a correction to the polynomial's
    prediction and predicts the size of the remaining residual, whose training quantiles
    choose the residual's table (the context). A variable keeps its network only where it
    stores at least ``min_gain`` bits a jet less than the polynomial on held-out fit jets
    (on the dijet jets: E and the neutral-hadron fraction), so the others cost no time.
:class:`AutoencoderPredictiveCodec` (``pred_ae``, ``pred_ae_linear``)
    the autoencoder as predictor: an encoder maps the jet (natural space, phi left out) to
    ``latent`` values in (-1, 1), quantised to ``2**latent_bits`` levels and ANS-coded first;
    the decoder's output for each variable is then the predictor's input (alone:
    ``pred_ae``; beside the variables decoded before it: ``pred_ae_linear``), through the
    same degree-2 regression and contexts as ``linear``.

Both networks are trained at :meth:`fit` time (torch, a few epochs on a subsample, one
thread) and evaluated in numpy at codec time. A matrix product's last bits depend on the
BLAS and the machine; what the decoder must reproduce exactly (the prediction and the
context) is therefore snapped to a grid (``GRID`` of a quantiser step for a prediction,
``GRID`` for a log-size), so that an ulp of difference changes nothing unless a value lies
within an ulp of a grid point's edge (about 1e-12 of the values; not tested across
machines). The weights (float32) are model bytes, written once per file.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from hepae_core.codecs.predictive import PredictiveCodec, to_natural

GRID = 2.0**-12  # what the decoder must reproduce is snapped to this grid

Layers = list[tuple[np.ndarray, np.ndarray]]


def snap(v: np.ndarray, grid: float) -> np.ndarray:
    """``v`` rounded to a multiple of ``grid`` (BLAS ulps no longer matter)."""
    return np.rint(v / grid) * grid


def forward(z: np.ndarray, layers: Layers, last: str = "none") -> np.ndarray:
    """A ReLU network in numpy (float64): hidden layers ReLU, the last ``none``/``tanh``."""
    h = z
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            np.maximum(h, 0.0, out=h)
    return np.tanh(h) if last == "tanh" else h


def _torch_layers(sizes: list[int], seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    mods: list[Any] = []
    for i in range(len(sizes) - 1):
        mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def _numpy_layers(net: Any) -> Layers:
    """float32 weights (as stored), as float64 (as evaluated)."""
    out = []
    for m in net:
        if hasattr(m, "weight"):
            w = m.weight.detach().numpy().T.astype(np.float32).astype(np.float64)
            b = m.bias.detach().numpy().astype(np.float32).astype(np.float64)
            out.append((np.ascontiguousarray(w), b))
    return out


def _layers_bytes(layers: Layers) -> bytes:
    return b"".join(np.asarray(a, np.float32).tobytes() for wb in layers for a in wb)


class _Reader:
    """float32 arrays read one after the other from a blob."""

    def __init__(self, blob: bytes, off: int):
        self.blob, self.off = blob, off

    def take(self, k: int) -> np.ndarray:
        if self.off + 4 * k > len(self.blob):
            raise ValueError("predictive model: the parameters do not fit this codec")
        a = np.frombuffer(self.blob[self.off : self.off + 4 * k], np.float32)
        self.off += 4 * k
        return a.astype(np.float64)

    def layers(self, sizes: list[int]) -> Layers:
        return [
            (self.take(a * b).reshape(a, b), self.take(b)) for a, b in itertools.pairwise(sizes)
        ]


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread (:func:`hepae_core.codecs.codec.one_blas_thread`): small
    matrices, and a shared machine's BLAS threads wait on each other."""
    from hepae_core.codecs.codec import one_blas_thread

    return one_blas_thread()


def _threads() -> Any:
    """Train on one thread (the machine is shared; the codec itself runs on one core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def _held_out_bits(codes: np.ndarray, ctx: np.ndarray, fit: np.ndarray) -> float:
    """Bits of the codes of the rows not in ``fit`` under one table per context counted on
    the rows in ``fit`` (add-half smoothing over the codes seen in either)."""
    total = 0.0
    for c in np.unique(ctx):
        a, b = codes[fit & (ctx == c)], codes[~fit & (ctx == c)]
        if not len(b):
            continue
        ka, na = np.unique(a, return_counts=True)
        kb, nb = np.unique(b, return_counts=True)
        hit = np.zeros(len(kb))
        if len(ka):
            i = np.minimum(np.searchsorted(ka, kb), len(ka) - 1)
            hit = np.where(ka[i] == kb, na[i], 0)
        p = (hit + 0.5) / (len(a) + 0.5 * len(np.union1d(ka, kb)))
        total -= float((nb * np.log2(p)).sum())
    return total


class MLPPredictiveCodec(PredictiveCodec):
    """The polynomial predictor plus a small ReLU network per variable (module doc).

    Parameters
    ----------
    hidden
        Hidden units (one hidden layer).
    epochs, train_rows, batch
        Training of each network (Adam, L1 loss on the correction, squared loss on the
        log-size of the residual left).
    **options
        As :class:`~hepae_core.codecs.predictive.PredictiveCodec` (bounds, order, contexts).
    """

    def __init__(
        self,
        variables: list[str],
        kinds: list[str] | None = None,
        bits: int | None = None,
        hidden: int = 32,
        epochs: int = 8,
        train_rows: int = 50_000,
        batch: int = 256,
        min_gain: float = 0.05,
        lr: float = 1e-2,
        **options: Any,
    ):
        options["predictor"] = "linear"
        super().__init__(variables, kinds, bits, **options)
        self.hidden, self.epochs, self.train_rows, self.batch = hidden, epochs, train_rows, batch
        self.min_gain, self.lr = min_gain, lr
        self.gains: dict[str, float] = {}  # bits a jet saved on held-out jets, per variable
        self.mlp: list[Layers | None] = []
        self.rscale: list[float] = []

    @property
    def name(self) -> str:
        return "pred_mlp"

    def fit(self, train: np.ndarray) -> None:
        import torch

        super().fit(train)
        x = np.asarray(train, np.float64)
        rng = np.random.default_rng(self.seed + 1)
        if len(x) > self.train_rows:
            x = x[rng.choice(len(x), self.train_rows, replace=False)]
        t = self._natural(x)
        held = np.arange(len(t)) % 5 == 0  # a fifth held out: is the network worth it?
        self.mlp, self.rscale, self.gains = [], [], {}
        before = _threads()
        try:
            for pos, j in enumerate(self.order):
                feat = self.feat[pos]
                if feat is None:
                    self.mlp.append(None)
                    self.rscale.append(1.0)
                    continue
                cols = self._usable(pos)
                b = self._base(t, cols)
                y = t[:, j]
                ok = np.isfinite(y) & np.isfinite(b).all(axis=1) & (x[:, j] != 0)
                b, y = b[ok], y[ok]
                poly = feat.apply(b, [self._coef(pos)])[0]
                r = (y - poly) / self.steps[j]  # in quantiser steps
                s = float(np.float32(max(np.std(r), 1.0)))
                z = (np.clip(b, feat.lo, feat.hi) - feat.mean) / feat.std
                net = _torch_layers([z.shape[1], self.hidden, 2], self.seed + pos)
                opt = torch.optim.Adam(net.parameters(), lr=self.lr)
                fit_rows = ~held[ok]
                steps = self.epochs * -(-int(fit_rows.sum()) // self.batch)
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.lr, total_steps=steps)
                zt = torch.tensor(z[fit_rows], dtype=torch.float32)
                rt = torch.tensor(r[fit_rows] / s, dtype=torch.float32)
                floor = 0.5 / s  # a residual under half a step costs the same as none
                g = torch.Generator().manual_seed(self.seed + pos)
                for _ in range(self.epochs):
                    for idx in torch.randperm(len(zt), generator=g).split(self.batch):
                        out = net(zt[idx])
                        left = rt[idx] - out[:, 0]
                        target = torch.log(left.detach().abs() + floor)
                        loss = left.abs().mean() + 0.1 * ((out[:, 1] - target) ** 2).mean()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        sched.step()
                layers = _numpy_layers(net)
                out = forward(z, layers)
                thr = self.thresholds[pos]
                if self.n_scale > 1:
                    ls = snap(out[:, 1], GRID)
                    qs = np.quantile(ls[fit_rows], np.arange(1, self.n_scale) / self.n_scale)
                    thr = snap(np.asarray(qs), GRID)
                # held-out entropy of the codes, polynomial (its contexts) against network
                # held-out cost of the codes under tables counted on the fitting rows,
                # polynomial (its contexts) against network (a held-out set's own
                # entropy would flatter whichever splits a wide alphabet into more tables)
                base_ctx = np.zeros(len(b), np.int64)
                if self.scale_coef[pos] is not None:
                    size = feat.apply(b, [self.scale_coef[pos]])[0]  # type: ignore[list-item]
                    base_ctx = np.searchsorted(self.thresholds[pos], size)
                net_ctx = np.searchsorted(thr, snap(out[:, 1], GRID)) if len(thr) else base_ctx
                corr = snap(out[:, 0] * s, GRID)
                base_ctx = base_ctx * self.n_value + self._value_bin(pos, poly)
                net_ctx = net_ctx * self.n_value + self._value_bin(pos, poly + corr * self.steps[j])
                h_poly = _held_out_bits(np.rint(r), base_ctx, fit_rows)
                h_net = _held_out_bits(np.rint(r - corr), net_ctx, fit_rows)
                gain = (h_poly - h_net) / max(int((~fit_rows).sum()), 1)
                self.gains[self.variables[j]] = round(gain, 3)
                if gain < self.min_gain:
                    self.mlp.append(None)
                    self.rscale.append(1.0)
                    continue
                self.mlp.append(layers)
                self.rscale.append(s)
                self.thresholds[pos] = thr
        finally:
            torch.set_num_threads(before)

    def encode(self, x: np.ndarray) -> Any:
        with _one_blas_thread():
            return super().encode(x)

    def decode(self, enc: Any) -> np.ndarray:
        with _one_blas_thread():
            return super().decode(enc)

    def _predict(self, dec_t: np.ndarray, pos: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.mlp or self.mlp[pos] is None:
            return super()._predict(dec_t, pos, n)
        feat, layers = self.feat[pos], self.mlp[pos]
        assert feat is not None and layers is not None
        b = self._base(dec_t, self._usable(pos))
        b = np.where(np.isfinite(b), b, feat.lo)
        poly = feat.apply(b, [self._coef(pos)])[0]
        out = forward((np.clip(b, feat.lo, feat.hi) - feat.mean) / feat.std, layers)
        step = self.steps[self.order[pos]]
        p = poly + snap(out[:, 0] * self.rscale[pos], GRID) * step
        ctx = np.zeros(n, np.int64)
        if self.n_scale > 1:
            ctx = np.searchsorted(self.thresholds[pos], snap(out[:, 1], GRID))
        return p, ctx * self.n_value + self._value_bin(pos, p)

    def model_blob(self) -> bytes | None:
        kept = [m is not None for m in self.mlp]
        parts = [super().model_blob() or b"", np.asarray(kept, np.uint8).tobytes()]
        for layers, s in zip(self.mlp, self.rscale):
            if layers is not None:
                parts += [np.float32(s).tobytes(), _layers_bytes(layers)]
        return b"".join(parts)

    def _load_blob(self, blob: bytes) -> int:
        off = super()._load_blob(blob)
        d = len(self.order)
        kept = np.frombuffer(blob[off : off + d], np.uint8)
        if len(kept) != d or any(k and self.feat[i] is None for i, k in enumerate(kept)):
            raise ValueError("predictive model: the parameters do not fit this codec")
        r = _Reader(blob, off + d)
        self.mlp, self.rscale = [], []
        for pos in range(d):
            if not kept[pos]:
                self.mlp.append(None)
                self.rscale.append(1.0)
                continue
            self.rscale.append(float(r.take(1)[0]))
            self.mlp.append(r.layers([self._n_base(pos), self.hidden, 2]))
        return r.off


class AutoencoderPredictiveCodec(PredictiveCodec):
    """The autoencoder as predictor: a coded latent, then residuals (module doc).

    Parameters
    ----------
    latent, latent_bits
        Latent size and levels (``2**latent_bits`` over (-1, 1)).
    use_decoded
        Predict each variable from the decoder's output for it AND the variables decoded
        before it (``pred_ae_linear``), or from the decoder's output alone (``pred_ae``).
    hidden, epochs, train_rows, batch
        The autoencoder (two hidden ReLU layers of ``hidden`` on each side; MSE on the
        standardised natural-space values, the latent's quantisation noise added while
        training so the decoder is trained on the latent it will get).
    """

    def __init__(
        self,
        variables: list[str],
        kinds: list[str] | None = None,
        bits: int | None = None,
        latent: int = 6,
        latent_bits: int = 8,
        use_decoded: bool = True,
        hidden: int = 64,
        epochs: int = 8,
        train_rows: int = 100_000,
        batch: int = 256,
        **options: Any,
    ):
        options["predictor"] = "linear"
        super().__init__(variables, kinds, bits, **options)
        self.ae_vars = [j for j, k in enumerate(self.kinds) if k != "angle"]
        self.aux_names = [f"ae:{self.variables[j]}" for j in self.ae_vars]
        self.n_latent, self.latent_bits = int(latent), int(latent_bits)
        self.latent_step = 2.0 / (1 << self.latent_bits)
        self.use_decoded = use_decoded
        self.hidden, self.epochs, self.train_rows, self.batch = hidden, epochs, train_rows, batch
        self.enc_layers: Layers = []
        self.dec_layers: Layers = []
        self.norm = np.zeros((4, len(self.ae_vars)))  # lo, hi, mean, std (natural space)

    @property
    def name(self) -> str:
        return "pred_ae_linear" if self.use_decoded else "pred_ae"

    def _usable(self, pos: int) -> list[int]:
        j = self.order[pos]
        own = [i for i in self.order[:pos] if self.kinds[i] != "angle"] if self.use_decoded else []
        if j not in self.ae_vars:
            return own
        return [*own, len(self.variables) + self.ae_vars.index(j)]

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        t = np.stack([to_natural(x[:, j], self.kinds[j]) for j in self.ae_vars], axis=1)
        lo, hi, mean, std = self.norm
        t = np.where(np.isfinite(t), t, lo)  # log 0: the training minimum
        return (np.clip(t, lo, hi) - mean) / std

    def encode(self, x: np.ndarray) -> Any:
        with _one_blas_thread():
            return super().encode(x)

    def decode(self, enc: Any) -> np.ndarray:
        with _one_blas_thread():
            return super().decode(enc)

    def _latent(self, x: np.ndarray) -> np.ndarray:
        return forward(self._inputs(x), self.enc_layers, last="tanh")

    def _aux(self, zq: np.ndarray) -> np.ndarray:
        _, _, mean, std = self.norm
        out = forward(zq, self.dec_layers) * std + mean
        steps = np.asarray([self.steps[j] for j in self.ae_vars])
        return snap(out / steps, GRID) * steps

    def fit(self, train: np.ndarray) -> None:
        import torch

        x = np.asarray(train, np.float64)
        rng = np.random.default_rng(self.seed + 2)
        if len(x) > self.train_rows:
            x = x[rng.choice(len(x), self.train_rows, replace=False)]
        t = np.stack([to_natural(x[:, j], self.kinds[j]) for j in self.ae_vars], axis=1)
        fin = np.where(np.isfinite(t), t, np.nan)
        lo, hi = np.nanmin(fin, axis=0), np.nanmax(fin, axis=0)
        mean, std = np.nanmean(fin, axis=0), np.nanstd(fin, axis=0)
        std = np.where(std > 0, std, 1.0)
        self.norm = np.stack([lo, hi, mean, std]).astype(np.float32).astype(np.float64)
        z = torch.tensor(self._inputs(x), dtype=torch.float32)
        d, h, k = z.shape[1], self.hidden, self.n_latent
        enc = _torch_layers([d, h, h, k], self.seed)
        dec = _torch_layers([k, h, h, d], self.seed + 1)
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        g = torch.Generator().manual_seed(self.seed)
        before = _threads()
        try:
            for _ in range(self.epochs):
                for idx in torch.randperm(len(z), generator=g).split(self.batch):
                    lat = torch.tanh(enc(z[idx]))
                    noise = (torch.rand(lat.shape, generator=g) - 0.5) * self.latent_step
                    loss = ((dec(lat + noise) - z[idx]) ** 2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                sched.step()
        finally:
            torch.set_num_threads(before)
        self.enc_layers, self.dec_layers = _numpy_layers(enc), _numpy_layers(dec)
        super().fit(train)

    def _sizes(self) -> tuple[list[int], list[int]]:
        d, h, k = len(self.ae_vars), self.hidden, self.n_latent
        return [d, h, h, k], [k, h, h, d]

    def model_blob(self) -> bytes | None:
        norm = np.asarray(self.norm, np.float32).tobytes()
        enc, dec = _layers_bytes(self.enc_layers), _layers_bytes(self.dec_layers)
        return b"".join([super().model_blob() or b"", norm, enc, dec])

    def _load_blob(self, blob: bytes) -> int:
        # the autoencoder first in reading order would be natural, but the base part's
        # size does not depend on it: read the base part, then the networks
        r = _Reader(blob, super()._load_blob(blob))
        self.norm = r.take(4 * len(self.ae_vars)).reshape(4, -1)
        enc, dec = self._sizes()
        self.enc_layers, self.dec_layers = r.layers(enc), r.layers(dec)
        return r.off
