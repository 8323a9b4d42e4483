"""One codec interface and one registry: every way of storing jets, measured in real bytes.

Every codec turns physical jets (n, d) into an :class:`Encoded`: a payload (the per-jet
data, as the arrays a writer stores) and side information (what a reader needs besides:
ranges, axes, means), plus, for the autoencoder, the model paid once per file. The arrays
are already packed (codes bit-packed at k bits) or compressed (SZ3, ZFP, zlib streams) and
are written as they are, contiguous, without an HDF5 filter: the bytes credited
(:attr:`Encoded.payload_bytes`, :attr:`Encoded.side_bytes`, :attr:`JetCodec.model_bytes`)
are the bytes on disk (:func:`write_file`), and a test holds them to it.

Registered families (:data:`REGISTRY`, :func:`build`):

``float16``, ``bfloat16``
    casts, 16 bits a value, nothing stored besides.
``sq``
    scalar quantisation at ``k`` bits in each variable's natural space
    (:class:`hepae_core.codecs.quantise.ScalarQuantiser`); side: float32 lo, hi per variable.
``sqe``
    the same codes entropy-coded (ANS, the compressed file's coder); side: the ranges and
    the chunk's code histograms.
``pca``
    PCA transform coding: natural space, centred and scaled, ``z`` principal axes, each
    projection quantised at ``k`` bits; side: float32 mean, scale, axes and ranges.
``lossless``
    float32, bytes shuffled (as HDF5's shuffle filter) and deflated (zlib level 6).
``sz3``, ``zfp``
    the error-bounded compressors for scientific floating-point data (``pysz``, ``zfpy``) on
    the natural-space values, at the absolute bound of the ``k``-bit quantiser's half step
    of each variable: the same worst-case error as ``sq<k>``.
``aeq``
    an autoencoder: its latent quantised at ``k`` bits (:class:`LatentCodec`); side: float32
    latent ranges; the model's bytes count once per file.

Ratios (:func:`ratio`): float32 input bytes over payload + side + model bytes, on the jets
encoded or scaled to a file of ``file_jets`` jets (the payload grows with the jets; side and
model do not). Numpy only, except :class:`LatentCodec`'s model calls and the two compressors.
"""

from __future__ import annotations

import math
import zlib
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.codecs import quantise
from hepae_core.codecs.codec_base import BaseCodec, Encoded, JetCodec  # noqa: F401 (the interface)
from hepae_core.codecs.entropy import ans_decode, ans_encode
from hepae_core.codecs.predictive import PredictiveCodec
from hepae_core.codecs.quantise import (
    LatentQuantiser,
    ScalarQuantiser,
    from_space,
    natural_space,
    to_space,
)

FLOAT_BYTES = 4
FORMAT = "hepae-codec"
FORMAT_VERSION = 1


# -- bit packing --------------------------------------------------------------------------


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """One column of unsigned ``codes`` at ``bits`` bits each, most significant first.

    Returns ceil(n * bits / 8) bytes (uint8); :func:`hepae_core.codecs.quantise.pack_bits` (the
    compressed file's packer) on one column.
    """
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be 1 to 32, not {bits}")
    return quantise.pack_bits(np.asarray(codes).ravel(), bits)


