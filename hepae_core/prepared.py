"""A job's data after reading, cutting, splitting and normalising: :class:`Prepared`.

One data preparation for every model: :func:`prepare_jets` for per-jet models,
``hepae_core.two_stage.prepare`` for grouped and two-stage ones (which fills the optional
fields). Both return a Prepared, which :class:`hepae_core.jobrun.JobRun` trains and
evaluates. This module imports no other module of the job run, so the run and the
grouped models can both import it without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    # grouped and two-stage jobs (hepae_core.two_stage): flattened groups, masks of the
    # real slots, the model's input width and what model.pt must carry
    n_inputs: int | None = None
    m_train: Any = None
    m_val: Any = None
    m_test: Any = None
    grouped: Any = None
    model_extra: dict[str, Any] | None = None

    @property
    def width(self) -> int:
        """The model's input width: the variables, or a whole group of them."""
        return self.n_inputs or len(self.variables)


def prepare_jets(job_dir: Path, cfg: dict[str, Any], jets: Any = None) -> Prepared:
    """Per-jet models: read, cut, split and normalise; drop jets outside the domain.

    ``jets`` (what ``load_jets`` returned for this data section) lets a bundle read a
    sample once for all its members.
    """
    import numpy as np

    from hepae_core.data import load_jets, split
    from hepae_core.normalise import Normaliser

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
