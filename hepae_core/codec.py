"""A trained autoencoder as a file codec: compress jets to quantised latent codes and back.

File format ``hepae-compressed`` version 1 (HDF5; docs/compression.md):

``/codes``
    (n, latent) unsigned integers of the narrowest type for ``bits``: the latent of each
    jet, quantised to ``bits`` bits over the training range of each latent dimension.
``/latent_lo``, ``/latent_hi``
    float32 (latent,): those ranges.
``/exceptions/index``, ``/exceptions/values``
    jets the model cannot encode (outside the normalisation's domain, non-finite): their
    row numbers and their raw float32 values, stored losslessly and counted.
``/kept/<branch>``
    columns stored as they are (``--keep``), gzip + shuffle.
``/corrections/<variable>/index``, ``/corrections/<variable>/values``
    error-bounded mode (``--max-error``): rows whose decoded value missed the bound, and
    their raw float32 values.
``/model``
    the bytes of the job's model.pt (weights, architecture, normalisation), uint8.

Root attributes: ``format``, ``format_version``, ``tool_version``, ``created``,
``variables``, ``branches``, ``units``, ``bits``, ``n_jets``, ``input_name``,
``input_sha256``, ``input_format``, ``tree``, ``model_job_id``, ``model_sha256`` and the
byte counts behind the ratios. Everything is written to a temporary file and renamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core import __version__, jobdir
from hepae_core.errors import DataError, HepaeError
from hepae_core.quantise import LatentQuantiser, code_dtype
from hepae_core.residuals import residuals
from hepae_core.variables import ENERGY_VARIABLES, default_residual_kind

FORMAT = "hepae-compressed"
FORMAT_VERSION = 1
CHUNK = 100_000
H5_CHUNK = 16_384  # rows per HDF5 chunk: small enough that a short file wastes little


@dataclass
class Codec:
    """A job's model, normaliser and latent ranges: what compress and decompress need."""

    model: Any
    norm: Any
    quantiser: LatentQuantiser
    model_bytes: bytes
    job_id: str
    units: str

    @property
    def variables(self) -> list[str]:
        return list(self.norm.variables)

    @property
    def latent(self) -> int:
        return len(self.quantiser.lo)

    def encode(self, x: np.ndarray, bits: int) -> np.ndarray:
        import torch

        from hepae_core.evaluate import encode

        return self.quantiser.encode(encode(self.model, self.norm, x, torch.device("cpu")), bits)

    def decode(self, codes: np.ndarray, bits: int) -> np.ndarray:
        import torch

        from hepae_core.evaluate import decode

        z = self.quantiser.decode(codes, bits)
        return decode(self.model, self.norm, z, torch.device("cpu"))


