"""Collect the jobs of a campaign into one table: ``summary/summary.h5`` and ``summary.csv``.

One row per job (every job of the manifest and every directory under ``jobs/``), one typed
column per parameter and metric, plus the job's state. Reading is incremental: a small
JSON cache in ``summary/`` keeps each job's parsed files keyed by the ``mtime_ns`` and size
of its ``metrics.json`` and ``state.json``, so summarizing again re-reads only the jobs
whose files changed, rewrites only their rows of summary.h5 and summary.csv, and derives
again only their derived columns. The files are read by orjson (json where it refuses
one), summary.csv is built column by column, its floats written by orjson and set out as
repr sets them out: the same bytes as csv.writer, in a fraction of the time. Every file
is written atomically.

Columns (see docs/results.md):

* ``job_id``, ``name``, ``job_dir`` (relative to the campaign), ``in_space``,
* ``state``: a ``hepae_core.states.JobState`` word as the job dir tells it: ``done``,
  ``failed`` (also for an unreadable state.json, as ``gridsearch status`` says), ``running``,
  ``interrupted``, ``planned`` (never started); ``state_reason`` (a failed job's reason),
* ``has_metrics``: a readable metrics.json was found; ``problems``: what of this job was
  skipped and why (empty when nothing),
* ``stage``: the job's stage in the manifest (campaigns with stages only),
* ``kind`` (``single``, ``grouped``, ``two-stage``), ``group_size`` (G, 1 for per-jet
  jobs) and ``stage1_id`` (a two-stage job's ``stage1.id``), derived by
  :mod:`results.collective`,
* then every ``param.*`` key, then every other metrics.json key, sorted.

Types: int64 / float64 / bool where every row has a value of that kind; numbers with a
missing value become float64 with NaN; booleans with a missing value become float64
(1.0 / 0.0 / NaN); anything else is a UTF-8 string ("" in the file when missing).
A string in a numeric column that does not parse as a number becomes NaN and is listed in
the job's ``problems``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

try:  # a fast JSON reader (a dependency; without it the json module reads the same)
    import orjson as _orjson
except ImportError:  # pragma: no cover - installed with the package
    _orjson = None

from gridsearch import campaign as C  # the campaign layout: one home for its file names
from hepae_core.jobdir import (
    METRICS,
    PROMOTION,
    STATE,
    atomic_path,
    atomic_write_text,
    read_json,
)
from hepae_core.states import JobState
from results.collective import DERIVED, derive
from results.errors import SummaryError

SUMMARY_DIR = C.SUMMARY
H5_NAME = "summary.h5"
CSV_NAME = "summary.csv"
CACHE_NAME = "cache.json"
CACHE_FORMAT = 3  # 2: the columns kind, group_size, stage1_id, stage; 3: columns.npz
H5_FORMAT = 1
METRICS_SCHEMA = 1
H5_GROUP = "jobs"

META = ("job_id", "name", "job_dir", "in_space", "state", "state_reason", "has_metrics")
PROBLEMS = "problems"
STAGE = "stage"  # the manifest's stage of the job (campaigns with stages only)


@dataclass
class Table:
    """The collected table: typed numpy columns in order, and what the collection saw."""

    columns: dict[str, np.ndarray]
    n_jobs: int
    n_read: int = 0  # jobs whose files were (re)read this time
    n_cached: int = 0  # jobs taken from the cache unchanged
    written: bool = False  # summary.h5/csv were (re)written this time
    notes: list[str] = field(default_factory=list)  # campaign-level problems

    def frame(self) -> Any:
        """The table as a pandas DataFrame (missing strings as NaN)."""
        return _frame(self.columns)


# --------------------------------------------------------------------------- reading


def _stat_sig(path: str) -> list[int]:
    try:
        st = os.stat(path)
    except OSError:
        return [-1, -1]
    return [st.st_mtime_ns, st.st_size]


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes; None when missing; b"" when unreadable (treated as corrupt)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = "-".join(str(x) for x in v)
        else:
            out[key] = v
    return out


def _scalar(v: Any) -> Any:
    """A manifest value as metrics.json writes it: lists joined with '-', maps as JSON."""
    if isinstance(v, list):
        return "-".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def _old_schema(m: dict[str, Any]) -> dict[str, Any]:
    """Best-effort mapping of a metrics.json that is nested or from another schema."""
    flat = _flatten(m)
    out = {}
    for k, v in flat.items():
        if k.startswith("params."):
            k = "param." + k[len("params.") :]
        out[k] = v
    aliases = {"losses.best_val": "best_val_loss", "losses.epoch": "best_epoch"}
    for old, new in aliases.items():
        if old in out and new not in out:
            out[new] = out[old]
    return out


def _loads(data: bytes) -> Any:
    """``json.loads`` of a file's bytes, by orjson where it can (several times faster on
    the floats of a metrics.json, each parsed correctly rounded, as json does); json reads
    what orjson refuses (NaN, 1e999, a byte order mark, a lone surrogate), so nothing a
    job wrote reads differently, only faster."""
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except ValueError:
            pass
    return json.loads(data)


def read_job(job_path: str) -> dict[str, Any]:
    """Read one job dir's state.json and metrics.json into a flat row (no manifest info)."""
    row: dict[str, Any] = {}
    problems: list[str] = []
    text = _read_bytes(f"{job_path}/{STATE}")
    state: dict[str, Any] | None = None
    if text is not None:
        try:
            state = _loads(text)
        except ValueError:
            state = None
        if not isinstance(state, dict):
            state = None
            problems.append("state.json is unreadable or not valid JSON: state set to 'failed'")
    mtext = _read_bytes(f"{job_path}/{METRICS}")
    metrics: Any = None
    if mtext is not None:
        try:
            metrics = _loads(mtext)
        except ValueError:
            metrics = None
        if not isinstance(metrics, dict):
            metrics = None
            problems.append(
                "metrics.json is not valid JSON (truncated?): its metrics are skipped; "
                "rerun the job with --force"
            )
    if metrics is not None:
        version = metrics.get("schema_version")
        types = set(map(type, metrics.values()))
        nested = dict in types or list in types
        if version != METRICS_SCHEMA or nested:
            metrics = _old_schema(metrics)
            problems.append(
                f"metrics.json has schema_version {version!r} (expected {METRICS_SCHEMA}): "
                "read best-effort, keys that do not match docs/metrics.md are kept as they are"
            )
        row.update(metrics)
    if state is not None:
        s = state.get("state")
        row["state"] = s if isinstance(s, str) else JobState.FAILED.word
        if state.get("reason") is not None:
            row["state_reason"] = str(state["reason"])
    elif text is not None:
        row["state"] = JobState.FAILED.word  # unreadable: the one word status uses too
    else:
        row["state"] = (JobState.DONE if metrics is not None else JobState.PLANNED).word
    row["has_metrics"] = metrics is not None
    row.update(_promotion(job_path))
    if problems:
        row[PROBLEMS] = "; ".join(problems)
    return row


