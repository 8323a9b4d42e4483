"""Uniform quantisers: per-variable scalar quantisation in each variable's natural space.

Numpy only (the summarizer and the codec use it without torch). A uniform quantiser with
``k`` bits splits a range [lo, hi] into ``2**k`` cells of width ``step = (hi - lo) / 2**k``
and reconstructs each value at its cell's centre ("mid-rise"), so on smooth data the
reconstruction error is uniform in [-step/2, step/2]: standard deviation ``step / sqrt(12)``,
robust width (half the 16-84 % interval) ``0.34 * step``.

Natural spaces (:func:`natural_space`):

``log``
    positive scale variables (pt, E, m, ...): quantised in ``ln x``, so the relative error is
    the same at 20 GeV and at 2 TeV.
``periodic``
    angles (phi): the range is the full circle [-pi, pi), no value is ever clipped.
``integer``
    integer-valued variables (constituent counts): stored exactly, as ``x - lo`` with just
    enough bits for the training range, whatever ``k`` is.
``linear``
    everything else (eta, fractions, widths).

Ranges come from the training jets; values outside them are clipped to the range and
counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepae_core.variables import ANGLE_RESIDUAL, ENERGY_VARIABLES, RELATIVE_RESIDUAL

SPACES = ("log", "linear", "periodic", "integer")
RANGE_BYTES = 8  # one float32 lo and one float32 hi per quantised column
DEFAULT_BITS = tuple(range(6, 17))


def code_dtype(bits: int) -> np.dtype:
    """The narrowest unsigned integer type that holds ``bits``-bit codes."""
    if bits <= 8:
        return np.dtype(np.uint8)
    if bits <= 16:
        return np.dtype(np.uint16)
    if bits <= 32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


def uniform_encode(
    t: np.ndarray, lo: float, hi: float, bits: int, periodic: bool = False
) -> tuple[np.ndarray, int]:
    """Codes of ``t`` on ``2**bits`` equal cells of [lo, hi]; returns (codes, number clipped).

    ``periodic`` wraps instead of clipping (the cell index is taken modulo ``2**bits``).
    """
    n = 1 << bits
    step = (hi - lo) / n if hi > lo else 1.0
    cell = np.floor((np.asarray(t, dtype=np.float64) - lo) / step)
    if periodic:
        return np.mod(cell, n).astype(code_dtype(bits)), 0
    clipped = int(np.count_nonzero((t < lo) | (t > hi)))
    return np.clip(cell, 0, n - 1).astype(code_dtype(bits)), clipped


def uniform_decode(codes: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """The centre of each code's cell."""
    n = 1 << bits
    step = (hi - lo) / n if hi > lo else 1.0
    return lo + (np.asarray(codes, dtype=np.float64) + 0.5) * step


def natural_space(name: str, train: np.ndarray, residual_kind: str | None = None) -> str:
    """The space in which variable ``name`` is quantised uniformly (see the module doc).

    ``train`` is the variable's training column: it decides whether the values are
    integers and whether a log is possible (all values positive).
    """
    col = np.asarray(train, dtype=np.float64)
    col = col[np.isfinite(col)]
    if residual_kind == "angle" or (residual_kind is None and name in ANGLE_RESIDUAL):
        return "periodic"
    if col.size and np.all(col == np.round(col)):
        return "integer"
    scale = residual_kind == "relative" or name in RELATIVE_RESIDUAL or name in ENERGY_VARIABLES
    if scale and col.size and col.min() > 0:
        return "log"
    return "linear"


def to_space(x: np.ndarray, space: str) -> np.ndarray:
    """Physical values -> the natural space (``periodic`` wraps to [-pi, pi))."""
    x = np.asarray(x, dtype=np.float64)
    if space == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            logs: np.ndarray = np.log(x)
            return logs
    if space == "periodic":
        return (x + np.pi) % (2 * np.pi) - np.pi
    return x


def from_space(t: np.ndarray, space: str) -> np.ndarray:
    """The natural space -> physical values."""
    return np.exp(t) if space == "log" else np.asarray(t, dtype=np.float64)