def unpack_bits(buf: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``n`` codes (n,)."""
    return quantise.unpack_bits(buf, bits, n)[:, 0]


def packed_bytes(n: int, bits: int) -> int:
    """Bytes of ``n`` codes of ``bits`` bits packed by :func:`pack_bits`."""
    return (n * bits + 7) // 8


# -- the interface ------------------------------------------------------------------------


# -- casts and lossless -------------------------------------------------------------------


class CastCodec(BaseCodec):
    """float16 or bfloat16: two bytes a value (bfloat16: round to nearest even)."""

    def __init__(
        self, variables: list[str], kinds: list[str] | None = None, dtype: str = "float16"
    ):
        if dtype not in ("float16", "bfloat16"):
            raise ValueError(f"unknown cast {dtype!r}")
        super().__init__(variables, kinds, None)
        self.family = dtype

    def nominal_bits_per_jet(self) -> float:
        return 16.0 * len(self.variables)

    def encode(self, x: np.ndarray) -> Encoded:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if self.family == "float16":
            with np.errstate(over="ignore"):
                h = x32.astype(np.float16).view(np.uint16)
        else:
            u: np.ndarray = x32.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            nan = np.isnan(x32)
            u[nan] = (x32.view(np.uint32)[nan] >> 16).astype(np.uint16) | 0x40  # stay NaN
            h = u
        return Encoded(
            len(x32), {f"c{j}": np.ascontiguousarray(h[:, j]) for j in range(h.shape[1])}
        )

    def decode(self, enc: Encoded) -> np.ndarray:
        cols = []
        for j in range(len(self.variables)):
            h = np.asarray(enc.payload[f"c{j}"], dtype=np.uint16)
            if self.family == "float16":
                cols.append(h.view(np.float16).astype(np.float64))
            else:
                cols.append((h.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
        return np.stack(cols, axis=1) if cols else np.empty((enc.n, 0))


class LosslessCodec(BaseCodec):
    """float32, bytes shuffled as HDF5's shuffle filter does, then zlib (deflate) level 6."""

    family = "lossless"

    def __init__(self, variables: list[str], kinds: list[str] | None = None, level: int = 6):
        super().__init__(variables, kinds, None)
        self.level = level

    def encode(self, x: np.ndarray) -> Encoded:
        x32 = np.ascontiguousarray(np.asarray(x, dtype=np.float32).T)
        payload = {}
        for j, col in enumerate(x32):
            shuffled = np.ascontiguousarray(col.view(np.uint8).reshape(-1, 4).T)
            payload[f"c{j}"] = np.frombuffer(
                zlib.compress(shuffled.tobytes(), self.level), np.uint8
            )
        return Encoded(len(x), payload)

    def decode(self, enc: Encoded) -> np.ndarray:
        cols = []
        for j in range(len(self.variables)):
            raw = np.frombuffer(zlib.decompress(enc.payload[f"c{j}"].tobytes()), np.uint8)
            cols.append(np.ascontiguousarray(raw.reshape(4, -1).T).view(np.float32).ravel())
        return np.stack(cols, axis=1).astype(np.float64) if cols else np.empty((enc.n, 0))


# -- scalar quantiser ---------------------------------------------------------------------


def _ranges(side: dict[str, np.ndarray], j: int) -> tuple[float, float]:
    return float(side["lo"][j]), float(side["hi"][j])


class ScalarCodec(BaseCodec):
    """Each variable at ``k`` bits in its natural space; ranges stored as float32 side."""

    family = "sq"

    def __init__(self, variables: list[str], kinds: list[str] | None = None, bits: int = 12):
        super().__init__(variables, kinds, bits)
        self.quantiser: ScalarQuantiser | None = None

    def fit(self, train: np.ndarray) -> None:
        self.quantiser = ScalarQuantiser.fit(self.variables, train, self.kinds)

    def adopt(self, other: BaseCodec) -> bool:
        if not isinstance(other, ScalarCodec) or other.quantiser is None:
            return False
        self.quantiser = other.quantiser
        return True

    def _q(self) -> ScalarQuantiser:
        if self.quantiser is None:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        return self.quantiser

    def nominal_bits_per_jet(self) -> float:
        """Payload bits per jet (before the last byte of each column is padded)."""
        return self._q().bits_per_jet(int(self.bits or 0))

    def encode(self, x: np.ndarray) -> Encoded:
        q = self._q()
        k = int(self.bits or 0)
        codes = q.encode(x, k)
        widths = q.bits(k)
        payload = {f"c{j}": pack_bits(c, b) for j, (c, b) in enumerate(zip(codes, widths))}
        side = {"lo": np.asarray(q.lo, np.float32), "hi": np.asarray(q.hi, np.float32)}
        attrs = {"spaces": list(q.spaces), "col_bits": widths}
        return Encoded(len(x), payload, side, sum(q.clipped.values()), attrs)

    def decode(self, enc: Encoded) -> np.ndarray:
        # Everything from the stored side information, as a reader of the file would.
        lo = [float(v) for v in enc.side["lo"]]
        hi = [float(v) for v in enc.side["hi"]]
        q = ScalarQuantiser(self.variables, list(enc.attrs["spaces"]), lo, hi)
        k = int(self.bits or 0)
        codes = [unpack_bits(enc.payload[f"c{j}"], b, enc.n) for j, b in enumerate(q.bits(k))]
        return q.decode(codes, k)


class EntropyScalarCodec(ScalarCodec):
    """The scalar quantiser's codes entropy-coded (ANS, ``constriction``): what coding buys.

    The same cells and reconstructions as ``sq<k>``; the codes go through the compressed
    file's entropy coder (:func:`hepae_core.codecs.entropy.ans_encode`: the top bits of each code by
    ANS with this chunk's histogram per variable, stored as side information, the low bits
    packed).
    """

    family = "sqe"

    def encode(self, x: np.ndarray) -> Encoded:
        q = self._q()
        k = int(self.bits or 0)
        widths = q.bits(k)
        codes = q.encode(x, k)
        matrix = np.stack(codes, axis=1).astype(np.uint32) if codes else np.empty((len(x), 0))
        payload, tables, n_words = ans_encode(matrix, widths)
        side: dict[str, np.ndarray] = {
            "lo": np.asarray(q.lo, np.float32),
            "hi": np.asarray(q.hi, np.float32),
            "tables": np.frombuffer(tables, np.uint8),
            "n_words": np.array([n_words], np.uint32),
        }
        attrs = {"spaces": list(q.spaces), "col_bits": widths}
        return Encoded(len(x), {"ans": np.frombuffer(payload, np.uint8)}, side,
                       sum(q.clipped.values()), attrs)  # fmt: skip

    def decode(self, enc: Encoded) -> np.ndarray:
        lo = [float(v) for v in enc.side["lo"]]
        hi = [float(v) for v in enc.side["hi"]]
        q = ScalarQuantiser(self.variables, list(enc.attrs["spaces"]), lo, hi)
        k = int(self.bits or 0)
        widths = q.bits(k)
        codes = ans_decode(enc.payload["ans"].tobytes(), enc.side["tables"].tobytes(),
                           int(enc.side["n_words"][0]), enc.n, widths)  # fmt: skip
        return q.decode([codes[:, j] for j in range(codes.shape[1])], k)


# -- PCA ----------------------------------------------------------------------------------


class PCACodec(BaseCodec):
    """PCA transform coding: natural space, centred, scaled, ``z`` axes at ``k`` bits each."""

    family = "pca"

    def __init__(
        self,
        variables: list[str],
        kinds: list[str] | None = None,
        bits: int | None = 12,
        z: int = 1,
        max_rows: int = 200_000,
        seed: int = 0,
    ):
        super().__init__(variables, kinds, bits)
        self.z = z
        self.max_rows, self.seed = max_rows, seed
        self.spaces: list[str] = []
        self.mean = self.std = self.components = np.empty(0)
        self.explained = math.nan
        self.ranges: LatentQuantiser | None = None

    def _to(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.stack([to_space(x[:, j], s) for j, s in enumerate(self.spaces)], axis=1)

    def fit(self, train: np.ndarray) -> None:
        x = np.asarray(train, dtype=np.float64)
        kinds = self.kinds
        spaces = [
            natural_space(v, x[:, j], kinds[j] if kinds else None)
            for j, v in enumerate(self.variables)
        ]
        # periodic and integer columns are rotated as linear ones
        self.spaces = ["linear" if s in ("periodic", "integer") else s for s in spaces]
        t = self._to(x)
        t = t[np.isfinite(t).all(axis=1)]
        if len(t) > self.max_rows:
            t = t[np.random.default_rng(self.seed).choice(len(t), self.max_rows, replace=False)]
        # float32: what the side information stores, so the numbers measured are a reader's
        self.mean = t.mean(axis=0).astype(np.float32).astype(np.float64)
        std = t.std(axis=0)
        self.std = np.where(std > 0, std, 1.0).astype(np.float32).astype(np.float64)
        s = (t - self.mean) / self.std
        _, sv, vt = np.linalg.svd(s, full_matrices=False)
        var = sv**2
        z = min(self.z, vt.shape[0])
        self.components = vt[:z].astype(np.float32).astype(np.float64)
        self.explained = float(var[:z].sum() / var.sum()) if var.sum() > 0 else 1.0
        self.ranges = LatentQuantiser.fit(s @ self.components.T)

    def nominal_bits_per_jet(self) -> float:
        return self.components.shape[0] * (32 if self.bits is None else self.bits)

    def adopt(self, other: BaseCodec) -> bool:
        if not isinstance(other, PCACodec) or other.ranges is None or other.z != self.z:
            return False
        for key in ("spaces", "mean", "std", "components", "explained", "ranges"):
            setattr(self, key, getattr(other, key))
        return True

    def project(self, x: np.ndarray) -> np.ndarray:
        return ((self._to(x) - self.mean) / self.std) @ self.components.T

    def reconstruct(self, p: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        s = side or self._side()
        comps = np.asarray(s["components"], np.float64)
        t = (p @ comps) * np.asarray(s["std"], np.float64) + np.asarray(s["mean"], np.float64)
        return np.stack([from_space(t[:, j], sp) for j, sp in enumerate(self.spaces)], axis=1)

    def _side(self) -> dict[str, np.ndarray]:
        if self.ranges is None:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        return {
            "mean": self.mean.astype(np.float32),
            "std": self.std.astype(np.float32),
            "components": self.components.astype(np.float32),
            "lo": np.asarray(self.ranges.lo, np.float32),
            "hi": np.asarray(self.ranges.hi, np.float32),
        }

    def encode(self, x: np.ndarray) -> Encoded:
        side = self._side()
        p = self.project(x)
        if self.bits is None:
            return Encoded(len(x), {"p": p.astype(np.float32)}, side, 0, {"spaces": self.spaces})
        assert self.ranges is not None
        codes = self.ranges.encode(p, self.bits)
        payload = {f"c{i}": pack_bits(codes[:, i], self.bits) for i in range(codes.shape[1])}
        return Encoded(len(x), payload, side, self.ranges.clipped, {"spaces": self.spaces})

    def decode(self, enc: Encoded) -> np.ndarray:
        side = enc.side
        if self.bits is None:
            return self.reconstruct(np.asarray(enc.payload["p"], np.float64), side)
        q = LatentQuantiser([float(v) for v in side["lo"]], [float(v) for v in side["hi"]])
        codes = np.stack([unpack_bits(enc.payload[f"c{i}"], self.bits, enc.n)
                          for i in range(len(q.lo))], axis=1)  # fmt: skip
        return self.reconstruct(q.decode(codes, self.bits), side)


# -- SZ3 and ZFP --------------------------------------------------------------------------


class _BoundedCodec(BaseCodec):
    """A floating-point compressor on the natural-space values at the k-bit half step."""

    def __init__(self, variables: list[str], kinds: list[str] | None = None, bits: int = 12):
        super().__init__(variables, kinds, bits)
        self.quantiser: ScalarQuantiser | None = None
        self.bounds: list[float] = []

    @property
    def name(self) -> str:
        return f"{self.family}{self.bits}"

    def fit(self, train: np.ndarray) -> None:
        self._bounds(ScalarQuantiser.fit(self.variables, train, self.kinds))

    def adopt(self, other: BaseCodec) -> bool:
        q = getattr(other, "quantiser", None)
        if not isinstance(other, (_BoundedCodec, ScalarCodec)) or q is None:
            return False
        self._bounds(q)
        return True

    def _bounds(self, q: ScalarQuantiser) -> None:
        self.quantiser = q
        k = int(self.bits or 0)
        self.bounds = []
        for space, a, b, nb in zip(q.spaces, q.lo, q.hi, q.bits(k)):
            if space == "integer":
                self.bounds.append(0.49)  # rounded back on decode: exact
            else:
                step = (b - a) / (1 << nb) if b > a else 1.0
                self.bounds.append(step / 2)

    def encode(self, x: np.ndarray) -> Encoded:
        if self.quantiser is None:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        x = np.asarray(x, dtype=np.float64)
        payload = {}
        for j, (space, eb) in enumerate(zip(self.quantiser.spaces, self.bounds)):
            t = to_space(x[:, j], space).astype(np.float32)
            payload[f"c{j}"] = self._compress(np.ascontiguousarray(t), eb)
        return Encoded(len(x), payload, {}, 0, {"spaces": list(self.quantiser.spaces)})

    def decode(self, enc: Encoded) -> np.ndarray:
        cols = []
        for j, space in enumerate(enc.attrs["spaces"]):
            t = self._decompress(enc.payload[f"c{j}"], enc.n).astype(np.float64)
            if space == "integer":
                t = np.round(t)
            elif space == "periodic":
                # clipped, not wrapped: an input in [-pi, pi] stays within the bound of
                # the value (a wrap would turn 3.1417 into -3.1415)
                t = np.clip(t, -np.pi, np.pi)
            cols.append(from_space(t, space))
        return np.stack(cols, axis=1) if cols else np.empty((enc.n, 0))

    @abstractmethod
    def _compress(self, t: np.ndarray, bound: float) -> np.ndarray: ...

    @abstractmethod
    def _decompress(self, buf: np.ndarray, n: int) -> np.ndarray: ...


class SZ3Codec(_BoundedCodec):
    """SZ3 (``pysz``), absolute error bound per variable; the stream is the payload."""

    family = "sz3"

    @property
    def name(self) -> str:
        return f"sz3_{self.bits}"

    def _compress(self, t: np.ndarray, bound: float) -> np.ndarray:
        import pysz

        if not len(t):
            return np.empty(0, np.uint8)
        cfg = pysz.szConfig()
        cfg.errorBoundMode = pysz.szErrorBoundMode.ABS
        cfg.absErrorBound = float(bound)
        out, _ = pysz.sz.compress(t, cfg)
        return np.array(out, dtype=np.uint8)

    def _decompress(self, buf: np.ndarray, n: int) -> np.ndarray:
        import pysz

        if not n:
            return np.empty(0, np.float32)
        out, _ = pysz.sz.decompress(np.ascontiguousarray(buf, dtype=np.uint8), np.float32, (n,))
        return np.asarray(out).ravel()


class ZFPCodec(_BoundedCodec):
    """ZFP (``zfpy``) in fixed-accuracy mode at the same absolute bound."""

    family = "zfp"

    def _compress(self, t: np.ndarray, bound: float) -> np.ndarray:
        import zfpy

        if not len(t):
            return np.empty(0, np.uint8)
        return np.frombuffer(zfpy.compress_numpy(t, tolerance=float(bound)), np.uint8).copy()

    def _decompress(self, buf: np.ndarray, n: int) -> np.ndarray:
        import zfpy

        if not n:
            return np.empty(0, np.float32)
        return np.asarray(zfpy.decompress_numpy(np.asarray(buf, np.uint8).tobytes())).ravel()


# -- the autoencoder ----------------------------------------------------------------------


class LatentCodec(BaseCodec):
    """An autoencoder as a codec: latent quantised at ``k`` bits, the model paid per file.

    ``encode_fn`` maps physical jets to latent vectors and ``decode_fn`` back (a per-jet
    model: :func:`hepae_core.evaluation.evaluate.encode`/``decode`` bound to it). ``jets_per_row``
    is
    the jets a latent row stands for (G for a grouped model, on average). The latent ranges
    are fitted on the training jets and stored as side information.
    """

    family = "aeq"

    def __init__(
        self,
        variables: list[str],
        encode_fn: Callable[[np.ndarray], np.ndarray],
        decode_fn: Callable[[np.ndarray], np.ndarray],
        bits: int = 12,
        model_bytes: int = 0,
        kinds: list[str] | None = None,
        quantiser: LatentQuantiser | None = None,
    ):
        super().__init__(variables, kinds, bits)
        self.encode_fn, self.decode_fn = encode_fn, decode_fn
        self.model_bytes = int(model_bytes)
        self.quantiser = quantiser

    def fit(self, train: np.ndarray) -> None:
        z = np.asarray(self.encode_fn(train))
        self.quantiser = LatentQuantiser.fit(z[np.isfinite(z).all(axis=1)])

    def nominal_bits_per_jet(self, jets_per_row: float = 1.0) -> float:
        """Latent size x k bits, per jet (a grouped model: per group / ``jets_per_row``)."""
        if self.quantiser is None:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        return len(self.quantiser.lo) * int(self.bits or 0) / jets_per_row

    def encode_latent(self, z: np.ndarray, n_jets: int | None = None) -> Encoded:
        """Codes of latent rows ``z`` (already encoded) standing for ``n_jets`` jets."""
        q = self.quantiser
        if q is None:
            raise RuntimeError(f"{self.name}: fit() before encode()")
        k = int(self.bits or 0)
        codes = q.encode(np.asarray(z), k)
        payload = {f"c{i}": pack_bits(codes[:, i], k) for i in range(codes.shape[1])}
        side = {"lo": np.asarray(q.lo, np.float32), "hi": np.asarray(q.hi, np.float32)}
        n = len(z) if n_jets is None else n_jets
        return Encoded(n, payload, side, q.clipped, {"rows": len(z)})

    def decode_latent(self, enc: Encoded) -> np.ndarray:
        q = LatentQuantiser([float(v) for v in enc.side["lo"]], [float(v) for v in enc.side["hi"]])
        rows = int(enc.attrs.get("rows", enc.n))
        k = int(self.bits or 0)
        codes = np.stack(
            [unpack_bits(enc.payload[f"c{i}"], k, rows) for i in range(len(q.lo))], axis=1
        )
        return q.decode(codes, k)

    def encode(self, x: np.ndarray) -> Encoded:
        return self.encode_latent(np.asarray(self.encode_fn(x)), len(x))

    def decode(self, enc: Encoded) -> np.ndarray:
        return np.asarray(self.decode_fn(self.decode_latent(enc).astype(np.float32)), np.float64)


# -- registry -----------------------------------------------------------------------------

REGISTRY: dict[str, Callable[..., BaseCodec]] = {
    "float16": lambda variables, kinds=None, **_: CastCodec(variables, kinds, "float16"),
    "bfloat16": lambda variables, kinds=None, **_: CastCodec(variables, kinds, "bfloat16"),
    "lossless": lambda variables, kinds=None, **_: LosslessCodec(variables, kinds),
    "sq": lambda variables, kinds=None, bits=12, **_: ScalarCodec(variables, kinds, bits),
    "sqe": lambda variables, kinds=None, bits=12, **_: EntropyScalarCodec(variables, kinds, bits),
    "pca": lambda variables, kinds=None, bits=12, z=1, **_: PCACodec(variables, kinds, bits, z),
    "sz3": lambda variables, kinds=None, bits=12, **_: SZ3Codec(variables, kinds, bits),
    "zfp": lambda variables, kinds=None, bits=12, **_: ZFPCodec(variables, kinds, bits),
}
"""Family -> factory(variables, kinds, bits=..., **options). ``aeq`` needs a model: see
:class:`LatentCodec` (built by :func:`hepae_core.evaluation.evaluate.latent_codecs`)."""


def register(family: str, factory: Callable[..., BaseCodec]) -> None:
    """Add a codec family; ``factory(variables, kinds, bits=..., **options)``."""
    REGISTRY[family] = factory


def _predictive(variables: list[str], kinds: list[str] | None = None, **options: Any) -> BaseCodec:
    options.pop("bits", None)  # error-bounded: the bounds, not k, set the rate
    return PredictiveCodec(variables, kinds, **options)


register("pred", _predictive)  # error-bounded predictive coding (hepae_core.codecs.predictive)


def build(
    family: str, variables: list[str], kinds: list[str] | None = None, **options: Any
) -> BaseCodec:
    """A fresh codec of ``family`` (a key of :data:`REGISTRY`)."""
    try:
        factory = REGISTRY[family]
    except KeyError:
        raise ValueError(f"unknown codec {family!r} (have {', '.join(REGISTRY)})") from None
    return factory(variables, kinds, **options)


def baseline_codecs(
    variables: list[str],
    kinds: list[str] | None,
    bits: tuple[int, ...],
    pca_z: int | None = None,
    sq_bits: tuple[int, ...] | None = None,
    peers: bool = True,
) -> list[BaseCodec]:
    """The baselines every model is compared with.

    Casts, lossless, the scalar quantiser (plain and entropy-coded), PCA, SZ3 and ZFP.
    """
    out: list[BaseCodec] = [build("float16", variables, kinds), build("bfloat16", variables, kinds)]
    out += [build("sq", variables, kinds, bits=k) for k in (sq_bits or bits)]
    out += [build("sqe", variables, kinds, bits=k) for k in bits]
    if pca_z:
        out += [build("pca", variables, kinds, bits=k, z=pca_z) for k in bits]
    if peers:
        out += [build("sz3", variables, kinds, bits=k) for k in bits]
        out += [build("zfp", variables, kinds, bits=k) for k in bits]
    out.append(build("lossless", variables, kinds))
    return out


# -- accounting ---------------------------------------------------------------------------


def stored_bytes(enc: Encoded, model_bytes: int = 0, file_jets: int | None = None) -> float:
    """Payload + side + model bytes, for the jets encoded or scaled to ``file_jets`` jets."""
    payload: float = enc.payload_bytes
    if file_jets is not None and enc.n:
        payload = payload * file_jets / enc.n
    return payload + enc.side_bytes + model_bytes


def ratio(enc: Encoded, n_vars: int, model_bytes: int = 0, file_jets: int | None = None) -> float:
    """float32 input bytes / stored bytes (see :func:`stored_bytes`)."""
    n = enc.n if file_jets is None else file_jets
    stored = stored_bytes(enc, model_bytes, file_jets)
    return FLOAT_BYTES * n_vars * n / stored if stored > 0 and n else math.nan


def break_even_jets(
    payload_bytes_per_jet: float, fixed_bytes: float, ref_bytes_per_jet: float
) -> float:
    """Jets from which a codec with ``fixed_bytes`` per file stores less than a reference.

    ``ref_bytes_per_jet``: the reference's cost per jet (its side bytes spread, usually
    negligible). Inf when the codec's payload per jet is not below the reference's.
    """
    gain = ref_bytes_per_jet - payload_bytes_per_jet
    if gain <= 0:
        return math.inf
    return math.ceil(fixed_bytes / gain)


# -- the real writer ----------------------------------------------------------------------


def write_group(group: Any, enc: Encoded) -> int:
    """Write ``enc`` into an h5py group, contiguous and unfiltered; returns the bytes stored."""
    total = 0
    for part, arrays in (("payload", enc.payload), ("side", enc.side)):
        g = group.create_group(part)
        for key, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            ds = (
                g.create_dataset(key, data=a)
                if a.size
                else g.create_dataset(key, shape=a.shape, dtype=a.dtype)
            )
            total += ds.id.get_storage_size()
    group.attrs["n"] = enc.n
    group.attrs["clipped"] = enc.clipped
    for key, value in enc.attrs.items():
        group.attrs[key] = value
    return total


def read_group(group: Any) -> Encoded:
    """The :class:`Encoded` that :func:`write_group` wrote."""
    payload = {k: group["payload"][k][()] for k in group["payload"]}
    side = {k: group["side"][k][()] for k in group["side"]}
    attrs = {}
    for k, v in group.attrs.items():
        if k in ("n", "clipped"):
            continue
        if isinstance(v, np.ndarray):
            v = [
                x.decode() if isinstance(x, bytes) else x.item() if hasattr(x, "item") else x
                for x in v
            ]
        attrs[k] = v
    return Encoded(int(group.attrs["n"]), payload, side, int(group.attrs["clipped"]), attrs)


def write_file(path: str | Path, codec: Any, enc: Encoded, model: bytes | None = None) -> int:
    """One codec's output as an HDF5 file (temp + rename); returns the bytes of its datasets.

    ``model``: the bytes of the model (the autoencoder), stored as ``/model``.
    """
    import os

    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["codec"] = codec.name
            f.attrs["variables"] = ",".join(codec.variables)
            total = write_group(f.create_group("data"), enc)
            if model is not None:
                ds = f.create_dataset("model", data=np.frombuffer(model, np.uint8))
                total += ds.id.get_storage_size()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return total


def read_file(path: str | Path) -> tuple[Encoded, bytes | None]:
    """(:class:`Encoded`, model bytes or None) of a file :func:`write_file` wrote."""
    import h5py

    with h5py.File(path, "r") as f:
        model = f["model"][()].tobytes() if "model" in f else None
        return read_group(f["data"]), model
