"""A job's data after reading, cutting, splitting and normalising: :class:`Prepared`.

One data preparation for every model: :func:`prepare_jets` for per-jet models,
``hepae_core.training.two_stage.prepare`` for grouped and two-stage ones. Both return a Prepared,
which :class:`hepae_core.run.jobrun.JobRun` trains and evaluates. A grouped or two-stage job's
data differs in one optional part, :class:`GroupSpec`; a per-jet job is the case without
it (group size 1, no stage 1). This module imports no other module of the job run, so
the run and the grouped models can both import it without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class GroupSpec:
    """What a grouped or two-stage job's data adds (``hepae_core.training.two_stage.prepare``).

    Each input is a group of G slots, flattened; padded slots are masked out of the loss.
    """

    n_inputs: int  # the model's input width: G x (d, or the stage-1 latent size)
    m_train: Any  # masks of the real slots, shaped like the inputs
    m_val: Any
    m_test: Any
    codec: Any  # hepae_core.training.two_stage.GroupedCodec: jets <-> one latent per group
    train_rows: Any  # (n_groups, G) rows of the training jets in the sample, -1 padding
    test_rows: Any  # (n_groups, G) rows of the test jets in Prepared.x_test_phys
    stage1: Any = None  # hepae_core.training.two_stage.Stage1 of a two-stage job
    model_extra: dict[str, Any] = field(default_factory=dict)  # keys model.pt adds


@dataclass
class Prepared:
    """The job's data after reading, cutting, splitting and normalising."""

    variables: list[str]
    norm: Any
    x_train: Any  # normalised, finite
    x_train_phys: Any  # the training jets in physical units (baseline quantiser ranges)
    x_val: Any
    x_test_phys: Any  # physical units, rows whose normalised values are finite
    x_test_norm: Any
    counts: dict[str, Any]
    group: GroupSpec | None = None  # grouped and two-stage jobs; None: one jet per input

    @property
    def width(self) -> int:
        """The model's input width: the variables, or a whole group of them."""
        return len(self.variables) if self.group is None else self.group.n_inputs

    # The trainer's and the model file's view (None for per-jet jobs).
    @property
    def m_train(self) -> Any:
        return None if self.group is None else self.group.m_train

    @property
    def m_val(self) -> Any:
        return None if self.group is None else self.group.m_val

    @property
    def m_test(self) -> Any:
        return None if self.group is None else self.group.m_test

    @property
    def model_extra(self) -> dict[str, Any] | None:
        return None if self.group is None else self.group.model_extra


def prepare_jets(job_dir: Path, cfg: dict[str, Any], jets: Any = None) -> Prepared:
    """Per-jet models: read, cut, split and normalise; drop jets outside the domain.

    ``jets`` (what ``load_jets`` returned for this data section) lets a bundle read a
    sample once for all its members.
    """
    import numpy as np

    from hepae_core.data.jets import load_jets, split
    from hepae_core.data.normalise import Normaliser

    if jets is None:
        jets = load_jets(cfg, job_dir)
    counts = dict(jets.counts)
    parts = split(
        len(jets.values), cfg["data"]["test_fraction"], cfg["train"]["val_fraction"], cfg["seed"]
    )
    norm = Normaliser.fit(cfg["normalisation"]["kind"], jets.variables, jets.values[parts.train])

    def normalised(rows: np.ndarray) -> np.ndarray:
        x = norm.forward(jets.values[rows])
        for var, n_bad in norm.domain_errors.items():
            counts[f"norm_domain_errors.{var}"] = counts.get(f"norm_domain_errors.{var}", 0) + n_bad
        return x

    # Jets outside a normalisation formula's domain cannot be normalised: drop them, and
    # count them in the metrics.
    x_train, x_val, x_test_norm = (
        normalised(rows) for rows in (parts.train, parts.val, parts.test)
    )
    ok_test = np.isfinite(x_test_norm).all(axis=1)
    x_test_phys, x_test_norm = jets.values[parts.test][ok_test], x_test_norm[ok_test]
    x_train = x_train[np.isfinite(x_train).all(axis=1)]
    x_val = x_val[np.isfinite(x_val).all(axis=1)]
    counts["norm_domain_errors"] = sum(
        v for k, v in counts.items() if k.startswith("norm_domain_errors.")
    )
    counts.update(train_jets=len(x_train), val_jets=len(x_val), test_jets=len(x_test_phys))
    return Prepared(
        jets.variables,
        norm,
        x_train,
        jets.values[parts.train],
        x_val,
        x_test_phys,
        x_test_norm,
        counts,
    )
