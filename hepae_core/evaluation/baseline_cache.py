"""Baselines once per data split: the model-independent baseline metrics, shared by a campaign.

The baselines (scalar quantiser, PCA, SZ3, ZFP, lossless at every bit depth; see
:func:`hepae_core.evaluation.evaluate.baseline_metrics`) depend only on the jets they are fitted on
and
measured on, not on the model. Every job of a campaign that trains on the same data split
(same source, cuts, variables, normalisation, split seed) would compute the same numbers;
here the first one computes them and writes them to
``<campaign>/baselines/<key>.json``, and the others read them back.

The key is a SHA-256 of exactly what the numbers are a function of: the test and training
jets themselves (their bytes, shape and dtype: this covers the data source, the cuts, the
variables, the normalisation's finite-value filter and the split seed, whatever produced
them), the variables and their residual kinds, the bit depths, the PCA size, the file size
of the ``ratio_file`` keys, and :data:`FORMAT`. Hashing the arrays (a few MB) takes tens of
milliseconds against seconds for the baselines. A job outside a campaign (no
``manifest.json`` two levels up) computes its own, as does any job when the cache file is
missing, unreadable or of another format. Files are written atomically; two jobs that
compute the same key at once write the same content.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.jobdir import atomic_write_text

#: Bumped whenever the baselines' keys or their computation change.
FORMAT = 2
CACHE_DIR = "baselines"


#: Set to 1 in a job's environment, it computes its own baselines even in a campaign.
NO_CACHE_ENV = "HEPAE_NO_SHARED_BASELINES"


def campaign_cache_dir(job_dir: str | Path) -> Path | None:
    """``<campaign>/baselines`` for a job dir ``<campaign>/jobs/<id>``, else None (also
    when :data:`NO_CACHE_ENV` is set)."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    campaign = Path(job_dir).resolve().parent.parent
    return campaign / CACHE_DIR if (campaign / "manifest.json").is_file() else None


def cache_key(
    x_test: np.ndarray,
    x_train: np.ndarray,
    variables: list[str],
    kind_list: list[str],
    bits: tuple[int, ...],
    pca_components: int | None,
    file_jets: int,
) -> str:
    """The hex digest naming the baselines of exactly these inputs."""
    h = hashlib.sha256()
    meta = {
        "format": FORMAT,
        "variables": list(variables),
        "kinds": list(kind_list),
        "bits": [int(b) for b in bits],
        "pca_components": pca_components,
        "file_jets": int(file_jets),
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    for arr in (x_test, x_train):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data.cast("B"))
    return h.hexdigest()[:32]


def cached(
    cache_dir: Path | None, key: str, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The baselines under ``key`` in ``cache_dir``, computed (and stored) when absent."""
    if cache_dir is None:
        return compute()
    path = cache_dir / f"{key}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("format") == FORMAT and stored.get("key") == key:
            return stored["metrics"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass  # absent or damaged: computed again below
    metrics = compute()
    try:
        cache_dir.mkdir(exist_ok=True)
        record = {"format": FORMAT, "key": key, "metrics": metrics}
        atomic_write_text(path, json.dumps(record, default=_plain))
    except OSError:
        pass  # a read-only or full campaign dir: this job has its numbers anyway
    return metrics


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
