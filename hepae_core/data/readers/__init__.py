"""File readers: each yields jets in chunks as ``{variable: 1-D numpy array}`` in file units.

* :mod:`hepae_core.data.readers.root`: flat per-jet TTrees and jagged per-event trees (ATLAS
  derivations with a container prefix, ntuple style ``jet_pt``...), via uproot.
* :mod:`hepae_core.data.readers.hdf5`: a group of 1-D datasets or a compound table, via h5py.
* :mod:`hepae_core.data.readers.phenoml`: the PhenoML / DarkMachines CSV format.

Reading chunk by chunk keeps memory proportional to the chunk and to the jets kept, not to
the size of the file. :func:`iter_chunks` picks the reader.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepae_core.errors import DataError

ROOT_SUFFIXES = (".root",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
CSV_SUFFIXES = (".csv", ".txt")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class ReadRequest:
    """What to read from one file.

    Attributes
    ----------
    branches
        Variable -> branch (or CSV column / HDF5 dataset) name, in output order.
    tree, key
        ROOT tree name; HDF5 group or dataset (None: the file's root group).
    leading
        Keep only the leading N jets (by pt) of each event; None keeps all. Needs per-event
        data (jagged ROOT branches or CSV).
    pt_branch
        The branch ordering jets for ``leading``.
    chunk_size
        Entries (jets for per-jet data, events for per-event data) read at a time.
    max_jets
        Stop after this many jets (a hint: readers may return more in the last chunk).
    csv_objects
        CSV object types kept (``j``, ``b``, ``e-``, ``e+``, ``m-``, ``m+``, ``g``).
    stats
        Filled by the reader: ``events_read``, ``jets_beyond_leading`` where they apply.
    """

    branches: dict[str, str]
    tree: str = "jets"
    key: str | None = None
    leading: int | None = None
    pt_branch: str = "pt"
    chunk_size: int = 100_000
    max_jets: int | None = None
    csv_objects: tuple[str, ...] = ("j",)
    stats: dict[str, int] = field(default_factory=dict)


def closest(name: str, options: list[str]) -> str:
    """``; did you mean 'x'?`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def missing_branch(path: Path, where: str, branch: str, available: list[str]) -> DataError:
    """The error for a branch that is not there: lists what is and suggests the closest."""
    listing = ", ".join(available[:40]) + (" ..." if len(available) > 40 else "")
    return DataError(
        source=str(path),
        message=f"{where} has no branch '{branch}'{closest(branch, available)} "
        f"(it has: {listing}); map variables to branches with data.branches or data.container",
        key="data.branches",
    )


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line (uproot's messages span several), shortened."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_file(
    path: Path, key: str | None = "data.source", hint: str = "check data.source"
) -> None:
    """Refuse, in one line naming ``path``, a data file that is missing or not a file."""
    if path.is_dir():
        raise DataError(
            source=str(path), message=f"is a directory, not a data file; {hint}", key=key
        )
    if not path.exists():
        raise DataError(source=str(path), message=f"file not found; {hint}", key=key)
    if not os.access(path, os.R_OK):
        raise DataError(source=str(path), message=f"cannot be read (no permission); {hint}")


def unreadable(path: Path, exc: BaseException) -> DataError:
    """The error for a file a reader library failed on (truncated, corrupt)."""
    return DataError(
        source=str(path),
        message=f"cannot be read: the file looks truncated or corrupt ({type(exc).__name__}: "
        f"{one_line(exc)}); copy or produce it again",
        key="data.source",
    )


def sniff_format(path: Path) -> str | None:
    """``root``, ``hdf5`` or ``csv`` from the first bytes of a file; None if none fits."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"root"):
        return "root"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    first = text.splitlines()[0] if text.splitlines() else ""
    if (";" in first and "," in first) or first.count(";") >= 4:
        return "csv"
    return None


def detect_format(path: Path, declared: str = "auto") -> str:
    """The reader to use: the declared format, else by magic bytes, else by suffix.

    Raises
    ------
    DataError
        For an empty file, or one that is neither ROOT, HDF5 nor PhenoML CSV.
    """
    check_file(path)
    if path.stat().st_size == 0:
        raise DataError(source=str(path), message="is empty (0 bytes)", key="data.source")
    sniffed = sniff_format(path)
    if declared != "auto":
        if declared in ("root", "hdf5") and sniffed != declared:
            raise DataError(
                source=str(path),
                message=f"is not a{'n' if declared == 'hdf5' else ''} {declared.upper()} file "
                f"(data.format says {declared}){_kind_hint(sniffed)}",
                key="data.format",
            )
        return declared
    if sniffed:
        return sniffed
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise DataError(
        source=str(path),
        message="is neither a ROOT file, an HDF5 file nor a PhenoML CSV file"
        + (f" (its name ends in {suffix} but its content does not match)" if suffix else "")
        + "; check data.source",
        key="data.source",
    )


def _kind_hint(sniffed: str | None) -> str:
    return f"; it looks like {sniffed.upper()}: set data.format: {sniffed}" if sniffed else ""


def iter_chunks(path: Path, fmt: str, request: ReadRequest) -> Iterator[dict[str, Any]]:
    """Yield ``{variable: array}`` chunks of jets from ``path`` in file units.

    Whatever a reader library raises on a damaged file (uproot's ``OSError: expected
    Chunk of length ...``, h5py's errors) becomes one :class:`DataError` naming the file.
    """
    if fmt == "root":
        from hepae_core.data.readers.root import iter_root as reader
    elif fmt == "hdf5":
        from hepae_core.data.readers.hdf5 import iter_hdf5 as reader
    elif fmt == "csv":
        from hepae_core.data.readers.phenoml import iter_csv as reader
    else:  # pragma: no cover
        raise DataError(source=str(path), message=f"unknown format '{fmt}'", key="data.format")
    return _guarded(path, reader(path, request))


def _guarded(path: Path, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from chunks
    except (DataError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a reader library failing on the file's content
        raise unreadable(path, exc) from None
