import pytest

from hepae_core.config import PRESETS, dump, known_keys, load, resolve
from hepae_core.errors import ConfigError
from hepae_core.training.models import build_model, describe


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
    with pytest.raises(ConfigError, match=r"config.yaml:3: is not valid YAML"):
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


# ---------------------------------------------------------------- one YAML loader (item 11)


def test_hand_written_config_reads_yaml_12_numbers(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-4\n  epochs: 012\nname: yes\n")
    cfg = load(p)
    assert cfg["train"]["lr"] == 0.001 and cfg["train"]["weight_decay"] == 0.0005
    assert cfg["train"]["epochs"] == 12  # YAML 1.2: a leading zero is not octal (1.1: 10)
    assert cfg["name"] == "yes"  # YAML 1.2: a string, not True


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("train:\n  lr: 0.1\nseed: 1\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load(p)
    assert str(err.value) == (f"{p}:4: 'train': key given twice (first at line 1); keep one")


def test_python_tags_are_refused(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match=r"config.yaml:1: is not valid YAML"):
        load(p)


def test_bad_value_names_its_line(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("seed: 1\ntrain:\n  epochs: 3\n  lr: fast\n")
    with pytest.raises(ConfigError) as err:
        load(p)
    assert str(err.value).startswith(f"{p}:4: 'train.lr': expects a positive number")


def test_config_dump_round_trips_strings_that_look_like_numbers():
    cfg = resolve({"name": "1e3"})
    text = dump(cfg)
    assert "name: '1e3'" in text
    from hepae_core import yamlio

    assert yamlio.parse(text, "x")[0]["name"] == "1e3"


def test_a_directory_or_binary_file_as_config(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)
    p = tmp_path / "config.yaml"
    p.write_bytes(b"train:\n  lr: \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not a text file"):
        load(p)


# ----------------------------------------------------------------- silent typos (item 12)


def test_round_names_a_trained_variable():
    with pytest.raises(ConfigError) as err:
        resolve(
            {
                "data": {"variables": ["pt", "eta", "phi", "E", "N90Constituents"]},
                "normalisation": {"kind": "standard"},
                "evaluate": {"round": ["N90Constituent"]},
            },
            "c.yaml",
        )
    msg = str(err.value)
    assert msg.startswith("c.yaml: 'evaluate.round.0': 'N90Constituent' is not a trained")
    assert "did you mean 'N90Constituents'?" in msg


def test_round_of_a_variable_that_is_not_trained_is_refused():
    with pytest.raises(ConfigError, match=r"'evaluate\.round\.0': 'nConst' is not a trained"):
        resolve({"evaluate": {"round": ["nConst"]}})


def test_seed_inside_a_section_points_to_the_top_level_seed():
    with pytest.raises(ConfigError) as err:
        resolve({"train": {"seed": 3}})
    assert "'train.seed'" in str(err.value)
    assert "did you mean the top-level 'seed'?" in str(err.value)
    assert "train.schedule" not in str(err.value)


def test_division_by_a_literal_zero_in_a_cut_is_refused():
    with pytest.raises(ConfigError, match=r"'data.cuts.*divides by zero"):
        resolve({"data": {"cuts": ["pt / 0 > 1"]}})
    with pytest.raises(ConfigError, match="divides by zero"):
        resolve({"data": {"cuts": ["pt / (2 - 2.0) > 1"]}})
    resolve({"data": {"cuts": ["pt / 2 > 1", "pt / eta > 0"]}})