def _model_from_bytes(data: bytes, source: str) -> tuple[Any, Any]:
    import torch

    from hepae_core.job import MODEL_FORMAT
    from hepae_core.models import build_model
    from hepae_core.normalise import Normaliser

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HepaeError(source=source, message=f"the model cannot be read ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise HepaeError(source=source, message="is not a model saved by hepae_core")
    model = build_model(payload["model_config"], len(payload["variables"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), Normaliser.from_dict(payload["normalisation"])


def load_codec(job_dir: str | Path) -> Codec:
    """The codec of a finished job: model.pt, and the latent ranges from metrics.json."""
    job_dir = Path(job_dir)
    model_path = job_dir / jobdir.MODEL
    if not model_path.is_file():
        raise HepaeError(
            source=str(job_dir),
            message=f"has no {jobdir.MODEL}: --model takes a finished job directory",
        )
    data = model_path.read_bytes()
    model, norm = _model_from_bytes(data, str(model_path))
    metrics_path = job_dir / jobdir.METRICS
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise HepaeError(
            source=str(metrics_path), message="missing or unreadable: is the job finished?"
        ) from None
    latent = metrics.get("latent")
    lo = [metrics.get(f"latent.{i}.min") for i in range(int(latent or 0))]
    hi = [metrics.get(f"latent.{i}.max") for i in range(int(latent or 0))]
    if not latent or any(v is None for v in lo + hi):
        raise HepaeError(
            source=str(metrics_path),
            key="latent.0.min",
            message="has no training ranges of the latent (the job ran without "
            "evaluate.baselines): rerun it with `hepae-train --force` or the job with --force",
        )
    units = "GeV"
    try:
        from hepae_core.config import load

        units = load(job_dir / jobdir.CONFIG)["data"].get("units", "GeV") or "GeV"
    except Exception:  # an old or moved config: the model's units are GeV then
        pass
    return Codec(model, norm, LatentQuantiser(lo, hi), data, job_dir.name, units)


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def parse_map(text: str | None, option: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise HepaeError(source=option, message=f"{item!r}: write VARIABLE=BRANCH")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _bounds(spec: str | dict[str, float] | None, variables: list[str]) -> dict[str, float]:
    if not spec:
        return {}
    raw = parse_map(spec, "--max-error") if isinstance(spec, str) else dict(spec)
    out = {}
    for v, text in raw.items():
        if v not in variables:
            raise HepaeError(source="--max-error", message=f"the model has no variable {v!r} "
                             f"(it compresses {', '.join(variables)})")  # fmt: skip
        try:
            bound = float(text)
        except ValueError:
            bound = math.nan
        if not bound > 0:
            raise HepaeError(source="--max-error", key=v, message=f"{text!r}: give a number > 0")
        out[v] = bound
    return out


def _appender(group: Any, name: str, dtype: Any, width: int | None = None, **kw: Any) -> Any:
    shape = (0,) if width is None else (0, width)
    maxshape = (None,) if width is None else (None, width)
    chunks = (H5_CHUNK,) if width is None else (H5_CHUNK, width)
    return group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks,
                                **kw)  # fmt: skip


def _append(ds: Any, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize((n + len(values), *ds.shape[1:]))
    ds[n:] = values


def compress(
    job_dir: str | Path,
    src: str | Path,
    out: str | Path,
    *,
    bits: int = 12,
    branches: str | None = None,
    keep: list[str] | None = None,
    tree: str = "jets",
    key: str | None = None,
    fmt: str = "auto",
    units: str | None = None,
    chunk_size: int = CHUNK,
    max_error: str | dict[str, float] | None = None,
    container: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compress the jets of ``src`` with the model of ``job_dir``; returns the file's summary.

    ``max_error`` (``"pt=1e-3,eta=1e-3"`` or a dict) bounds the residual of those variables
    (relative for pt, E, m; wrapped for phi; absolute otherwise): a jet whose decoded value
    misses its bound gets that value stored raw (a correction), so every decompressed value
    meets its bound.

    ``container`` (e.g. ``jet_``) reads a jagged per-event ROOT tree (branches
    ``jet_pt``, ... counted by ``njet``): the jets are compressed, the per-event counts and
    the ``keep`` branches (per event) are stored, and decompress rebuilds the events.
    """
    import h5py

    from hepae_core.readers import ReadRequest, detect_format, iter_chunks

    if not 1 <= bits <= 32:
        raise HepaeError(source="--bits", message=f"{bits}: use 1 to 32 bits per latent value")
    codec = load_codec(job_dir)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise DataError(source=str(src), message="no such file")
    fmt = detect_format(src, fmt)
    if fmt not in ("root", "hdf5", "csv"):
        raise DataError(source=str(src), message=f"compress reads ROOT, HDF5 or CSV, not {fmt}")
    units = units or codec.units
    bmap = parse_map(branches, "--branches")
    unknown = [v for v in bmap if v not in codec.variables]
    if unknown:
        raise HepaeError(source="--branches", message=f"the model has no variable {unknown[0]!r} "
                         f"(it compresses {', '.join(codec.variables)})")  # fmt: skip
    names = {v: bmap.get(v, f"{container or ''}{v}") for v in codec.variables}
    keep = [k for k in (keep or []) if k not in names.values()]
    bounds = _bounds(max_error, codec.variables)
    kinds = [default_residual_kind(v) for v in codec.variables]
    counter = None
    keep_jets: list[str] = []
    if container:
        odd = [b for b in names.values() if not b.startswith(container)]
        if odd:
            raise HepaeError(
                source="--branches",
                key=odd[0],
                message=f"jagged branches must start with --container {container!r}",
            )
        if fmt != "root":
            raise DataError(source=str(src), message="--container needs a ROOT tree of events")
        chunks, counter, keep_jets = _jagged_chunks(src, tree, names, keep, chunk_size, container)
        keep = [k for k in keep if k != counter]
    else:
        request = ReadRequest(branches={**names, **{f"keep:{k}": k for k in keep}}, tree=tree,
                              key=key, chunk_size=chunk_size)  # fmt: skip
        chunks = _flat_chunks(iter_chunks(src, fmt, request), keep)
    t0 = time.perf_counter()
    n = n_exc = n_jets_corr = 0
    n_corr = dict.fromkeys(bounds, 0)
    with jobdir.atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        codes = _appender(f, "codes", code_dtype(bits), codec.latent)
        exc_group = f.create_group("exceptions")
        exc_index = _appender(exc_group, "index", np.int64)
        exc_values = _appender(exc_group, "values", np.float32, len(names))
        kept_group = f.create_group("kept")
        kept: dict[str, Any] = {}
        corr: dict[str, tuple[Any, Any]] = {}
        for v in bounds:
            g = f.create_group(f"corrections/{v}")
            corr[v] = (_appender(g, "index", np.int64), _appender(g, "values", np.float32))
        counts_ds = _appender(f, "jagged/counts", np.uint32) if container else None
        for chunk, kept_cols, counts in chunks:
            m = len(next(iter(chunk.values())))
            if counts_ds is not None:
                _append(counts_ds, counts)
            x = np.empty((m, len(names)), dtype=np.float64)
            for j, v in enumerate(codec.variables):
                col = np.asarray(chunk[v], dtype=np.float64)
                x[:, j] = col / 1000.0 if units == "MeV" and v in ENERGY_VARIABLES else col
            ok = np.isfinite(codec.norm.forward(x)).all(axis=1)
            c = np.zeros((m, codec.latent), dtype=code_dtype(bits))
            if ok.any():
                c[ok] = codec.encode(x[ok], bits)
            _append(codes, c)
            if bounds and ok.any():
                rows = np.flatnonzero(ok)
                corrected = np.zeros(m, dtype=bool)
                y = codec.decode(c[ok], bits)  # float32, exactly what decompress writes
                x32 = x[ok].astype(np.float32)
                res = residuals(x32, y, kinds)
                for v, bound in bounds.items():
                    j = codec.variables.index(v)
                    miss = ~(np.abs(res[:, j]) <= bound)  # NaN misses too
                    if miss.any():
                        raw = np.asarray(chunk[v], np.float32)[rows[miss]]
                        _append(corr[v][0], rows[miss] + n)
                        _append(corr[v][1], raw)
                        n_corr[v] += int(miss.sum())
                        corrected[rows[miss]] = True
                n_jets_corr += int(corrected.sum())
            if not ok.all():
                bad = np.flatnonzero(~ok)
                raw = np.stack([np.asarray(chunk[v], np.float32)[bad] for v in codec.variables],
                               axis=1)  # fmt: skip
                _append(exc_index, bad + n)
                _append(exc_values, raw)
                n_exc += len(bad)
            for k in keep:
                col = np.asarray(kept_cols[k])
                if k not in kept:
                    kept[k] = _appender(kept_group, k, col.dtype, compression="gzip",
                                        shuffle=True)  # fmt: skip
                _append(kept[k], col)
            n += m
            if progress:
                progress(n)
        f.create_dataset("latent_lo", data=np.asarray(codec.quantiser.lo, np.float32))
        f.create_dataset("latent_hi", data=np.asarray(codec.quantiser.hi, np.float32))
        f.create_dataset("model", data=np.frombuffer(codec.model_bytes, dtype=np.uint8))
        # payload bytes: what the codes need (the file rounds up to whole HDF5 chunks)
        code_bytes = n * codec.latent * code_dtype(bits).itemsize
        raw_bytes = 4 * len(names) * n
        side = 8 * codec.latent + n_exc * (8 + 4 * len(names)) + 12 * sum(n_corr.values())
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "created": jobdir.now_iso(),
            "variables": json.dumps(codec.variables),
            "branches": json.dumps(names),
            "kept": json.dumps(keep),
            "kept_jets": json.dumps(keep_jets),
            "units": units,
            "bits": bits,
            "latent": codec.latent,
            "n_jets": n,
            "n_exceptions": n_exc,
            "input_name": src.name,
            "input_sha256": sha256_of(src),
            "input_format": fmt,
            "tree": tree if fmt == "root" else (key or ""),
            "model_job_id": codec.job_id,
            "model_sha256": hashlib.sha256(codec.model_bytes).hexdigest(),
            "model_bytes": len(codec.model_bytes),
            "raw_float32_bytes": raw_bytes,
            "code_bytes": code_bytes,
            "side_bytes": side,
            "container": container or "",
            "counter": counter or "",
            "n_events": int(counts_ds.shape[0]) if counts_ds is not None else n,
            "max_error": json.dumps(bounds),
            "corrections": json.dumps(n_corr),
            "jets_corrected": n_jets_corr,
        }
        f.attrs.update(attrs)
    size = out.stat().st_size
    summary = dict(attrs)
    summary.update(
        file_bytes=size,
        file_bytes_without_model=size - len(codec.model_bytes),
        ratio_codes=raw_bytes / code_bytes if code_bytes else math.nan,
        ratio_codes_and_side=raw_bytes / (code_bytes + side) if code_bytes else math.nan,
        seconds=time.perf_counter() - t0,
    )
    return summary


Chunks = Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]]


def _flat_chunks(chunks: Iterator[dict[str, Any]], keep: list[str]) -> Chunks:
    for chunk in chunks:
        kept = {k: chunk.pop(f"keep:{k}") for k in keep}
        yield chunk, kept, None


def _jagged_chunks(
    src: Path, tree: str, names: dict[str, str], keep: list[str], chunk_size: int, container: str
) -> tuple[Chunks, str, list[str]]:
    """Flattened jets, kept branches and jet counts of a jagged ROOT tree.

    Kept branches counted by the same counter as the jets (``jet_m``) are kept per jet
    (flattened; returned as the third item), the others per event.
    """
    import awkward as ak

    from hepae_core.readers import missing_branch
    from hepae_core.readers.root import get_tree, open_root

    f = open_root(src)
    t = get_tree(f, src, tree)
    available = list(t.keys())
    for b in [*names.values(), *keep]:
        if b not in available:
            f.close()
            raise missing_branch(src, f"tree '{tree}'", b, available)
    first = t[next(iter(names.values()))]
    count = getattr(first, "count_branch", None)
    if count is None:
        f.close()
        raise DataError(source=str(src), key=first.name, message="is not a jagged branch: "
                        "drop --container for a tree of one row per jet")  # fmt: skip
    keep = [k for k in keep if k != count.name]
    keep_jets = []
    for k in keep:
        kc = getattr(t[k], "count_branch", None)
        if kc is not None:
            if kc.name != count.name or not k.startswith(container):
                f.close()
                raise DataError(source=str(src), key=k, message=f"--keep takes per-event "
                                f"branches and jet branches counted by {count.name} and named "
                                f"{container}...")  # fmt: skip
            keep_jets.append(k)

    def gen() -> Chunks:
        with f:
            for arrays in t.iterate([*names.values(), *keep], step_size=chunk_size,
                                    library="ak"):  # fmt: skip
                counts = ak.to_numpy(ak.num(arrays[next(iter(names.values()))]))
                cols = {v: ak.to_numpy(ak.flatten(arrays[b])) for v, b in names.items()}
                for b in names.values():
                    if not np.array_equal(ak.to_numpy(ak.num(arrays[b])), counts):
                        raise DataError(source=str(src), key=b, message="has other jet counts "
                                        "than the other compressed branches")  # fmt: skip
                kept = {k: ak.to_numpy(ak.flatten(arrays[k]) if k in keep_jets else arrays[k])
                        for k in keep}  # fmt: skip
                yield cols, kept, counts.astype(np.uint32)

    return gen(), count.name, keep_jets


def open_compressed(path: Path) -> Any:
    """Open a compressed file, checking that it is one and that this version reads it."""
    import h5py

    if not path.is_file():
        raise DataError(source=str(path), message="no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise DataError(source=str(path), message="is not an HDF5 file written by "
                        "`hepae-data compress`") from None  # fmt: skip
    fmt = f.attrs.get("format")
    if fmt != FORMAT:
        f.close()
        raise DataError(source=str(path), message="is not a file written by "
                        "`hepae-data compress` (no format attribute)")  # fmt: skip
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        f.close()
        raise DataError(source=str(path), message=f"format version {version} is newer than "
                        f"this tool reads ({FORMAT_VERSION}): update hepae-gridsearch")  # fmt: skip
    return f


def iter_decompressed(
    path: Path, chunk_size: int = CHUNK
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    """Chunks ``({branch: values}, counts)`` of the decompressed file, in the input's units.

    Flat files: one row per jet, ``counts`` None. Jagged files (``container``): chunks of
    ``chunk_size`` events; the jet branches are flat and ``counts`` gives jets per event;
    the kept branches are per event.
    """
    with open_compressed(path) as f:
        a = f.attrs
        variables = json.loads(a["variables"])
        names = json.loads(a["branches"])
        kept = json.loads(a["kept"])
        kept_jets = set(json.loads(a.get("kept_jets", "[]")))
        units, bits = str(a["units"]), int(a["bits"])
        model, norm = _model_from_bytes(f["model"][()].tobytes(), str(path))
        q = LatentQuantiser(f["latent_lo"][()].tolist(), f["latent_hi"][()].tolist())
        codec = Codec(model, norm, q, b"", str(a["model_job_id"]), units)
        exc_index = f["exceptions/index"][()]
        exc_values = f["exceptions/values"][()]
        corrections = {
            v: (f[f"corrections/{v}/index"][()], f[f"corrections/{v}/values"][()])
            for v in json.loads(a.get("max_error", "{}"))
        }

        def jets(lo: int, hi: int) -> dict[str, np.ndarray]:
            y = codec.decode(f["codes"][lo:hi], bits).astype(np.float64)
            out = {}
            for j, v in enumerate(variables):
                col = y[:, j] * 1000.0 if units == "MeV" and v in ENERGY_VARIABLES else y[:, j]
                out[names[v]] = col.astype(np.float32)
            for v, (idx, vals) in corrections.items():
                sel = (idx >= lo) & (idx < hi)
                out[names[v]][idx[sel] - lo] = vals[sel]
            sel = (exc_index >= lo) & (exc_index < hi)
            if sel.any():
                for j, v in enumerate(variables):
                    out[names[v]][exc_index[sel] - lo] = exc_values[sel, j]
            return out

        if a.get("container"):
            counts_all = f["jagged/counts"]
            n_events = counts_all.shape[0]
            start = 0
            for e0 in range(0, n_events, chunk_size):
                e1 = min(n_events, e0 + chunk_size)
                counts = counts_all[e0:e1].astype(np.int64)
                stop = start + int(counts.sum())
                out = jets(start, stop)
                for k in kept:
                    out[k] = f["kept"][k][start:stop] if k in kept_jets else f["kept"][k][e0:e1]
                yield out, counts
                start = stop
            return
        n = int(a["n_jets"])
        for lo in range(0, n, chunk_size):
            hi = min(n, lo + chunk_size)
            out = jets(lo, hi)
            for k in kept:
                out[k] = f["kept"][k][lo:hi]
            yield out, None


def decompress(
    path: str | Path, out: str | Path, *, progress: Callable[[int], None] | None = None
) -> int:
    """Write the decompressed jets to ``out`` (.root: a TTree; .h5/.hdf5: datasets).

    Jagged inputs come back as a tree of events with the input's jagged branches and
    counter; in HDF5, as flat jet columns with the counter as a per-event column.
    Returns the number of jets.
    """
    path, out = Path(path), Path(out)
    with open_compressed(path) as f:
        tree = str(f.attrs.get("tree") or "jets")
        container = str(f.attrs.get("container", ""))
        counter = str(f.attrs.get("counter", "")) or "n"
        jet_branches = list(json.loads(f.attrs["branches"]).values())
        jet_branches += json.loads(f.attrs.get("kept_jets", "[]"))
    suffix = out.suffix.lower()
    if suffix not in (".root", ".h5", ".hdf5"):
        raise HepaeError(source=str(out), message="write .root, .h5 or .hdf5")
    n = 0
    with jobdir.atomic_path(out) as tmp:
        if suffix == ".root":
            import uproot

            with uproot.recreate(tmp) as rf:
                t = None
                for chunk, counts in iter_decompressed(path):
                    m = sum(len(chunk[b]) for b in jet_branches[:1])
                    chunk = {k: np.ascontiguousarray(v) for k, v in chunk.items()}
                    if counts is not None:
                        chunk = _events(chunk, counts, container, jet_branches)
                    if t is None:
                        types = {k: (v.type.content if k == _OUTER else v.dtype)
                                 for k, v in chunk.items()}  # fmt: skip
                        t = rf.mktree(tree, types, counter_name=lambda _: counter,
                                      field_name=lambda _, inner: container + inner)  # fmt: skip
                    t.extend(chunk)
                    n += m
                    if progress:
                        progress(n)
        else:
            import h5py

            with h5py.File(tmp, "w") as hf:
                group = hf.require_group(tree) if tree and tree != "jets" else hf
                ds: dict[str, Any] = {}
                for chunk, counts in iter_decompressed(path):
                    if counts is not None:
                        chunk[counter] = counts.astype(np.int32)
                    for k, v in chunk.items():
                        if k not in ds:
                            ds[k] = _appender(group, k, v.dtype)
                        _append(ds[k], v)
                    n += len(chunk[jet_branches[0]])
                    if progress:
                        progress(n)
    return n


_OUTER = "\x00jets"  # the record of jet branches while writing a jagged tree


def _events(
    chunk: dict[str, np.ndarray], counts: np.ndarray, container: str, jet_branches: list[str]
) -> dict[str, Any]:
    """Per-event kept branches plus one jagged record of the jet branches."""
    import awkward as ak

    fields = {b[len(container) :]: ak.unflatten(chunk.pop(b), counts) for b in jet_branches}
    return {**chunk, _OUTER: ak.zip(fields)}
