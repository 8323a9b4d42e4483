"""Baselines once per data split: a job reading them from the campaign's cache gets exactly
the metrics it would compute itself, and a different split never reads another's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hepae_core.config import resolve
from hepae_core.data.jets import bundled_path
from hepae_core.data.normalise import Normaliser
from hepae_core.evaluation.baseline_cache import CACHE_DIR, FORMAT, campaign_cache_dir
from hepae_core.evaluation.evaluate import evaluate
from hepae_core.training.models import build_model

VARS = ["pt", "eta", "phi", "E"]
KINDS = dict(zip(VARS, ["relative", "absolute", "angle", "relative"]))
TIMINGS = {"baselines_s", "encode_s_per_jet", "decode_s_per_jet", "evaluate_s"}


@pytest.fixture(scope="module")
def jets() -> np.ndarray:
    import uproot

    with uproot.open(bundled_path("dijet_4d")) as f:
        t = f["jets"]
        return np.stack([t[v].array(library="np") for v in VARS], axis=1).astype(np.float64)


def split(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(len(x))[:6000]
    return x[idx[1500:]], x[idx[:1500]]  # train, test


def run(train, test, cache, latent: int = 3) -> dict:
    torch.manual_seed(0)
    model = build_model(resolve({"model": {"encoder": [8], "latent": latent}})["model"], 4)
    norm = Normaliser.fit("custom_4d", VARS, train)
    m, _ = evaluate(model, norm, test, KINDS, latent, torch.device("cpu"), 100, x_train=train,
                    bits=(6, 10), baseline_cache=cache)  # fmt: skip
    return m


def same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a.keys() - TIMINGS:
        x, y = a[k], b[k]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), k
        else:
            assert x == y and type(x) is type(y), (k, x, y)


def test_shared_baselines_equal_the_job_s_own(jets, tmp_path):
    cache = tmp_path / CACHE_DIR
    train, test = split(jets, 0)
    own = run(train, test, None)
    first = run(train, test, cache)  # computes and stores
    (stored,) = cache.iterdir()
    second = run(train, test, cache)  # reads
    same(own, first)
    same(own, second)
    # it really is read back: a value changed in the file comes out
    record = json.loads(stored.read_text())
    record["metrics"]["pca.z"] = 12345
    record["metrics"]["float16.pt.width"] = 0.5  # the casts are shared too
    stored.write_text(json.dumps(record))
    read = run(train, test, cache)
    assert (read["pca.z"], read["float16.pt.width"]) == (12345, 0.5)


def test_another_split_or_latent_never_reads_anothers_baselines(jets, tmp_path):
    cache = tmp_path / CACHE_DIR
    train, test = split(jets, 0)
    run(train, test, cache)
    train2, test2 = split(jets, 1)  # another split seed: other jets
    same(run(train2, test2, None), run(train2, test2, cache))
    # the PCA size follows the latent size: part of the key too
    same(run(train, test, None, latent=2), run(train, test, cache, latent=2))
    assert len(list(cache.iterdir())) == 3


def test_a_damaged_cache_file_is_computed_again(jets, tmp_path):
    cache = tmp_path / CACHE_DIR
    train, test = split(jets, 0)
    own = run(train, test, cache)
    (stored,) = cache.iterdir()
    stored.write_text("{not json")
    same(own, run(train, test, cache))
    assert json.loads(stored.read_text())["format"] == FORMAT  # written again, whole


def test_only_jobs_of_a_campaign_share(tmp_path):
    job = tmp_path / "camp" / "jobs" / "abc"
    job.mkdir(parents=True)
    assert campaign_cache_dir(job) is None  # no manifest: a job on its own
    (tmp_path / "camp" / "manifest.json").write_text("{}")
    assert campaign_cache_dir(job) == (tmp_path / "camp" / CACHE_DIR).resolve()


def test_shared_baselines_can_be_turned_off(tmp_path, monkeypatch):
    job = tmp_path / "camp" / "jobs" / "abc"
    job.mkdir(parents=True)
    (tmp_path / "camp" / "manifest.json").write_text("{}")
    monkeypatch.setenv("HEPAE_NO_SHARED_BASELINES", "1")
    assert campaign_cache_dir(job) is None


def test_casts_without_baselines_are_the_same_numbers(jets):
    """With the baselines off, a job still measures the casts itself: the same values."""
    train, test = split(jets, 0)
    torch.manual_seed(0)
    model = build_model(resolve({"model": {"encoder": [8], "latent": 3}})["model"], 4)
    norm = Normaliser.fit("custom_4d", VARS, train)
    alone, _ = evaluate(model, norm, test, KINDS, 3, torch.device("cpu"), 100, x_train=train,
                        baselines=False)  # fmt: skip
    full = run(train, test, None)
    casts = [k for k in full if k.split(".")[0] in ("float16", "bfloat16")]
    assert len(casts) > 40
    assert {k: alone[k] for k in casts} == {k: full[k] for k in casts}
    assert not any(k.startswith(("sq", "aeq", "pca")) for k in alone)


def test_fewer_test_jets_of_the_same_split_are_a_new_entry(jets, tmp_path):
    """evaluate.max_jets: the same training jets, fewer test jets: never the other's numbers."""
    cache = tmp_path / CACHE_DIR
    train, test = split(jets, 0)
    run(train, test, cache)
    fewer = test[:700]
    same(run(train, fewer, None), run(train, fewer, cache))
    assert len(list(cache.iterdir())) == 2


def test_small_model_is_evaluated_on_one_thread_with_the_same_numbers(jets):
    """Two threads for a tiny model's passes cost more than they give: evaluate() uses one
    and gives the caller's threads back; the metrics are those of a one-thread run."""
    train, test = split(jets, 0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(train, test, None)
        torch.set_num_threads(2)
        seen = []
        import hepae_core.evaluation.evaluate as E

        real = E.decode

        def spy(*a, **k):
            seen.append(torch.get_num_threads())
            return real(*a, **k)

        E.decode = spy
        try:
            two = run(train, test, None)
        finally:
            E.decode = real
        assert torch.get_num_threads() == 2  # given back
        assert seen and set(seen) == {1}
        same(one, two)
    finally:
        torch.set_num_threads(before)
