"""The compressed file's container: format name and version, the checksummed datasets, the
byte accounting and the bound parser, shared by every codec that writes such a file (the
autoencoder's, :mod:`hepae_core.codecs.codec`; the predictive one's,
:mod:`hepae_core.codecs.pred_file`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.errors import DataError, HepaeError
from hepae_core.states import EXIT_FAILED
from hepae_core.variables import ENERGY_VARIABLES

FORMAT = "hepae-compressed"


FORMAT_VERSION = 2


CHUNK = 100_000


class CorruptFile(DataError):
    """A compressed file that fails its checks: damaged, truncated or inconsistent (exit 1)."""

    exit_code = EXIT_FAILED


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


def parse_bounds(
    spec: str | dict[str, Any] | None, variables: list[str], kinds: list[str], units: str
) -> dict[str, float]:
    """Error bounds per variable, absolute ones in the file's ``units``.

    Relative (pt, E, m) and angular (phi) bounds are plain numbers. Absolute bounds are in
    the units of the file being compressed (an energy in a MeV file is in MeV), unless they
    carry one: ``0.5GeV``, ``500MeV``.
    """
    if not spec:
        return {}
    raw = parse_map(spec, "--max-error") if isinstance(spec, str) else dict(spec)
    out = {}
    for v, text in raw.items():
        if v not in variables:
            raise HepaeError(source="--max-error", message=f"the model has no variable {v!r} "
                             f"(it compresses {', '.join(variables)})")  # fmt: skip
        m = _BOUND.match(str(text))
        try:
            bound = float(m.group(1)) if m else math.nan
        except ValueError:
            bound = math.nan
        unit = m.group(2) if m else ""
        if not bound > 0 or not math.isfinite(bound):
            raise HepaeError(source="--max-error", key=v, message=f"{text!r}: give a number > 0")
        if unit:
            kind = kinds[variables.index(v)]
            if unit not in ENERGY_UNITS:
                raise HepaeError(source="--max-error", key=v, message=f"{text!r}: unknown "
                                 f"unit {unit!r} (use {', '.join(ENERGY_UNITS)})")  # fmt: skip
            if kind != "absolute" or v not in ENERGY_VARIABLES:
                what = "a fraction" if kind == "relative" else "in radians" if kind == "angle" \
                    else "in the variable's own units"  # fmt: skip
                raise HepaeError(source="--max-error", key=v, message=f"{text!r}: the bound "
                                 f"of {v} is {what}; drop the unit")  # fmt: skip
            bound = bound * ENERGY_UNITS[unit] / ENERGY_UNITS.get(units, 1.0)
        out[v] = bound
    return out


class _Streams:
    """Byte streams appended chunk by chunk to temporary files, then copied into
    contiguous datasets: the file holds exactly the bytes counted and memory stays flat."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.files: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}

    def add(self, name: str, data: bytes) -> int:
        if name not in self.files:
            self.files[name] = tempfile.TemporaryFile(dir=self.where, prefix=".hepae-stream-")  # noqa: SIM115 - closed by close()
            self.sizes[name] = 0
        self.files[name].write(data)
        self.sizes[name] += len(data)
        return len(data)

    def copy_into(self, f: Any, name: str, path: str) -> str:
        """Write stream ``name`` as dataset ``path``; returns its SHA-256."""
        size = self.sizes.get(name, 0)
        ds = f.create_dataset(path, shape=(size,), dtype=np.uint8)
        h = hashlib.sha256()
        if size:
            fh = self.files[name]
            fh.seek(0)
            pos = 0
            while pos < size:
                block = fh.read(min(COPY_BLOCK, size - pos))
                a = np.frombuffer(block, np.uint8)
                ds[pos : pos + len(a)] = a
                h.update(block)
                pos += len(a)
        return h.hexdigest()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def _write_array(f: Any, path: str, a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    f.create_dataset(path, data=a)
    return hashlib.sha256(a.tobytes()).hexdigest()


def _header_hash(attrs: dict[str, Any]) -> str:
    items = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()
             if k != "header_sha256"}  # fmt: skip
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def write_header(f: Any, attrs: dict[str, Any]) -> None:
    """The file's attributes, sealed by ``header_sha256`` (checked before any decoding)."""
    f.attrs.update(attrs)
    f.attrs["header_sha256"] = _header_hash(dict(f.attrs))


