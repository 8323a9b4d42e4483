"""Grouped encoding: G jets per autoencoder input, padded slots masked, whole-group splits.

A group is G slots of d values each; the model sees it flattened to G x d. Groups come
from consecutive jets in file order (``by: sequence``, as the original study did) or
from the jets of one event (``by: event``, read from a per-jet event-number branch).
Slots without a jet (the last sequence group, events with fewer than G jets) hold zeros
in normalised space and are left out of the loss and of every metric by the mask.
See docs/collective.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepae_core.data.jets import BUNDLED_PREFIX, Split, split
from hepae_core.errors import DataError

MIN_GROUPS = 10  # as load_jets asks for 10 jets: fewer cannot be split three ways


@dataclass
class Groups:
    """Jets placed into groups: row indices of the jets per slot, -1 where a slot is empty."""

    rows: np.ndarray  # (n_groups, G) int64 indices into the jet array, -1 = padded
    unit: np.ndarray  # (n_groups,) the event (by: event) or group the split keeps whole
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.rows >= 0

    @property
    def size(self) -> int:
        return int(self.rows.shape[1])


def _bad(cfg: dict[str, Any], key: str, message: str) -> DataError:
    return DataError(source=cfg["data"]["source"], key=f"data.group.{key}", message=message)


def _ordered(idx: np.ndarray, pt: np.ndarray | None) -> np.ndarray:
    """Jets of one group or event, leading pT first when ``pt`` is given (stable)."""
    if pt is None:
        return idx
    return idx[np.argsort(-pt[idx], kind="stable")]


def form_groups(
    cfg: dict[str, Any],
    group: dict[str, Any],
    n_jets: int,
    pt: np.ndarray | None,
    event: np.ndarray | None = None,
) -> Groups:
    """Place ``n_jets`` jets (in file order) into groups as ``group`` (resolved) says.

    ``pt`` orders the jets within a group when ``order: pt``; ``event`` (one number per
    jet) is needed for ``by: event``. Raises DataError (naming data.group.<key>) when the
    data cannot fill the groups asked for.
    """
    g = int(group["size"])
    order_pt = pt if group["order"] == "pt" else None
    counts: dict[str, Any] = {"group.size": g}
    if group["by"] == "sequence":
        rows, unit = _by_sequence(cfg, g, n_jets, order_pt, counts)
    else:
        if event is None:
            raise _bad(cfg, "by", "is event, but no event numbers were read")
        rows, unit = _by_event(cfg, g, group["overflow"], event, order_pt, counts)
    counts["group.groups"] = int(rows.shape[0])
    counts["group.jets"] = int((rows >= 0).sum())
    counts["group.padded_slots"] = int((rows < 0).sum())
    return Groups(rows=rows, unit=unit, counts=counts)


def _by_sequence(
    cfg: dict[str, Any],
    g: int,
    n_jets: int,
    order_pt: np.ndarray | None,
    counts: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """``by: sequence``: groups of ``g`` consecutive jets, the last one padded: (rows, unit)."""
    n_groups = -(-n_jets // g)
    if n_groups < MIN_GROUPS:
        raise _bad(
            cfg,
            "size",
            f"is {g}, but {n_jets} jets make only {n_groups} groups (at least "
            f"{MIN_GROUPS} are needed to train, validate and test): choose a size of at "
            f"most {max(1, n_jets // MIN_GROUPS)} or read more jets",
        )
    rows: np.ndarray = np.full(n_groups * g, -1, dtype=np.int64)
    rows[:n_jets] = np.arange(n_jets)
    rows = rows.reshape(n_groups, g)
    if order_pt is not None:
        for i in range(n_groups):
            real = rows[i][rows[i] >= 0]
            rows[i, : len(real)] = _ordered(real, order_pt)
    counts["group.jets_dropped"] = 0
    counts["group.overflow_groups"] = 0
    return rows, np.arange(n_groups)


def _by_event(
    cfg: dict[str, Any],
    g: int,
    overflow_rule: str,
    event: np.ndarray,
    order_pt: np.ndarray | None,
    counts: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """``by: event``: the jets of one event per group, beyond ``g`` dropped or in further
    groups (``overflow_rule``): (rows, unit), the unit being the event's index."""
    rows_list: list[np.ndarray] = []
    units: list[int] = []
    dropped = overflow = 0
    # Jets of one event need not be adjacent; a stable sort keeps their file order.
    by_event = np.argsort(event, kind="stable")
    bounds = np.flatnonzero(np.diff(event[by_event])) + 1
    most = 0
    for u, idx in enumerate(np.split(by_event, bounds)):
        idx = _ordered(np.sort(idx), order_pt)
        most = max(most, len(idx))
        chunks = [idx[i : i + g] for i in range(0, len(idx), g)]
        if overflow_rule == "drop":
            dropped += len(idx) - len(chunks[0])
            chunks = chunks[:1]
        else:
            overflow += len(chunks) - 1
        for c in chunks:
            row = np.full(g, -1, dtype=np.int64)
            row[: len(c)] = c
            rows_list.append(row)
            units.append(u)
    if g > most:
        raise _bad(
            cfg,
            "size",
            f"is {g}, but no event has more than {most} jets: choose a size of at most {most}",
        )
    if len(set(units)) < MIN_GROUPS:
        raise _bad(
            cfg,
            "size",
            f"the data hold only {len(set(units))} events; at least {MIN_GROUPS} are needed",
        )
    counts["group.events"] = len(set(units))
    counts["group.jets_dropped"] = dropped
    counts["group.overflow_groups"] = overflow
    return np.stack(rows_list), np.asarray(units)


def split_groups(groups: Groups, test_fraction: float, val_fraction: float, seed: int) -> Split:
    """Group indices for train/validation/test; the groups of one event stay together."""
    units, inverse = np.unique(groups.unit, return_inverse=True)
    parts = split(len(units), test_fraction, val_fraction, seed)
    by_unit = np.empty(len(units), dtype=np.int8)
    by_unit[parts.train], by_unit[parts.val], by_unit[parts.test] = 0, 1, 2
    which = by_unit[inverse]
    return Split(*(np.flatnonzero(which == k) for k in range(3)))


def event_branch(cfg: dict[str, Any], group: dict[str, Any]) -> tuple[str, ...]:
    """The branches to carry beside the jets: the event number for ``by: event``."""
    if group["by"] != "event":
        return ()
    if cfg["data"]["source"].startswith(BUNDLED_PREFIX):
        raise _bad(
            cfg,
            "by",
            "is event, but the bundled samples hold one row per jet without event numbers: "
            "use by: sequence, or a file with a per-jet event branch (hepae-data generate "
            "writes one, named event)",
        )
    return (group["event"],)


def gather(values: np.ndarray, rows: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """(n_groups, G, d) values of the jets in ``rows``; empty slots hold ``fill``."""
    out: np.ndarray = values[np.maximum(rows, 0)].copy()
    out[rows < 0] = fill
    return out


def flat_mask(mask: np.ndarray, d: int) -> np.ndarray:
    """The slot mask repeated for each of a jet's ``d`` values: (n_groups, G x d) float32."""
    return np.repeat(mask, d, axis=1).astype(np.float32)