def _promotion(job_path: str) -> dict[str, Any]:
    """``rung`` and ``promoted_from_epochs`` (the epochs it had trained when it was last
    promoted) of a job ``gridsearch promote`` promoted; nothing for the others (a campaign
    without successive halving gets no such columns; in one with it, NaN means rung 0)."""
    text = _read_bytes(f"{job_path}/{PROMOTION}")
    if text is None:
        return {}
    try:
        rec = _loads(text)
        rung = int(rec.get("rung", 0))
    except (ValueError, TypeError, AttributeError):
        return {}
    out: dict[str, Any] = {"rung": rung}
    if rung and isinstance(rec.get("from_epochs"), int):
        out["promoted_from_epochs"] = rec["from_epochs"]
    return out


def _manifest(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    notes = []
    path = root / C.MANIFEST
    if not path.exists():
        return [], []
    m = read_json(path)
    jobs = m.get("jobs") if m else None
    if not isinstance(jobs, list):
        notes.append(
            f"{path}: unreadable or without a 'jobs' list: job names and planned jobs "
            "are taken from jobs/ only; re-plan the campaign to restore it"
        )
        return [], notes
    return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("id"), str)], notes


def check_campaign(root: str | Path) -> Path:
    """The campaign dir as a Path, or a SummaryError saying why it is not one."""
    root = Path(root)
    if not root.is_dir():
        raise SummaryError(
            message="no such directory; give the campaign directory made by `gridsearch plan`",
            source=str(root),
        )
    if not (root / C.MANIFEST).is_file() and not (root / C.JOBS).is_dir():
        raise SummaryError(
            message="not a campaign directory (neither manifest.json nor jobs/ found); give the "
            "directory made by `gridsearch plan`",
            source=str(root),
        )
    return root


# --------------------------------------------------------------------------- cache
#
# summary/cache.json holds only signatures: {"format", "h5", "csv", "columns": [mtime_ns,
# size] of the files it goes with, "manifest": signature of manifest.json, "jobs": {id:
# signature}}. The values of unchanged jobs come back from summary/columns.npz: the table
# column-wise, a 2-D array per type (float64, int64, bool) and the string columns as JSON
# bytes, read in one go without pickle (the HDF5 file, a dataset per column, takes several
# times longer to read back), with the byte offset of each line of summary.csv, so that
# only the rows that changed are rewritten there.

COLUMNS_NAME = "columns.npz"
_KINDS = {"f": np.float64, "i": np.int64, "b": np.bool_}


@dataclass
class _Cache:
    jobs: dict[str, Any] = field(default_factory=dict)  # job id -> file signatures
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    manifest: Any = None
    csv: Any = None  # signature of summary.csv
    csv_offsets: np.ndarray | None = None  # byte offset of each CSV line, and the end


