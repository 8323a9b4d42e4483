"""The error-bounded predictive codec as a file codec: ``hepae-data compress --codec pred``.

No trained job: a :class:`~hepae_core.codecs.predictive.PredictiveCodec` (``linear`` predictor,
the variables' order) is fitted on the first jets of the file being compressed (up to
``fit_jets``) and its parameters are stored in the file (``/model``, counted). The file is
format ``hepae-compressed`` version 2 with ``codec = "pred"``; its datasets (one-dimensional
``uint8`` unless said otherwise, contiguous and unfiltered):

``/codes``  (payload)
    the ANS words of every chunk (little-endian uint32).
``/tables``, ``/meta``, ``/raw``, ``/chunks``  (side)
    per chunk: the coder's tables (zlib), each variable's first code and alphabet size
    (int32), the values stored raw (float32: a value the quantiser could not bring within
    its bound, NaN, inf); the chunk table (uint64: jets and byte lengths).
``/model``
    the fitted predictor's parameters (:meth:`PredictiveCodec.model_blob`).

Integrity is the autoencoder file's: ``checksums`` (SHA-256 of every dataset) and
``header_sha256``, verified by :func:`hepae_core.codecs.container.verify_checksums` before
anything is decoded. Every decoded value, as written (float32), meets its bound.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hepae_core import __version__, jobdir
from hepae_core.codecs.container import (
    CHUNK,
    FORMAT,
    FORMAT_VERSION,
    CorruptFile,
    _accounting,
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
from hepae_core.codecs.predictive import PredictiveCodec, default_kind
from hepae_core.codecs.registry import Encoded
from hepae_core.errors import DataError, HepaeError

DEFAULT_VARIABLES = ["pt", "eta", "phi", "E"]
FIT_JETS = 200_000
COLUMNS = ["jets", "codes_bytes", "tables_bytes", "meta_bytes", "raw_bytes"]
STREAMS = {"codes": "codes_bytes", "tables": "tables_bytes", "meta": "meta_bytes",
           "raw": "raw_bytes"}  # fmt: skip


def check_bounds(
    max_error: str | None, variables: list[str], kinds: list[str], units: str
) -> dict[str, float]:
    """Bounds by variable (:func:`hepae_core.codecs.container.parse_bounds`); every variable needs
    one."""
    named = parse_map(max_error, "--max-error")
    other = [v for v in named if v not in variables]
    if other:
        msg = f"{other[0]!r} is not compressed (the variables are {', '.join(variables)}; "
        raise HepaeError(source="--max-error", message=msg + "choose them with --variables)")
    bounds = parse_bounds(max_error, variables, kinds, units)
    missing = [v for v in variables if v not in bounds]
    if missing:
        msg = f"no bound for {', '.join(missing)}: give one for every compressed variable"
        raise HepaeError(source="--max-error", message=f"{msg}, e.g. {missing[0]}=1e-3")
    return bounds


class _Options(NamedTuple):
    """The checked options of :func:`compress_pred`."""

    variables: list[str]
    kinds: list[str]
    bounds: dict[str, float]
    units: str
    names: dict[str, str]  # branch by variable
    fmt: str


def _check_options(
    src: Path,
    max_error: str | None,
    variables: list[str] | None,
    branches: str | None,
    fmt: str,
    units: str | None,
    chunk_size: int,
) -> _Options:
    """Every option checked (one line naming it on an error) before anything is read."""
    from hepae_core.data.readers import detect_format

    if chunk_size < 1:
        raise HepaeError(source="--chunk-size", message=f"{chunk_size}: give 1 or more")
    variables = list(variables or DEFAULT_VARIABLES)
    if len(set(variables)) != len(variables):
        raise HepaeError(source="--variables", message="name every variable once")
    units = units or "GeV"
    if units not in ("GeV", "MeV"):
        raise HepaeError(source="--units", message=f"{units!r}: use GeV or MeV")
    kinds = [default_kind(v) for v in variables]
    bounds = check_bounds(max_error, variables, kinds, units)
    bmap = parse_map(branches, "--branches")
    unknown = [v for v in bmap if v not in variables]
    if unknown:
        raise HepaeError(source="--branches", message=f"{unknown[0]!r} is not compressed (the "
                         f"variables are {', '.join(variables)})")  # fmt: skip
    if not src.is_file():
        raise DataError(source=str(src), message="no such file")
    fmt = detect_format(src, fmt)
    if fmt not in ("root", "hdf5", "csv"):
        raise DataError(source=str(src), message=f"compress reads ROOT, HDF5 or CSV, not {fmt}")
    names = {v: bmap.get(v, v) for v in variables}
    return _Options(variables, kinds, bounds, units, names, fmt)


class _ChunkCoder:
    """Fits the codec on the first ``fit_jets`` jets read, then encodes every chunk into
    the streams; keeps the chunk table and the counts."""

    def __init__(
        self,
        codec: PredictiveCodec,
        streams: _Streams,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.codec, self.streams, self.progress = codec, streams, progress
        self.table: list[list[int]] = []
        self.n = self.n_raw = 0
        self.held = 0  # jets read before the fit

    def run(self, chunks: Iterable[dict[str, Any]], fit_jets: int) -> None:
        codec = self.codec
        pending: list[np.ndarray] = []
        for chunk in chunks:
            raw = self._jets(chunk)
            if codec.fitted:
                self._encode(raw)
                continue
            pending.append(raw)
            self.held += len(raw)
            if self.held >= fit_jets:
                codec.fit(np.concatenate(pending)[:fit_jets].astype(np.float64))
                for r in pending:
                    self._encode(r)
                pending = []
        if not codec.fitted and self.held:
            codec.fit(np.concatenate(pending).astype(np.float64))
            for r in pending:
                self._encode(r)

    def _jets(self, chunk: dict[str, Any]) -> np.ndarray:
        variables = self.codec.variables
        raw = np.empty((len(chunk[variables[0]]), len(variables)), np.float32)
        for j, v in enumerate(variables):
            raw[:, j] = np.asarray(chunk[v])
        return raw

    def _encode(self, raw: np.ndarray) -> None:
        enc = self.codec.encode(raw.astype(np.float64))
        meta = np.concatenate([enc.side["cmin"], enc.side["size"]]).astype("<i4")
        add = self.streams.add
        self.table.append([len(raw),
                           add("codes", enc.payload["ans"].astype("<u4").tobytes()),
                           add("tables", enc.side["tables"].tobytes()),
                           add("meta", meta.tobytes()),
                           # raw values are the input's float32 values: exact in float32
                           add("raw", enc.side["raw"].astype("<f4").tobytes())])  # fmt: skip
        self.n += len(raw)
        self.n_raw += int(enc.clipped)
        if self.progress:
            self.progress(self.n)

    def write_into(self, f: Any, blob: bytes) -> dict[str, str]:
        """The model, the streams and the chunk table as datasets; their SHA-256."""
        checks: dict[str, str] = {}
        checks["model"] = _write_array(f, "model", np.frombuffer(blob, np.uint8))
        for s in STREAMS:
            checks[s] = self.streams.copy_into(f, s, s)
        checks["chunks"] = _write_array(f, "chunks", np.asarray(self.table, np.uint64))
        return checks


def compress_pred(
    src: str | Path,
    out: str | Path,
    *,
    max_error: str | None,
    variables: list[str] | None = None,
    branches: str | None = None,
    tree: str = "jets",
    key: str | None = None,
    fmt: str = "auto",
    units: str | None = None,
    chunk_size: int = CHUNK,
    fit_jets: int = FIT_JETS,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compress the jets of ``src`` with a predictive codec fitted on its first jets.

    ``max_error`` gives a bound for every variable (``pt=1e-3,eta=1e-3,...``; relative for
    pt, E, m, absolute otherwise, in the file's units unless a unit is given). Returns the
    file's summary (the autoencoder path's keys: payload_bytes, side_bytes, model_bytes,
    file_bytes, ratio, ratio_with_model).
    """
    import h5py

    from hepae_core.data.readers import ReadRequest, iter_chunks

    src, out = Path(src), Path(out)
    o = _check_options(src, max_error, variables, branches, fmt, units, chunk_size)
    request = ReadRequest(branches=o.names, tree=tree, key=key, chunk_size=chunk_size)
    codec = PredictiveCodec(o.variables, o.kinds, bounds=o.bounds, predictor="linear")
    codec.store_dtype = np.float32  # decompress writes float32: the bound holds as written
    t0 = time.perf_counter()
    coder = _ChunkCoder(codec, _Streams(out.resolve().parent), progress)
    try:
        coder.run(iter_chunks(src, o.fmt, request), fit_jets)
        if coder.n == 0:
            raise DataError(source=str(src), message="has no jets to compress")
        blob = codec.model_blob() or b""
        with jobdir.atomic_path(out) as tmp:
            with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
                checks = coder.write_into(f, blob)
                attrs = _header(src, o, codec, coder, blob, _dataset_bytes(f), checks, fit_jets,
                                tree, key)  # fmt: skip
                write_header(f, attrs)
            size = tmp.stat().st_size
    finally:
        coder.streams.close()
    summary = dict(attrs)
    summary.update(_accounting(attrs, size, [], 1))
    summary.update(seconds=time.perf_counter() - t0, n_raw_values=coder.n_raw)
    return summary


