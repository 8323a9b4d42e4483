"""HDF5 tables through h5py, read in slices: a group of 1-D datasets or a compound table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.data.readers import ReadRequest, closest, missing_branch, one_line
from hepae_core.errors import DataError


def open_hdf5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            source=str(path), message=f"cannot be opened as an HDF5 file ({one_line(exc)})"
        ) from None


def is_numeric(dtype: np.dtype) -> bool:
    """True for numbers (and booleans): what can become a float32 column."""
    return dtype.kind in "biuf"


def _refuse_non_numeric(path: Path, column: str, dtype: np.dtype) -> None:
    if not is_numeric(dtype):
        what = "strings" if dtype.kind in "SUO" else f"values of type {dtype}"
        raise DataError(
            source=str(path),
            message=f"column '{column}' holds {what}, not numbers; map the variable to a "
            "numeric column with data.branches",
            key="data.branches",
        )


def iter_hdf5(path: Path, req: ReadRequest) -> Iterator[dict[str, Any]]:
    """Jets from a group of equally long 1-D datasets, or from a compound dataset."""
    import h5py

    f = open_hdf5(path)
    with f:
        if req.key and req.key not in f:
            groups: list[str] = []
            f.visit(groups.append)
            raise DataError(
                source=str(path),
                message=f"has no group or dataset '{req.key}'{closest(req.key, groups)} "
                f"(it has: {', '.join(groups[:20]) or 'nothing'})",
                key="data.key",
            )
        node = f[req.key] if req.key else f
        if req.leading is not None:
            raise DataError(
                source=str(path),
                message="data.leading needs per-event data; HDF5 tables hold one row per jet",
                key="data.leading",
            )
        if isinstance(node, h5py.Dataset) and node.dtype.names:
            available = list(node.dtype.names)
            for branch in req.branches.values():
                if branch not in available:
                    raise missing_branch(path, f"table '{node.name}'", branch, available)
                _refuse_non_numeric(path, branch, node.dtype[branch])
            n = _stop(node.shape[0], req.max_jets)
            for lo in range(0, n, req.chunk_size):
                table = node[lo : min(n, lo + req.chunk_size)]
                yield {var: np.asarray(table[b]) for var, b in req.branches.items()}
            return
        if not isinstance(node, h5py.Group):
            raise DataError(
                source=str(path),
                message="data.key must name a group of 1-D datasets or a compound table",
                key="data.key",
            )
        available = [k for k in node if isinstance(node[k], h5py.Dataset)]
        lengths = {}
        for branch in req.branches.values():
            if branch not in available:
                raise missing_branch(path, f"group '{node.name}'", branch, available)
            ds = node[branch]
            _refuse_non_numeric(path, branch, ds.dtype)
            if ds.ndim != 1:
                raise DataError(
                    source=str(path),
                    message=f"dataset '{branch}' must be one-dimensional, not {ds.shape}",
                )
            lengths[branch] = ds.shape[0]
        if len(set(lengths.values())) > 1:
            raise DataError(
                source=str(path),
                message="datasets have different lengths: "
                + ", ".join(f"{b}={n}" for b, n in lengths.items()),
                key="data.branches",
            )
        n = _stop(next(iter(lengths.values()), 0), req.max_jets)
        for lo in range(0, n, req.chunk_size):
            hi = min(n, lo + req.chunk_size)
            yield {var: node[b][lo:hi] for var, b in req.branches.items()}


def _stop(n: int, max_jets: int | None) -> int:
    return n if max_jets is None else min(n, max_jets)
