import pytest

from hepae_core.config import PRESETS, dump, known_keys, load, resolve
from hepae_core.errors import ConfigError
from hepae_core.models import build_model, describe


def test_defaults_are_complete_and_valid():
    cfg = resolve({})
    assert cfg["model"]["latent"] == 3
    assert cfg["data"]["variables"] == "4d"
    assert "train.lr" in known_keys()


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        resolve({"train": {"lrr": 0.1}}, "space.yaml")
    assert "'train.lrr'" in str(err.value)
    assert "did you mean 'train.lr'" in str(err.value)
    assert str(err.value).startswith("space.yaml")


def test_bad_value_says_what_is_expected():
    with pytest.raises(ConfigError, match=r"'train.batch_size'.*positive integer"):
        resolve({"train": {"batch_size": -3}})
    with pytest.raises(ConfigError, match=r"model\.activation"):
        resolve({"model": {"activation": "sigmoidish"}})


def test_latent_must_compress():
    with pytest.raises(ConfigError, match=r"'model.latent'.*below 4"):
        resolve({"model": {"latent": 4}})


def test_config_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve([1, 2, 3])


def test_malformed_yaml_names_the_line(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("preset", "n_in", "expected"),
    [
        ("AE_3D_200", 4, "4-200-100-50-3-50-100-200-4"),
        ("AE_3D_100", 4, "4-100-100-50-3-50-100-100-4"),
        ("AE_3D_50", 4, "4-50-50-20-3-20-50-50-4"),
        ("AE_big", 4, "4-8-6-4-3-4-6-8-4"),
        ("AE_bn_LeakyReLU", 27, "27-200-200-200-18-200-200-200-27"),
    ],
)
def test_presets_reproduce_thesis_models(preset, n_in, expected):
    variables = "27d" if n_in == 27 else "4d"
    cfg = resolve({"model": {"preset": preset}, "data": {"variables": variables}})
    assert describe(cfg["model"], n_in) == expected
    model = build_model(cfg["model"], n_in)
    if PRESETS[preset].get("batch_norm"):
        assert any(type(m).__name__ == "BatchNorm1d" for m in model.modules())
        assert any(type(m).__name__ == "LeakyReLU" for m in model.modules())


def test_preset_with_override_latent():
    cfg = resolve(
        {"model": {"preset": "AE_bn_LeakyReLU", "latent": 12}, "data": {"variables": "27d"}}
    )
    assert describe(cfg["model"], 27) == "27-200-200-200-12-200-200-200-27"


def test_latent_layer_has_no_activation_by_default():
    cfg = resolve({"model": {"encoder": [8], "latent": 3}})
    model = build_model(cfg["model"], 4)
    assert type(model.encoder[-1]).__name__ == "Linear"
    cfg = resolve({"model": {"encoder": [8], "latent": 3, "latent_activation": True}})
    assert type(build_model(cfg["model"], 4).encoder[-1]).__name__ == "Tanh"


def test_dump_is_canonical():
    a = resolve({"train": {"lr": 0.01, "epochs": 3}})
    b = resolve({"train": {"epochs": 3, "lr": 0.01}})
    assert dump(a) == dump(b)


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import hepae_core.config, hepae_core.jobdir, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
