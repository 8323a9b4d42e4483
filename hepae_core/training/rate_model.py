"""Rate-aware training: the latent quantised in the loop, and a learned entropy model of it.

``train.rate_lambda: L`` (> 0) trains the autoencoder for a codec that stores its latent
rounded to integers and entropy-codes it (docs/rate_aware.md). The loss becomes

    mse(decode(q(z)), x) + L * bits(q(z))

with ``z = encode(x)``, ``q`` the quantiser of the training step (``train.rate_quantise``):

``noise``
    ``z + u``, ``u`` uniform in [-1/2, 1/2) (Balle et al.'s additive-noise proxy: the noisy
    latent has the density of the rounded one smoothed over a cell);
``ste``
    ``round(z)`` forward, identity backward (straight-through).

and ``round(z)`` in evaluation (validation, test, the codec). ``bits`` is what a
:class:`FactorisedPrior` says the rounded latent costs: each latent dimension has its own
learned density, a mixture of logistics, and an integer ``k`` has probability
``P(k) = CDF(k + 1/2) - CDF(k - 1/2)``; ``bits = -sum_d log2 P(z_d)``. The prior is trained
with the autoencoder (its parameters are in the same optimiser), so its rate is a
cross-entropy: the cost an arithmetic coder using this prior would pay. The step is one
latent unit: the encoder's last layer is linear, so it learns the scale, i.e. how many
cells each dimension spends, trading ``L`` bits against the distortion.

The prior is saved in model.pt under ``rate_model`` (:meth:`FactorisedPrior.to_payload`,
plain tensors and numbers), read back by :func:`prior_from_payload`; :func:`pmf_table`
gives the probabilities of a range of integers for an entropy coder (``constriction``'s
categorical). ``train.rate_lambda: 0`` (the default) changes nothing: no prior, no
quantisation, the training of before, bit for bit.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

QUANTISE_MODES = ("noise", "ste")
MIXTURES = 3
#: Probabilities are floored here (about 30 bits a value): a latent far in a tail costs a
#: bounded amount, as compressai's likelihood bound.
LIKELIHOOD_BOUND = 1e-9
#: The prior's overall spread per dimension is ``exp(SPREAD_GAIN * theta)``: Adam moves
#: ``theta`` by about the learning rate per step, so the spread follows a latent that the
#: encoder widens or narrows SPREAD_GAIN times faster than a plain log-scale would.
SPREAD_GAIN = 10.0
PRIOR_KIND = "logistic_mixture"


class FactorisedPrior(nn.Module):
    """A learned density per latent dimension: a mixture of ``mixtures`` logistics.

    Dimension ``d`` has a spread ``s_d = exp(SPREAD_GAIN * theta_d)``; component ``k`` has
    weight ``softmax(logits_d)_k``, mean ``s_d * means_dk`` and scale
    ``s_d * exp(log_scales_dk)``.
    """

    def __init__(self, dims: int, mixtures: int = MIXTURES) -> None:
        super().__init__()
        self.dims = int(dims)
        self.mixtures = int(mixtures)
        self.theta = nn.Parameter(torch.zeros(self.dims))
        self.logits = nn.Parameter(torch.zeros(self.dims, self.mixtures))
        start = torch.linspace(-1.0, 1.0, self.mixtures) if self.mixtures > 1 else torch.zeros(1)
        self.means = nn.Parameter(start.repeat(self.dims, 1))
        self.log_scales = nn.Parameter(torch.full((self.dims, self.mixtures), math.log(0.5)))

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """``P(cell of y)`` per value, shape of ``y`` (n, dims): CDF(y+1/2) - CDF(y-1/2).

        The difference of two sigmoids is taken on the side of the mean where it does not
        cancel (both arguments mirrored when they are positive), so far tails keep their
        digits; the floor :data:`LIKELIHOOD_BOUND` passes gradients through.
        """
        spread = torch.exp(SPREAD_GAIN * self.theta)[:, None]
        mu = spread * self.means
        scale = spread * torch.exp(self.log_scales)
        w = torch.softmax(self.logits, dim=-1)
        yy = y.unsqueeze(-1)
        upper = (yy + 0.5 - mu) / scale
        lower = (yy - 0.5 - mu) / scale
        sign = -torch.sign(upper + lower)
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        lik = (w * p).sum(-1)
        # max(lik, bound) in value, lik's gradient everywhere (a flat floor would stop a
        # latent stuck in a tail from being pulled back)
        return torch.where(lik < LIKELIHOOD_BOUND, lik - lik.detach() + LIKELIHOOD_BOUND, lik)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """Bits per row of ``y`` (n, dims): ``-sum_d log2 P(y_d)``, shape (n,)."""
        return -torch.log2(self.likelihood(y)).sum(-1)

    def to_payload(self, quantise: str, rate_lambda: float) -> dict[str, Any]:
        """What model.pt keeps under ``rate_model``: plain numbers and CPU tensors."""
        return {
            "kind": PRIOR_KIND,
            "dims": self.dims,
            "mixtures": self.mixtures,
            "step": 1.0,
            "quantise": quantise,
            "lambda": float(rate_lambda),
            "spread_gain": SPREAD_GAIN,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
        }


def prior_from_payload(payload: dict[str, Any]) -> FactorisedPrior:
    """The prior a model.pt's ``rate_model`` entry describes, in eval mode."""
    if payload.get("kind") != PRIOR_KIND:
        raise ValueError(f"unknown rate model kind {payload.get('kind')!r}")
    prior = FactorisedPrior(int(payload["dims"]), int(payload["mixtures"]))
    prior.load_state_dict(payload["state_dict"])
    prior.eval()
    return prior


