"""Symmetry augmentation: phi wraps, reflection flips only eta-like columns, the energy-scale
jitter scales every scale variable by one factor per jet, and off is the training of before."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import TINY_JOB, write_job

from hepae_core.config import resolve
from hepae_core.data.normalise import Normaliser
from hepae_core.errors import ConfigError
from hepae_core.run.job import run_job
from hepae_core.run.modelfile import read_payload
from hepae_core.training.augment import Augmenter, make, wrap_angle
from hepae_core.training.models import build_model
from hepae_core.training.train import Trainer

VARS = ["pt", "eta", "phi", "E", "m", "width_eta", "DetectorEta", "charged_frac", "lead_pt"]


def _jets(n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(0)
    pt = 20 + rng.exponential(30, n)
    eta = rng.uniform(-4, 4, n)
    m = pt * rng.uniform(0.05, 0.3, n)
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
    return np.stack(
        [pt, eta, rng.uniform(-np.pi, np.pi, n), e, m, rng.uniform(0, 0.2, n),
         eta + rng.normal(0, 0.01, n), rng.uniform(0, 1, n), pt * rng.uniform(0.1, 0.9, n)],
        axis=1,
    )  # fmt: skip


def _norm(kind: str, x: np.ndarray, variables: list[str] = VARS) -> Normaliser:
    return Normaliser.fit(kind, variables, x)


def _augment(
    kind: str, spec: dict, variables: list[str] = VARS, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(physical jets, normalised batch, augmented normalised batch, its physical jets)."""
    x = _jets()[:, [VARS.index(v) for v in variables]]
    norm = _norm(kind, x, variables)
    xn = torch.from_numpy(norm.forward(x))
    out = make(norm, spec, seed)(xn).numpy()
    return x, xn.numpy(), out, norm.inverse(out).astype(np.float64)


def test_wrap_angle_by_hand() -> None:
    pi = math.pi
    got = wrap_angle(torch.tensor([pi, -pi, 1.5 * pi, -1.5 * pi, 0.0, 7 * pi, 3.0 + 2 * pi],
                                  dtype=torch.float64))  # fmt: skip
    want = [pi, pi, -0.5 * pi, 0.5 * pi, 0.0, pi, 3.0]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert (got > -pi).all() and (got <= pi).all()


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_phi_rotation_moves_only_phi_and_wraps(kind: str) -> None:
    x, xn, out, y = _augment(kind, {"phi_rotation": True})
    j = VARS.index("phi")
    others = [i for i in range(len(VARS)) if i != j]
    assert np.array_equal(out[:, others], xn[:, others])  # untouched columns bit for bit
    shift = (y[:, j] - x[:, j] + np.pi) % (2 * np.pi) - np.pi
    assert (y[:, j] > -np.pi - 1e-5).all() and (y[:, j] <= np.pi + 1e-5).all()
    assert np.abs(shift).max() > 3.0 and abs(shift.mean()) < 0.15  # uniform over the circle


def test_both_azimuths_turn_by_the_same_angle() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-np.pi, np.pi, (1000, 2))
    norm = _norm("standard", x, ["phi", "ActiveArea4vec_phi"])
    y = norm.inverse(
        make(norm, {"phi_rotation": True}, 0)(torch.from_numpy(norm.forward(x))).numpy()
    )
    d = (y - x + np.pi) % (2 * np.pi) - np.pi
    assert np.allclose(d[:, 0], d[:, 1], atol=1e-5)


@pytest.mark.parametrize("kind", ["standard", "custom_4d"])
def test_reflection_flips_only_eta_like_columns_together(kind: str) -> None:
    variables = VARS if kind == "standard" else ["pt", "eta", "phi", "E"]
    x, xn, out, y = _augment(kind, {"eta_reflection": True}, variables, seed=5)
    eta_cols = [variables.index(v) for v in ("eta", "DetectorEta") if v in variables]
    flipped = np.isclose(y[:, eta_cols[0]], -x[:, eta_cols[0]], atol=1e-5)
    kept = np.isclose(y[:, eta_cols[0]], x[:, eta_cols[0]], atol=1e-5)
    assert (flipped | kept).all() and 0.45 < flipped.mean() < 0.55
    for j in eta_cols:  # one decision per jet for every eta-like column
        assert np.allclose(y[flipped, j], -x[flipped, j], atol=1e-5)
        assert np.allclose(y[~flipped, j], x[~flipped, j], atol=1e-5)
    others = [i for i in range(len(variables)) if i not in eta_cols]  # width_eta stays
    assert np.array_equal(out[:, others], xn[:, others])


