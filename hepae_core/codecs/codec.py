"""A trained autoencoder as a file codec: compress jets to bit-packed latent codes and back.

File format ``hepae-compressed`` version 2 (HDF5; the full description is in
docs/compression.md). Every dataset is contiguous, unfiltered and one-dimensional
``uint8`` unless said otherwise, so its bytes on disk are exactly the bytes counted:

``/codes``  (payload)
    the quantised latent of every unit (a jet, or a group of G jets for grouped and
    two-stage models), chunk after chunk, bit-packed at exactly ``bits`` bits per latent
    value (:func:`hepae_core.codecs.quantise.pack_bits`), or entropy coded (``entropy="ans"``).
``/ranges``  (side, float32 (chunks, latent, 2))
    the latent range of each chunk, taken from the jets of this file: nothing is clipped.
``/chunks``  (side, uint64 (chunks, columns))
    the chunk table: jets, events, units, counts and byte lengths of every stream.
``/exceptions``, ``/corrections/<variable>``  (side)
    jets stored raw (outside the model's domain, or a non-finite latent) and the values
    that missed an error bound: delta-coded row numbers and raw float32 values, zlib.
``/counts``  (side, jagged inputs)
    jets per event, zlib.
``/ans_tables``  (side, ``entropy="ans"``)
    the symbol counts of the entropy coder, per chunk and latent, zlib.
``/kept/<branch>``
    columns stored as they are (``keep``), byte-shuffled and zlib-compressed per chunk.
``/model``
    the bytes of the job's model.pt (weights, architecture, normalisation).

Root attributes describe the file (variables, branches, units, bits, ...); ``checksums``
holds the SHA-256 of every dataset and ``header_sha256`` that of the other attributes.
A reader verifies all of them, and that the model fits the codes, before decoding anything
(:class:`CorruptFile`, exit 1). Everything is written to a temporary file and renamed.
A file with the attribute ``codec = "pred"`` holds the error-bounded predictive codec
instead (hepae_core.codecs.pred_file: same checksums, its own datasets); :func:`chunk_decoder`
reads either.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hepae_core import __version__, jobdir
from hepae_core.codecs.container import (
    CHUNK,
    FORMAT,
    FORMAT_VERSION,
    CorruptFile,
    _accounting,
    _damaged,
    _dataset_bytes,
    _json_attr,
    _Streams,
    _write_array,
    parse_bounds,
    parse_map,
    sha256_of,
    verify_checksums,
    write_header,
)
from hepae_core.codecs.entropy import ans_decode, ans_encode
from hepae_core.codecs.quantise import LatentQuantiser, pack_bits, unpack_bits
from hepae_core.errors import DataError, HepaeError
from hepae_core.evaluation.residuals import residuals
from hepae_core.variables import ENERGY_VARIABLES, default_residual_kind

MAX_BITS = 16
ENTROPY = ("none", "ans")
ROUNDING_MARGIN = 8 * 2.0**-24  # 8 float32 roundings, relative to the residual's scale
GROSS_LOG = math.log(10.0)  # decoded > 10x off on a scale variable: outside the domain


# --------------------------------------------------------------------------- the codec


@dataclass
class AutoencoderCodec:
    """A trained autoencoder as a codec: per-jet, grouped (G jets) or two-stage models.

    ``latents`` turns physical jets (model units, GeV) into one latent vector per unit (a
    jet, or G consecutive jets); ``jets`` turns latents back. The quantisation (bits, ranges)
    is applied around these by :func:`compress` and the evaluation; ``model_data`` is the
    model.pt whose bytes every ratio with the model counts.
    """

    norm: Any  # physical jets -> normalised inputs
    header: dict[str, Any]  # model.pt without its weights
    model_data: bytes
    grouped: Any = None  # two_stage.GroupedCodec for grouped and two-stage models
    job_id: str = ""
    units: str = "GeV"
    quantiser: LatentQuantiser | None = None  # training ranges of the latent (metrics.json)
    bits: list[int] | None = None
    family: str = "aeq"
    state: dict[str, np.ndarray] | None = None  # per-jet weights, numpy
    _torch: Any = None
    _enc: Any = None
    _dec: Any = None

    @classmethod
    def from_bytes(cls, data: bytes, source: str, **kw: Any) -> AutoencoderCodec:
        """The one model loader of the codec path: per-jet, grouped and two-stage model.pt.

        Per-jet models run on numpy (:class:`NumpyMLP`, torch is not even imported);
        grouped and two-stage ones through torch
        (:class:`hepae_core.training.two_stage.GroupedCodec`).
        """
        from hepae_core.data.normalise import Normaliser
        from hepae_core.run.modelfile import MODEL_FORMAT

        try:
            payload = read_model_file(data)
        except Exception as exc:
            raise CorruptFile(source=source, message=f"the model cannot be read ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise CorruptFile(source=source, message="is not a model saved by hepae_core")
        header = {k: v for k, v in payload.items() if k not in ("state_dict", "stage1")}
        try:
            norm = Normaliser.from_dict(payload["normalisation"])
            if payload.get("group"):
                import torch

                from hepae_core.run.modelfile import load_model
                from hepae_core.training.two_stage import codec_from_payload

                model, _, tp = load_model(data, allow_grouped=True, name=source)
                grouped = codec_from_payload(model, norm, tp, torch.device("cpu"))
                return cls(norm, header, data, grouped, _torch=model, **kw)
            state = dict(payload["state_dict"])
            codec = cls(norm, header, data, state=state, **kw)
            mc = payload["model_config"]
            codec._enc = NumpyMLP(state, "encoder", mc, bool(mc.get("latent_activation")))
            codec._dec = NumpyMLP(state, "decoder", mc, False)
            probe = codec._dec(codec._enc(np.zeros((1, len(norm.variables)), np.float32)))
            if probe.shape != (1, len(norm.variables)):
                raise ValueError(f"the model maps {len(norm.variables)} values to {probe.shape}")
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise CorruptFile(source=source, message=f"the model does not load ({exc})") from None
        return codec

    @property
    def model(self) -> Any:
        """The torch AutoEncoder (built on first use: the evaluation's path, not the codec's)."""
        if self._torch is None:
            import torch

            from hepae_core.training.models import build_model

            assert self.state is not None  # per-jet models; grouped ones set _torch on load
            m = build_model(self.header["model_config"], len(self.variables))
            m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
            self._torch = m.eval()
        return self._torch

    @property
    def variables(self) -> list[str]:
        return list(self.norm.variables)

    @property
    def group(self) -> int:
        """Jets per latent vector (1 for per-jet models)."""
        return int(self.grouped.size) if self.grouped is not None else 1

    @property
    def latent(self) -> int:
        return int(self.header["model_config"]["latent"])

    @property
    def kind(self) -> str:
        if self.grouped is None:
            return "jet"
        return "two_stage" if self.grouped.stage1 is not None else "grouped"

    @property
    def model_bytes(self) -> int:
        """Bytes paid once per file for the model (the codec Protocol's name)."""
        return len(self.model_data)

    @property
    def name(self) -> str:
        return f"aeq{self.bits[0]}" if self.bits else "ae"

    def fit(self, train: np.ndarray) -> None:
        """Trained already; the quantiser's ranges come from each file (nothing to fit)."""

    def latents(self, x: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
        """(units, latent) float32 latents of physical jets; rows not ``ok`` are padding."""
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        ok = np.ones(n, bool) if ok is None else ok
        if self.grouped is None:
            with np.errstate(all="ignore"):
                f = self.norm.forward(x).astype(np.float32, copy=False)
            f[~ok] = 0.0
            arr: np.ndarray = self._enc(f)
            return arr
        import torch

        with torch.no_grad():
            g = self.group
            rows = np.full(-(-n // g) * g, -1, dtype=np.int64)
            rows[:n] = np.where(ok, np.arange(n), -1)
            xs = x.copy()
            xs[~ok] = x[ok][0] if ok.any() else 1.0  # any finite jet: its slot is padding
            lat: np.ndarray = self.grouped.encode(xs, rows.reshape(-1, g)).astype(
                np.float32, copy=False
            )
            return lat

    def jets(self, z: np.ndarray, n: int) -> np.ndarray:
        """(n, d) float32 physical jets of ``n`` jets from their units' latents."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if self.grouped is None:
            with np.errstate(all="ignore"):
                arr: np.ndarray = self.norm.inverse(self._dec(z)).astype(np.float32, copy=False)
                return arr
        import torch

        with torch.no_grad():
            y = self.grouped.decode(z).reshape(len(z) * self.group, -1)[:n]
            return np.asarray(y, dtype=np.float32)

    # the codec Protocol of hepae_core.codecs.registry (JetCodec): training ranges, as evaluated
    def latent_codec(self, bits: int | None = None) -> Any:
        """This model as a :class:`hepae_core.codecs.registry.LatentCodec` at ``bits`` bits: the
        evaluation's view of it (training ranges of the latent, model bytes counted)."""
        from hepae_core.codecs.registry import LatentCodec

        k = int(bits if bits is not None else (self.bits[0] if self.bits else 12))
        g = self.group
        return LatentCodec(
            self.variables,
            self.latents,
            lambda z: self.jets(z, len(z) * g),
            bits=k,
            model_bytes=self.model_bytes,
            quantiser=self.quantiser,
        )

    def encode(self, x: np.ndarray) -> Any:
        """JetCodec.encode: an Encoded of the jets at ``self.bits`` over the training ranges."""
        return self.latent_codec().encode(x)

    def decode(self, enc: Any) -> np.ndarray:
        """JetCodec.decode: physical jets (n, d) of an Encoded from :meth:`encode`."""
        arr: np.ndarray = self.latent_codec().decode(enc)[: enc.n]
        return arr


# --------------------------------------------------------------------------- torch-free model


_NP_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


def read_model_file(data: bytes) -> dict[str, Any]:
    """A model.pt (``torch.save`` zip of dicts, lists, numbers and tensors) read without torch:
    tensors come back as numpy arrays. Only the classes a tensor needs are accepted (as
    ``torch.load(weights_only=True)`` does); anything else raises ValueError."""
    import pickle
    import zipfile

    zf = zipfile.ZipFile(io.BytesIO(data))
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise ValueError("no data.pkl in the model file")
    prefix = pkl[0][: -len("data.pkl")]
    order = zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in zf.namelist() \
        else "little"  # fmt: skip
    endian = "<" if order == "little" else ">"

    def rebuild(
        storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
    ) -> Any:
        item = storage.itemsize
        if not size:
            return storage[offset].copy()
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
        ).copy()

    class _Storage:
        def __init__(self, dtype: Any) -> None:
            self.dtype = dtype

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild
            if module == "torch" and name in _NP_DTYPES:
                return _Storage(_NP_DTYPES[name])
            if module == "collections" and name == "OrderedDict":
                import collections

                return collections.OrderedDict
            raise ValueError(f"{module}.{name} is not allowed in a model file")

        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                raise ValueError(f"unknown persistent id {pid!r}")
            kind, key = pid[1], pid[2]
            dtype = np.dtype(kind.dtype).newbyteorder(endian)
            raw = zf.read(f"{prefix}data/{key}")
            return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))

    payload: dict[str, Any] = Unpickler(io.BytesIO(zf.read(pkl[0]))).load()
    return payload


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "tanh":
        return np.tanh
    if name == "relu":
        return lambda x: np.maximum(x, 0, out=x)
    if name == "leaky_relu":
        return lambda x: np.where(x > 0, x, np.float32(0.01) * x)
    if name == "elu":
        return lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if name == "silu":
        return lambda x: x / (np.float32(1) + np.exp(-x))
    raise ValueError(f"activation {name!r}")


def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    arr: np.ndarray = np.add(x @ w, b, dtype=np.float32)
    return arr


def _scale_shift(x: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    arr: np.ndarray = x * s + t
    return arr


class NumpyMLP:
    """The encoder or decoder of a saved per-jet AutoEncoder, evaluated with numpy.

    The layers of :func:`hepae_core.training.models._stack` in eval mode: Linear, BatchNorm1d
    (running
    statistics), activation, dropout (nothing). numpy instead of torch keeps the codec's
    memory small (importing torch alone takes ~275 MB) and matches torch to float32 rounding.
    """

    BATCH = 8192  # rows at a time: the activations stay in the cache and memory small

    def __init__(self, state: dict[str, np.ndarray], prefix: str, cfg: dict[str, Any],
                 last_activation: bool) -> None:  # fmt: skip
        idx = sorted({int(k.split(".")[1]) for k in state if k.startswith(prefix + ".")})
        act = _activation(cfg["activation"])
        self.layers: list[Callable[[np.ndarray], np.ndarray]] = []
        linear = [j for j in idx if f"{prefix}.{j}.weight" in state
                  and state[f"{prefix}.{j}.weight"].ndim == 2]  # fmt: skip
        for n, j in enumerate(linear):
            w = np.ascontiguousarray(state[f"{prefix}.{j}.weight"].T, dtype=np.float32)
            b = state[f"{prefix}.{j}.bias"].astype(np.float32)
            self.layers.append(functools.partial(_affine, w=w, b=b))
            if n == len(linear) - 1 and not last_activation:
                break
            k = j + 1
            if cfg.get("batch_norm"):
                m, v = state[f"{prefix}.{k}.running_mean"], state[f"{prefix}.{k}.running_var"]
                g, beta = state[f"{prefix}.{k}.weight"], state[f"{prefix}.{k}.bias"]
                scale = (g / np.sqrt(v.astype(np.float64) + 1e-5)).astype(np.float32)
                shift = (beta - m * scale).astype(np.float32)
                self.layers.append(functools.partial(_scale_shift, s=scale, t=shift))
            self.layers.append(act)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        with one_blas_thread():
            for lo in range(0, max(len(x), 1), self.BATCH):
                y = x[lo : lo + self.BATCH]
                for layer in self.layers:
                    y = layer(y)
                outs.append(y)
        return np.concatenate(outs) if len(outs) > 1 else outs[0]


Codec = AutoencoderCodec  # the name of version 1


def load_codec(job_dir: str | Path) -> AutoencoderCodec:
    """The codec of a finished job: model.pt, and the latent ranges from metrics.json."""
    job_dir = Path(job_dir)
    model_path = job_dir / jobdir.MODEL
    if not model_path.is_file():
        raise HepaeError(
            source=str(job_dir),
            message=f"has no {jobdir.MODEL}: --model takes a finished job directory",
        )
    data = model_path.read_bytes()
    codec = AutoencoderCodec.from_bytes(data, str(model_path), job_id=job_dir.name)
    try:
        metrics = json.loads((job_dir / jobdir.METRICS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise HepaeError(
            source=str(job_dir / jobdir.METRICS), message="missing or unreadable: is the job "
            "finished?"
        ) from None  # fmt: skip
    lo = [metrics.get(f"latent.{i}.min") for i in range(codec.latent)]
    hi = [metrics.get(f"latent.{i}.max") for i in range(codec.latent)]
    if all(v is not None for v in lo + hi):
        codec.quantiser = LatentQuantiser(lo, hi)
    try:
        from hepae_core.config import load

        codec.units = load(job_dir / jobdir.CONFIG)["data"].get("units", "GeV") or "GeV"
    except Exception:  # an old or moved config: the model's units are GeV then
        pass
    return codec


@functools.cache
def _blas_threads() -> tuple[Any, Any] | None:
    """(set, get) of the number of threads of numpy's OpenBLAS, or None (another BLAS)."""
    try:
        import ctypes

        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()
                           and ".so" in line})  # fmt: skip
        for path in libs:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    s, g = f"{prefix}_set_num_threads{suffix}", f"{prefix}_get_num_threads{suffix}"
                    if hasattr(lib, s) and hasattr(lib, g):
                        return getattr(lib, s), getattr(lib, g)
    except OSError:
        pass
    return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's OpenBLAS on one thread for the duration (restored after).

    The model's matrices are small (8192 x 64): on a shared machine OpenBLAS's threads wait
    on each other, and compress ran 5-10x slower than on one thread.
    """
    controls = _blas_threads()
    if controls is None:
        yield
        return
    setter, getter = controls
    before = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(before)


# --------------------------------------------------------------------------- quantisation


def _widths(bits: int | list[int] | tuple[int, ...] | str | None, latent: int) -> list[int]:
    """Bits per latent value: one number for all, or one per latent dimension (1 to 16)."""
    if bits is None:
        raise HepaeError(source="--bits", message="give the bits per latent value")
    if isinstance(bits, str):
        try:
            bits = [int(b) for b in bits.split(",")]
        except ValueError:
            raise HepaeError(source="--bits", message=f"{bits!r}: give a number of bits "
                             "(12) or one per latent value (12,10,8)") from None  # fmt: skip
    widths = [int(bits)] * latent if np.ndim(bits) == 0 else [int(b) for b in bits]  # type: ignore[arg-type, union-attr]
    if len(widths) == 1:
        widths = widths * latent
    if len(widths) != latent:
        raise HepaeError(source="--bits", message=f"{len(widths)} widths for a latent of "
                         f"{latent}: give one number or {latent}")  # fmt: skip
    bad = [b for b in widths if not 1 <= b <= MAX_BITS]
    if bad:
        raise HepaeError(source="--bits", message=f"{bad[0]}: use 1 to {MAX_BITS} bits per "
                         "latent value")  # fmt: skip
    return widths


def chunk_ranges(z: np.ndarray) -> np.ndarray:
    """(latent, 2) float32 [min, max] of each latent dimension (zeros when there is none)."""
    if len(z) == 0:
        return np.zeros((z.shape[1], 2), np.float32)
    return np.stack([z.min(axis=0), z.max(axis=0)], axis=1).astype(np.float32)


def quantise(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, widths: list[int]) -> np.ndarray:
    """(n, latent) uint16 codes: ``2**k`` equal cells over [lo, hi] of each dimension.

    The ranges enclose the values they were taken from, so the clip below only catches the
    top edge (``z == hi``) and rows outside the chunk's range (padding).
    """
    out = np.empty(z.shape, np.uint16)
    for j, b in enumerate(widths):
        n = 1 << b
        step = (float(hi[j]) - float(lo[j])) / n
        if step > 0:
            cell = np.floor((z[:, j].astype(np.float64) - float(lo[j])) / step)
            out[:, j] = np.clip(np.nan_to_num(cell), 0, n - 1)
        else:  # one value, or none: every code is 0 and decodes to lo
            out[:, j] = 0
    return out


def dequantise(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, widths: list[int]) -> np.ndarray:
    """(n, latent) float32 latents at the centre of each code's cell."""
    z = np.empty(codes.shape, np.float32)
    for j, b in enumerate(widths):
        step = (float(hi[j]) - float(lo[j])) / (1 << b)
        z[:, j] = (
            float(lo[j]) + (codes[:, j].astype(np.float64) + 0.5) * step if step > 0 else lo[j]
        )
    return z


# --------------------------------------------------------------------------- sparse blobs


def _shuffle(values: np.ndarray) -> bytes:
    """Bytes of ``values`` grouped by byte position (compresses floats better)."""
    v = np.ascontiguousarray(values)
    if v.dtype.itemsize == 1 or v.size == 0:
        return v.tobytes()
    return v.view(np.uint8).reshape(-1, v.dtype.itemsize).T.tobytes()


def _unshuffle(data: bytes, dtype: npt.DTypeLike, n: int) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = np.frombuffer(data, np.uint8)
    if raw.size != n * dtype.itemsize:
        raise ValueError(f"{raw.size} bytes for {n} values of {dtype}")
    if dtype.itemsize == 1 or n == 0:
        return raw.view(dtype).copy()
    return np.ascontiguousarray(raw.reshape(dtype.itemsize, -1).T).view(dtype).reshape(n)


def sparse_blob(rows: np.ndarray, values: np.ndarray) -> bytes:
    """Rows (increasing, within a chunk) and their float32 values: delta-coded, zlib."""
    if len(rows) == 0:
        return b""
    deltas = np.diff(np.asarray(rows, np.int64), prepend=0).astype(np.uint32)
    return zlib.compress(_shuffle(deltas) + _shuffle(np.asarray(values, np.float32)), 6)


def sparse_read(blob: bytes, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, values (n, width)) of a :func:`sparse_blob` of ``n`` rows."""
    if n == 0:
        if blob:
            raise ValueError("bytes where no rows are recorded")
        return np.empty(0, np.int64), np.empty((0, width), np.float32)
    raw = zlib.decompress(blob)
    rows = np.cumsum(_unshuffle(raw[: 4 * n], np.uint32, n).astype(np.int64))
    values = _unshuffle(raw[4 * n :], np.float32, n * width).reshape(n, width)
    return rows, values


# --------------------------------------------------------------------------- options


# --------------------------------------------------------------------------- writing


def _residual_scale(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How much one relative rounding of the decoded value ``y`` moves the residual."""
    if kind == "relative":
        arr: np.ndarray = np.abs(y / x)
        return arr
    if kind == "angle":
        return np.full(len(y), math.pi)
    return np.abs(y.astype(np.float64))


def compress(
    job_dir: str | Path,
    src: str | Path,
    out: str | Path,
    *,
    bits: int | list[int] | str = 12,
    branches: str | None = None,
    keep: list[str] | None = None,
    tree: str = "jets",
    key: str | None = None,
    fmt: str = "auto",
    units: str | None = None,
    chunk_size: int = CHUNK,
    max_error: str | dict[str, Any] | None = None,
    container: str | None = None,
    entropy: str = "none",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compress the jets of ``src`` with the model of ``job_dir``; returns the file's summary.

    ``bits``: bits per latent value, one for all or one per latent dimension (1 to 16); the
    codes are bit-packed at exactly that width. ``entropy="ans"`` entropy-codes them.

    ``max_error`` (``"pt=1e-3,eta=0.01"``, ``"m=0.5GeV"`` or a dict) bounds the residual of
    those variables (relative for pt, E, m; wrapped for phi; absolute otherwise, in the
    file's units unless a unit is given): a value that misses its bound is stored raw (a
    correction), so every decompressed value meets its bound.

    ``container`` (e.g. ``jet_``) reads a jagged per-event ROOT tree (branches ``jet_pt``,
    ...): the jets are compressed, the per-event counts and the ``keep`` branches are
    stored, every jagged branch with its own counter, and decompress rebuilds the events.
    ``keep=["*"]`` keeps every other branch of the tree.

    The summary's byte counts are those of the datasets as written (docs/compression.md).
    """
    plan = _plan(job_dir, src, out, bits, branches, keep, tree, key, fmt, units, chunk_size,
                 max_error, container, entropy)  # fmt: skip
    t0 = time.perf_counter()
    tally = _Tally(n_corr=dict.fromkeys(plan.bounds, 0))
    streams = _Streams(plan.out.resolve().parent)
    try:
        for chunk, kept_cols, counts in plan.chunks:
            _compress_chunk(plan, tally, streams, chunk, kept_cols, counts)
            if progress:
                progress(tally.n)
        if tally.n == 0:
            raise DataError(source=str(plan.src), message="has no jets to compress")
        attrs, size = _write_compressed(plan, tally, streams)
    finally:
        streams.close()
    widths = plan.widths
    summary = dict(attrs)
    summary.update(_accounting(attrs, size, widths, plan.codec.group))
    summary.update(seconds=time.perf_counter() - t0, bits=widths[0] if len(set(widths)) == 1
                   else ",".join(map(str, widths)), bits_per_latent=widths)  # fmt: skip
    return summary


@dataclass
class _Plan:
    """What :func:`compress` writes, settled (and checked) before the first chunk is read."""

    codec: AutoencoderCodec
    widths: list[int]
    src: Path
    out: Path
    fmt: str
    units: str
    names: dict[str, str]  # branch of each variable
    keep: list[str]
    keep_jets: list[str]
    counters: dict[str, str]
    kinds: list[str]
    bounds: dict[str, float]
    scale: np.ndarray  # file units / model units, per variable
    chunks: Chunks
    columns: list[str]  # of the chunk table
    entropy: str
    container: str | None
    tree: str
    key: str | None

    @property
    def variables(self) -> list[str]:
        return self.codec.variables

    @functools.cached_property
    def col(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.columns)}


@dataclass
class _Tally:
    """What :func:`compress` counts over the chunks: the chunk table, ranges and counts."""

    n_corr: dict[str, int]  # corrections per bounded variable
    n: int = 0
    n_exc: int = 0
    n_jets_corr: int = 0
    n_outside: int = 0
    n_far: int = 0
    n_gross: int = 0
    kept_dtypes: dict[str, str] = field(default_factory=dict)
    table: list[list[int]] = field(default_factory=list)
    ranges: list[np.ndarray] = field(default_factory=list)


def _plan(
    job_dir: str | Path,
    src: str | Path,
    out: str | Path,
    bits: int | list[int] | str,
    branches: str | None,
    keep: list[str] | None,
    tree: str,
    key: str | None,
    fmt: str,
    units: str | None,
    chunk_size: int,
    max_error: str | dict[str, Any] | None,
    container: str | None,
    entropy: str,
) -> _Plan:
    """:func:`compress`'s options checked (one-line errors naming the option), and the
    source's chunks opened."""
    from hepae_core.data.readers import ReadRequest, detect_format, iter_chunks

    if entropy not in ENTROPY:
        raise HepaeError(source="--entropy", message=f"{entropy!r}: use {' or '.join(ENTROPY)}")
    if chunk_size < 1:
        raise HepaeError(source="--chunk-size", message=f"{chunk_size}: give 1 or more")
    codec = load_codec(job_dir)
    widths = _widths(bits, codec.latent)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise DataError(source=str(src), message="no such file")
    fmt = detect_format(src, fmt)
    if fmt not in ("root", "hdf5", "csv"):
        raise DataError(source=str(src), message=f"compress reads ROOT, HDF5 or CSV, not {fmt}")
    units = units or codec.units
    if units not in ("GeV", "MeV"):
        raise HepaeError(source="--units", message=f"{units!r}: use GeV or MeV")
    variables = codec.variables
    bmap = parse_map(branches, "--branches")
    unknown = [v for v in bmap if v not in variables]
    if unknown:
        raise HepaeError(source="--branches", message=f"the model has no variable {unknown[0]!r} "
                         f"(it compresses {', '.join(variables)})")  # fmt: skip
    names = {v: bmap.get(v, f"{container or ''}{v}") for v in variables}
    keep = [k for k in (keep or []) if k not in names.values()]
    kinds = [default_residual_kind(v) for v in variables]
    bounds = parse_bounds(max_error, variables, kinds, units)
    scale = np.array([1000.0 if units == "MeV" and v in ENERGY_VARIABLES else 1.0
                      for v in variables])  # fmt: skip
    counters: dict[str, str] = {}
    keep_jets: list[str] = []
    chunks: Chunks
    if container:
        odd = [b for b in names.values() if not b.startswith(container)]
        if odd:
            msg = f"jagged branches must start with --container {container!r}"
            raise HepaeError(source="--branches", key=odd[0], message=msg)
        if fmt != "root":
            raise DataError(source=str(src), message="--container needs a ROOT tree of events")
        chunks, counters, keep, keep_jets = _jagged_chunks(src, tree, names, keep, chunk_size)
    else:
        if "*" in keep:
            keep = _all_branches(src, fmt, tree, key, names)
        request = ReadRequest(branches={**names, **{f"keep:{k}": k for k in keep}}, tree=tree,
                              key=key, chunk_size=chunk_size)  # fmt: skip
        chunks = _flat_chunks(iter_chunks(src, fmt, request), keep)
    columns = ["jets", "events", "units", "exceptions", "codes_bytes", "exceptions_bytes",
               "counts_bytes", "ans_words", "ans_tables_bytes",
               *(c for v in bounds for c in (f"corrections.{v}", f"corrections.{v}.bytes")),
               *(f"kept.{k}.bytes" for k in keep)]  # fmt: skip
    return _Plan(codec, widths, src, out, fmt, units, names, keep, keep_jets, counters, kinds,
                 bounds, scale, chunks, columns, entropy, container, tree, key)  # fmt: skip


def _compress_chunk(
    plan: _Plan,
    tally: _Tally,
    streams: _Streams,
    chunk: dict[str, np.ndarray],
    kept_cols: dict[str, np.ndarray],
    counts: np.ndarray | None,
) -> None:
    """One chunk into the streams: codes, side data, exceptions; its row of the table."""
    codec, col, variables = plan.codec, plan.col, plan.variables
    m = len(next(iter(chunk.values())))
    row = [0] * len(plan.columns)
    row[col["jets"]] = m
    row[col["events"]] = len(counts) if counts is not None else m
    raw = np.empty((m, len(variables)), np.float32)
    for j, v in enumerate(variables):
        raw[:, j] = np.asarray(chunk[v])
    x = raw.astype(np.float64) / plan.scale
    with np.errstate(all="ignore"):
        ok = np.isfinite(x).all(axis=1) & np.isfinite(codec.norm.forward(x)).all(axis=1)
    ok, z, r, codes = _quantised(plan, tally, x, ok)
    row[col["units"]] = len(z)
    if plan.entropy == "ans" and len(z):
        payload, tables, words = ans_encode(codes, plan.widths)
        row[col["ans_words"]] = words
        row[col["ans_tables_bytes"]] = streams.add("ans_tables", tables)
    else:
        payload = pack_bits(codes, plan.widths).tobytes()
    row[col["codes_bytes"]] = streams.add("codes", payload)
    if ok.any():
        # decoded as decompress will: a jet whose decoded values are not finite, or far
        # off on a scale variable (pt = 3e38 through saturated units decodes as 50 GeV),
        # is outside the codec's domain and stored raw
        y = codec.jets(dequantise(codes, r[:, 0], r[:, 1], plan.widths), m)
        y_file = (y.astype(np.float64) * plan.scale).astype(np.float32)  # what decompress writes
        gross = _decoded_off(plan.kinds, raw, y_file, ok)
        tally.n_gross += int(gross.sum())
        ok &= ~gross
    if plan.bounds and ok.any():
        _corrections(plan, tally, streams, row, raw, y_file, ok)
    bad = np.flatnonzero(~ok)
    row[col["exceptions"]] = len(bad)
    row[col["exceptions_bytes"]] = streams.add("exceptions", sparse_blob(bad, raw[bad]))
    tally.n_exc += len(bad)
    if counts is not None:
        row[col["counts_bytes"]] = streams.add(
            "counts", zlib.compress(_shuffle(counts.astype(np.uint32)), 6)
        )
    for k in plan.keep:
        c = np.asarray(kept_cols[k])
        if c.dtype.kind not in "biuf":
            raise DataError(source=str(plan.src), key=k, message=f"is of type {c.dtype}: "
                            "--keep stores numeric branches")  # fmt: skip
        if tally.kept_dtypes.setdefault(k, c.dtype.str) != c.dtype.str:
            raise DataError(source=str(plan.src), key=k, message="changes type between "
                            "chunks")  # fmt: skip
        row[col[f"kept.{k}.bytes"]] = streams.add(f"kept/{k}", zlib.compress(_shuffle(c), 6))
    tally.table.append(row)
    tally.n += m


def _quantised(
    plan: _Plan, tally: _Tally, x: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The chunk's latents quantised over its own range: (ok, latents, range, codes).

    ``ok`` (the jets the model can code) loses the jets of units whose latent is not
    finite or far beyond the training jets'; their units are padding, coded at the range's
    low end.
    """
    codec, m = plan.codec, len(x)
    z = codec.latents(x, ok) if m else np.zeros((0, codec.latent), np.float32)
    unit_ok = np.isfinite(z).all(axis=1)
    if codec.quantiser is not None:
        # a latent far beyond the training jets' (more than their range again on either
        # side) is outside the codec's domain: its jets are stored raw rather than
        # stretching this chunk's range over one outlier
        tlo, thi = np.asarray(codec.quantiser.lo), np.asarray(codec.quantiser.hi)
        with np.errstate(invalid="ignore"):
            far = ((z < 2 * tlo - thi) | (z > 2 * thi - tlo)).any(axis=1) & unit_ok
        tally.n_far += int(np.minimum(np.repeat(far, codec.group)[:m], ok).sum())
        unit_ok &= ~far
    ok &= np.repeat(unit_ok, codec.group)[:m]
    used = np.zeros(len(z), bool)
    used[np.flatnonzero(ok) // codec.group] = True
    r = chunk_ranges(z[used])
    tally.ranges.append(r)
    codes = quantise(np.where(used[:, None], z, r[:, 0]), r[:, 0], r[:, 1], plan.widths)
    if codec.quantiser is not None and used.any():
        beyond = ((z < tlo) | (z > thi)).any(axis=1) & used
        tally.n_outside += int(np.minimum(np.repeat(beyond, codec.group)[:m], ok).sum())
    return ok, z, r, codes


def _decoded_off(
    kinds: list[str], raw: np.ndarray, y_file: np.ndarray, ok: np.ndarray
) -> np.ndarray:
    """The ``ok`` jets whose decoded values are not finite or grossly off a scale variable."""
    with np.errstate(all="ignore"):
        gross = ~np.isfinite(y_file).all(axis=1)
        for j in (j for j, k in enumerate(kinds) if k == "relative"):
            off = np.abs(np.log(y_file[:, j] / raw[:, j]))
            # beyond 10x and beyond 10 times the model's typical error here: a weak
            # model's ordinary misses are not outside its domain
            typical = np.nanmedian(off[ok]) if ok.any() else 0.0
            gross |= ~(off <= max(GROSS_LOG, 10 * float(typical)))
    arr: np.ndarray = gross & ok
    return arr


def _corrections(
    plan: _Plan,
    tally: _Tally,
    streams: _Streams,
    row: list[int],
    raw: np.ndarray,
    y_file: np.ndarray,
    ok: np.ndarray,
) -> None:
    """The values of ``ok`` jets that miss their ``max_error`` bound, stored raw."""
    kinds, m = plan.kinds, len(raw)
    with np.errstate(all="ignore"):
        res = residuals(raw, y_file, kinds)
    corrected = np.zeros(m, bool)
    for v, bound in plan.bounds.items():
        j = plan.variables.index(v)
        # a margin of a few float32 roundings of the decoded value, so that another
        # machine's BLAS, rounding the last bit differently, still meets the bound; NaN
        # misses too
        with np.errstate(all="ignore"):
            margin = ROUNDING_MARGIN * _residual_scale(kinds[j], raw[:, j], y_file[:, j])
        miss = ok & ~(np.abs(res[:, j]) <= bound - margin)
        rows_v = np.flatnonzero(miss)
        row[plan.col[f"corrections.{v}"]] = len(rows_v)
        row[plan.col[f"corrections.{v}.bytes"]] = streams.add(
            f"corrections/{v}", sparse_blob(rows_v, raw[rows_v, j])
        )
        tally.n_corr[v] += len(rows_v)
        corrected |= miss
    tally.n_jets_corr += int(corrected.sum())


def _write_compressed(plan: _Plan, tally: _Tally, streams: _Streams) -> tuple[dict[str, Any], int]:
    """The file, written atomically from the streams: (its attributes, its size)."""
    import h5py

    codec = plan.codec
    checks: dict[str, str] = {}
    with jobdir.atomic_path(plan.out) as tmp:
        with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
            checks["model"] = _write_array(f, "model", np.frombuffer(codec.model_data, np.uint8))
            checks["codes"] = streams.copy_into(f, "codes", "codes")
            checks["ranges"] = _write_array(f, "ranges", np.stack(tally.ranges).astype(np.float32))
            checks["chunks"] = _write_array(f, "chunks", np.asarray(tally.table, np.uint64))
            checks["exceptions"] = streams.copy_into(f, "exceptions", "exceptions")
            for v in plan.bounds:
                checks[f"corrections/{v}"] = streams.copy_into(f, f"corrections/{v}",
                                                              f"corrections/{v}")  # fmt: skip
            if plan.container:
                checks["counts"] = streams.copy_into(f, "counts", "counts")
            if plan.entropy == "ans":
                checks["ans_tables"] = streams.copy_into(f, "ans_tables", "ans_tables")
            for k in plan.keep:
                checks[f"kept/{k}"] = streams.copy_into(f, f"kept/{k}", f"kept/{k}")
            attrs = _file_attrs(plan, tally, _dataset_bytes(f), checks)
            write_header(f, attrs)
        size = tmp.stat().st_size
    return attrs, size


def _file_attrs(
    plan: _Plan, tally: _Tally, sizes: dict[str, int], checks: dict[str, str]
) -> dict[str, Any]:
    """The root attributes of the file (docs/compression.md), ``sizes`` its datasets'."""
    codec, src, fmt, counters = plan.codec, plan.src, plan.fmt, plan.counters
    payload_bytes = sizes["codes"]
    model_bytes = sizes["model"]
    kept_bytes = sum(s for p, s in sizes.items() if p.startswith("kept/"))
    side = sum(sizes.values()) - payload_bytes - model_bytes - kept_bytes
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created": jobdir.now_iso(),
        "variables": json.dumps(plan.variables),
        "normalisation": json.dumps(codec.norm.to_dict(), sort_keys=True),
        "model_kind": codec.kind,
        "group": codec.group,
        "branches": json.dumps(plan.names),
        "kept": json.dumps(plan.keep),
        "kept_jets": json.dumps(plan.keep_jets),
        "kept_dtypes": json.dumps(tally.kept_dtypes),
        "counters": json.dumps(counters),
        "units": plan.units,
        "bits": json.dumps(plan.widths),
        "entropy": plan.entropy,
        "latent": codec.latent,
        "chunk_columns": json.dumps(plan.columns),
        "n_jets": tally.n,
        "n_events": sum(r[plan.col["events"]] for r in tally.table),
        "n_exceptions": tally.n_exc,
        "n_outside_training": tally.n_outside,
        "n_latent_outliers": tally.n_far,
        "n_decoded_off": tally.n_gross,
        "input_name": src.name,
        "input_sha256": sha256_of(src),
        "input_format": fmt,
        "tree": plan.tree if fmt == "root" else (plan.key or ""),
        "container": plan.container or "",
        "counter": next(iter(counters.values()), "") if counters else "",
        "model_job_id": codec.job_id,
        "model_sha256": hashlib.sha256(codec.model_data).hexdigest(),
        "model_bytes": model_bytes,
        "raw_float32_bytes": 4 * len(plan.variables) * tally.n,
        "payload_bytes": payload_bytes,
        "side_bytes": side,
        "kept_bytes": kept_bytes,
        "max_error": json.dumps(plan.bounds),
        "corrections": json.dumps(tally.n_corr),
        "jets_corrected": tally.n_jets_corr,
        "checksums": json.dumps(checks, sort_keys=True),
    }


Chunks = Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]]


def _flat_chunks(chunks: Iterator[dict[str, Any]], keep: list[str]) -> Chunks:
    for chunk in chunks:
        kept = {k: chunk.pop(f"keep:{k}") for k in keep}
        yield chunk, kept, None


def _numeric(branch: Any) -> bool:
    dtype = getattr(branch.interpretation, "numpy_dtype", None)
    return dtype is not None and dtype.kind in "biuf"


def _all_branches(
    src: Path, fmt: str, tree: str, key: str | None, names: dict[str, str]
) -> list[str]:
    """Every numeric column of a flat input that is not compressed (``keep=["*"]``)."""
    if fmt == "root":
        from hepae_core.data.readers.root import get_tree, open_root

        with open_root(src) as f:
            t = get_tree(f, src, tree)
            keys = [b for b in t.keys() if b not in names.values()]  # noqa: SIM118 - uproot
            return [b for b in keys if _numeric(t[b])]
    if fmt == "hdf5":
        import h5py

        with h5py.File(src, "r") as f:
            g = f[key] if key else f
            return [k for k, d in g.items() if isinstance(d, h5py.Dataset) and d.ndim == 1
                    and d.dtype.kind in "biuf" and k not in names.values()]  # fmt: skip
    raise DataError(source=str(src), message="--keep '*' reads ROOT or HDF5 inputs")


def _jagged_chunks(
    src: Path, tree: str, names: dict[str, str], keep: list[str], chunk_size: int
) -> tuple[Chunks, dict[str, str], list[str], list[str]]:
    """Flattened jets, kept branches and jet counts of a jagged ROOT tree.

    Returns (chunks, counter of every jet branch, kept branches, kept per-jet branches).
    Jagged kept branches must hold as many values per event as the compressed ones (an
    ATLAS derivation gives every branch its own counter, all equal); they are kept per jet.
    Counter branches are not kept as data: decompress rebuilds each from the counts.
    """
    import awkward as ak

    from hepae_core.data.readers import missing_branch
    from hepae_core.data.readers.root import get_tree, open_root

    f = open_root(src)
    t = get_tree(f, src, tree)
    available = list(t.keys())

    def counter_of(b: str) -> str | None:
        c = getattr(t[b], "count_branch", None)
        return c.name if c is not None else None

    counter_names = {c for b in available if (c := counter_of(b))}
    if "*" in keep:
        keep = [b for b in available if b not in names.values() and b not in counter_names]
    for b in [*names.values(), *keep]:
        if b not in available:
            f.close()
            raise missing_branch(src, f"tree '{tree}'", b, available)
    first = next(iter(names.values()))
    if counter_of(first) is None:
        f.close()
        raise DataError(source=str(src), key=first, message="is not a jagged branch: "
                        "drop --container for a tree of one row per jet")  # fmt: skip
    counters = {b: counter_of(b) or "" for b in names.values()}
    keep = [k for k in keep if k not in counter_names]
    keep_jets = [k for k in keep if counter_of(k)]
    counters.update({k: counter_of(k) or "" for k in keep_jets})

    def gen() -> Chunks:
        with f:
            for arrays in t.iterate([*names.values(), *keep], step_size=chunk_size,
                                    library="ak"):  # fmt: skip
                counts = ak.to_numpy(ak.num(arrays[first]))
                for b in [*names.values(), *keep_jets]:
                    if not np.array_equal(ak.to_numpy(ak.num(arrays[b])), counts):
                        raise DataError(source=str(src), key=b, message="has other jet counts "
                                        f"than {first}: keep it in a file of its own")  # fmt: skip
                cols = {v: ak.to_numpy(ak.flatten(arrays[b])) for v, b in names.items()}
                kept = {k: ak.to_numpy(ak.flatten(arrays[k]) if k in keep_jets else arrays[k])
                        for k in keep}  # fmt: skip
                yield cols, kept, counts.astype(np.uint32)

    return gen(), counters, keep, keep_jets


# --------------------------------------------------------------------------- reading


def open_compressed(path: Path) -> Any:
    """Open a compressed file, checking that it is one and that this version reads it."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(source=str(path), message="no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise CorruptFile(source=str(path), message="is not an HDF5 file written by "
                          "`hepae-data compress` (or it is truncated)") from None  # fmt: skip
    try:
        fmt = f.attrs.get("format")
        version = int(f.attrs.get("format_version", 0))
    except Exception:
        fmt, version = None, 0
    if fmt != FORMAT:
        f.close()
        raise DataError(source=str(path), message="is not a file written by "
                        "`hepae-data compress` (no format attribute)")  # fmt: skip
    if version != FORMAT_VERSION:
        wrote = f.attrs.get("tool_version", "?")
        f.close()
        tool = f" (written by hepae-gridsearch {wrote})" if version < FORMAT_VERSION else ""
        raise DataError(source=str(path), message=f"is format version {version}{tool}; this "
                        f"tool reads version {FORMAT_VERSION}: "
                        + ("decompress it with the version that wrote it" if version
                           < FORMAT_VERSION else "update hepae-gridsearch"))  # fmt: skip
    return f


@dataclass
class _Layout:
    """What a verified file says about itself."""

    attrs: dict[str, Any]
    variables: list[str]
    names: dict[str, str]
    widths: list[int]
    columns: dict[str, int]
    table: np.ndarray
    ranges: np.ndarray
    offsets: dict[str, np.ndarray] = field(default_factory=dict)  # per stream, chunk starts


def verify(f: Any, path: Path) -> _Layout:
    """Check a compressed file completely before anything is decoded.

    Header checksum, the checksum of every dataset (and no dataset missing or added), the
    chunk table against the datasets' sizes and the number of jets. Raises CorruptFile.
    """
    path = Path(path)
    a, present = verify_checksums(f, path)
    bad = functools.partial(_damaged, path)
    variables = _json_attr(path, a, "variables")
    names = _json_attr(path, a, "branches")
    widths = _json_attr(path, a, "bits")
    columns = {c: i for i, c in enumerate(_json_attr(path, a, "chunk_columns"))}
    table = f["chunks"][()].astype(np.int64)
    ranges = f["ranges"][()]
    latent = int(a["latent"])
    if table.ndim != 2 or table.shape[1] != len(columns) or ranges.shape != (len(table), latent, 2):
        raise bad("the chunk table or the ranges have the wrong shape")
    if len(widths) != latent or any(not 1 <= b <= MAX_BITS for b in widths):
        raise bad("the bits per latent value are inconsistent", "bits")
    if table[:, columns["jets"]].sum() != int(a["n_jets"]):
        raise bad("the chunks do not add up to n_jets", "n_jets")
    group = int(a["group"])
    if not np.array_equal(table[:, columns["units"]], -(-table[:, columns["jets"]] // group)):
        raise bad("the chunk table's units do not match the jets", "chunks")
    if not np.isfinite(ranges).all() or (ranges[..., 0] > ranges[..., 1]).any():
        raise bad("the latent ranges are not finite or not ordered", "ranges")
    layout = _Layout(a, variables, names, widths, columns, table, ranges)
    streams = {"codes": "codes_bytes", "exceptions": "exceptions_bytes"}
    if a.get("container"):
        streams["counts"] = "counts_bytes"
    if a.get("entropy") == "ans":
        streams["ans_tables"] = "ans_tables_bytes"
    for v in _json_attr(path, a, "max_error", {}):
        streams[f"corrections/{v}"] = f"corrections.{v}.bytes"
    for k in _json_attr(path, a, "kept", []):
        streams[f"kept/{k}"] = f"kept.{k}.bytes"
    for s, c in streams.items():
        if s not in present or c not in columns:
            raise bad(f"dataset /{s} or its chunk column is missing", s)
        lengths = table[:, columns[c]]
        if lengths.sum() != present[s].shape[0]:
            raise bad(f"the chunk table does not add up to the size of /{s}", s)
        layout.offsets[s] = np.concatenate([[0], np.cumsum(lengths)])
    if a.get("entropy", "none") == "none":
        need = (table[:, columns["units"]] * sum(widths) + 7) // 8
        if not np.array_equal(need, table[:, columns["codes_bytes"]]):
            raise bad("the codes are not as long as their bits say", "codes")
    return layout


def _check_model(codec: AutoencoderCodec, a: dict[str, Any], path: Path) -> None:
    """Refuse a model that does not fit the codes: variables, normalisation, shapes."""
    problems = []
    if codec.variables != json.loads(a["variables"]):
        problems.append(f"its variables {codec.variables} are not the file's "
                        f"{json.loads(a['variables'])}")  # fmt: skip
    if json.dumps(codec.norm.to_dict(), sort_keys=True) != a["normalisation"]:
        problems.append("its normalisation differs from the one the codes were made with")
    if codec.latent != int(a["latent"]) or codec.group != int(a["group"]):
        problems.append(f"it has a latent of {codec.latent} per {codec.group} jets, the codes "
                        f"{a['latent']} per {a['group']}")  # fmt: skip
    if problems:
        raise CorruptFile(source=str(path), key="model", message=f"the embedded model does not "
                          f"fit the codes: {problems[0]}")  # fmt: skip


def load_file_codec(f: Any, path: Path) -> tuple[AutoencoderCodec, _Layout]:
    """Verify an open compressed file and load its model; raises CorruptFile."""
    try:
        layout = verify(f, path)
    except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
        raise CorruptFile(source=str(path), message=f"cannot be checked ({type(exc).__name__}: "
                          f"{exc}): the file is damaged or incomplete") from None  # fmt: skip
    data = f["model"][()].tobytes()
    if hashlib.sha256(data).hexdigest() != layout.attrs.get("model_sha256"):
        raise CorruptFile(source=str(path), key="model", message="the embedded model does not "
                          "match model_sha256: refusing to decode with it")  # fmt: skip
    codec = AutoencoderCodec.from_bytes(data, f"{path}: /model")
    _check_model(codec, layout.attrs, path)
    return codec, layout


def _stream(f: Any, layout: _Layout, name: str, i: int) -> bytes:
    o = layout.offsets[name]
    return f[name][int(o[i]) : int(o[i + 1])].tobytes() if o[i + 1] > o[i] else b""


def _decode_chunk(
    f: Any, codec: AutoencoderCodec, layout: _Layout, i: int, path: Path
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    a, c, row = layout.attrs, layout.columns, layout.table[i]
    m, units_n = int(row[c["jets"]]), int(row[c["units"]])
    widths = layout.widths
    scale = np.array([1000.0 if a["units"] == "MeV" and v in ENERGY_VARIABLES else 1.0
                      for v in layout.variables], np.float64)  # fmt: skip
    try:
        payload = _stream(f, layout, "codes", i)
        if units_n == 0:  # a chunk of events without jets
            if payload:
                raise ValueError("codes where no jets are recorded")
            codes = np.zeros((0, len(widths)), np.uint16)
        elif a.get("entropy") == "ans":
            codes = ans_decode(payload, _stream(f, layout, "ans_tables", i),
                               int(row[c["ans_words"]]), units_n, widths)  # fmt: skip
        else:
            codes = unpack_bits(np.frombuffer(payload, np.uint8), widths, units_n)
        r = layout.ranges[i]
        z = dequantise(codes, r[:, 0], r[:, 1], widths)
        y = (codec.jets(z, m).astype(np.float64) * scale).astype(np.float32)
        for v in json.loads(a["max_error"]):
            j = layout.variables.index(v)
            rows, vals = sparse_read(_stream(f, layout, f"corrections/{v}", i),
                                     int(row[c[f"corrections.{v}"]]), 1)  # fmt: skip
            y[rows, j] = vals[:, 0]
        rows, vals = sparse_read(_stream(f, layout, "exceptions", i), int(row[c["exceptions"]]),
                                 len(layout.variables))  # fmt: skip
        y[rows] = vals
        out = {layout.names[v]: y[:, j] for j, v in enumerate(layout.variables)}
        counts = None
        if a.get("container"):
            counts = _unshuffle(zlib.decompress(_stream(f, layout, "counts", i)), np.uint32,
                                int(row[c["events"]])).astype(np.int64)  # fmt: skip
            if counts.sum() != m:
                raise ValueError("jets per event do not add up")
        dtypes = json.loads(a.get("kept_dtypes", "{}"))
        kept_jets = set(json.loads(a.get("kept_jets", "[]")))
        for k in json.loads(a["kept"]):
            length = m if k in kept_jets or counts is None else int(row[c["events"]])
            out[k] = _unshuffle(zlib.decompress(_stream(f, layout, f"kept/{k}", i)),
                                np.dtype(dtypes[k]), length)  # fmt: skip
    except (ValueError, IndexError, KeyError, zlib.error) as exc:
        raise CorruptFile(source=str(path), message=f"chunk {i} cannot be decoded ({exc}): "
                          "the file is inconsistent") from None  # fmt: skip
    return out, counts


def iter_decompressed(
    path: Path, chunk_size: int = CHUNK
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    """Chunks ``({branch: values}, counts)`` of the decompressed file, in the input's units.

    The whole file is verified first (:func:`verify`), so nothing is yielded from a damaged
    file. Chunks are those the file was written with (``chunk_size`` is not used by
    version 2 and kept for callers). Flat files: one row per jet, ``counts`` None. Jagged
    files: ``counts`` gives jets per event and the kept per-event branches are per event.
    """
    path = Path(path)
    with open_compressed(path) as f:
        n_chunks, decode, _, _ = chunk_decoder(f, path)
        for i in range(n_chunks):
            yield decode(i)


def chunk_decoder(
    f: Any, path: Path
) -> tuple[
    int,
    Callable[[int], tuple[dict[str, np.ndarray], np.ndarray | None]],
    dict[str, Any],
    dict[str, str],
]:
    """Verify an open compressed file and return (chunks, decode(i), attributes, branches
    by variable), by the file's ``codec`` attribute: the autoencoder (absent) or ``pred``
    (hepae_core.codecs.pred_file). Raises CorruptFile before anything is decoded."""
    if f.attrs.get("codec", "ae") == "pred":
        from hepae_core.codecs import pred_file

        return pred_file.chunk_decoder(f, path)
    codec, layout = load_file_codec(f, path)
    return (len(layout.table), lambda i: _decode_chunk(f, codec, layout, i, path),
            layout.attrs, layout.names)  # fmt: skip


def decompress(
    path: str | Path, out: str | Path, *, progress: Callable[[int], None] | None = None
) -> int:
    """Write the decompressed jets to ``out`` (.root: a TTree; .h5/.hdf5: datasets).

    Jagged inputs come back as a tree of events with the input's jagged branches, each
    with its own counter as in the input; in HDF5, as flat jet columns with each counter
    as a per-event column. Returns the number of jets. A damaged file is refused before
    anything is written.
    """
    path, out = Path(path), Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".root", ".h5", ".hdf5"):
        raise HepaeError(source=str(out), message="write .root, .h5 or .hdf5")
    with open_compressed(path) as f:
        n_chunks, decode, a, names = chunk_decoder(f, path)
        tree = str(a.get("tree") or "jets")
        counters = json.loads(a.get("counters", "{}"))
        jet_branches = [*names.values(), *json.loads(a.get("kept_jets", "[]"))]
        n = 0
        with jobdir.atomic_path(out) as tmp:
            if suffix == ".root":
                import uproot

                with uproot.recreate(tmp) as rf:
                    t = None
                    for i in range(n_chunks):
                        chunk, counts = decode(i)
                        m = len(chunk[jet_branches[0]])
                        if counts is not None:
                            chunk = _events(chunk, counts, jet_branches, counters)
                        if t is None:
                            types = {k: _branch_type(v) for k, v in chunk.items()}
                            t = rf.mktree(tree, types,
                                          counter_name=lambda k: _counter_of(k, counters),
                                          field_name=lambda _, inner: inner)  # fmt: skip
                        t.extend(chunk)
                        n += m
                        if progress:
                            progress(n)
            else:
                import h5py

                with h5py.File(tmp, "w") as hf:
                    group = hf.require_group(tree) if tree and tree != "jets" else hf
                    ds: dict[str, Any] = {}
                    for i in range(n_chunks):
                        chunk, counts = decode(i)
                        if counts is not None:
                            for c in dict.fromkeys(counters.values()):
                                chunk[c] = counts.astype(np.int32)
                        for k, v in chunk.items():
                            if k not in ds:
                                ds[k] = group.create_dataset(
                                    k, shape=(0,), maxshape=(None,), dtype=v.dtype,
                                    chunks=(16_384,))  # fmt: skip
                            d = ds[k]
                            d.resize((d.shape[0] + len(v),))
                            d[d.shape[0] - len(v) :] = v
                        n += len(chunk[jet_branches[0]])
                        if progress:
                            progress(n)
    return n


_RECORD = "\x00counter:"  # the key of a record of jet branches sharing one counter


def _is_jagged(v: Any) -> bool:
    return not isinstance(v, np.ndarray)


def _branch_type(v: Any) -> Any:
    """A TTree branch's type: a jagged (awkward) array's content type, else the dtype."""
    return v.type.content if _is_jagged(v) else v.dtype


def _counter_of(key: str, counters: dict[str, str]) -> str:
    if key.startswith(_RECORD):
        return key[len(_RECORD) :]
    return counters.get(key) or f"n_{key}"


def _events(
    chunk: dict[str, np.ndarray], counts: np.ndarray, jet_branches: list[str],
    counters: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Per-event kept branches plus the jet branches as jagged arrays, one per counter:
    branches sharing a counter (``njet``) go in one record, the others stand alone
    (an ATLAS derivation's ``n_..._pt``, ``n_..._eta``, ...)."""
    import awkward as ak

    by_counter: dict[str, list[str]] = {}
    for b in jet_branches:
        by_counter.setdefault(counters.get(b) or f"n_{b}", []).append(b)
    out = {k: v for k, v in chunk.items() if k not in jet_branches}
    for counter, bs in by_counter.items():
        if len(bs) == 1:
            out[bs[0]] = ak.unflatten(chunk[bs[0]], counts)
        else:
            out[_RECORD + counter] = ak.zip({b: ak.unflatten(chunk[b], counts) for b in bs})
    return out