@torch.no_grad()
def pmf_table(prior: FactorisedPrior, lo: int, hi: int) -> np.ndarray:
    """Probabilities of the integers ``lo..hi`` per dimension, (dims, hi - lo + 1), float64,
    each row renormalised over the range: a table for an entropy coder (e.g.
    ``constriction.stream.model.Categorical``); values outside the range need an escape."""
    exact = copy.deepcopy(prior).cpu().double()
    k = torch.arange(lo, hi + 1, dtype=torch.float64)
    p = exact.likelihood(k[:, None].expand(-1, prior.dims)).T.numpy()
    return p / p.sum(axis=1, keepdims=True)


def quantise(z: torch.Tensor, mode: str, training: bool) -> torch.Tensor:
    """The latent as the decoder sees it: rounded in evaluation; in training ``noise``
    (``z + U[-1/2, 1/2)``, torch's global generator) or ``ste`` (rounded forward,
    identity gradient)."""
    if not training:
        return torch.round(z)
    if mode == "noise":
        return z + (torch.rand_like(z) - 0.5)
    if mode == "ste":
        return z + (torch.round(z) - z).detach()
    raise ValueError(f"unknown quantise mode {mode!r}; expected one of {QUANTISE_MODES}")


def latent_size(model: Any) -> int:
    """Width of the latent: the encoder's last linear layer."""
    linear = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]
    return int(linear[-1].out_features)


