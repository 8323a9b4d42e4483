"""Quantisation-aware training: noise of one latent quantisation step."""

from __future__ import annotations

import copy

import torch
from conftest import TINY_JOB, write_job

from hepae_core.run.job import run_job
from hepae_core.training.latent_noise import LatentNoise, wrap
from hepae_core.training.models import build_model


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"encoder": [8], "decoder": None, "latent": 2, "activation": "tanh",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    return build_model(cfg, 4)


def test_noise_is_one_step_of_the_batch_range() -> None:
    model = _model()
    x = torch.randn(4096, 4)
    on = LatentNoise(model, 4, lambda: True)
    off = LatentNoise(model, 4, lambda: False)
    with torch.no_grad():
        assert torch.equal(off(x), model(x))
        z = model.encode(x)
        step = (z.max(0).values - z.min(0).values) / 16
        # the decoder's first layer is linear: recover the noise it was given
        torch.manual_seed(1)
        y = on(x)
        torch.manual_seed(1)
        noise = (torch.rand_like(z) - 0.5) * step
        assert torch.allclose(y, model.decode(z + noise), atol=1e-6)
        assert (noise.abs() <= step / 2).all() and noise.abs().max() > 0.45 * step.min()
        assert not torch.allclose(y, model(x))


def test_only_the_last_epochs_are_noisy() -> None:
    model = _model()
    epoch = [0]
    f = wrap(model, model, {"latent_noise_bits": 6, "latent_noise_epochs": 2, "epochs": 5},
             lambda: epoch[0])  # fmt: skip
    active = []
    for e in range(5):
        epoch[0] = e
        active.append(f.active())
    assert active == [False, False, False, True, True]
    assert wrap(model, model, {"latent_noise_bits": None, "epochs": 5}, lambda: 0) is model


def test_a_job_trains_with_latent_noise(tmp_path) -> None:
    cfg = copy.deepcopy(TINY_JOB)
    cfg["train"].update(latent_noise_bits=6, latent_noise_epochs=1)
    cfg["evaluate"]["bits"] = [6]
    assert run_job(write_job(tmp_path / "job", cfg)) == 0
