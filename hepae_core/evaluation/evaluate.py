"""Evaluation on held-out jets in physical units: residuals, widths, compression, timing.

Every run is placed on the rate-distortion plane beside every codec of the registry
(:mod:`hepae_core.codecs.registry`: casts, the scalar quantiser plain and entropy-coded, PCA
transform coding, SZ3 and ZFP at ``k`` bits, lossless), all measured by the same residual
code on the same test jets (:func:`codec_metrics`); its own latent is quantised at the same
``k`` (:func:`latent_codecs`) so each model gives a curve, not a point. Every ratio comes
from the bytes the codec's writer stores, side information and model included
(:func:`rate_keys`).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hepae_core.codecs import registry as codecs
from hepae_core.codecs.baselines import CASTS, FLOAT_BYTES, cast_roundtrip
from hepae_core.codecs.quantise import DEFAULT_BITS
from hepae_core.codecs.registry import BaseCodec
from hepae_core.data.normalise import Normaliser
from hepae_core.evaluation.metric_curves import FILE_JETS
from hepae_core.evaluation.residuals import STATS, residuals, stats_table
from hepae_core.training.models import AutoEncoder

__all__ = [
    "CASTS",
    "baseline_metrics",
    "cast_roundtrip",
    "codec_metrics",
    "evaluate",
    "latent_metrics",
]

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
    model: AutoEncoder,
    x_norm: torch.Tensor,
    repeats: int = 3,
    batch: int = 65536,
    warm: bool = False,
) -> tuple[float, float]:
    """Seconds per jet to encode and to decode, batched, best of ``repeats``.

    ``warm``: the model has just run on data like this (no warm-up pass).
    """
    model.eval()
    device = x_norm.device
    if not warm:
        model.encode(x_norm[:batch])  # warm-up

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


#: Below this many multiply-adds per batched model pass, evaluation runs on one thread.
ONE_THREAD_MACS = 10**9


@contextlib.contextmanager
def threads_for(model: nn.Module, rows: int) -> Iterator[None]:
    """One torch thread while evaluating a small model on CPU, then the caller's again.

    The evaluation's passes of a small model are too short for threads to share: on a
    busy 2-core machine two OpenMP threads made a demo job's evaluation 7x slower in CPU
    time and 8x in wall time than one (same numbers: the products split their output
    blocks, not their sums).
    """
    before = torch.get_num_threads()
    macs = sum(p.numel() for p in model.parameters()) * min(rows, 65536)
    one = (
        before > 1
        and macs < ONE_THREAD_MACS
        and all(p.device.type == "cpu" for p in model.parameters())
    )
    if one:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if one:
            torch.set_num_threads(before)


def model_weight_bytes(model: AutoEncoder) -> int:
    """Bytes of the model's weights as torch.save writes them (when model.pt is not at hand)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def codec_metrics(
    codec: BaseCodec,
    x_test: np.ndarray,
    kind_list: list[str],
    file_jets: int = FILE_JETS,
    stats: tuple[str, ...] = CURVE_STATS,
    x_train: np.ndarray | None = None,
) -> dict[str, Any]:
    """One codec on the test jets: residual statistics and its bytes, as its writer stores them.

    Keys ``<name>.<v>.<stat>``, ``<name>.bits_per_jet`` (payload bits per jet),
    ``<name>.payload_bytes``, ``<name>.side_bytes``, ``<name>.model_bytes``, ``<name>.ratio``
    (test jets, side and model counted), ``<name>.ratio_file`` (a file of ``file_jets``
    jets), ``<name>.clipped``. ``x_train``: fit the codec first.
    """
    if x_train is not None:
        codec.fit(x_train)
    enc = codec.encode(x_test)
    y = codec.decode(enc)
    p, n, d = codec.name, len(x_test), len(codec.variables)
    out: dict[str, Any] = stats_table(p, residuals(x_test, y, kind_list), codec.variables, stats)
    nominal = getattr(codec, "nominal_bits_per_jet", None)
    bpj = nominal() if nominal else (8 * enc.payload_bytes / n if n else math.nan)
    out.update(rate_keys(codec, enc, d, bpj, file_jets))
    return out