@pytest.mark.parametrize("kind", ["standard", "custom_4d"])
def test_jes_jitter_scales_all_scale_variables_by_one_factor(kind: str) -> None:
    variables = VARS if kind == "standard" else ["pt", "eta", "phi", "E"]
    x, xn, out, y = _augment(kind, {"jes_sigma": 0.1}, variables, seed=7)
    scale = [variables.index(v) for v in ("pt", "E", "m", "lead_pt") if v in variables]
    f = y[:, scale[0]] / x[:, scale[0]]
    for j in scale:
        assert np.allclose(y[:, j] / x[:, j], f, rtol=2e-5)
    assert np.log(f).std() == pytest.approx(0.1, rel=0.1) and abs(np.log(f).mean()) < 0.01
    others = [i for i in range(len(variables)) if i not in scale]  # eta, phi, fractions stay
    assert np.array_equal(out[:, others], xn[:, others])


def test_off_builds_nothing_and_config_checks_the_variables() -> None:
    norm = _norm("standard", _jets())
    assert make(norm, {}, 0) is None
    assert make(norm, {"phi_rotation": False, "jes_sigma": 0}, 0) is None
    assert resolve({})["train"]["augment"] == {}
    with pytest.raises(ConfigError, match=r"train\.augment\.phi_rotation"):
        resolve({"train": {"augment": {"phi_rotation": True}},
                 "data": {"variables": ["pt", "eta", "E"]}, "model": {"latent": 2}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"train\.augment"):
        resolve({"train": {"augment": {"jes_sigma": -0.1}}})
    with pytest.raises(ConfigError, match=r"data\.group"):
        resolve({"train": {"augment": {"eta_reflection": True}}, "data": {"group": {"size": 2}}})


def _trainer(augment: dict | None) -> Trainer:
    x = _jets(1200)[:, :4]
    norm = _norm("custom_4d", x, ["pt", "eta", "phi", "E"])
    xn = torch.from_numpy(norm.forward(x))
    tcfg = resolve({"train": {"epochs": 2, "batch_size": 100}})["train"]
    if augment is None:
        tcfg.pop("augment")
    else:
        tcfg["augment"] = augment
    torch.manual_seed(0)
    model = build_model(resolve({"model": {"encoder": [8], "latent": 2}})["model"], 4)
    t = Trainer(model, xn[:1000], xn[1000:], tcfg, seed=3, norm=norm)
    t.run()
    return t


def test_default_off_trains_bit_identically_and_on_changes_the_model() -> None:
    before = _trainer(None)  # a train section without the key: the loop of before
    off = _trainer({})
    on = _trainer({"phi_rotation": True, "eta_reflection": True, "jes_sigma": 0.05})
    assert off.augment is None and isinstance(on.augment, Augmenter)
    for k, v in before.model.state_dict().items():
        assert torch.equal(off.model.state_dict()[k], v)
    assert not torch.equal(on.model.state_dict()["encoder.0.weight"],
                           off.model.state_dict()["encoder.0.weight"])  # fmt: skip
    assert "augment_rng" in on.state_dict() and "augment_rng" not in off.state_dict()


def test_a_job_trains_with_augmentation(tmp_path) -> None:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["train"]["augment"] = {"phi_rotation": True, "eta_reflection": True, "jes_sigma": 0.02}
    cfg["evaluate"]["baselines"] = False
    job = write_job(tmp_path / "job", cfg)
    assert run_job(job) == 0
    assert "rate_model" not in read_payload(job / "model.pt")