def _dataset_bytes(f: Any) -> dict[str, int]:
    """Bytes on disk of every dataset of an open file, by path."""
    out: dict[str, int] = {}

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "id") and hasattr(obj.id, "get_storage_size") and hasattr(obj, "dtype"):
            out[name] = int(obj.id.get_storage_size())

    f.visititems(visit)
    return out


def _accounting(
    a: dict[str, Any], file_bytes: int, widths: list[int], group: int
) -> dict[str, Any]:
    """The ratios of a written file, from its byte counts (docs/compression.md)."""
    n = int(a["n_jets"])
    raw, payload, side = int(a["raw_float32_bytes"]), int(a["payload_bytes"]), int(a["side_bytes"])
    model, kept = int(a["model_bytes"]), int(a["kept_bytes"])
    stored_per_jet = (payload + side) / n if n else math.nan
    raw_per_jet = raw / n if n else math.nan
    gain = raw_per_jet - stored_per_jet
    return {
        "file_bytes": file_bytes,
        "container_bytes": file_bytes - payload - side - model - kept,
        "file_bytes_without_model": file_bytes - model,
        "bits_per_jet": 8 * payload / n if n else math.nan,
        "bits_per_jet_nominal": sum(widths) / group,
        "ratio": raw / (payload + side) if payload + side else math.nan,
        "ratio_with_model": raw / (payload + side + model),
        "break_even_jets": math.ceil(model / gain) if gain > 0 else None,
        # the names of format version 1, same meaning
        "code_bytes": payload,
        "ratio_codes": raw / payload if payload else math.nan,
        "ratio_codes_and_side": raw / (payload + side) if payload + side else math.nan,
        "n_saturated": 0,  # the ranges come from the file: no code saturates
    }


def _json_attr(path: Path, a: Any, name: str, default: Any = None) -> Any:
    if name not in a:
        if default is not None:
            return default
        raise CorruptFile(source=str(path), key=name, message="is missing: the file is damaged")
    try:
        return json.loads(a[name])
    except (TypeError, ValueError):
        raise CorruptFile(source=str(path), key=name, message="is damaged (not JSON)") from None


def verify_checksums(f: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header checksum and that of every dataset (none missing or added), whatever
    the file's codec; returns (attributes, datasets by path). Raises CorruptFile."""
    import h5py

    a = dict(f.attrs.items())
    bad = functools.partial(_damaged, path)
    if a.get("header_sha256") != _header_hash(a):
        raise bad("its attributes do not match their checksum")
    checks = _json_attr(path, a, "checksums")
    present: dict[str, Any] = {}
    f.visititems(lambda name, obj: present.__setitem__(name, obj)
                 if isinstance(obj, h5py.Dataset) else None)  # fmt: skip
    for p in sorted(set(checks) ^ set(present)):
        raise bad(f"dataset /{p} is {'missing' if p in checks else 'not recorded'}", p)
    for p, expect in sorted(checks.items()):
        ds = present[p]
        h = hashlib.sha256()
        if ds.ndim <= 1 and ds.dtype == np.uint8:
            for i in range(0, ds.shape[0], COPY_BLOCK):
                h.update(ds[i : i + COPY_BLOCK].tobytes())
        else:
            h.update(np.ascontiguousarray(ds[()]).tobytes())
        if h.hexdigest() != expect:
            raise bad(f"dataset /{p} does not match its checksum", p)
    return a, present


COPY_BLOCK = 1 << 22  # bytes copied or hashed at a time: memory stays flat in the file size


ENERGY_UNITS = {"keV": 1e-6, "MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}


_BOUND = re.compile(r"^\s*([-+0-9.eE]+)\s*([a-zA-Z]*)\s*$")


def _damaged(path: Path, what: str, key: str | None = None) -> CorruptFile:
    return CorruptFile(source=str(path), key=key, message=f"{what}: the file is damaged "
                       "or was changed after compress; refusing to decode it")  # fmt: skip
