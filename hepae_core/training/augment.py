"""Symmetry augmentation of training batches: phi rotation, eta reflection, energy-scale jitter.

``train.augment`` (off by default; docs/rate_aware.md) transforms every training batch
(never validation or test jets), jet by jet, with the physics symmetries of a jet sample:

``phi_rotation: true``
    every azimuth of the jet (:data:`PHI_LIKE`) shifted by one angle uniform in
    [-pi, pi), wrapped back to (-pi, pi]: the detector is symmetric in phi;
``eta_reflection: true``
    with probability 1/2, every signed pseudorapidity (:data:`ETA_LIKE`) negated: the
    collisions are symmetric forward/backward. Widths in eta are not signed and stay;
``jes_sigma: s``
    every energy-like variable (:data:`SCALE_LIKE`) multiplied by one factor per jet,
    ``exp(s N(0, 1))``: a jet-energy-scale jitter that keeps the ratios (m/pt, E/pt, the
    fractions and ptD are unchanged).

The batches are normalised; each affected column is taken back to physical units with the
job's normaliser (standard, min-max, none or the thesis formulas, :mod:`hepae_core.data.normalise`,
here in torch and float64), transformed and normalised again, so a log normalisation of pt
sees the scaled pt, not a scaled log. Columns no transform touches are left bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hepae_core.variables import CUSTOM_FORMULAS

if TYPE_CHECKING:  # torch is imported where used: config validation reads this module too
    import torch

PHI_LIKE = ("phi", "ActiveArea4vec_phi")
ETA_LIKE = ("eta", "DetectorEta", "ActiveArea4vec_eta")
SCALE_LIKE = ("pt", "E", "m", "lead_pt", "sum_pt_trk500", "LeadingClusterPt", "NegativeE")
AUGMENT_KEYS = ("phi_rotation", "eta_reflection", "jes_sigma")


def wrap_angle(phi: torch.Tensor) -> torch.Tensor:
    """``phi`` wrapped to (-pi, pi] (pi stays pi, -pi becomes pi)."""
    import torch

    two_pi = 2.0 * math.pi
    return phi - two_pi * torch.ceil((phi - math.pi) / two_pi)


def columns(variables: list[str], spec: Mapping[str, Any]) -> dict[str, list[int]]:
    """The columns each enabled transform touches, by transform (phi, eta, scale)."""
    out: dict[str, list[int]] = {}
    if spec.get("phi_rotation"):
        out["phi"] = [j for j, v in enumerate(variables) if v in PHI_LIKE]
    if spec.get("eta_reflection"):
        out["eta"] = [j for j, v in enumerate(variables) if v in ETA_LIKE]
    if spec.get("jes_sigma"):
        out["scale"] = [j for j, v in enumerate(variables) if v in SCALE_LIKE]
    return out


def problem(variables: list[str], spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, message) when ``spec`` asks for a transform no trained variable takes."""
    needs = {"phi": ("phi_rotation", PHI_LIKE), "eta": ("eta_reflection", ETA_LIKE),
             "scale": ("jes_sigma", SCALE_LIKE)}  # fmt: skip
    for what, cols in columns(variables, spec).items():
        if not cols:
            key, names = needs[what]
            return key, (
                f"is set but no trained variable is one of {', '.join(names)}: "
                f"remove train.augment.{key} or train on such a variable"
            )
    return None


class _Column:
    """One column between normalised and physical units, in torch (float64)."""

    def __init__(self, norm: Any, j: int) -> None:
        self.kind = norm.kind
        var = norm.variables[j]
        if self.kind.startswith("custom_"):
            self.formula = CUSTOM_FORMULAS[var]
        else:
            self.formula = ("linear", float(norm.shift[j]), float(norm.scale[j]))

    def to_phys(self, y: torch.Tensor) -> torch.Tensor:
        from hepae_core.data.normalise import custom_inverse

        kind, *p = self.formula
        if kind == "linear":
            return y * p[1] + p[0]
        result: torch.Tensor = custom_inverse(self.formula, y)
        return result

    def from_phys(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        kind, *p = self.formula
        if kind == "linear":
            return (x - p[0]) / p[1]
        if kind == "identity":
            return x
        if kind == "scale":
            return x / p[0]
        if kind == "affine":
            return x / p[0] - p[1]
        if kind == "log10":
            shift, offset, s = p
            return (torch.log10(x + shift) - offset) / s
        shift, s = p  # neglog10
        return torch.log10(-x + shift) / s


class Augmenter:
    """Transforms normalised training batches (n, d) with the enabled symmetries.

    Parameters
    ----------
    norm
        The job's :class:`~hepae_core.data.normalise.Normaliser` (variables and parameters).
    spec
        The ``train.augment`` mapping.
    seed
        Seeds the augmenter's own CPU generator (its state is in the checkpoint:
        :attr:`generator`), so a resumed training draws the same transforms.
    """

    def __init__(self, norm: Any, spec: Mapping[str, Any], seed: int) -> None:
        self.cols = columns(list(norm.variables), spec)
        self.maps = {j: _Column(norm, j) for cols in self.cols.values() for j in cols}
        self.jes_sigma = float(spec.get("jes_sigma") or 0.0)
        import torch

        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def _apply(self, x: torch.Tensor, j: int, fn: Any) -> None:
        col = self.maps[j]
        phys = col.to_phys(x[:, j].double())
        x[:, j] = col.from_phys(fn(phys)).to(x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A transformed copy of the batch ``x``."""
        import torch

        x = x.clone()
        n = x.shape[0]
        g = self.generator
        if self.cols.get("phi"):
            delta = ((torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi).to(
                x.device
            )
            for j in self.cols["phi"]:
                self._apply(x, j, lambda p: wrap_angle(p + delta))
        if self.cols.get("eta"):
            sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(
                device=x.device, dtype=torch.float64
            )
            for j in self.cols["eta"]:
                self._apply(x, j, lambda e: e * sign)
        if self.cols.get("scale"):
            factor = torch.exp(
                self.jes_sigma * torch.randn(n, generator=g, dtype=torch.float64)
            ).to(x.device)
            for j in self.cols["scale"]:
                self._apply(x, j, lambda v: v * factor)
        return x


def column_map(norm: Any, j: int) -> _Column:
    """Column ``j`` of ``norm`` between normalised and physical units (torch, float64)."""
    return _Column(norm, j)


def make(norm: Any, spec: Mapping[str, Any] | None, seed: int) -> Augmenter | None:
    """The augmenter ``train.augment`` asks for, or None when it enables nothing."""
    if not spec or not columns(list(norm.variables), spec):
        return None
    return Augmenter(norm, spec, seed)