def rate_keys(
    codec: BaseCodec,
    enc: codecs.Encoded,
    n_vars: int,
    bits_per_jet: float,
    file_jets: int = FILE_JETS,
    sq_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The byte keys of one codec's encoding (docs/metrics.md), side and model counted.

    With ``sq_metrics`` (holding ``sq<k>.payload_bytes``, ``sq<k>.side_bytes``) a codec with
    model bytes also gets ``<name>.break_even_jets``: the jets from which it stores less
    than the scalar quantiser at the same ``k``.
    """
    p, mb = codec.name, codec.model_bytes
    out: dict[str, Any] = {
        f"{p}.bits_per_jet": bits_per_jet,
        f"{p}.payload_bytes": enc.payload_bytes,
        f"{p}.side_bytes": enc.side_bytes,
        f"{p}.model_bytes": mb,
        f"{p}.ratio": codecs.ratio(enc, n_vars, mb),
        f"{p}.ratio_file": codecs.ratio(enc, n_vars, mb, file_jets),
        f"{p}.clipped": enc.clipped,
    }
    sq = sq_metrics or {}
    if enc.n and f"sq{codec.bits}.payload_bytes" in sq:
        out[f"{p}.break_even_jets"] = codecs.break_even_jets(
            enc.payload_bytes / enc.n,
            mb + enc.side_bytes - sq[f"sq{codec.bits}.side_bytes"],
            sq[f"sq{codec.bits}.payload_bytes"] / enc.n,
        )
    return out


def cast_metrics(
    x_test: np.ndarray, variables: list[str], kind_list: list[str], file_jets: int = FILE_JETS
) -> dict[str, Any]:
    """The float16 and bfloat16 casts of the test jets, with the full statistics."""
    out: dict[str, Any] = {}
    for name in CASTS:
        cast = codecs.build(name, variables, kind_list)
        out.update(codec_metrics(cast, x_test, kind_list, file_jets, STATS))
        out[f"{name}.bits_per_jet"] = 16 * len(variables)
    return out


def baseline_metrics(
    x_test: np.ndarray,
    x_train: np.ndarray,
    variables: list[str],
    kind_list: list[str],
    bits: tuple[int, ...] = DEFAULT_BITS,
    pca_components: int | None = None,
    file_jets: int = FILE_JETS,
) -> dict[str, Any]:
    """Every registered baseline on the test jets
    (:func:`hepae_core.codecs.registry.baseline_codecs`).

    Ranges, spaces, PCA axes and the SZ3/ZFP bounds come from ``x_train``. Keys: see
    docs/metrics.md.
    """
    n = len(x_test)
    out: dict[str, Any] = {"rate.jets": n, "rate.file_jets": file_jets}
    # Down to 2 bits a value too: with many variables, the autoencoder's rates lie below
    # d x 6 bits, and the quantiser's curve must reach them to be compared.
    sq_bits = tuple(sorted(set(bits) | set(SQ_LOW_BITS)))
    fitted: dict[str, BaseCodec] = {}
    for codec in codecs.baseline_codecs(variables, kind_list, tuple(bits), pca_components, sq_bits):
        if codec.family in CASTS:
            continue  # measured by evaluate() on every run, with the full statistics
        # one fit per family serves every bit depth (ranges, axes and spaces do not
        # depend on k); SZ3 and ZFP take their bounds from the quantiser's ranges
        ref = fitted.get(codec.family) or fitted.get("sq")
        if ref is None or not codec.adopt(ref):
            codec.fit(x_train)
            fitted.setdefault(codec.family, codec)
        out.update(codec_metrics(codec, x_test, kind_list, file_jets))
        if codec.family == "sq" and isinstance(codec, codecs.ScalarCodec) and codec.quantiser:
            for v, space in zip(variables, codec.quantiser.spaces):
                out[f"space.{v}"] = space
            out["sq.side_bytes"] = out[f"{codec.name}.side_bytes"]
        if isinstance(codec, codecs.PCACodec):
            out["pca.z"] = codec.components.shape[0]
            out["pca.explained_variance"] = codec.explained
            out["pca.side_bytes"] = out[f"{codec.name}.side_bytes"]
    for key in [k for k in out if k.startswith("lossless.") and k.count(".") == 2]:
        del out[key]  # lossless: no residual to report
    return out


def latent_codecs(
    model: AutoEncoder,
    norm: Normaliser,
    device: torch.device,
    bits: tuple[int, ...],
    model_bytes: int,
    kind_list: list[str] | None = None,
) -> list[codecs.LatentCodec]:
    """The autoencoder as one registered codec per bit depth (``aeq<k>``)."""

    def enc(x: np.ndarray) -> np.ndarray:
        return encode(model, norm, x, device)

    def dec(z: np.ndarray) -> np.ndarray:
        return decode(model, norm, z, device)

    out = [codecs.LatentCodec(norm.variables, enc, dec, k, model_bytes, kind_list) for k in bits]
    return out


def latent_metrics(
    model: AutoEncoder,
    norm: Normaliser,
    x_test: np.ndarray,
    x_train: np.ndarray,
    kind_list: list[str],
    device: torch.device,
    bits: tuple[int, ...] = DEFAULT_BITS,
    model_bytes: int | None = None,
    file_jets: int = FILE_JETS,
    sq_metrics: dict[str, Any] | None = None,
    z_test: np.ndarray | None = None,
) -> dict[str, Any]:
    """The autoencoder as a codec: its latent quantised to ``k`` bits per dimension.

    Each latent dimension's range is taken from the training jets and stored in the
    metrics (``latent.<i>.min``, ``latent.<i>.max``); their bytes count in the ratio, and
    so do the model's (``model_bytes``: the size of model.pt; default the weights as
    torch.save writes them). ``sq_metrics`` (the baselines' keys) adds
    ``aeq<k>.break_even_jets``: the file size from which ``aeq<k>`` is smaller than
    ``sq<k>``. ``z_test``: the test jets' latent vectors when already encoded.
    """
    mb = model_weight_bytes(model) if model_bytes is None else int(model_bytes)
    cods = latent_codecs(model, norm, device, tuple(bits), mb, kind_list)
    out: dict[str, Any] = {}
    if not cods:
        return out
    # one encoding of the training jets serves every bit depth
    cods[0].fit(x_train)
    for c in cods[1:]:
        c.quantiser = cods[0].quantiser
    q = cods[0].quantiser
    assert q is not None
    for i, (a, b) in enumerate(zip(q.lo, q.hi)):
        out[f"latent.{i}.min"] = a
        out[f"latent.{i}.max"] = b
    if z_test is None:
        z_test = encode(model, norm, x_test, device)
    n, d = len(x_test), len(norm.variables)
    for c in cods:
        enc = c.encode_latent(z_test, n)
        y = c.decode(enc)
        p = c.name
        out.update(stats_table(p, residuals(x_test, y, kind_list), norm.variables, CURVE_STATS))
        out.update(rate_keys(c, enc, d, c.nominal_bits_per_jet(), file_jets, sq_metrics))
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
    model_bytes: int | None = None,
    file_jets: int = FILE_JETS,
    baseline_cache: Path | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """All evaluation metrics of one trained model on the test jets (physical units).

    ``x_train`` (physical training jets) gives the quantisers their ranges; without it the
    quantised curves (``sq<k>``, ``pca<k>``, ``sz3_<k>``, ``zfp<k>``, ``aeq<k>``) are not
    computed. ``pca_components`` defaults to the latent size. ``model_bytes``: the size of
    model.pt, counted in every ratio of the autoencoder (default: its weights as torch.save
    writes them); ``file_jets``: the file size of the ``*.ratio_file`` keys;
    ``baseline_cache``: a directory where the model-independent baselines are shared by the
    jobs of a campaign (:mod:`hepae_core.evaluation.baseline_cache`). Returns the flat
    metrics and the reconstructed test jets. A small model on CPU is evaluated on one
    thread (:func:`threads_for`; the timing keys too).
    """
    with threads_for(model, len(x_test)):
        t_eval = time.perf_counter()
        kind_list = [kinds[v] for v in norm.variables]
        # The model-independent part first: the casts and the baselines of these test and
        # training jets, shared by the jobs of a campaign through ``baseline_cache``.
        base: dict[str, Any] = {}
        train = None
        baselines_s = 0.0
        if baselines and x_train is not None and len(x_test):
            components = pca_components or latent
            base, train, baselines_s = _shared_baselines(
                norm, x_test, x_train, kind_list, bits, components, file_jets, baseline_cache
            )
        casts = {k: v for k, v in base.items() if k.split(".")[0] in CASTS}
        metrics, z_test, out = _ae_metrics(
            model, norm, x_test, kinds, latent, device, casts, file_jets
        )
        if train is not None:
            t0 = time.perf_counter()
            metrics.update({k: v for k, v in base.items() if k not in casts})
            metrics.update(
                latent_metrics(
                    model, norm, x_test, train, kind_list, device, tuple(bits), model_bytes,
                    file_jets, base, z_test,
                )
            )  # fmt: skip
            metrics["baselines_s"] = baselines_s + time.perf_counter() - t0
        xt = torch.from_numpy(norm.forward(x_test[:timing_jets])).to(device)
        enc, dec = time_codec(model, xt, warm=True)  # warm: the model has just run
        metrics["encode_s_per_jet"] = enc
        metrics["decode_s_per_jet"] = dec
        metrics["evaluate_s"] = time.perf_counter() - t_eval
        return metrics, out


def _shared_baselines(
    norm: Normaliser,
    x_test: np.ndarray,
    x_train: np.ndarray,
    kind_list: list[str],
    bits: tuple[int, ...],
    components: int,
    file_jets: int,
    baseline_cache: Path | None,
) -> tuple[dict[str, Any], np.ndarray, float]:
    """The casts and baselines (:func:`cast_metrics`, :func:`baseline_metrics`) of these
    jets, read from ``baseline_cache`` where another job computed them; the training jets
    inside the normalisation's domain; the seconds spent."""
    from hepae_core.evaluation.baseline_cache import cache_key, cached

    t0 = time.perf_counter()
    train = np.asarray(x_train)
    train = train[np.isfinite(norm.forward(train)).all(axis=1)]
    variables = norm.variables
    args = (x_test, train, variables, kind_list, tuple(bits), components, file_jets)
    key = cache_key(*args) if baseline_cache is not None else ""

    def compute() -> dict[str, Any]:
        return {
            **cast_metrics(x_test, variables, kind_list, file_jets),
            **baseline_metrics(*args),
        }

    base = cached(baseline_cache, key, compute)
    return base, train, time.perf_counter() - t0


def _ae_metrics(
    model: AutoEncoder,
    norm: Normaliser,
    x_test: np.ndarray,
    kinds: dict[str, str],
    latent: int,
    device: torch.device,
    casts: dict[str, Any],
    file_jets: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The autoencoder's residuals (float32 and float16 latent), the casts' (``casts``, or
    computed here) and its nominal sizes; returns them, the test jets' latent and their
    reconstruction."""
    variables = norm.variables
    kind_list = [kinds[v] for v in variables]
    n_in = len(variables)
    # One encoding of the test jets serves the reconstruction, the float16 latent and the
    # quantised latents (in the batches of reconstruct(): the same numbers).
    z_test = encode(model, norm, x_test, device)
    out = decode(model, norm, z_test, device)
    out16 = decode(model, norm, z_test.astype(np.float16).astype(np.float32), device)
    metrics: dict[str, Any] = {}
    metrics.update(stats_table("ae", residuals(x_test, out, kind_list), variables))
    metrics.update(stats_table("ae_f16latent", residuals(x_test, out16, kind_list), variables))
    metrics.update(casts or cast_metrics(x_test, variables, kind_list, file_jets))
    for v in variables:
        metrics[f"residual.{v}"] = kinds[v]
    metrics["input_bytes_per_jet"] = FLOAT_BYTES * n_in
    metrics["compression_ratio"] = n_in / latent
    metrics["compression_ratio_f16"] = FLOAT_BYTES * n_in / (2 * latent)
    metrics["ae.bits_per_jet"] = 32 * latent
    metrics["ae_f16latent.bits_per_jet"] = 16 * latent
    return metrics, z_test, out
