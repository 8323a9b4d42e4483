"""Helpers behind the baselines every autoencoder is compared with.

The baselines themselves are codecs of the registry in :mod:`hepae_core.codecs.registry` (what
the evaluation, the metrics and the plots use, every ratio from the bytes written); this
module keeps the numerical helpers and a float64 PCA for analysis:

* casts to float16 / bfloat16 (16 bits per value, nothing stored),
* scalar quantisation at ``k`` bits in each variable's natural space
  (:class:`hepae_core.codecs.quantise.ScalarQuantiser`),
* PCA transform coding: the variables in their natural space, standardised, rotated onto
  their first ``z`` principal axes, each axis quantised to ``k`` bits over its training
  range (:class:`PCACoder`),
* lossless float32, bytes shuffled and deflated (:func:`lossless_bytes`, the bytes of
  :class:`hepae_core.codecs.registry.LosslessCodec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hepae_core.codecs.quantise import (
    RANGE_BYTES,
    LatentQuantiser,
    from_space,
    natural_space,
    to_space,
)

FLOAT_BYTES = 4
CASTS = ("float16", "bfloat16")


def cast_roundtrip(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` stored as float16 or bfloat16 (round to nearest even) and read back as float32.

    float16 keeps 11 significant bits (10 stored) and 5 exponent bits; bfloat16 keeps 8
    significant bits (7 stored) and float32's 8 exponent bits: the upper half of a float32.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return x32.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        u = x32.view(np.uint32).astype(np.uint64)
        # Round to nearest, ties to even: add 0x7FFF plus the lowest kept bit, then truncate.
        kept = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        out = kept.astype(np.uint32).view(np.float32)
        return np.where(np.isnan(x32), x32, out)
    raise ValueError(f"unknown cast {dtype!r}")


@dataclass
class PCACoder:
    """PCA transform coding on standardised natural-space variables.

    Attributes
    ----------
    spaces
        Natural space of each variable (periodic variables are rotated as linear ones;
        their residual is wrapped anyway).
    mean, std
        Standardisation of the natural-space training values.
    components
        (z, variables): the first ``z`` principal axes.
    explained
        Fraction of the variance the ``z`` axes hold (training jets).
    ranges
        :class:`LatentQuantiser` over the training projections.
    """

    spaces: list[str]
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray
    explained: float
    ranges: LatentQuantiser

    @classmethod
    def fit(
        cls,
        variables: list[str],
        train: np.ndarray,
        z: int,
        kinds: list[str] | None = None,
        max_rows: int = 200_000,
        seed: int = 0,
    ) -> PCACoder:
        x = np.asarray(train, dtype=np.float64)
        spaces = [
            natural_space(v, x[:, j], kinds[j] if kinds else None) for j, v in enumerate(variables)
        ]
        spaces = ["linear" if s in ("periodic", "integer") else s for s in spaces]
        t = np.stack([to_space(x[:, j], s) for j, s in enumerate(spaces)], axis=1)
        t = t[np.isfinite(t).all(axis=1)]
        if len(t) > max_rows:
            t = t[np.random.default_rng(seed).choice(len(t), max_rows, replace=False)]
        mean = t.mean(axis=0)
        std = t.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        s = (t - mean) / std
        _, sv, vt = np.linalg.svd(s, full_matrices=False)
        var = sv**2
        z = min(z, vt.shape[0])
        comps = vt[:z]
        explained = float(var[:z].sum() / var.sum()) if var.sum() > 0 else 1.0
        ranges = LatentQuantiser.fit(s @ comps.T)
        return cls(spaces, mean, std, comps, explained, ranges)

    @property
    def z(self) -> int:
        return self.components.shape[0]

    @property
    def side_bytes(self) -> int:
        """float32 mean, std, axes and projection ranges."""
        d = self.components.shape[1]
        return FLOAT_BYTES * (2 * d + self.z * d) + RANGE_BYTES * self.z

    def project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        t = np.stack([to_space(x[:, j], s) for j, s in enumerate(self.spaces)], axis=1)
        return ((t - self.mean) / self.std) @ self.components.T

    def reconstruct(self, p: np.ndarray) -> np.ndarray:
        t = (p @ self.components) * self.std + self.mean
        return np.stack([from_space(t[:, j], s) for j, s in enumerate(self.spaces)], axis=1)

    def roundtrip(self, x: np.ndarray, k: int | None) -> np.ndarray:
        """Quantise the projections to ``k`` bits (None: keep them exact) and reconstruct."""
        p = self.project(x)
        if k is not None:
            p = self.ranges.decode(self.ranges.encode(p, k), k)
        return self.reconstruct(p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spaces": self.spaces,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "components": self.components.tolist(),
            "explained": self.explained,
        }


def lossless_bytes(x: np.ndarray, level: int = 6) -> int:
    """Bytes that the registry's lossless codec stores for ``x`` as float32.

    Each column's float32 bytes shuffled (as HDF5's shuffle filter) and deflated (zlib
    ``level``): :class:`hepae_core.codecs.registry.LosslessCodec`, measured, not estimated.
    """
    from hepae_core.codecs.registry import LosslessCodec

    x = np.asarray(x)
    codec = LosslessCodec([str(j) for j in range(x.shape[1] if x.ndim == 2 else 0)], level=level)
    return codec.encode(x).payload_bytes


def ratio(n_jets: int, n_vars: int, payload_bits: float, side_bytes: int = 0) -> float:
    """float32 input bytes / (payload bytes + side bytes) for ``n_jets`` jets."""
    stored = n_jets * payload_bits / 8 + side_bytes
    return FLOAT_BYTES * n_vars * n_jets / stored if stored > 0 else float("nan")