def _load_cache(out_dir: Path) -> _Cache:
    """What the last collection left, or an empty cache when any part is unusable."""
    c = read_json(out_dir / CACHE_NAME)
    path = out_dir / COLUMNS_NAME
    if (
        not c
        or c.get("format") != CACHE_FORMAT
        or not isinstance(c.get("jobs"), dict)
        or c.get("h5") != _stat_sig(str(out_dir / H5_NAME))
        or c.get("columns") != _stat_sig(str(path))
    ):
        return _Cache()
    try:
        columns, offsets = _read_columns(path)
    except (OSError, KeyError, ValueError, TypeError, StopIteration):
        return _Cache()
    if "job_id" not in columns:
        return _Cache()
    return _Cache(c["jobs"], columns, c.get("manifest"), c.get("csv"), offsets)


def _save_cache(
    out_dir: Path,
    sigs: dict[str, Any],
    manifest_sig: list[int],
    columns: dict[str, np.ndarray],
    csv_offsets: np.ndarray | None,
) -> None:
    _write_columns(out_dir / COLUMNS_NAME, columns, csv_offsets)
    obj = {
        "format": CACHE_FORMAT,
        "h5": _stat_sig(str(out_dir / H5_NAME)),
        "csv": _stat_sig(str(out_dir / CSV_NAME)),
        "columns": _stat_sig(str(out_dir / COLUMNS_NAME)),
        "manifest": manifest_sig,
        "jobs": sigs,
    }
    atomic_write_text(out_dir / CACHE_NAME, json.dumps(obj, separators=(",", ":")))


