"""Reading jets into one float32 array (jets x variables), with cuts and a seeded split.

Sources: a flat ROOT tree with one row per jet (uproot), an HDF5 table (h5py), or a
bundled sample (``bundled:NAME``). Everything downstream of this module is in GeV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.config import variables_of
from hepae_core.errors import DataError
from hepae_core.variables import ENERGY_VARIABLES

BUNDLED_PREFIX = "bundled:"
ROOT_SUFFIXES = (".root",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
CSV_SUFFIXES = (".csv", ".txt")


@dataclass
class JetData:
    """Jets as a (n_jets, n_variables) float32 array in GeV, and what was done to get it."""

    values: np.ndarray
    variables: list[str]
    counts: dict[str, Any] = field(default_factory=dict)


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
            f"{BUNDLED_PREFIX}{name}",
            f"no bundled sample of that name; bundled samples: {', '.join(known)}",
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
    if not path.is_file():
        raise DataError(
            str(path),
            "data file not found; check data.source (relative paths are taken from the "
            "directory of config.yaml)",
            key="data.source",
        )
    return path


def detect_format(path: Path, declared: str) -> str:
    """The reader to use: the declared format, else by suffix, else by magic bytes."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in ROOT_SUFFIXES:
        return "root"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in CSV_SUFFIXES:
        return "csv"
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"root"):
        return "root"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    raise DataError(
        str(path), "is neither a ROOT nor an HDF5 file; set data.format", key="data.format"
    )


def _closest(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _missing_branch(path: Path, where: str, branch: str, available: list[str]) -> DataError:
    listing = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
    return DataError(
        str(path),
        f"{where} has no branch '{branch}'{_closest(branch, available)} "
        f"(it has: {listing}); map variables to branches with data.branches",
        key="data.branches",
    )


def read_root_flat(
    path: Path, tree: str, branches: dict[str, str], max_jets: int | None
) -> dict[str, np.ndarray]:
    """Read one row per jet from a flat TTree: {variable: array}."""
    import uproot

    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many kinds for a file that is not ROOT
        raise DataError(str(path), f"cannot be opened as a ROOT file ({exc})") from None
    with f:
        trees = [k.split(";")[0] for k, c in f.classnames().items() if c == "TTree"]
        if tree not in trees:
            raise DataError(
                str(path),
                f"has no tree '{tree}'{_closest(tree, trees)} (trees: {', '.join(trees)}); "
                "set data.tree",
                key="data.tree",
            )
        t = f[tree]
        available = list(t.keys())
        for branch in branches.values():
            if branch not in available:
                raise _missing_branch(path, f"tree '{tree}'", branch, available)
        arrays = t.arrays(list(branches.values()), entry_stop=max_jets, library="np")
    out = {}
    for var, branch in branches.items():
        arr = arrays[branch]
        if arr.dtype == object:
            raise DataError(
                str(path),
                f"branch '{branch}' is jagged (several jets per entry); use a per-jet tree",
                key="data.tree",
            )
        out[var] = arr
    return out


def read_hdf5(
    path: Path, key: str | None, branches: dict[str, str], max_jets: int | None
) -> dict[str, np.ndarray]:
    """Read jets from HDF5: a group with one 1-D dataset per variable, or a compound table."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(str(path), f"cannot be opened as an HDF5 file ({exc})") from None
    with f:
        node = f[key] if key else f
        if key and key not in f:
            raise DataError(str(path), f"has no group or dataset '{key}'", key="data.key")
        stop = max_jets
        out = {}
        if isinstance(node, h5py.Dataset) and node.dtype.names:
            available = list(node.dtype.names)
            for branch in branches.values():
                if branch not in available:
                    raise _missing_branch(path, f"table '{node.name}'", branch, available)
            table = node[:stop]
            for var, branch in branches.items():
                out[var] = np.asarray(table[branch])
            return out
        if not isinstance(node, h5py.Group):
            raise DataError(str(path), "data.key must name a group of datasets or a compound table")
        available = list(node.keys())
        for var, branch in branches.items():
            if branch not in available:
                raise _missing_branch(path, f"group '{node.name}'", branch, available)
            ds = node[branch]
            if ds.ndim != 1:
                raise DataError(str(path), f"dataset '{branch}' must be one-dimensional")
            out[var] = ds[:stop]
        return out


def read_source(cfg: dict[str, Any], base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Read the variables a config asks for, as {variable: float array}, in file units."""
    data = cfg["data"]
    path = resolve_source(data["source"], base_dir)
    variables = variables_of(cfg)
    branches = {v: data["branches"].get(v, v) for v in variables}
    fmt = detect_format(path, data["format"])
    if fmt == "root":
        columns = read_root_flat(path, data["tree"], branches, data["max_jets"])
    elif fmt == "hdf5":
        columns = read_hdf5(path, data["key"], branches, data["max_jets"])
    else:
        from hepae_core import readers_extra  # CSV and jagged trees live there

        columns = readers_extra.read(fmt, path, cfg)
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        raise DataError(str(path), "the variables have different numbers of jets")
    return columns


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


def drop_nonfinite(values: np.ndarray, policy: str, source: str) -> tuple[np.ndarray, int]:
    """Drop (or refuse) jets with NaN or inf in any variable; return the count dropped."""
    bad = ~np.isfinite(values).all(axis=1)
    n_bad = int(bad.sum())
    if n_bad and policy == "refuse":
        raise DataError(
            source,
            f"{n_bad} jets contain NaN or inf; set data.nonfinite: drop to skip them",
            key="data.nonfinite",
        )
    return (values[~bad] if n_bad else values), n_bad


def load_jets(cfg: dict[str, Any], base_dir: Path | None = None) -> JetData:
    """Read, convert, clean and cut the jets of a resolved config."""
    variables = variables_of(cfg)
    source = cfg["data"]["source"]
    columns = read_source(cfg, base_dir)
    values = to_array(columns, variables, cfg["data"]["units"])
    counts: dict[str, Any] = {"jets_read": int(values.shape[0])}
    values, n_bad = drop_nonfinite(values, cfg["data"]["nonfinite"], source)
    counts["jets_nonfinite_dropped"] = n_bad
    cuts = cfg["data"]["cuts"]
    if cuts:
        from hepae_core.cuts import apply_cuts

        values, cut_counts = apply_cuts(values, variables, cuts, source)
        counts.update(cut_counts)
    counts["jets_after_cuts"] = int(values.shape[0])
    if values.shape[0] < 10:
        raise DataError(
            source,
            f"only {values.shape[0]} jets are left after cleaning and cuts; "
            "loosen data.cuts or check the file",
            key="data.cuts",
        )
    return JetData(values=values, variables=variables, counts=counts)


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
