"""Evaluation on held-out jets in physical units: residuals, widths, compression, timing.

Every run is placed on the rate-distortion plane beside the baselines of
:mod:`hepae_core.baselines` (casts, scalar quantisation and PCA transform coding at
``k`` bits, lossless gzip), all measured by the same residual code on the same test jets;
its own latent is quantised at the same ``k`` so each model gives a curve, not a point.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from hepae_core.baselines import CASTS, FLOAT_BYTES, PCACoder, cast_roundtrip, lossless_bytes, ratio
from hepae_core.models import AutoEncoder
from hepae_core.normalise import Normaliser
from hepae_core.quantise import DEFAULT_BITS, LatentQuantiser, ScalarQuantiser
from hepae_core.residuals import residuals, stats_table

__all__ = ["CASTS", "baseline_metrics", "cast_roundtrip", "evaluate", "latent_metrics"]

SQ_LOW_BITS = (2, 3, 4, 5)
# The statistics kept for every point of a curve (the full set is kept for ae and casts).
CURVE_STATS = ("mean", "rms", "width")


@torch.no_grad()
def encode(
    model: AutoEncoder,
    norm: Normaliser,
    x_phys: np.ndarray,
    device: torch.device,
    batch: int = 65536,
) -> np.ndarray:
    """Physical jets -> latent vectors (float32 numpy)."""
    model.eval()
    x = torch.from_numpy(norm.forward(x_phys))
    zs = [model.encode(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
    return torch.cat(zs).numpy() if zs else np.empty((0, 0), np.float32)


@torch.no_grad()
def decode(
    model: AutoEncoder, norm: Normaliser, z: np.ndarray, device: torch.device, batch: int = 65536
) -> np.ndarray:
    """Latent vectors -> physical jets."""
    model.eval()
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    ys = [model.decode(zt[i : i + batch].to(device)).cpu() for i in range(0, len(zt), batch)]
    return norm.inverse(torch.cat(ys).numpy())


@torch.no_grad()
def reconstruct(
    model: AutoEncoder,
    norm: Normaliser,
    x_phys: np.ndarray,
    device: torch.device,
    latent_dtype: torch.dtype | None = None,
    batch: int = 65536,
) -> np.ndarray:
    """Physical inputs -> physical outputs; optionally round the latent through a dtype."""
    model.eval()
    z_in = torch.from_numpy(norm.forward(x_phys))
    outs = []
    for i in range(0, z_in.shape[0], batch):
        xb = z_in[i : i + batch].to(device)
        z = model.encode(xb)
        if latent_dtype is not None:
            z = z.to(latent_dtype).float()
        outs.append(model.decode(z).cpu())
    y = torch.cat(outs).numpy() if outs else np.empty((0, x_phys.shape[1]), np.float32)
    return norm.inverse(y)


@torch.no_grad()
def time_codec(
    model: AutoEncoder, x_norm: torch.Tensor, repeats: int = 3, batch: int = 65536
) -> tuple[float, float]:
    """Seconds per jet to encode and to decode, batched, best of ``repeats``."""
    model.eval()
    device = x_norm.device
    z = model.encode(x_norm[:batch])  # warm-up

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    best_enc = best_dec = float("inf")
    n = x_norm.shape[0]
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        zs = [model.encode(x_norm[i : i + batch]) for i in range(0, n, batch)]
        sync()
        t1 = time.perf_counter()
        for z in zs:
            model.decode(z)
        sync()
        t2 = time.perf_counter()
        best_enc = min(best_enc, (t1 - t0) / n)
        best_dec = min(best_dec, (t2 - t1) / n)
    return best_enc, best_dec


def baseline_metrics(
    x_test: np.ndarray,
    x_train: np.ndarray,
    variables: list[str],
    kind_list: list[str],
    bits: tuple[int, ...] = DEFAULT_BITS,
    pca_components: int | None = None,
) -> dict[str, Any]:
    """Scalar quantisation, PCA transform coding and lossless gzip on the test jets.

    Ranges, spaces and PCA axes come from ``x_train``. Keys: see docs/metrics.md.
    """
    n, d = x_test.shape
    out: dict[str, Any] = {}
    sq = ScalarQuantiser.fit(variables, x_train, kind_list)
    for v, space in zip(variables, sq.spaces):
        out[f"space.{v}"] = space
    out["sq.side_bytes"] = sq.side_bytes
    # Down to 2 bits a value too: with many variables, the autoencoder's rates lie below
    # d x 6 bits, and the quantiser's curve must reach them to be compared.
    for k in sorted(set(bits) | set(SQ_LOW_BITS)):
        y = sq.roundtrip(x_test, k)
        out.update(stats_table(f"sq{k}", residuals(x_test, y, kind_list), variables, CURVE_STATS))
        out[f"sq{k}.bits_per_jet"] = sq.bits_per_jet(k)
        out[f"sq{k}.ratio"] = ratio(n, d, sq.bits_per_jet(k), sq.side_bytes)
        out[f"sq{k}.clipped"] = sum(sq.clipped.values())
    if pca_components:
        pca = PCACoder.fit(variables, x_train, pca_components, kind_list)
        out["pca.z"] = pca.z
        out["pca.explained_variance"] = pca.explained
        out["pca.side_bytes"] = pca.side_bytes
        for k in bits:
            y = pca.roundtrip(x_test, k)
            out.update(
                stats_table(f"pca{k}", residuals(x_test, y, kind_list), variables, CURVE_STATS)
            )
            out[f"pca{k}.bits_per_jet"] = pca.z * k
            out[f"pca{k}.ratio"] = ratio(n, d, pca.z * k, pca.side_bytes)
            out[f"pca{k}.clipped"] = pca.ranges.clipped
    nbytes = lossless_bytes(x_test)
    out["lossless.bits_per_jet"] = 8 * nbytes / n if n else float("nan")
    out["lossless.ratio"] = FLOAT_BYTES * n * d / nbytes if nbytes else float("nan")
    return out


def latent_metrics(
    model: AutoEncoder,
    norm: Normaliser,
    x_test: np.ndarray,
    x_train: np.ndarray,
    kind_list: list[str],
    device: torch.device,
    bits: tuple[int, ...] = DEFAULT_BITS,
) -> dict[str, Any]:
    """The autoencoder as a codec: its latent quantised to ``k`` bits per dimension.

    Each latent dimension's range is taken from the training jets and stored in the
    metrics (``latent.<i>.min``, ``latent.<i>.max``); their bytes count in the ratio.
    """
    variables = norm.variables
    n, d = x_test.shape
    z_train = encode(model, norm, x_train, device)
    z_train = z_train[np.isfinite(z_train).all(axis=1)]
    q = LatentQuantiser.fit(z_train)
    out: dict[str, Any] = {}
    for i, (a, b) in enumerate(zip(q.lo, q.hi)):
        out[f"latent.{i}.min"] = a
        out[f"latent.{i}.max"] = b
    z_test = encode(model, norm, x_test, device)
    latent = z_test.shape[1]
    for k in bits:
        y = decode(model, norm, q.decode(q.encode(z_test, k), k), device)
        out.update(stats_table(f"aeq{k}", residuals(x_test, y, kind_list), variables, CURVE_STATS))
        out[f"aeq{k}.bits_per_jet"] = latent * k
        out[f"aeq{k}.ratio"] = ratio(n, d, latent * k, q.side_bytes)
        out[f"aeq{k}.clipped"] = q.clipped
    return out


def evaluate(
    model: AutoEncoder,
    norm: Normaliser,
    x_test: np.ndarray,
    kinds: dict[str, str],
    latent: int,
    device: torch.device,
    timing_jets: int,
    x_train: np.ndarray | None = None,
    baselines: bool = True,
    bits: tuple[int, ...] = DEFAULT_BITS,
    pca_components: int | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """All evaluation metrics of one trained model on the test jets (physical units).

    ``x_train`` (physical training jets) gives the quantisers their ranges; without it the
    quantised curves (``sq<k>``, ``pca<k>``, ``aeq<k>``) are not computed. ``pca_components``
    defaults to the latent size. Returns the flat metrics and the reconstructed test jets.
    """
    variables = norm.variables
    kind_list = [kinds[v] for v in variables]
    n_in = len(variables)
    out = reconstruct(model, norm, x_test, device)
    out16 = reconstruct(model, norm, x_test, device, latent_dtype=torch.float16)
    metrics: dict[str, Any] = {}
    metrics.update(stats_table("ae", residuals(x_test, out, kind_list), variables))
    metrics.update(stats_table("ae_f16latent", residuals(x_test, out16, kind_list), variables))
    for name in CASTS:
        cast = cast_roundtrip(x_test, name)
        metrics.update(stats_table(name, residuals(x_test, cast, kind_list), variables))
        metrics[f"{name}.bits_per_jet"] = 16 * n_in
        metrics[f"{name}.ratio"] = 2.0
    for v in variables:
        metrics[f"residual.{v}"] = kinds[v]
    metrics["input_bytes_per_jet"] = FLOAT_BYTES * n_in
    metrics["compression_ratio"] = n_in / latent
    metrics["compression_ratio_f16"] = FLOAT_BYTES * n_in / (2 * latent)
    metrics["ae.bits_per_jet"] = 32 * latent
    metrics["ae_f16latent.bits_per_jet"] = 16 * latent
    if baselines and x_train is not None and len(x_test):
        t0 = time.perf_counter()
        train = np.asarray(x_train)
        train = train[np.isfinite(norm.forward(train)).all(axis=1)]
        metrics.update(
            baseline_metrics(
                x_test, train, variables, kind_list, tuple(bits), pca_components or latent
            )
        )
        metrics.update(latent_metrics(model, norm, x_test, train, kind_list, device, tuple(bits)))
        metrics["baselines_s"] = time.perf_counter() - t0
    xt = torch.from_numpy(norm.forward(x_test[:timing_jets])).to(device)
    enc, dec = time_codec(model, xt)
    metrics["encode_s_per_jet"] = enc
    metrics["decode_s_per_jet"] = dec
    return metrics, out
