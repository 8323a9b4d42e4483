"""Evaluation on held-out jets in physical units: residuals, widths, compression, timing.

Every run is compared with the cheapest alternative at equal or better bytes: a plain
float16 or bfloat16 cast of the inputs (compression ratio 2, no model).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from hepae_core.models import AutoEncoder
from hepae_core.normalise import Normaliser
from hepae_core.residuals import residuals, stats_table

FLOAT_BYTES = 4


def cast_roundtrip(x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The inputs stored as ``dtype`` and read back as float32."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dtype).float().numpy()


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


def evaluate(
    model: AutoEncoder,
    norm: Normaliser,
    x_test: np.ndarray,
    kinds: dict[str, str],
    latent: int,
    device: torch.device,
    timing_jets: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """All evaluation metrics of one trained model on the test jets (physical units).

    Returns the flat metrics and the reconstructed test jets.
    """
    variables = norm.variables
    kind_list = [kinds[v] for v in variables]
    n_in = len(variables)
    out = reconstruct(model, norm, x_test, device)
    out16 = reconstruct(model, norm, x_test, device, latent_dtype=torch.float16)
    metrics: dict[str, Any] = {}
    metrics.update(stats_table("ae", residuals(x_test, out, kind_list), variables))
    metrics.update(stats_table("ae_f16latent", residuals(x_test, out16, kind_list), variables))
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        cast = cast_roundtrip(x_test, dtype)
        metrics.update(stats_table(name, residuals(x_test, cast, kind_list), variables))
    for v in variables:
        metrics[f"residual.{v}"] = kinds[v]
    metrics["input_bytes_per_jet"] = FLOAT_BYTES * n_in
    metrics["compression_ratio"] = n_in / latent
    metrics["compression_ratio_f16"] = FLOAT_BYTES * n_in / (2 * latent)
    xt = torch.from_numpy(norm.forward(x_test[:timing_jets])).to(device)
    enc, dec = time_codec(model, xt)
    metrics["encode_s_per_jet"] = enc
    metrics["decode_s_per_jet"] = dec
    return metrics, out
