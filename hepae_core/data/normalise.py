"""Normalisations with exact inverses: standard, min-max and the thesis per-variable formulas.

A normaliser is fitted on the training jets only; its parameters are plain lists so they can
be saved next to the model weights (``torch.save`` of tensors and lists, loadable with
``weights_only=True``) and a saved model can be used without the training data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepae_core.variables import CUSTOM_FORMULAS


@dataclass
class Normaliser:
    """Maps physical values (n, v) to network units and back.

    Attributes
    ----------
    kind
        ``standard``, ``minmax``, ``custom_4d``, ``custom_27d`` or ``none``.
    variables
        Column names, in order.
    shift, scale
        For standard/minmax: ``y = (x - shift) / scale``.
    domain_errors
        For custom formulas: inputs outside a formula's domain (log of a value <= 0), per
        variable, counted at the last :meth:`forward`.
    """

    kind: str
    variables: list[str]
    shift: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    domain_errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, kind: str, variables: list[str], train: np.ndarray) -> Normaliser:
        """Fit the parameters of ``kind`` on the training jets."""
        x = np.asarray(train, dtype=np.float64)
        if kind == "standard":
            shift = x.mean(axis=0)
            scale = x.std(axis=0)
        elif kind == "minmax":
            shift = x.min(axis=0)
            scale = x.max(axis=0) - shift
        else:
            shift = np.zeros(x.shape[1])
            scale = np.ones(x.shape[1])
        # A constant column would divide by zero; leave it unscaled instead.
        scale = np.where(scale > 0, scale, 1.0)
        return cls(kind, list(variables), shift.tolist(), scale.tolist())

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Physical -> normalised, float32."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind.startswith("custom_"):
            out = np.empty_like(x)
            self.domain_errors = {}
            for j, var in enumerate(self.variables):
                out[:, j], bad = _custom_forward(CUSTOM_FORMULAS[var], x[:, j])
                if bad:
                    self.domain_errors[var] = bad
            return out.astype(np.float32)
        return ((x - np.asarray(self.shift)) / np.asarray(self.scale)).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Normalised -> physical, float32."""
        y = np.asarray(y, dtype=np.float64)
        if self.kind.startswith("custom_"):
            out = np.empty_like(y)
            for j, var in enumerate(self.variables):
                out[:, j] = custom_inverse(CUSTOM_FORMULAS[var], y[:, j])
            return out.astype(np.float32)
        return (y * np.asarray(self.scale) + np.asarray(self.shift)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form saved with the model."""
        return {
            "kind": self.kind,
            "variables": list(self.variables),
            "shift": list(self.shift),
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        return cls(d["kind"], list(d["variables"]), list(d["shift"]), list(d["scale"]))


def _custom_forward(formula: tuple, x: np.ndarray) -> tuple[np.ndarray, int]:
    kind, *p = formula
    if kind == "identity":
        return x.copy(), 0
    if kind == "scale":
        return x / p[0], 0
    if kind == "affine":
        return x / p[0] - p[1], 0
    if kind == "log10":
        shift, offset, s = p
        arg = x + shift
    elif kind == "neglog10":
        shift, s = p
        offset = 0.0
        arg = -x + shift
    else:  # pragma: no cover - the table is fixed
        raise ValueError(kind)
    bad = arg <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (np.log10(np.where(bad, np.nan, arg)) - offset) / s
    return y, int(bad.sum())


def custom_inverse(formula: tuple, y: Any) -> Any:
    """Normalised -> physical by one of the thesis formulas (:data:`CUSTOM_FORMULAS`): on
    a numpy array here, on a torch tensor in the training's augmentation and rate model
    (arithmetic only, the same numbers)."""
    kind, *p = formula
    if kind == "identity":
        return y
    if kind == "scale":
        return y * p[0]
    if kind == "affine":
        return (y + p[1]) * p[0]
    if kind == "log10":
        shift, offset, s = p
        return 10.0 ** (y * s + offset) - shift
    shift, s = p
    return shift - 10.0 ** (y * s)
