"""Reading jets into one float32 array (jets x variables), with cuts and a seeded split.

Sources (see docs/data.md): ROOT trees with one row per jet or jagged per-event branches
(ATLAS derivations, ntuples), HDF5 tables, PhenoML / DarkMachines CSV files, or a bundled
sample (``bundled:NAME``). The readers live in :mod:`hepae_core.data.readers` and yield chunks;
:func:`load_jets` converts, cleans and cuts each chunk before reading the next. Everything
downstream of this module is in GeV.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.config import variables_of
from hepae_core.data.readers import ReadRequest, check_file, detect_format, iter_chunks
from hepae_core.errors import DataError
from hepae_core.variables import ENERGY_VARIABLES

__all__ = [
    "BUNDLED_PREFIX",
    "JetData",
    "Split",
    "detect_format",
    "iter_source",
    "load_jets",
    "read_source",
    "resolve_source",
    "split",
]

BUNDLED_PREFIX = "bundled:"


@dataclass
class JetData:
    """Jets as a (n_jets, n_variables) float32 array in GeV, and what was done to get it."""

    values: np.ndarray
    variables: list[str]
    counts: dict[str, Any] = field(default_factory=dict)
    #: columns read beside the variables (e.g. the event number for grouping), same rows
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Split:
    """Row indices of the train, validation and test jets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def bundled_path(name: str) -> Path:
    """Path of a sample shipped in the package (``hepae_core/data/NAME.root``)."""
    entry = resources.files("hepae_core").joinpath("data", f"{name}.root")
    if not entry.is_file():
        known = sorted(
            p.name[: -len(".root")]
            for p in resources.files("hepae_core").joinpath("data").iterdir()
            if p.name.endswith(".root")
        )
        raise DataError(
            source=f"{BUNDLED_PREFIX}{name}",
            message=f"no bundled sample of that name; bundled samples: {', '.join(known)}",
            key="data.source",
        )
    return Path(str(entry))


def resolve_source(source: str, base_dir: Path | None = None) -> Path:
    """The file a ``data.source`` names: bundled samples, or a path relative to ``base_dir``."""
    if source.startswith(BUNDLED_PREFIX):
        return bundled_path(source[len(BUNDLED_PREFIX) :])
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise DataError(
            source=str(path),
            message="data file not found; check data.source (relative paths are taken from the "
            "directory of config.yaml)",
            key="data.source",
        )
    check_file(path)
    return path


def request_for(cfg: dict[str, Any], needed: list[str]) -> ReadRequest:
    """The :class:`ReadRequest` of a config's data section for the variables ``needed``."""
    data = cfg["data"]
    prefix = data.get("container") or ""

    def branch(var: str) -> str:
        return data["branches"].get(var, prefix + var)

    return ReadRequest(
        branches={v: branch(v) for v in needed},
        tree=data["tree"],
        key=data["key"],
        leading=data.get("leading"),
        pt_branch=branch("pt"),
        chunk_size=data.get("chunk_size") or 100_000,
        max_jets=data["max_jets"],
        csv_objects=tuple(data.get("csv_objects") or ("j",)),
    )


def needed_variables(cfg: dict[str, Any]) -> list[str]:
    """Variables to read: the trained ones, then those only the cuts use."""
    from hepae_core.data.cuts import cut_variables

    variables = variables_of(cfg)
    extra = [v for v in cut_variables(cfg["data"]["cuts"]) if v not in variables]
    return variables + extra


def iter_source(
    cfg: dict[str, Any], base_dir: Path | None = None, variables: list[str] | None = None
) -> tuple[Iterator[dict[str, np.ndarray]], ReadRequest]:
    """Chunks of ``{variable: array}`` (file units) of a config's source, and the request."""
    data = cfg["data"]
    path = resolve_source(data["source"], base_dir)
    fmt = detect_format(path, data["format"])
    req = request_for(cfg, variables if variables is not None else variables_of(cfg))
    return iter_chunks(path, fmt, req), req