@dataclass
class ScalarQuantiser:
    """Each variable quantised on its own, uniformly in its natural space.

    Attributes
    ----------
    variables, spaces
        Column names and their natural spaces.
    lo, hi
        Training range of each column in its natural space ([-pi, pi] for periodic ones).
    """

    variables: list[str]
    spaces: list[str]
    lo: list[float]
    hi: list[float]
    clipped: dict[str, int] = field(default_factory=dict)  # per variable, at the last encode

    @classmethod
    def fit(
        cls, variables: list[str], train: np.ndarray, kinds: list[str] | None = None
    ) -> ScalarQuantiser:
        """Natural spaces and ranges from the training jets (physical units)."""
        x = np.asarray(train, dtype=np.float64)
        spaces, lo, hi = [], [], []
        for j, var in enumerate(variables):
            space = natural_space(var, x[:, j], kinds[j] if kinds else None)
            if space == "periodic":
                a, b = -math.pi, math.pi
            else:
                t = to_space(x[:, j], space)
                t = t[np.isfinite(t)]
                a, b = (float(t.min()), float(t.max())) if t.size else (0.0, 0.0)
            # float32 ranges are what a file stores: use them here too, so the numbers
            # measured are the numbers a reader gets.
            spaces.append(space)
            lo.append(float(np.float32(a)))
            hi.append(float(np.float32(b)))
        return cls(list(variables), spaces, lo, hi)

    def bits(self, k: int) -> list[int]:
        """Bits per value of each column at ``k`` bits (integer columns: what they need)."""
        out = []
        for space, a, b in zip(self.spaces, self.lo, self.hi):
            if space == "integer":
                out.append(max(1, math.ceil(math.log2(b - a + 1))))
            else:
                out.append(k)
        return out

    def bits_per_jet(self, k: int) -> int:
        return sum(self.bits(k))

    @property
    def side_bytes(self) -> int:
        """Bytes of the stored ranges."""
        return RANGE_BYTES * len(self.variables)

    def encode(self, x: np.ndarray, k: int) -> list[np.ndarray]:
        """One code column per variable (narrowest unsigned type); counts clipped values."""
        x = np.asarray(x, dtype=np.float64)
        codes, self.clipped = [], {}
        for j, (space, a, b, nb) in enumerate(zip(self.spaces, self.lo, self.hi, self.bits(k))):
            t = to_space(x[:, j], space)
            if space == "integer":
                n_clip = int(np.count_nonzero((t < a) | (t > b)))
                c = (np.clip(np.round(t), a, b) - a).astype(code_dtype(nb))
            else:
                c, n_clip = uniform_encode(t, a, b, nb, periodic=space == "periodic")
            codes.append(c)
            self.clipped[self.variables[j]] = n_clip
        return codes

    def decode(self, codes: list[np.ndarray], k: int) -> np.ndarray:
        """Physical values, float64, shape (n, variables)."""
        cols = []
        for c, space, a, b, nb in zip(codes, self.spaces, self.lo, self.hi, self.bits(k)):
            t = c.astype(np.float64) + a if space == "integer" else uniform_decode(c, a, b, nb)
            cols.append(from_space(t, space))
        return np.stack(cols, axis=1) if cols else np.empty((0, 0))

    def roundtrip(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.decode(self.encode(x, k), k)

    def to_dict(self) -> dict[str, Any]:
        return {"variables": self.variables, "spaces": self.spaces, "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScalarQuantiser:
        return cls(list(d["variables"]), list(d["spaces"]), list(d["lo"]), list(d["hi"]))


@dataclass
class LatentQuantiser:
    """Each latent dimension quantised to ``k`` bits over its training range."""

    lo: list[float]
    hi: list[float]
    clipped: int = 0

    @classmethod
    def fit(cls, z_train: np.ndarray) -> LatentQuantiser:
        z = np.asarray(z_train, dtype=np.float64)
        return cls(
            [float(np.float32(v)) for v in z.min(axis=0)],
            [float(np.float32(v)) for v in z.max(axis=0)],
        )

    @property
    def side_bytes(self) -> int:
        return RANGE_BYTES * len(self.lo)

    def encode(self, z: np.ndarray, k: int) -> np.ndarray:
        """Codes, shape (n, latent), narrowest unsigned type; counts clipped values."""
        out = np.empty(np.shape(z), dtype=code_dtype(k))
        self.clipped = 0
        for j, (a, b) in enumerate(zip(self.lo, self.hi)):
            out[:, j], n = uniform_encode(z[:, j], a, b, k)
            self.clipped += n
        return out

    def decode(self, codes: np.ndarray, k: int) -> np.ndarray:
        cols = [
            uniform_decode(codes[:, j], a, b, k) for j, (a, b) in enumerate(zip(self.lo, self.hi))
        ]
        return np.stack(cols, axis=1)


def _bit_list(bits: int | list[int] | tuple[int, ...], columns: int) -> list[int]:
    out = [int(bits)] * columns if np.ndim(bits) == 0 else [int(b) for b in bits]  # type: ignore[arg-type, union-attr]
    if len(out) != columns:
        raise ValueError(f"{len(out)} bit widths for {columns} columns")
    if any(not 1 <= b <= 32 for b in out):
        raise ValueError(f"bit widths must be 1 to 32, not {out}")
    return out


def pack_bits(codes: np.ndarray, bits: int | list[int] | tuple[int, ...]) -> np.ndarray:
    """Codes at exactly ``bits`` bits each, MSB first, as bytes (uint8).

    ``codes`` is (n,) or (n, c) unsigned; ``bits`` one width or one per column. The bits go
    jet by jet, column by column, so ``n`` jets take ``ceil(n * sum(bits) / 8)`` bytes: the
    last byte is padded with zeros. Values must fit their width (they are masked to it).
    """
    c = np.asarray(codes)
    if c.ndim == 1:
        c = c[:, None]
    widths = _bit_list(bits, c.shape[1])
    if c.shape[0] == 0:
        return np.empty(0, np.uint8)
    parts = []
    for j, b in enumerate(widths):
        shifts = np.arange(b - 1, -1, -1, dtype=np.uint32)
        parts.append(((c[:, j : j + 1].astype(np.uint32) >> shifts) & 1).astype(np.uint8))
    return np.packbits(np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0])


def unpack_bits(buf: np.ndarray, bits: int | list[int] | tuple[int, ...], n: int) -> np.ndarray:
    """The inverse of :func:`pack_bits`: (n, c) codes, uint16 (uint32 above 16 bits).

    ``bits`` as given to :func:`pack_bits` (an int gives one column). A buffer of the wrong
    length raises ValueError: a reader refuses it rather than decoding garbage.
    """
    widths = _bit_list(bits, 1 if np.ndim(bits) == 0 else len(bits))  # type: ignore[arg-type]
    total = sum(widths)
    buf = np.asarray(buf, dtype=np.uint8)
    if buf.size != (n * total + 7) // 8:
        raise ValueError(f"{buf.size} bytes for {n} rows of {total} bits")
    flat = np.unpackbits(buf, count=n * total).reshape(n, total)
    out = np.empty((n, len(widths)), np.uint32 if max(widths) > 16 else np.uint16)
    off = 0
    for j, b in enumerate(widths):
        weights = (1 << np.arange(b - 1, -1, -1, dtype=np.uint64)).astype(np.uint32)
        out[:, j] = flat[:, off : off + b].astype(np.uint32) @ weights
        off += b
    return out