def _header(
    src: Path,
    o: _Options,
    codec: PredictiveCodec,
    coder: _ChunkCoder,
    blob: bytes,
    sizes: dict[str, int],
    checks: dict[str, str],
    fit_jets: int,
    tree: str,
    key: str | None,
) -> dict[str, Any]:
    """The file's attributes (the module doc's format; the summary's keys)."""
    payload, model, n = sizes["codes"], sizes["model"], coder.n
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "codec": "pred",
        "tool_version": __version__,
        "created": jobdir.now_iso(),
        "variables": json.dumps(o.variables),
        "kinds": json.dumps(o.kinds),
        "predictor": codec.predictor,
        "contexts": codec.n_contexts,
        "value_bins": codec.n_value,
        "symbols": codec.symbols,
        "fit_jets": min(coder.held, fit_jets),
        "branches": json.dumps(o.names),
        "kept": "[]",
        "counters": "{}",
        "container": "",
        "units": o.units,
        "tree": tree if o.fmt == "root" else (key or ""),
        "chunk_columns": json.dumps(COLUMNS),
        "n_jets": n,
        "n_events": n,
        "n_exceptions": coder.n_raw,
        "input_name": src.name,
        "input_sha256": sha256_of(src),
        "input_format": o.fmt,
        "model_sha256": hashlib.sha256(blob).hexdigest(),
        "model_bytes": model,
        "raw_float32_bytes": 4 * len(o.variables) * n,
        "payload_bytes": payload,
        "side_bytes": sum(sizes.values()) - payload - model,
        "kept_bytes": 0,
        "max_error": json.dumps(o.bounds),
        "checksums": json.dumps(checks, sort_keys=True),
    }