def _write_columns(
    path: Path, columns: dict[str, np.ndarray], csv_offsets: np.ndarray | None
) -> None:
    names = list(columns)
    kinds = ["s" if columns[k].dtype == object else columns[k].dtype.kind for k in names]
    arrays: dict[str, np.ndarray] = {}
    n = len(columns["job_id"]) if names else 0
    for kind, dtype in _KINDS.items():
        group = [columns[k] for k, kd in zip(names, kinds) if kd == kind]
        arrays[kind] = np.stack(group) if group else np.zeros((0, n), dtype=dtype)
    strings = [columns[k].tolist() for k, kd in zip(names, kinds) if kd == "s"]
    meta = {"names": names, "kinds": kinds}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays["s"] = np.frombuffer(json.dumps(strings).encode(), dtype=np.uint8)
    if csv_offsets is not None:
        arrays["csv"] = csv_offsets
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _read_columns(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        blocks = {kind: z[kind] for kind in _KINDS}
        strings = iter(json.loads(z["s"].tobytes()))
        offsets = z["csv"] if "csv" in z.files else None
    rows = {kind: iter(block) for kind, block in blocks.items()}
    columns = {}
    for name, kind in zip(meta["names"], meta["kinds"], strict=True):
        columns[name] = np.array(next(strings), dtype=object) if kind == "s" else next(rows[kind])
    return columns, offsets


# --------------------------------------------------------------------------- columns


def _values(arr: np.ndarray) -> list[Any]:
    """A stored column back to Python values, missing (NaN or "") as None."""
    vals = arr.tolist()
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            vals = [None if v != v else v for v in vals]
    elif arr.dtype == object:
        vals = [v if v != "" else None for v in vals]
    return vals


def _column(
    key: str, values: list[Any], problems: list[list[str]], types: set[type] | None = None
) -> np.ndarray:
    """The typed column of ``values``; ``types``: the types of the values, when known."""
    types = set(map(type, values)) if types is None else set(types)
    missing = type(None) in types
    types.discard(type(None))
    n = len(values)
    if not types:
        return np.full(n, np.nan)
    if types == {bool}:
        if missing:
            return np.array(values, dtype=float)  # None -> NaN
        return np.array(values, dtype=bool)
    if types == {int}:
        return np.array(values, dtype=float if missing else np.int64)
    if types & {int, float} and types <= {int, float, bool, str}:
        if str not in types:
            return np.array(values, dtype=float)  # None -> NaN
        out = np.empty(n)
        for i, v in enumerate(values):
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    problems[i].append(f"{key} = {v!r} is not a number: set to NaN")
                    v = math.nan
            out[i] = math.nan if v is None else float(v)
        return out
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def _merge(old: np.ndarray, fresh: list[Any] | tuple[Any, ...]) -> np.ndarray | None:
    """The cached rows' stored column ``old`` followed by the fresh rows' values, typed as
    :func:`_column` would type the whole list, but column-wise (no Python object per cached
    value); None where only :func:`_column` can tell (then it is used)."""
    types = set(map(type, fresh))
    none = type(None) in types
    types.discard(type(None))
    kind = old.dtype.kind
    if kind == "f":
        # Stored floats (missing: NaN) with numbers or None: a float column. When every
        # cached value is missing, the fresh types alone decide: the general path.
        if types <= {int, float} and not np.isnan(old).all():
            return np.concatenate([old, np.array(fresh, dtype=float)])
    elif kind == "i":
        if types <= {int} and not none:
            return np.concatenate([old, np.array(fresh, dtype=np.int64)])
        if types <= {int, float}:
            return np.concatenate([old.astype(float), np.array(fresh, dtype=float)])
    elif kind == "b":
        if types <= {bool}:
            if not none:
                return np.concatenate([old, np.array(fresh, dtype=bool)])
            return np.concatenate([old.astype(float), np.array(fresh, dtype=float)])
    elif kind == "O" and types <= {str} and not (old == "").all():
        tail = np.array(["" if v is None else v for v in fresh], dtype=object)
        return np.concatenate([old, tail])
    return None


def _order(keys: Iterable[str]) -> list[str]:
    keys = set(keys)
    stage = [STAGE] if STAGE in keys else []
    keys -= {*META, PROBLEMS, STAGE, *DERIVED}
    params = sorted(k for k in keys if k.startswith("param."))
    rest = sorted(k for k in keys if not k.startswith("param."))
    return [*META, PROBLEMS, *stage, *DERIVED, *params, *rest]


# --------------------------------------------------------------------------- collect


def _job_dirs(root: Path) -> list[str]:
    jobs = root / C.JOBS
    if not jobs.is_dir():
        return []
    with os.scandir(jobs) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


@dataclass
class _Scan:
    """The jobs of a campaign and which of them the cache still holds."""

    ids: list[str]  # every job, in table order: the manifest's, then other dirs under jobs/
    by_id: dict[str, dict[str, Any]]  # the manifest's entry of each job
    rels: dict[str, str]  # job id -> its dir, relative to the campaign
    sigs: dict[str, Any]  # job id -> signature of its metrics.json and state.json
    cached_ids: list[str]  # unchanged since the cache was written ...
    cached_rows: list[int]  # ... and their rows in the cached columns
    fresh_ids: list[str]  # read again ...
    fresh: list[dict[str, Any]]  # ... and their rows as read


def _scan(root: Path, manifest: list[dict[str, Any]], cache: _Cache) -> _Scan:
    """Every job of the campaign: its signature, and its row read again unless the cache
    holds it unchanged."""
    by_id = {j["id"]: j for j in manifest}
    ids = list(by_id)
    seen = set(ids)
    for name in _job_dirs(root):
        if name not in seen:
            ids.append(name)
            seen.add(name)
    old_cols = cache.columns
    old_index = {jid: i for i, jid in enumerate(old_cols["job_id"].tolist())} if old_cols else {}
    scan = _Scan(ids, by_id, {}, {}, [], [], [], [])
    root_s = str(root)
    for jid in ids:
        info = by_id.get(jid, {})
        rel = info.get("dir") if isinstance(info.get("dir"), str) else f"{C.JOBS}/{jid}"
        scan.rels[jid] = rel
        path = rel if os.path.isabs(rel) else f"{root_s}/{rel}"
        sig = _stat_sig(f"{path}/{METRICS}") + _stat_sig(f"{path}/{STATE}")
        scan.sigs[jid] = sig
        if cache.jobs.get(jid) == sig and jid in old_index:
            scan.cached_ids.append(jid)
            scan.cached_rows.append(old_index[jid])
        else:
            scan.fresh_ids.append(jid)
            scan.fresh.append(read_job(path))
    return scan


def _fresh_columns(
    rows: list[dict[str, Any]], order: list[str], skip: set[str], floats: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The fresh rows' values per key of ``order`` (None where a row has no such key; no
    keys when there are no rows): ``(float columns, other columns)``.

    With ``floats``, the keys (but ``skip``) whose values :func:`_column` would make a
    float column of (numbers, booleans and None, none a string) come as float64 arrays,
    typed and converted row by row: the values of a job lie together in memory, and going
    over 7 million of them column by column, key after key, is slowed by the memory more
    than by the work (twice the time). The other keys come as tuples.
    """
    values = [list(map(r.get, order)) for r in rows]
    if not values:
        return {}, {}
    picked: list[int] = []
    if floats:
        row_types = {tuple(map(type, v)) for v in values}  # few: one per kind of row
        col_types = [set(c) for c in zip(*row_types)]
        picked = [j for j, key in enumerate(order) if key not in skip and _is_float(col_types[j])]
    out: dict[str, np.ndarray] = {}
    if picked:
        get = itemgetter(*picked)
        block = np.array([get(v) for v in values], dtype=float).reshape(len(values), -1)
        out = dict(zip([order[j] for j in picked], block.T.copy()))
    rest = [j for j in range(len(order)) if order[j] not in out]
    if len(rest) == len(order):
        return out, dict(zip(order, zip(*values)))
    get = itemgetter(*rest, 0)  # a tuple however many, its last item dropped below
    cols = zip(*[get(v) for v in values])
    return out, dict(zip([order[j] for j in rest], cols))


def _is_float(types: set[type]) -> bool:
    """Whether :func:`_column` makes values of these types a float column by one
    ``np.array(values, dtype=float)``."""
    kinds = types - {type(None)}
    if not kinds or not kinds <= {int, float, bool}:
        return False
    if kinds in ({int}, {bool}):
        return type(None) in types  # missing values: float with NaN
    return True


def _typed_columns(
    scan: _Scan, order: list[str], old_cols: dict[str, np.ndarray], manifest_params: set[str]
) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """The typed columns of every key of ``order`` but job_id, job_dir and in_space, the
    cached rows first, then the fresh ones; and each row's problems found on the way.
    A column only rows no longer in the campaign had is left out."""
    cached_ids, fresh, by_id = scan.cached_ids, scan.fresh, scan.by_id
    order_ids = cached_ids + scan.fresh_ids
    n = len(order_ids)
    take = np.array(scan.cached_rows, dtype=np.int64)
    problems: list[list[str]] = [[] for _ in range(n)]
    has = old_cols["has_metrics"][take].tolist() if cached_ids and "has_metrics" in old_cols else []
    has += [bool(r.get("has_metrics")) for r in fresh]
    bare = [i for i, h in enumerate(has) if not h]  # rows without metrics
    special = {*META, PROBLEMS, *manifest_params}
    # Without cached rows (a cold table) the float columns are the fresh rows' own.
    columns, fresh_cols = _fresh_columns(fresh, order, special, floats=not cached_ids)
    for key in order:
        if key in ("job_id", "job_dir", "in_space") or key in columns:
            continue
        fresh_types = set(map(type, fresh_cols.get(key, ())))
        if cached_ids and key in old_cols and key not in special:
            # Column-wise: the stored column of the cached rows and the few fresh values.
            merged = _merge(old_cols[key][take], fresh_cols.get(key, (None,) * len(fresh)))
            if merged is not None:
                columns[key] = merged
                continue
        if cached_ids and key in old_cols:
            vals = _values(old_cols[key][take])
        else:
            vals = [None] * len(cached_ids)
        vals += fresh_cols.get(key, [None] * len(fresh))
        if key in manifest_params:
            # A job without metrics takes its varied parameters from the manifest.
            short = key[len("param.") :]
            for i in bare:
                if vals[i] is None:
                    v = (by_id.get(order_ids[i], {}).get("params") or {}).get(short)
                    vals[i] = _scalar(v)
        elif key == "name":
            vals = [by_id.get(jid, {}).get("name") or v or jid for jid, v in zip(order_ids, vals)]
        if key == PROBLEMS:
            columns[key] = np.array(vals, dtype=object)  # merged in _with_meta
            continue
        # Typed from the fresh values' types when they are all the values, else from all.
        only_fresh = not (cached_ids or key in special or key not in fresh_cols)
        if key not in META and (
            fresh_types <= {type(None)} if only_fresh else vals.count(None) == n
        ):
            continue  # only jobs no longer in the campaign had it
        columns[key] = _column(key, vals, problems, fresh_types if only_fresh else None)
    return columns, problems


def _with_meta(
    scan: _Scan,
    columns: dict[str, np.ndarray],
    problems: list[list[str]],
    cache: _Cache,
    manifest_sig: list[int],
) -> dict[str, np.ndarray]:
    """The columns with problems, job_id, job_dir, in_space, the derived columns and the
    stage added, in table order (the rows reordered from cached-then-fresh to ``ids``)."""
    by_id, order_ids = scan.by_id, scan.cached_ids + scan.fresh_ids
    n = len(order_ids)
    base = columns.pop(PROBLEMS).tolist() if PROBLEMS in columns else [None] * n
    columns[PROBLEMS] = np.array(
        ["; ".join(([b] if b else []) + extra) for b, extra in zip(base, problems)], dtype=object
    )
    columns["job_id"] = np.array(order_ids, dtype=object)
    columns["job_dir"] = np.array([scan.rels[j] for j in order_ids], dtype=object)
    columns["in_space"] = np.array(
        [bool(by_id[j].get("in_space", True)) if j in by_id else False for j in order_ids]
    )
    _derive_columns(scan, columns, problems, cache, manifest_sig)
    columns.pop(STAGE, None)  # from the manifest only, never a stale cached copy
    stages = [by_id.get(j, {}).get("stage") for j in order_ids]
    if any(isinstance(s, str) and s for s in stages):  # a campaign with stages
        columns[STAGE] = _column(
            STAGE, [s if isinstance(s, str) else None for s in stages], problems
        )
    position = {jid: i for i, jid in enumerate(order_ids)}
    perm = np.array([position[j] for j in scan.ids], dtype=np.int64)
    return {k: columns[k][perm] for k in _order(columns)}


def _derive_columns(
    scan: _Scan,
    columns: dict[str, np.ndarray],
    problems: list[list[str]],
    cache: _Cache,
    manifest_sig: list[int],
) -> None:
    """Add kind, group size and stage-1 id, derived from the row and the manifest: those
    of the cached rows kept while the manifest is the same, derived again for the fresh
    ones."""
    order_ids = scan.cached_ids + scan.fresh_ids
    n = len(order_ids)
    after = [bool(scan.by_id.get(j, {}).get("after")) for j in order_ids]
    k = len(scan.cached_ids)
    old_cols = cache.columns
    keep = bool(k) and manifest_sig == cache.manifest and all(d in old_cols for d in DERIVED)
    if not keep:
        for key, vals in derive(columns, n, after).items():
            columns[key] = _column(key, vals, problems)
        return
    take = np.array(scan.cached_rows, dtype=np.int64)
    rows = {key: col[k:] for key, col in columns.items()}
    for key, vals in derive(rows, n - k, after[k:]).items():
        merged = _merge(old_cols[key][take], vals)
        if merged is None:
            merged = _column(key, _values(old_cols[key][take]) + vals, problems)
        columns[key] = merged


def collect(root: str | Path, *, use_cache: bool = True, write: bool = True) -> Table:
    """Read every job of the campaign (incrementally) and write summary.h5 and summary.csv.

    Raises SummaryError when ``root`` is not a campaign directory. Jobs that are failed,
    running or unreadable become rows with their state and ``problems``; they never abort.
    """
    root = check_campaign(root)
    with _no_cycle_collection():
        manifest, notes = _manifest(root)
        out_dir = root / SUMMARY_DIR
        manifest_sig = _stat_sig(str(root / C.MANIFEST))
        cache = _load_cache(out_dir) if use_cache else _Cache()
        scan = _scan(root, manifest, cache)
        keys: set[str] = set(cache.columns) if scan.cached_ids else set()
        for r in scan.fresh:
            keys.update(r)
        params = {f"param.{k}" for info in manifest for k in info.get("params") or {}}
        keys |= params
        columns, problems = _typed_columns(scan, _order(keys), cache.columns, params)
        n_read, scan.fresh = len(scan.fresh), []  # the rows as read: no longer needed
        columns = _with_meta(scan, columns, problems, cache, manifest_sig)
        table = Table(columns, len(scan.ids), n_read, len(scan.cached_ids), notes=notes)
        if write:
            table.written = _write_table(root, scan, columns, cache, manifest_sig)
    return table


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: a cold table makes millions of objects (7 million
    values of 10,000 jobs), none in a reference cycle, and the collector would go over
    all of them again and again as they are made (a fifth of the CPU time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _write_table(
    root: Path, scan: _Scan, columns: dict[str, np.ndarray], cache: _Cache, manifest_sig: list[int]
) -> bool:
    """Write summary.h5, summary.csv and the cache when anything changed (only the rows
    that changed, where the files on disk are the ones the cache describes); whether they
    were written."""
    out_dir = root / SUMMARY_DIR
    csv_path = out_dir / CSV_NAME
    out_dir.mkdir(exist_ok=True)
    changed = (
        bool(scan.fresh_ids)
        or set(cache.jobs) != set(scan.sigs)
        or manifest_sig != cache.manifest
        or not csv_path.exists()
    )
    if not changed:
        return False
    changes = None
    if cache.csv == _stat_sig(str(csv_path)) and cache.csv_offsets is not None:
        changes = _changes(cache.columns, columns)
    offsets = None
    if changes is not None and cache.csv_offsets is not None:
        offsets = _update_files(out_dir, columns, changes, cache.csv_offsets)
    if offsets is None:
        write_h5(out_dir / H5_NAME, columns, campaign=str(root))
        offsets = write_csv(csv_path, columns)
    _save_cache(out_dir, scan.sigs, manifest_sig, columns, offsets)
    return True


def _changes(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict | None:
    """Per column, the rows whose value changed, when the stored table has the same
    columns, types and rows in the same order (then only these need writing); else None."""
    if not old or list(old) != list(new) or not np.array_equal(old["job_id"], new["job_id"]):
        return None
    out = {}
    for key, a in new.items():
        b = old[key]
        if a.dtype != b.dtype:
            return None
        if a.dtype.kind == "f":
            differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        else:
            differs = a != b
        out[key] = np.flatnonzero(differs)
    return out


def _update_files(
    out_dir: Path,
    columns: dict[str, np.ndarray],
    changes: dict,
    offsets: np.ndarray,
) -> np.ndarray | None:
    """Rewrite only the changed rows of summary.h5 (a copy, renamed over it) and of
    summary.csv (located by their byte offsets); the new offsets, or None (nothing
    written) when the CSV on disk is not the one the offsets describe."""
    import h5py

    csv_path = out_dir / CSV_NAME
    n = len(columns["job_id"])
    with open(csv_path, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        if len(offsets) != n + 2 or int(offsets[-1]) != size:
            return None
        rows = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *changes.values()]))
        lines = _csv_lines(columns, rows)
        h5 = out_dir / H5_NAME
        with atomic_path(h5) as tmp:
            shutil.copyfile(h5, tmp)
            with h5py.File(tmp, "r+") as f:
                g = f[H5_GROUP]
                for name, idx in changes.items():
                    if len(idx):
                        g[_h5_key(name)][idx] = columns[name][idx]
        lengths = np.diff(offsets)
        # The unchanged stretches are copied file to file by the kernel, not read in.
        with atomic_path(csv_path) as tmp, open(tmp, "wb", buffering=0) as dst:
            at = 0
            for i, line in zip(rows.tolist(), lines, strict=True):
                _copy_range(src, dst, at, int(offsets[i + 1]))
                line_b = line + b"\r\n"
                _write_all(dst, line_b)
                at = int(offsets[i + 2])
                lengths[i + 1] = len(line_b)
            _copy_range(src, dst, at, size)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _copy_range(src: Any, dst: Any, start: int, end: int) -> None:
    """Append bytes ``start:end`` of the open file ``src`` to the (unbuffered) ``dst``."""
    while start < end:
        try:
            done = os.copy_file_range(src.fileno(), dst.fileno(), end - start, start)
        except (AttributeError, OSError):  # not on this system or file system
            done = 0
        if done <= 0:
            data = os.pread(src.fileno(), end - start, start)
            if not data:
                raise OSError(f"{src.name}: shorter than the summary cache says")
            _write_all(dst, data)
            done = len(data)
        start += done


def _write_all(dst: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (which may take it in parts)."""
    view = memoryview(data)
    while view:
        view = view[dst.write(view) :]


def _h5_key(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")  # '/' would nest groups


# --------------------------------------------------------------------------- writing


def write_h5(path: Path, columns: dict[str, np.ndarray], campaign: str = "") -> None:
    """Write the columns as datasets of group ``jobs`` (creation order kept), atomically."""
    import h5py

    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["format"] = H5_FORMAT
        f.attrs["campaign"] = campaign
        f.attrs["n_jobs"] = len(next(iter(columns.values()), []))
        g = f.create_group(H5_GROUP, track_order=True)
        for name, col in columns.items():
            key = _h5_key(name)
            if col.dtype == object:
                g.create_dataset(key, data=col, dtype=str_dt)
            else:
                g.create_dataset(key, data=col)


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return {
            k.replace("%2F", "/").replace("%25", "%"): (
                d.asstr()[()].astype(object) if d.dtype.kind == "O" else d[()]
            )
            for k, d in f[H5_GROUP].items()
        }


# A cell csv.writer (QUOTE_MINIMAL) would quote: it holds the delimiter, the quote or a
# line break.
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _quoted(value: str) -> str:
    """``value`` as csv.writer writes it (only for values that need quoting)."""
    return '"' + value.replace('"', '""') + '"'


def _encoded(values: list[str]) -> list[bytes]:
    """The UTF-8 bytes of each string, in one encode call where none holds a NUL."""
    if not values:
        return []
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:  # a value holds a NUL
        return [v.encode() for v in values]
    return joined.encode().split(b"\x00")


@functools.cache
def _fast_floats() -> bool:
    """Whether orjson, with the layout fixes of :func:`_float_rows`, writes every float as
    repr does: checked once on a float of every decimal exponent (where the two place the
    point differently), so another orjson that writes them otherwise falls back to repr."""
    if _orjson is None:
        return False
    mantissas = (1.0, 1.5, 2.2250738585072014, 9.999999999999998, 1.2345678901234567)
    probe = [m * 10.0**e for e in range(-323, 309) for m in mantissas if m * 10.0**e < math.inf]
    probe += [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 1e16, 123456789.125, 2.0**53]
    col = np.array(probe + [-v for v in probe])
    try:
        got = _float_rows(col.reshape(-1, 1), fast=True)
    except (TypeError, ValueError):  # pragma: no cover - an orjson without numpy support
        return False
    return got == [float.__repr__(v).encode() for v in col.tolist()]


def _repr_row(values: Iterable[float]) -> bytes:
    return b",".join(b"" if v != v else float.__repr__(v).encode() for v in values)


# Cells of a block written as one text at most: its three copies (orjson's, the joined,
# the rows) stay a few megabytes however large the campaign, which is also faster than one
# text of the whole table (0.90-0.96 s against 1.17-1.73 s for 6.8 million cells, best of
# four interleaved: the copies stay in the caches).
_BLOCK_CELLS = 250_000


def _float_rows(block: np.ndarray, fast: bool | None = None) -> list[bytes]:
    """The CSV text of each row of a 2-D block of floats: every float as its shortest repr
    (what csv.writer writes), NaN as an empty cell, cells joined by commas.

    Formatting 7 million floats with repr takes seconds, and joining them cell by cell as
    long again; orjson writes them a part of the rows at a time (:func:`_orjson_rows`).
    """
    n, width = block.shape
    if not n or not width:
        return [b""] * n
    if fast is None:
        fast = _fast_floats()
    if not fast:
        return [_repr_row(row) for row in block.tolist()]
    step = max(1, _BLOCK_CELLS // width)
    return [row for i in range(0, n, step) for row in _orjson_rows(block[i : i + step])]


def _orjson_rows(block: np.ndarray) -> list[bytes]:
    """:func:`_float_rows` of a block, written by orjson as one JSON array of rows.

    orjson writes repr's digits and, but for magnitudes between 1e-9 and 1e-4 (0.00001 for
    1e-05, 1.5e-7 for 1.5e-07), the same layout. Those cells, the infinities and the NaNs
    are set to NaN, which orjson writes as ``null`` (no number's text holds it), and each
    ``null`` is then replaced by the cell's own text: repr's, or nothing for a NaN.
    """
    block = np.array(block, dtype=np.float64, order="C")  # a copy: cells are set to NaN
    size = np.abs(block)
    with np.errstate(invalid="ignore"):
        special = ~np.isfinite(block) | ((size >= 1e-10) & (size < 2e-4))
    if not special.any():
        text = _orjson.dumps(block, option=_orjson.OPT_SERIALIZE_NUMPY)
        return text[2:-2].split(b"],[")
    values = block[special]
    cells = np.full(len(values), b"", dtype=object)
    shown = ~np.isnan(values)
    cells[shown] = _encoded(list(map(float.__repr__, values[shown].tolist())))
    block[special] = np.nan
    pieces = _orjson.dumps(block, option=_orjson.OPT_SERIALIZE_NUMPY).split(b"null")
    mixed: list[bytes] = [b""] * (2 * len(pieces) - 1)
    mixed[0::2] = pieces
    mixed[1::2] = cells.tolist()
    return b"".join(mixed)[2:-2].split(b"],[")


def _float_cells(col: np.ndarray, fast: bool | None = None) -> list[bytes]:
    """The cells of a float column (see :func:`_float_rows`)."""
    return _float_rows(np.asarray(col, dtype=np.float64).reshape(-1, 1), fast)


def _cells(col: np.ndarray) -> list[bytes]:
    """The CSV cells of a column, as csv.writer writes its values (floats as their shortest
    repr, missing numbers empty, booleans as True/False) in UTF-8, built column-wise:
    csv.writer takes several times longer over 7 million cells, one call and type check
    per cell, most of it formatting the floats."""
    kind = col.dtype.kind
    if kind == "f":
        return _float_cells(col)
    if kind in "iu":
        return col.astype("S").tolist()
    if kind == "b":
        return np.where(col, b"True", b"False").tolist()
    values = ["" if v is None else str(v) for v in col.tolist()]
    if _NEEDS_QUOTES.search("\x00".join(values)):
        values = [_quoted(v) if _NEEDS_QUOTES.search(v) else v for v in values]
    return _encoded(values)


def _csv_lines(columns: dict[str, np.ndarray], rows: np.ndarray | None = None) -> list[bytes]:
    """The CSV lines (without line ends) of ``rows`` (default all), as csv.writer writes
    them: each run of neighbouring float columns written as one block of rows, each other
    column cell by cell, then the pieces joined row by row."""
    pieces: list[list[bytes]] = []
    run: list[np.ndarray] = []
    for col in [*columns.values(), None]:
        if col is not None and col.dtype.kind == "f":
            run.append(col if rows is None else col[rows])
            continue
        if run:
            pieces.append(_float_rows(np.column_stack(run)))
            run = []
        if col is not None:
            pieces.append(_cells(col if rows is None else col[rows]))
    return list(map(b",".join, zip(*pieces)))


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> np.ndarray | None:
    """Write the columns as CSV (missing values empty), atomically, as csv.writer would.

    Returns the byte offset of every line (header first) and the file's size, or None when
    a value holds a line break (a line is then not a row).
    """
    header = b",".join(_cells(np.array(list(columns), dtype=object)))
    lines = [header, *_csv_lines(columns)] if columns else [header]
    data = b"\r\n".join([*lines, b""])
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    # Only a name or a string can hold a line end (numbers and booleans cannot): looked
    # for there, not in the 100 MB of the file.
    texts = [list(columns), *(c.tolist() for c in columns.values() if c.dtype == object)]
    if any("\r\n" in "\x00".join(map(str, values)) for values in texts):
        return None  # a value holds a line end
    ends = np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 2)
    return np.concatenate([[0], ends]).astype(np.int64)


def _frame(columns: dict[str, np.ndarray]) -> Any:
    import pandas as pd

    data = {}
    for k, c in columns.items():
        if c.dtype == object:
            data[k] = pd.array(np.where(c == "", None, c), dtype=object)
        else:
            data[k] = c
    return pd.DataFrame(data)


def load(campaign_dir: str | Path) -> Any:
    """The summary table of a campaign (or a summary.h5 path) as a pandas DataFrame.

    Reads ``<campaign>/summary/summary.h5`` with h5py (PyTables is not needed). Strings that
    are missing ("" in the file) come back as NaN, like missing numbers.
    """

    path = Path(campaign_dir)
    if path.is_dir():
        path = path / SUMMARY_DIR / H5_NAME
    if not path.is_file():
        raise SummaryError(
            message="no summary table; run `gridsearch summarize` on the campaign first",
            source=str(path),
        )
    try:
        columns = _read_h5(path)
    except (OSError, KeyError) as exc:
        raise SummaryError(
            message=f"not a readable summary table ({exc}); run `gridsearch summarize` again",
            source=str(path),
        ) from None
    return _frame(columns)
