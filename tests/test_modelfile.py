"""model.pt: one reader for a path and for the bytes a compressed file stores."""

import numpy as np
import pytest
import torch
from conftest import write_job

from hepae_core import config
from hepae_core.data.normalise import Normaliser
from hepae_core.errors import HepaeError
from hepae_core.run.modelfile import load_model, save_model
from hepae_core.training.models import build_model

VARS = ["pt", "eta", "phi", "E"]


@pytest.fixture
def saved(tmp_path):
    """A per-jet model.pt and a grouped one (G = 2) of the same small network."""
    job = write_job(tmp_path / "j", {"data": {"source": "bundled:dijet_4d"},
                                    "model": {"encoder": [8], "latent": 2}})  # fmt: skip
    cfg = config.load(job / "config.yaml")
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(50, 10, (200, 4))).astype(np.float32)
    norm = Normaliser.fit("standard", VARS, x)
    torch.manual_seed(0)
    jet = tmp_path / "jet.pt"
    save_model(jet, build_model(cfg["model"], 4), cfg, norm, 3, 0.25)
    grouped = tmp_path / "grouped.pt"
    extra = {"group": {"size": 2, "by": "sequence"}, "n_inputs": 8}
    save_model(grouped, build_model(cfg["model"], 8), cfg, norm, 1, 0.5, extra)
    return jet, grouped, x


def test_a_path_and_its_bytes_load_the_same_model(saved):
    jet, _, x = saved
    m1, n1, p1 = load_model(jet)
    m2, n2, p2 = load_model(jet.read_bytes(), name="f.h5:/model")
    assert (p1["epoch"], p1["val_loss"]) == (p2["epoch"], p2["val_loss"]) == (3, 0.25)
    assert n1.to_dict() == n2.to_dict()
    xt = torch.from_numpy(n1.forward(x))
    with torch.no_grad():
        assert torch.equal(m1(xt), m2(xt))
    assert not m2.training  # eval mode: what the evaluation and the codec expect


def test_a_grouped_model_is_refused_unless_allowed_and_the_bytes_are_named(saved):
    _, grouped, _ = saved
    with pytest.raises(HepaeError) as err:
        load_model(grouped.read_bytes(), name="f.h5:/model")
    assert "f.h5:/model" in str(err.value) and "data.group" in str(err.value)
    model, _, payload = load_model(grouped.read_bytes(), allow_grouped=True, name="f.h5")
    assert payload["n_inputs"] == 8 and model.encoder[0].in_features == 8


def test_bytes_that_are_not_a_model_name_the_source(tmp_path):
    other = tmp_path / "x.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(HepaeError, match=r"f\.h5:/model.*is not a model saved by hepae_core"):
        load_model(other.read_bytes(), name="f.h5:/model")