Decoded = tuple[dict[str, np.ndarray], None]


def chunk_decoder(
    f: Any, path: Path
) -> tuple[int, Callable[[int], Decoded], dict[str, Any], dict[str, str]]:
    """Verify an open ``pred`` file completely; returns (chunks, decode(i), attributes,
    branches by variable). Raises CorruptFile before anything is decoded."""
    path = Path(path)

    def bad(what: str, key: str | None = None) -> CorruptFile:
        return CorruptFile(source=str(path), key=key, message=f"{what}: the file is damaged "
                           "or was changed after compress; refusing to decode it")  # fmt: skip

    try:
        a, present = verify_checksums(f, path)
        variables = _json_attr(path, a, "variables")
        kinds = _json_attr(path, a, "kinds")
        bounds = _json_attr(path, a, "max_error")
        names = _json_attr(path, a, "branches")
        columns = {c: i for i, c in enumerate(_json_attr(path, a, "chunk_columns"))}
        table = present["chunks"][()].astype(np.int64)
        if table.ndim != 2 or table.shape[1] != len(columns) or set(COLUMNS) - set(columns):
            raise bad("the chunk table has the wrong shape", "chunks")
        if table[:, columns["jets"]].sum() != int(a["n_jets"]):
            raise bad("the chunks do not add up to n_jets", "n_jets")
        offsets = {}
        for s, c in STREAMS.items():
            if s not in present or present[s].shape[0] != table[:, columns[c]].sum():
                raise bad(f"the chunk table does not add up to the size of /{s}", s)
            offsets[s] = np.concatenate([[0], np.cumsum(table[:, columns[c]])])
        blob = present["model"][()].tobytes()
        if hashlib.sha256(blob).hexdigest() != a.get("model_sha256"):
            raise bad("the predictor does not match model_sha256", "model")
        # a file without "symbols" was written before the exact-1 symbol and value bins
        # (layout 1): read with those parameters, never refused or misdecoded
        codec = PredictiveCodec(variables, kinds, bounds=bounds, predictor=str(a["predictor"]),
                                contexts=int(a["contexts"]),
                                value_bins=int(a.get("value_bins", 1)),
                                symbols=int(a.get("symbols", 1)))  # fmt: skip
        if blob:
            codec.load_model_blob(blob)
    except CorruptFile:
        raise
    except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
        raise CorruptFile(source=str(path), message=f"cannot be checked ({type(exc).__name__}: "
                          f"{exc}): the file is damaged or incomplete") from None  # fmt: skip
    d = len(variables)

    def part(s: str, i: int) -> bytes:
        o = offsets[s]
        return present[s][int(o[i]) : int(o[i + 1])].tobytes() if o[i + 1] > o[i] else b""

    def decode(i: int) -> Decoded:
        m = int(table[i, columns["jets"]])
        try:
            meta = np.frombuffer(part("meta", i), "<i4")
            if len(meta) != 2 * d:
                raise ValueError("the codes' alphabets are not one per variable")
            side = {"tables": np.frombuffer(part("tables", i), np.uint8),
                    "cmin": meta[:d], "size": meta[d:],
                    "raw": np.frombuffer(part("raw", i), "<f4").astype(np.float64)}  # fmt: skip
            enc = Encoded(m, {"ans": np.frombuffer(part("codes", i), "<u4")}, side, 0, {})
            y = codec.decode(enc).astype(np.float32)
        except (ValueError, IndexError, KeyError, RuntimeError, zlib.error) as exc:
            raise CorruptFile(source=str(path), message=f"chunk {i} cannot be decoded ({exc}): "
                              "the file is inconsistent") from None  # fmt: skip
        return {names[v]: y[:, j] for j, v in enumerate(variables)}, None

    return len(table), decode, a, names


