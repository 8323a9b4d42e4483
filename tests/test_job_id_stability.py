"""Job ids survive upgrades: a key added after the first release, left at its default, does
not enter the canonical text, so a campaign planned with 0.1.0 keeps its ids when planned
again (nothing trains twice)."""

from __future__ import annotations

import yaml

from gridsearch.plan import job_id_of
from hepae_core.config import LATER_KEYS, dump, resolve

RAW = {
    "data": {"source": "bundled:dijet_4d", "variables": ["pt", "eta", "phi", "E"]},
    "model": {"latent": 3},
    "train": {"epochs": 2, "lr": 0.001},
}
# the id hepae-gridsearch 0.1.0 (before rate-aware training and augmentation) gave RAW
ID_0_1_0 = "8302c3593867"


def _id(raw: dict) -> str:
    cfg = resolve(raw)
    return job_id_of(dump({k: v for k, v in cfg.items() if k != "name"}))


def test_the_released_id_of_a_config_is_unchanged() -> None:
    assert _id(RAW) == ID_0_1_0


def test_a_later_key_set_by_the_user_changes_the_id() -> None:
    raw = {**RAW, "train": {**RAW["train"], "rate_lambda": 1e-3}}
    assert _id(raw) != ID_0_1_0


def test_the_canonical_text_reads_back_with_the_later_keys_filled_in() -> None:
    cfg = resolve(RAW)
    text = dump(cfg)
    for section, key in LATER_KEYS:
        assert key not in yaml.safe_load(text)[section]
        assert resolve(yaml.safe_load(text))[section][key] == LATER_KEYS[(section, key)]
    assert cfg["train"]["rate_lambda"] == 0.0  # the config itself is left as it was
