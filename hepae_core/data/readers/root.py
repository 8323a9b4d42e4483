"""ROOT trees through uproot: flat per-jet trees and jagged per-event trees, in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.data.readers import ReadRequest, closest, missing_branch, one_line
from hepae_core.errors import DataError


def open_root(path: Path):
    """Open a ROOT file, turning uproot's many failure kinds into one DataError."""
    import uproot

    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises many kinds for a file that is not ROOT
        raise DataError(
            source=str(path), message=f"cannot be opened as a ROOT file ({one_line(exc)})"
        ) from None


TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def list_trees(f) -> list[str]:
    """Names of the TTrees and RNTuples in an open file (cycle numbers dropped, each once)."""
    names = [k.split(";")[0] for k, c in f.classnames().items() if c in TREE_CLASSES]
    return list(dict.fromkeys(names))


def get_tree(f, path: Path, tree: str):
    trees = list_trees(f)
    if tree not in trees:
        if not trees:
            raise DataError(
                source=str(path),
                message="holds no TTree or RNTuple: the file is empty of jets",
                key="data.tree",
            )
        raise DataError(
            source=str(path),
            message=f"has no tree '{tree}'{closest(tree, trees)} (trees: {', '.join(trees)}); "
            "set data.tree",
            key="data.tree",
        )
    return f[tree]


def is_jagged(branch) -> bool:
    """True for a branch with several values per entry (vector<float>, float[n], ...)."""
    import uproot

    interp = getattr(branch, "interpretation", None)
    if interp is None:  # an RNTuple field: look at its first entry
        return branch.array(entry_stop=1, library="ak").ndim > 1
    if isinstance(interp, uproot.interpretation.numerical.AsDtype):
        return interp.to_dtype.shape != () if hasattr(interp, "to_dtype") else False
    return True


def iter_root(path: Path, req: ReadRequest) -> Iterator[dict[str, Any]]:
    """Jets from a tree: one row per jet, or jagged per-event branches flattened to jets."""
    f = open_root(path)
    with f:
        t = get_tree(f, path, req.tree)
        available = list(t.keys())
        names = dict(req.branches)
        for branch in names.values():
            if branch not in available:
                raise missing_branch(path, f"tree '{req.tree}'", branch, available)
        if req.leading is not None and req.pt_branch not in available:
            raise missing_branch(path, f"tree '{req.tree}'", req.pt_branch, available)
        jagged = {b: is_jagged(t[b]) for b in names.values()}
        if all(jagged.values()) and jagged:
            yield from _iter_jagged(path, t, req)
            return
        if any(jagged.values()):
            flat = [b for b, j in jagged.items() if not j]
            per_event = [b for b, j in jagged.items() if j]
            raise DataError(
                source=str(path),
                message=f"tree '{req.tree}' mixes per-jet branches ({', '.join(flat[:3])}) with "
                f"per-event jagged ones ({', '.join(per_event[:3])}); read one kind at a time",
                key="data.branches",
            )
        if req.leading is not None:
            raise DataError(
                source=str(path),
                message="data.leading needs per-event (jagged) branches, but tree "
                f"'{req.tree}' has "
                "one row per jet; drop data.leading (or cut on a rank branch)",
                key="data.leading",
            )
        branches = list(dict.fromkeys(names.values()))
        for arrays in t.iterate(
            branches, step_size=req.chunk_size, entry_stop=req.max_jets, library="np"
        ):
            yield {var: arrays[b] for var, b in names.items()}


def _iter_jagged(path: Path, t, req: ReadRequest) -> Iterator[dict[str, Any]]:
    import awkward as ak

    names = dict(req.branches)
    branches = list(dict.fromkeys(names.values()))
    if req.leading is not None and req.pt_branch not in branches:
        branches.append(req.pt_branch)
    jets = 0
    req.stats.setdefault("events_read", 0)
    req.stats.setdefault("jets_beyond_leading", 0)
    start = 0
    for arrays in t.iterate(branches, step_size=req.chunk_size, library="ak"):
        counts = {b: np.asarray(ak.num(arrays[b], axis=1)) for b in branches}
        ref = branches[0]
        for b in branches[1:]:
            if not np.array_equal(counts[b], counts[ref]):
                entry = start + int(np.flatnonzero(counts[b] != counts[ref])[0])
                raise DataError(
                    source=str(path),
                    message=f"jagged branches '{ref}' and '{b}' have different numbers of jets "
                    f"(first in entry {entry}: {counts[ref][entry - start]} vs "
                    f"{counts[b][entry - start]}); they cannot describe the same jets",
                    key="data.branches",
                )
        start += len(arrays)
        req.stats["events_read"] += len(arrays)
        if req.leading is not None:
            order = ak.argsort(arrays[req.pt_branch], axis=1, ascending=False)
            n_all = int(ak.sum(counts[ref]))
            picked = {b: arrays[b][order][:, : req.leading] for b in branches}
            n_kept = int(ak.sum(ak.num(picked[ref], axis=1)))
            req.stats["jets_beyond_leading"] += n_all - n_kept
        else:
            picked = {b: arrays[b] for b in branches}
        chunk = {var: ak.to_numpy(ak.flatten(picked[b], axis=1)) for var, b in names.items()}
        yield chunk
        jets += len(next(iter(chunk.values()))) if chunk else 0
        if req.max_jets is not None and jets >= req.max_jets:
            return