# -- the predictive codec on the rate-distortion plane ------------------------------------

#: Prefix of the predictive codec's keys at the k-bit quantiser's bound: ``pred<k>.*``.
BOUNDED_FAMILY = "pred"


def quantiser_bounds(quantiser: Any, k: int) -> tuple[list[str], dict[str, float]]:
    """The predictive codec's kinds and bounds at the half step of the ``k``-bit scalar
    quantiser ``quantiser`` (hepae_core.codecs.quantise.ScalarQuantiser), the bound SZ3 and ZFP
    are run at: the same cells in each variable's natural space.

    A ``log`` variable gets the relative bound ``expm1(h)`` (its step ``2 log1p(b)`` is the
    quantiser's ``2 h``), ``periodic`` the angle ``h``, ``linear`` the absolute ``h`` and
    ``integer`` 0.49 (rounded back: exact).
    """
    kinds, bounds = [], {}
    for v, space, a, b, nb in zip(quantiser.variables, quantiser.spaces, quantiser.lo,
                                  quantiser.hi, quantiser.bits(k)):  # fmt: skip
        h = ((b - a) / (1 << nb) if b > a else 1.0) / 2
        if space == "log":
            kinds.append("relative")
            bounds[v] = float(np.expm1(h))
        elif space == "periodic":
            kinds.append("angle")
            bounds[v] = float(h)
        else:
            kinds.append("absolute")
            bounds[v] = 0.49 if space == "integer" else float(h)
    return kinds, bounds


def bounded_metrics(
    x_train: np.ndarray,
    tests: dict[str, np.ndarray],
    variables: list[str],
    residual_kinds: list[str],
    bits: tuple[int, ...],
    file_jets: int = 1_000_000,
) -> dict[str, dict[str, Any]]:
    """The predictive codec (``linear`` predictor, 4 x 4 contexts) at every ``k`` of ``bits``.

    Fitted on ``x_train`` at the half-step bound of the ``k``-bit scalar quantiser fitted
    on the same jets (:func:`quantiser_bounds`), then measured on each sample of ``tests``
    (name -> jets) with the keys every codec has (docs/metrics.md), named ``pred<k>.*``:
    ``pred<k>.ratio``, ``.ratio_file``, ``.payload_bytes``, ``.side_bytes``,
    ``.model_bytes`` (the fitted parameters, paid once per file), ``.bits_per_jet``,
    ``.clipped`` (values stored raw), the residual statistics and ``pred<k>.bound.<v>``
    (the bound: relative for a ``log`` variable, else absolute). Its bound is the one of
    ``sq<k>``, ``sqe<k>``, ``sz3_<k>`` and ``zfp<k>``: every decoded value meets it.
    Returns name -> keys.
    """
    from hepae_core.codecs.quantise import ScalarQuantiser
    from hepae_core.evaluation.evaluate import codec_metrics

    q = ScalarQuantiser.fit(list(variables), x_train, list(residual_kinds))
    out: dict[str, dict[str, Any]] = {name: {} for name in tests}
    for k in bits:
        kinds, bounds = quantiser_bounds(q, int(k))
        codec = PredictiveCodec(list(variables), kinds, bounds=bounds)
        codec.fit(x_train)
        for name, x in tests.items():
            m = codec_metrics(codec, x, list(residual_kinds), file_jets)
            prefix = codec.name + "."
            out[name].update({f"{BOUNDED_FAMILY}{k}.{key[len(prefix):]}": v
                              for key, v in m.items() if key.startswith(prefix)})  # fmt: skip
            # the bound itself (relative for a log variable, else in the file's units)
            out[name].update({f"{BOUNDED_FAMILY}{k}.bound.{v}": b for v, b in bounds.items()})
    return out
