"""The PhenoML / DarkMachines CSV format, one event per line::

    event_ID;process_ID;event_weight;MET;MET_Phi;obj,E,pt,eta,phi;obj,E,pt,eta,phi;...

Object types: ``j`` (jet), ``b`` (b-jet), ``e-``/``e+``, ``m-``/``m+`` (muons), ``g``
(photon). Each kept object becomes one row with ``E``, ``pt``, ``eta``, ``phi``, ``m``
(from E, pt, eta; 0 where rounding makes E < |p|) and the event's ``event_weight``,
``MET``, ``MET_Phi``. The energy unit (MeV in the published files) is ``data.units``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hepae_core.data.readers import ReadRequest, closest
from hepae_core.errors import DataError
from hepae_core.variables import CSV_VARIABLES

OBJECT_FIELDS = ("E", "pt", "eta", "phi")
EVENT_FIELDS = ("event_weight", "MET", "MET_Phi")


def text_lines(fh, path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file; bytes that are not UTF-8 give one DataError."""
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):
            yield lineno, line
    except UnicodeDecodeError as exc:
        where = f"after line {lineno}" if lineno else "in its first lines"
        raise DataError(
            source=str(path),
            message=f"is not a text file: it holds bytes that are not UTF-8 {where} "
            f"({exc.reason}); a PhenoML CSV file is plain text: check the file or data.format",
            key="data.format",
        ) from None


def parse_line(line: str, lineno: int, path: Path) -> tuple[list[float], list[tuple[str, ...]]]:
    """(event weight, MET, MET_Phi) and the objects of one line; DataError when malformed."""
    parts = [p for p in line.strip().split(";") if p != ""]
    if len(parts) < 5:
        raise DataError(
            source=str(path),
            message=f"line {lineno} has {len(parts)} ';'-separated fields, expected at least 5 "
            "(event_ID;process_ID;event_weight;MET;MET_Phi;obj,E,pt,eta,phi;...)",
            key="data.format",
        )
    try:
        event = [float(x) for x in parts[2:5]]
    except ValueError:
        raise DataError(
            source=str(path),
            message=f"line {lineno}: event_weight, MET and MET_Phi must be numbers, got "
            f"{parts[2:5]}",
            key="data.format",
        ) from None
    objects = []
    for obj in parts[5:]:
        fields = obj.split(",")
        if len(fields) != 5:
            raise DataError(
                source=str(path),
                message=f"line {lineno}: object '{obj}' must be 'type,E,pt,eta,phi'",
                key="data.format",
            )
        objects.append(tuple(fields))
    return event, objects


def iter_csv(path: Path, req: ReadRequest) -> Iterator[dict[str, Any]]:
    """Objects of the chosen types as rows, ``chunk_size`` events (lines) at a time."""
    for var, col in req.branches.items():
        if col not in CSV_VARIABLES:
            raise DataError(
                source=str(path),
                message=f"a PhenoML CSV file has no column '{col}' (for variable '{var}')"
                f"{closest(col, list(CSV_VARIABLES))}; it has: {', '.join(CSV_VARIABLES)}",
                key="data.variables",
            )
    req.stats.setdefault("events_read", 0)
    req.stats.setdefault("jets_beyond_leading", 0)
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise DataError(source=str(path), message=f"cannot be read: {exc.strerror}") from None
    with fh:
        try:
            yield from _iter_events(path, fh, req)
        except UnicodeDecodeError:
            raise DataError(
                source=str(path),
                message="is not a text file, so not a PhenoML CSV file; check data.format",
            ) from None


def _iter_events(path: Path, fh, req: ReadRequest) -> Iterator[dict[str, Any]]:
    keep = set(req.csv_objects)
    jets = 0
    rows: list[list[float]] = []
    n_events = 0
    for lineno, line in text_lines(fh, path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        event, objects = parse_line(line, lineno, path)
        n_events += 1
        chosen = []
        for o in objects:
            if o[0] not in keep:
                continue
            try:
                chosen.append([float(x) for x in o[1:]])
            except ValueError:
                raise DataError(
                    source=str(path),
                    message=f"line {lineno}: object '{','.join(o)}' has a value that is not "
                    "a number",
                    key="data.format",
                ) from None
        if req.leading is not None and len(chosen) > req.leading:
            chosen.sort(key=lambda r: -r[1])
            req.stats["jets_beyond_leading"] += len(chosen) - req.leading
            chosen = chosen[: req.leading]
        rows.extend(r + event for r in chosen)
        if n_events >= req.chunk_size:
            jets += len(rows)
            req.stats["events_read"] += n_events
            yield _columns(rows, req)
            rows, n_events = [], 0
            if req.max_jets is not None and jets >= req.max_jets:
                return
    req.stats["events_read"] += n_events
    if rows:
        yield _columns(rows, req)


def _columns(rows: list[list[float]], req: ReadRequest) -> dict[str, np.ndarray]:
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    cols = {name: table[:, i] for i, name in enumerate(OBJECT_FIELDS + EVENT_FIELDS)}
    p = cols["pt"] * np.cosh(cols["eta"])
    cols["m"] = np.sqrt(np.clip(cols["E"] ** 2 - p**2, 0.0, None))
    return {var: cols[col] for var, col in req.branches.items()}