class ResidualRate(nn.Module):
    """The bits of the residuals an error-bounded codec would store with the network as its
    predictor (``train.rate_residual_bounds``, docs/rate_aware.md).

    For each bounded variable ``v`` with bound ``b``: the residual of the decoded value
    against the true one, in physical units (the job's normaliser inverted, in torch),
    relative ``(y - x) / |x|`` for scale variables, wrapped for angles, absolute otherwise,
    divided by the codec's step ``2 b``: ``u``. Quantised as the latent (noise or
    straight-through in training, rounding in evaluation), its cost is what a learned
    per-variable prior (:class:`FactorisedPrior`) says. A relative residual of a true 0
    costs nothing (the codec has a symbol for an exact 0).
    """

    def __init__(self, norm: Any, bounds: dict[str, float]) -> None:
        super().__init__()
        from hepae_core.codecs.predictive import default_kind
        from hepae_core.training.augment import column_map

        variables = list(norm.variables)
        self.names = [v for v in variables if v in bounds]
        self.cols = [variables.index(v) for v in self.names]
        self.kinds = [default_kind(v) for v in self.names]  # the error-bounded codec's
        self.bounds = {v: float(bounds[v]) for v in self.names}
        self.maps = [column_map(norm, j) for j in self.cols]
        self.prior = FactorisedPrior(len(self.cols))

    def symbols(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, mask): the residuals in steps (n, k) and 1 where a symbol is coded."""
        us, ms = [], []
        for j, kind, col, name in zip(self.cols, self.kinds, self.maps, self.names, strict=True):
            xp = col.to_phys(x[:, j].double())
            yp = col.to_phys(y[:, j].double())
            d = yp - xp
            mask = torch.ones_like(d)
            if kind == "relative":
                mask = (xp != 0).to(d.dtype)
                d = d / torch.where(xp != 0, xp.abs(), torch.ones_like(xp))
            elif kind == "angle":
                d = torch.remainder(d + math.pi, 2 * math.pi) - math.pi
            us.append((d / (2.0 * self.bounds[name])).to(x.dtype))
            ms.append(mask.to(x.dtype))
        return torch.stack(us, 1), torch.stack(ms, 1)

    def bits(self, x: torch.Tensor, y: torch.Tensor, mode: str, training: bool) -> torch.Tensor:
        """Bits per jet of the residual symbols, shape (n,)."""
        u, mask = self.symbols(x, y)
        uq = quantise(u, mode, training)
        return (-torch.log2(self.prior.likelihood(uq)) * mask).sum(-1)

    def to_payload(self) -> dict[str, Any]:
        return {
            "bounds": dict(self.bounds),
            "prior": self.prior.to_payload("", 0.0),
        }


class RateAware(nn.Module):
    """The autoencoder and its prior, trained together: ``forward`` returns
    ``(decode(q(z)), bits per jet)``; rounding in eval mode, ``mode`` in training.
    With ``residual`` the bits add those of the residuals (:class:`ResidualRate`)."""

    def __init__(
        self,
        model: Any,
        prior: FactorisedPrior,
        mode: str = "noise",
        residual: ResidualRate | None = None,
    ) -> None:
        super().__init__()
        if mode not in QUANTISE_MODES:
            raise ValueError(f"unknown quantise mode {mode!r}; expected one of {QUANTISE_MODES}")
        self.model = model
        self.prior = prior
        self.mode = mode
        self.residual = residual

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zq = quantise(self.model.encode(x), self.mode, self.training)
        y = self.model.decode(zq)
        bits = self.prior.bits(zq)
        if self.residual is not None:
            bits = bits + self.residual.bits(x, y, self.mode, self.training)
        return y, bits


@torch.no_grad()
def evaluate_rate(
    model: Any,
    prior: FactorisedPrior,
    x: torch.Tensor,
    batch: int = 65536,
    residual: ResidualRate | None = None,
) -> tuple[float, float]:
    """(mean squared error per value, mean bits per jet) of ``x`` with the latent rounded;
    with ``residual`` the bits add the rounded residuals' (:class:`ResidualRate`).

    Leaves ``model`` and ``prior`` in the mode they were in.
    """
    was = model.training, prior.training
    model.eval()
    prior.eval()
    se = torch.zeros((), dtype=torch.float64, device=x.device)
    bits = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        zq = torch.round(model.encode(xb))
        y = model.decode(zq)
        se += F.mse_loss(y, xb, reduction="sum").double()
        bits += prior.bits(zq).sum().double()
        if residual is not None:
            bits += residual.bits(xb, y, "noise", training=False).sum().double()
    model.train(was[0])
    prior.train(was[1])
    n = max(1, x.shape[0])
    return se.item() / max(1, x.numel()), bits.item() / n


@torch.no_grad()
def job_rate_metrics(
    payload: dict[str, Any],
    model: Any,
    norm: Any,
    x_phys: np.ndarray,
    kinds: list[str],
    device: torch.device,
) -> dict[str, float]:
    """metrics.json keys of a rate-aware model on its test jets (none for other models).

    ``rate.latent_bits_per_jet`` (what the prior predicts the rounded latent costs, the
    rate a campaign over ``train.rate_lambda`` traces the frontier with), ``rate.test_mse``
    (normalised units, latent rounded) and the codec point ``aer``: ``aer.bits_per_jet``
    (the same predicted rate) and ``aer.<var>.mean/rms/width`` of the physical residuals
    with the rounded latent.
    """
    entry = payload.get("rate_model")
    if not entry:
        return {}
    from hepae_core.evaluation.evaluate import CURVE_STATS
    from hepae_core.evaluation.residuals import residuals, stats_table

    prior = prior_from_payload(entry).to(device)
    model.eval()
    x = torch.from_numpy(norm.forward(x_phys)).to(device)
    mse, bits = evaluate_rate(model, prior, x)
    outs = [
        model.decode(torch.round(model.encode(x[i : i + 65536]))).cpu()
        for i in range(0, x.shape[0], 65536)
    ]
    y = norm.inverse(torch.cat(outs).numpy()) if outs else np.empty_like(x_phys)
    out: dict[str, float] = {
        "rate.latent_bits_per_jet": bits,
        "rate.test_mse": mse,
        "aer.bits_per_jet": bits,
    }
    out.update(stats_table("aer", residuals(x_phys, y, kinds), list(norm.variables), CURVE_STATS))
    if entry.get("residual"):
        res = residual_from_payload(entry["residual"], norm).to(device)
        _, res_bits = evaluate_rate(model, _NoBits(), x, residual=res)
        out["rate.residual_bits_per_jet"] = res_bits
        out["rate.total_bits_per_jet"] = bits + res_bits
    return out


class _NoBits(FactorisedPrior):
    """A prior that costs nothing: :func:`evaluate_rate` then counts the residuals alone."""

    def __init__(self) -> None:
        super().__init__(1)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)


def residual_from_payload(entry: dict[str, Any], norm: Any) -> ResidualRate:
    """The :class:`ResidualRate` a model.pt's ``rate_model.residual`` entry describes."""
    res = ResidualRate(norm, entry["bounds"])
    res.prior = prior_from_payload(entry["prior"])
    res.eval()
    return res
