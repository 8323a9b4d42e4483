"""Baselines and the latent-quantised autoencoder in a job's metrics, on the bundled jets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepae_core.data.jets import bundled_path
from hepae_core.data.normalise import Normaliser
from hepae_core.evaluation.evaluate import baseline_metrics, evaluate
from hepae_core.training.models import AutoEncoder, build_model

VARS = ["pt", "eta", "phi", "E"]
KINDS = ["relative", "absolute", "angle", "relative"]


@pytest.fixture(scope="module")
def jets() -> tuple[np.ndarray, np.ndarray]:
    import uproot

    with uproot.open(bundled_path("dijet_4d")) as f:
        t = f["jets"]
        x = np.stack([t[v].array(library="np") for v in VARS], axis=1).astype(np.float64)
    idx = np.random.default_rng(0).permutation(len(x))
    n = len(x) // 5
    return x[idx[n:]], x[idx[:n]]


def test_scalar_quantiser_reproduces_the_measured_table(jets) -> None:
    """Widths measured independently on this sample (issue 10's table, DESIGN.md)."""
    train, test = jets
    m = baseline_metrics(test, train, VARS, KINDS, (8, 10, 12, 16), None)
    table = {  # bits: pt, eta, phi, E
        16: (1.6e-5, 4.7e-5, 3.3e-5, 2.7e-5),
        12: (2.6e-4, 7.5e-4, 5.2e-4, 4.3e-4),
        10: (1.0e-3, 3.0e-3, 2.1e-3, 1.7e-3),
        8: (4.1e-3, 1.2e-2, 8.4e-3, 7.0e-3),
    }
    for k, widths in table.items():
        for v, w in zip(VARS, widths):
            assert m[f"sq{k}.{v}.width"] == pytest.approx(w, rel=0.06), (k, v)
        assert m[f"sq{k}.bits_per_jet"] == 4 * k
        # 4 x 32 bits in, 4 x k bits out, plus 32 bytes of ranges over the test jets
        assert m[f"sq{k}.ratio"] == pytest.approx(32 / k, rel=1e-3)
    assert [m[f"space.{v}"] for v in VARS] == ["log", "linear", "periodic", "log"]
    # float32 jets compress a little losslessly (mantissas are noise): between 1 and 1.5
    assert 1.0 < m["lossless.ratio"] < 1.5
    assert m["lossless.bits_per_jet"] == pytest.approx(128 / m["lossless.ratio"])


def _train_tiny(train: np.ndarray, latent: int, epochs: int = 3) -> tuple:
    torch.manual_seed(0)
    norm = Normaliser.fit("custom_4d", VARS, train)
    cfg = {"encoder": [32, 16], "decoder": None, "latent": latent, "activation": "tanh",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    model = build_model(cfg, 4)
    x = torch.from_numpy(norm.forward(train))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 512):
            xb = x[i : i + 512]
            loss = torch.nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), norm


def _identity_model(norm_kind: str = "custom_4d") -> AutoEncoder:
    """A 4-4-4 autoencoder that passes the normalised jets through unchanged."""
    cfg = {"encoder": [], "decoder": None, "latent": 4, "activation": "tanh",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    model = build_model(cfg, 4)
    with torch.no_grad():
        for layer in (model.encoder[0], model.decoder[0]):
            layer.weight.copy_(torch.eye(4))
            layer.bias.zero_()
    return model.eval()


def test_latent_quantised_curve_by_hand(jets) -> None:
    """An identity autoencoder: latent codes are uniform codes of the normalised variables.

    custom_4d normalises eta as eta / 5 and pt as (log10 pt - 1.3) / 1.2, so a latent step
    s gives an eta error of 5 s (width 0.34 x 5 s) and a relative pt error of
    ln(10) x 1.2 x s (width 0.34 x that).
    """
    train, test = jets
    train, test = train[:50_000], test[:20_000]
    norm = Normaliser.fit("custom_4d", VARS, train)
    model = _identity_model()
    kinds = dict(zip(VARS, KINDS))
    bits = (6, 10, 16)
    m, _ = evaluate(model, norm, test, kinds, 4, torch.device("cpu"), 1000, x_train=train,
                    bits=bits, model_bytes=1000, file_jets=10**6)  # fmt: skip
    z = norm.forward(train)
    lo, hi = z.min(axis=0), z.max(axis=0)
    for i in range(4):
        assert m[f"latent.{i}.min"] == pytest.approx(lo[i]) and m[
            f"latent.{i}.max"
        ] == pytest.approx(hi[i])
    for k in (6, 10):
        s = (hi - lo) / 2**k
        assert m[f"aeq{k}.eta.width"] == pytest.approx(0.34 * 5 * s[1], rel=0.05)
        assert m[f"aeq{k}.pt.width"] == pytest.approx(0.34 * math.log(10) * 1.2 * s[0], rel=0.05)
        assert m[f"aeq{k}.bits_per_jet"] == 4 * k
        assert m[f"pca{k}.bits_per_jet"] == 4 * k  # as many components as the latent
        assert m[f"sq{k}.bits_per_jet"] == 4 * k
        # 4 x 32 bits in, 4 x k out, plus 2 float32 ranges per latent dimension and the
        # model's 1000 bytes, once per file: on the test jets and on a file of 1 M jets
        n = len(test)
        assert m[f"aeq{k}.payload_bytes"] == n * 4 * k / 8
        assert m[f"aeq{k}.side_bytes"] == 32 and m[f"aeq{k}.model_bytes"] == 1000
        assert m[f"aeq{k}.ratio"] == pytest.approx(16 * n / (n * 4 * k / 8 + 32 + 1000))
        assert m[f"aeq{k}.ratio_file"] == pytest.approx(16e6 / (1e6 * 4 * k / 8 + 1032))
        # break-even against sq<k> (the same payload, 32 bytes of ranges): never
        assert m[f"aeq{k}.break_even_jets"] == math.inf
    # the float32 latent is exact here, up to float32 rounding
    assert m["ae.pt.width"] < 1e-6
    assert m["pca.explained_variance"] == pytest.approx(1.0)
    assert m["float16.bits_per_jet"] == 64 and m["ae.bits_per_jet"] == 128
    assert m["baselines_s"] > 0


def test_no_training_jets_no_curves(jets) -> None:
    train, test = jets
    model, norm = _train_tiny(train[:2000], 3, epochs=1)
    m, _ = evaluate(model, norm, test[:500], dict(zip(VARS, KINDS)), 3, torch.device("cpu"), 100)
    assert not any(k.startswith(("sq", "pca", "aeq")) for k in m)
    assert math.isfinite(m["ae.pt.width"]) and m["float16.ratio"] == 2.0
