"""Rate-aware training: quantisation modes, the prior's bits by hand, lambda = 0 unchanged,
and a real training whose predicted rate falls with lambda."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_JOB, write_job

from hepae_core.config import resolve
from hepae_core.errors import ConfigError
from hepae_core.run.job import run_job
from hepae_core.run.modelfile import load_model, read_payload
from hepae_core.training.models import build_model
from hepae_core.training.rate_model import (
    LIKELIHOOD_BOUND,
    FactorisedPrior,
    RateAware,
    evaluate_rate,
    pmf_table,
    prior_from_payload,
    quantise,
)
from hepae_core.training.train import Trainer


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _prior(means: list[float], weights: list[float], scale: float) -> FactorisedPrior:
    """A one-dimensional prior with the given components (spread 1)."""
    prior = FactorisedPrior(1, len(means))
    with torch.no_grad():
        prior.means.copy_(torch.tensor([means]))
        prior.logits.copy_(torch.log(torch.tensor([weights])))
        prior.log_scales.fill_(math.log(scale))
    return prior


# ----------------------------------------------------------------- quantisation modes


def test_evaluation_rounds_to_the_nearest_integer() -> None:
    z = torch.tensor([[0.4, 0.6, -1.4, 2.51, -0.6]])
    for mode in ("noise", "ste"):
        assert quantise(z, mode, training=False).tolist() == [[0.0, 1.0, -1.0, 3.0, -1.0]]


def test_noise_mode_adds_uniform_noise_of_one_step() -> None:
    torch.manual_seed(0)
    z = torch.full((200_000, 1), 0.3)
    q = quantise(z, "noise", training=True)
    u = (q - z).flatten()
    assert u.min() >= -0.5 and u.max() < 0.5
    assert abs(u.mean().item()) < 5e-3
    assert abs(u.std().item() - 1 / math.sqrt(12)) < 2e-3  # uniform on one cell
    # not rounding: the noisy latent takes many values in the cell
    assert len(torch.unique(q)) > 1000


def test_ste_mode_rounds_forward_and_passes_the_gradient() -> None:
    z = torch.tensor([0.4, 0.6, -1.4, 2.51], requires_grad=True)
    q = quantise(z, "ste", training=True)
    assert q.tolist() == [0.0, 1.0, -1.0, 3.0]
    (q * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert z.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="quantise mode"):
        quantise(torch.zeros(2), "floor", training=True)


# ------------------------------------------------------------------ the prior's bits


def test_one_logistic_gives_its_cell_probabilities_by_hand() -> None:
    prior = _prior([0.0], [1.0], 1.0)
    with torch.no_grad():
        lik = prior.likelihood(torch.tensor([[0.0], [3.0], [-3.0]])).flatten()
        bits = prior.bits(torch.tensor([[0.0]])).item()
    p0 = _sig(0.5) - _sig(-0.5)  # 0.2449
    p3 = _sig(3.5) - _sig(2.5)  # 0.0465
    assert lik[0].item() == pytest.approx(p0, rel=1e-6)
    assert lik[1].item() == pytest.approx(p3, rel=1e-6)
    assert lik[2].item() == pytest.approx(p3, rel=1e-6)  # symmetric about the mean
    assert bits == pytest.approx(-math.log2(p0), rel=1e-6)  # 2.03 bits


def test_a_known_discrete_distribution_costs_its_entropy() -> None:
    # two narrow components on 0 and 1 with weights 1/4 and 3/4: P(0) = 1/4, P(1) = 3/4
    prior = _prior([0.0, 1.0], [0.25, 0.75], 1e-3)
    y = torch.tensor([[0.0]] * 250 + [[1.0]] * 750)
    with torch.no_grad():
        mean_bits = prior.bits(y).mean().item()
    entropy = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # 0.8113 bits
    assert mean_bits == pytest.approx(entropy, rel=1e-6)


def test_bits_add_over_latent_dimensions_and_far_tails_are_floored() -> None:
    prior = FactorisedPrior(3)
    y = torch.tensor([[0.0, 1.0, -2.0]])
    with torch.no_grad():
        per_dim = -torch.log2(prior.likelihood(y))
        assert prior.bits(y).item() == pytest.approx(per_dim.sum().item(), rel=1e-6)
        far = prior.bits(torch.tensor([[1e6, 0.0, 0.0]])).item()
    assert far <= -3 * math.log2(LIKELIHOOD_BOUND) and math.isfinite(far)


def test_a_trained_prior_reaches_the_entropy_of_its_samples() -> None:
    torch.manual_seed(0)
    p = torch.tensor([0.5, 0.25, 0.25])  # values 0, 2, 3: entropy 1.5 bits
    y = torch.tensor([0.0, 2.0, 3.0])[torch.multinomial(p, 20_000, replacement=True)][:, None]
    prior = FactorisedPrior(1)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-2)
    for _ in range(600):
        opt.zero_grad()
        loss = prior.bits(y).mean()
        loss.backward()
        opt.step()
    assert prior.bits(y).mean().item() == pytest.approx(1.5, rel=0.02)
    table = pmf_table(prior, -2, 5)  # values -2..5
    assert table.shape == (1, 8) and table.sum() == pytest.approx(1.0)
    assert table[0, [2, 4, 5]] == pytest.approx([0.5, 0.25, 0.25], abs=0.02)


# -------------------------------------------------------------------- lambda = 0


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = {"encoder": [8], "decoder": None, "latent": 2, "activation": "tanh",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    return build_model(cfg, 4)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1200, 4, generator=g)
    x[:, 3] = x[:, 0] + 0.1 * x[:, 1]  # something to compress
    return x[:1000], x[1000:]


def _train(tcfg_extra: dict, epochs: int = 2) -> Trainer:
    tcfg = resolve({"train": {"epochs": epochs, "batch_size": 100}})["train"]
    tcfg.update(tcfg_extra)
    x, v = _data()
    trainer = Trainer(_model(), x, v, tcfg, seed=3)
    trainer.run()
    return trainer


def test_lambda_zero_trains_exactly_as_without_the_keys() -> None:
    plain = {k: v for k, v in resolve({})["train"].items()
             if k not in ("rate_lambda", "rate_quantise", "augment")}  # fmt: skip
    x, v = _data()
    a = Trainer(_model(), x, v, {**plain, "epochs": 2, "batch_size": 100}, seed=3)
    b = _train({})
    assert b.rate is None and b.augment is None and b.model_extra() == {}
    a.run()
    for (ka, ta), (kb, tb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(ta, tb)
    assert a.result.history[-1]["val_loss"] == b.result.history[-1]["val_loss"]
    assert set(a.state_dict()) == set(b.state_dict())  # no new checkpoint keys
    assert "val_bits_per_jet" not in b.result.history[-1]


def test_rate_aware_trainer_records_and_checkpoints_its_prior(tmp_path) -> None:
    t = _train({"rate_lambda": 0.01})
    rec = t.result.history[-1]
    assert rec["val_loss"] == pytest.approx(rec["val_mse"] + 0.01 * rec["val_bits_per_jet"])
    mse, bits = evaluate_rate(t.model, t.rate.prior, _data()[1])
    assert (mse, bits) == (rec["val_mse"], rec["val_bits_per_jet"])
    # the prior is optimised with the model, saved in the checkpoint and in model.pt
    params = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in params for p in t.rate.prior.parameters())
    assert "rate_prior" in t.state_dict()
    entry = t.model_extra()["rate_model"]
    back = prior_from_payload(entry)
    for k, v in t.rate.prior.state_dict().items():
        assert torch.equal(back.state_dict()[k], v.cpu())
    assert entry["lambda"] == 0.01 and entry["quantise"] == "noise"


def test_a_resumed_rate_aware_augmented_training_continues_exactly(tmp_path) -> None:
    from hepae_core.data.normalise import Normaliser
    from hepae_core.training.stacked import why_not_stackable

    x, v = _data()
    norm = Normaliser.fit("standard", ["pt", "eta", "phi", "E"], x.numpy())
    aug = {"phi_rotation": True, "eta_reflection": True, "jes_sigma": 0.1}
    tcfg = resolve({"train": {"epochs": 2, "batch_size": 100, "rate_lambda": 0.01}})["train"]
    tcfg["augment"] = aug
    straight = Trainer(_model(), x, v, tcfg, seed=3, norm=norm)
    straight.run()
    first = Trainer(_model(), x, v, tcfg, seed=3, checkpoint_path=tmp_path / "c.pt", norm=norm)
    first.cfg = {**tcfg, "epochs": 1}
    first.run()
    second = Trainer(_model(), x, v, tcfg, seed=3, checkpoint_path=tmp_path / "c.pt", norm=norm)
    assert second.resume()
    second.run()
    for k, t in straight.rate.state_dict().items():
        assert torch.equal(second.rate.state_dict()[k], t), k
    # trained by the single loop, never in a bundle's stack
    assert "rate_lambda" in why_not_stackable(straight)
    only_aug = Trainer(_model(), x, v, {**tcfg, "rate_lambda": 0.0}, seed=3, norm=norm)
    assert only_aug.rate is None and "augment" in why_not_stackable(only_aug)


def test_config_refuses_what_rate_aware_training_cannot_do() -> None:
    assert resolve({})["train"]["rate_lambda"] == 0.0
    with pytest.raises(ConfigError, match="latent_noise_bits"):
        resolve({"train": {"rate_lambda": 0.1, "latent_noise_bits": 6}})
    with pytest.raises(ConfigError, match=r"data\.group"):
        resolve({"train": {"rate_lambda": 0.1}, "data": {"group": {"size": 2}}})
    with pytest.raises(ConfigError, match="rate_quantise"):
        resolve({"train": {"rate_quantise": "round"}})


# --------------------------------------------------------------- a real training


def _job(tmp_path, name: str, **train) -> tuple[dict, dict]:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["train"].update(epochs=6, batch_size=64, lr=3e-3, **train)
    cfg["evaluate"].update(baselines=False)
    job = write_job(tmp_path / name, cfg)
    assert run_job(job) == 0
    return json.loads((job / "metrics.json").read_text()), read_payload(job / "model.pt")


def test_lambda_lowers_the_predicted_rate_of_a_real_training(tmp_path) -> None:
    """lambda = 0 has no prior (a latent trained without quantisation has no rate to
    predict: rounding it at step 1 is no codec); lambda -> 0 (1e-5) is its rate-aware limit.
    Measured here: 5.64 bits/jet at 1e-5, 4.96 at 1e-3, 2.23 at 3e-2."""
    m0, p0 = _job(tmp_path, "l0")
    near0, p_near0 = _job(tmp_path, "near0", rate_lambda=1e-5)
    hi, _ = _job(tmp_path, "hi", rate_lambda=3e-2)
    assert "rate_model" not in p0 and not any(k.startswith(("rate.latent", "aer.")) for k in m0)
    for m in (near0, hi):
        assert m["aer.bits_per_jet"] == m["rate.latent_bits_per_jet"] > 0
        assert math.isfinite(m["aer.pt.width"]) and m["param.train.rate_lambda"] > 0
    # more lambda, fewer bits, more distortion
    assert hi["rate.latent_bits_per_jet"] < 0.6 * near0["rate.latent_bits_per_jet"]
    assert hi["rate.test_mse"] > near0["rate.test_mse"]
    # the metrics are what the saved prior says on the saved model
    model, norm, _ = load_model(tmp_path / "near0" / "model.pt")
    prior = prior_from_payload(p_near0["rate_model"])
    xs = np.load(tmp_path / "near0" / "evaluation.npz")["inputs"]
    _, bits = evaluate_rate(model, prior, torch.from_numpy(norm.forward(xs)))
    assert bits == pytest.approx(near0["rate.latent_bits_per_jet"], rel=1e-6)


def test_rate_aware_forward_in_training_and_evaluation() -> None:
    model = _model()
    ra = RateAware(model, FactorisedPrior(2), "ste")
    x = torch.randn(16, 4)
    out, bits = ra(x)
    assert out.shape == x.shape and bits.shape == (16,)
    ra.eval()
    with torch.no_grad():
        out_eval, _ = ra(x)
        assert torch.equal(out_eval, model.decode(torch.round(model.encode(x))))


def test_the_learned_codec_example_plans_a_lambda_grid(tmp_path) -> None:
    import yaml

    from gridsearch.plan import plan

    repo = Path(__file__).resolve().parents[1]
    report = plan(repo / "examples" / "learned_codec.yaml", tmp_path / "c", dry_run=True)
    lambdas = sorted(j.params["train.rate_lambda"] for j in report.jobs)
    assert lambdas == [3e-5, 1e-4, 3e-4, 1e-3]
    base = yaml.safe_load((repo / "examples" / "learned_codec.yaml").read_text())["base"]
    cfg = resolve({**base, "train": {**base["train"], "rate_lambda": 1e-4}})
    assert len(cfg["data"]["variables"]) == 14 and cfg["model"]["latent"] == 9
    assert cfg["train"]["augment"]["phi_rotation"] and cfg["train"]["threads"] == 1


# ------------------------------------------------------------ residual rate (optional)


def test_residual_symbols_by_hand() -> None:
    from hepae_core.data.normalise import Normaliser
    from hepae_core.training.rate_model import ResidualRate

    norm = Normaliser("none", ["pt", "eta", "phi", "m"], [0.0] * 4, [1.0] * 4)
    res = ResidualRate(norm, {"pt": 1e-3, "eta": 1e-3, "phi": 1e-2, "m": 1e-3})
    x = torch.tensor([[100.0, 0.5, 3.1, 0.0]], dtype=torch.float64)
    y = torch.tensor([[100.2, 0.503, -3.1, 0.7]], dtype=torch.float64)
    u, mask = res.symbols(x, y)
    # pt relative: 0.2 / 100 / 2e-3 = 1; eta absolute: 0.003 / 2e-3 = 1.5;
    # phi wrapped: -6.2 + 2 pi = 0.0832 over 2e-2; m: a true 0 is not coded
    want = [1.0, 1.5, (2 * math.pi - 6.2) / 0.02, 0.0]
    assert u[0, :3].tolist() == pytest.approx(want[:3], rel=1e-9)
    assert mask.tolist() == [[1.0, 1.0, 1.0, 0.0]]
    with torch.no_grad():
        bits = res.bits(x, y, "noise", training=False)
        lik = res.prior.likelihood(torch.round(u))
    assert bits.item() == pytest.approx(-torch.log2(lik[0, :3]).sum().item(), rel=1e-9)


def test_residual_bounds_config_and_a_job_reports_them(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"rate_residual_bounds\.width"):
        resolve({"train": {"rate_lambda": 0.1, "rate_residual_bounds": {"width": 1e-3}}})
    with pytest.raises(ConfigError, match="rate_lambda is 0"):
        resolve({"train": {"rate_residual_bounds": {"pt": 1e-3}}})
    bounds = {"pt": 1e-3, "eta": 1e-3, "phi": 1e-3, "E": 1e-3}
    m, payload = _job(tmp_path, "res", rate_lambda=1e-3, rate_residual_bounds=bounds)
    assert payload["rate_model"]["residual"]["bounds"] == bounds
    total = m["rate.latent_bits_per_jet"] + m["rate.residual_bits_per_jet"]
    assert m["rate.total_bits_per_jet"] == pytest.approx(total)
    assert m["rate.residual_bits_per_jet"] > 4  # four coded residuals, at least a bit each