def read_source(cfg: dict[str, Any], base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Read the variables a config trains on, as {variable: array}, in file units, at once."""
    chunks, _ = iter_source(cfg, base_dir)
    parts = list(chunks)
    variables = variables_of(cfg)
    if not parts:
        return {v: np.empty(0, dtype=np.float32) for v in variables}
    out = {v: np.concatenate([p[v] for p in parts]) for v in variables}
    stop = cfg["data"]["max_jets"]
    return {v: a[:stop] for v, a in out.items()} if stop else out


def to_columns(
    chunk: dict[str, np.ndarray], variables: list[str], units: str
) -> dict[str, np.ndarray]:
    """float64 columns in GeV (energies divided by 1000 when the source is in MeV)."""
    out = {}
    for var in variables:
        col = np.asarray(chunk[var], dtype=np.float64)
        if units == "MeV" and var in ENERGY_VARIABLES:
            col = col / 1000.0
        out[var] = col
    return out


def to_array(columns: dict[str, np.ndarray], variables: list[str], units: str) -> np.ndarray:
    """Stack columns into (n, v) float32, converting energies from MeV when declared."""
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.empty((n, len(variables)), dtype=np.float32)
    for j, var in enumerate(variables):
        col = np.asarray(columns[var], dtype=np.float64)
        if units == "MeV" and var in ENERGY_VARIABLES:
            col = col / 1000.0
        out[:, j] = col
    return out


def nonfinite_jets(values: np.ndarray, policy: str, source: str) -> np.ndarray:
    """The jets with NaN or inf in any variable (a mask); refused when ``policy`` is
    ``refuse``."""
    bad = ~np.isfinite(values).all(axis=1)
    if policy == "refuse" and bad.any():
        raise DataError(
            source=source,
            message=f"{int(bad.sum())} jets contain NaN or inf; set data.nonfinite: drop to "
            "skip them",
            key="data.nonfinite",
        )
    return bad


def drop_nonfinite(values: np.ndarray, policy: str, source: str) -> tuple[np.ndarray, int]:
    """Drop (or refuse) jets with NaN or inf in any variable; return the count dropped."""
    bad = nonfinite_jets(values, policy, source)
    n_bad = int(bad.sum())
    return (values[~bad] if n_bad else values), n_bad


def load_jets(
    cfg: dict[str, Any], base_dir: Path | None = None, carry: tuple[str, ...] = ()
) -> JetData:
    """Read, convert, clean and cut the jets of a resolved config, chunk by chunk.

    Each chunk is converted to GeV, cleaned of non-finite values (in the trained variables)
    and cut before the next is read, so memory stays about proportional to the jets kept.
    Counts: ``jets_read``, ``jets_nonfinite_dropped``, ``cut.<i>.expr``/``cut.<i>.removed``,
    ``jets_after_cuts``; for per-event inputs also ``events_read`` and
    ``jets_beyond_leading``. ``carry`` names branches read as they are (float64, not
    cleaned, no unit conversion) and kept row by row beside the jets in ``JetData.extra``.
    """
    from hepae_core.data.cuts import CutFlow, CutSyntaxError

    variables = variables_of(cfg)
    data = cfg["data"]
    source = data["source"]
    try:
        flow = CutFlow(data["cuts"])
    except CutSyntaxError as exc:  # resolve() checks this; a hand-made cfg may not have
        raise DataError(source=source, message=str(exc), key="data.cuts") from None
    needed = needed_variables(cfg)
    needed += [c for c in carry if c not in needed]
    chunks, req = iter_source(cfg, base_dir, needed)
    cut_names = sorted({name for cut in flow.cuts for name in cut.names})
    kept: list[np.ndarray] = []
    carried: dict[str, list[np.ndarray]] = {c: [] for c in carry}
    n_read = n_bad = 0
    stop = data["max_jets"]
    for chunk in chunks:
        n = len(next(iter(chunk.values()))) if chunk else 0
        if stop is not None and n_read + n > stop:
            n = stop - n_read
            chunk = {v: a[:n] for v, a in chunk.items()}
        n_read += n
        # float32 GeV for the kept array, one column at a time; float64 only for the
        # columns the cuts read, so a chunk costs little beyond what the reader holds.
        values = to_array(chunk, variables, data["units"])
        cols = to_columns(chunk, cut_names, data["units"])
        extra = {c: np.asarray(chunk[c], dtype=np.float64) for c in carry}
        del chunk
        bad = nonfinite_jets(values, data["nonfinite"], source)
        if bad.any():
            n_bad += int(bad.sum())
            ok = ~bad
            cols = {v: c[ok] for v, c in cols.items()}
            values, extra = _rows(ok, values, extra)
        if flow.cuts:
            values, extra = _rows(flow.mask(cols), values, extra)
        kept.append(values)
        for c, col in extra.items():
            carried[c].append(col)
        del cols, values
        release_memory()
        if stop is not None and n_read >= stop:
            break
    if n_read == 0:
        raise DataError(
            source=source, message="holds no jets (the tree or table is empty)", key="data.source"
        )
    values = _concatenate(kept, len(variables))
    counts: dict[str, Any] = {"jets_read": n_read}
    counts.update({k: v for k, v in req.stats.items()})
    counts["jets_nonfinite_dropped"] = n_bad
    counts.update(flow.counts())
    counts["jets_after_cuts"] = int(values.shape[0])
    if values.shape[0] < 10:
        raise DataError(
            source=source,
            message=f"only {values.shape[0]} jets are left after cleaning and cuts; "
            "loosen data.cuts or check the file",
            key="data.cuts",
        )
    extra_cols = {c: np.concatenate(parts) for c, parts in carried.items()}
    return JetData(values=values, variables=variables, counts=counts, extra=extra_cols)


def _rows(
    keep: np.ndarray, values: np.ndarray, extra: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The jets ``keep`` selects, in the array and in the carried columns beside it."""
    return values[keep], {v: c[keep] for v, c in extra.items()}


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc), so RSS follows what is kept.

    Chunks of a few tens of MB come from the heap once glibc's mmap threshold has grown;
    freeing them does not shrink RSS without this, and peak RSS would count every chunk.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _concatenate(parts: list[np.ndarray], width: int) -> np.ndarray:
    """Join chunks into one array, freeing each as it is copied (peak: total + one chunk)."""
    if len(parts) == 1:
        return parts.pop()
    out = np.empty((sum(len(p) for p in parts), width), dtype=np.float32)
    row = 0
    for i in range(len(parts)):
        part = parts[i]
        out[row : row + len(part)] = part
        row += len(part)
        parts[i] = None  # type: ignore[call-overload]
        del part
        release_memory()
    parts.clear()
    return out


def split(n: int, test_fraction: float, val_fraction: float, seed: int) -> Split:
    """Seeded random split into train/validation/test row indices."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round((n - n_test) * val_fraction))
    return Split(
        train=np.sort(order[n_test + n_val :]),
        val=np.sort(order[n_test : n_test + n_val]),
        test=np.sort(order[:n_test]),
    )
