"""Job configuration: the schema of config.yaml, its defaults and its validation.

A job config is complete on its own: data, cuts, normalisation, model, training,
evaluation and seed. This module imports neither torch nor numpy, so the orchestration
layer can validate thousands of grid points quickly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepae_core import yamlio
from hepae_core.errors import ConfigError, did_you_mean
from hepae_core.variables import VARIABLE_SETS, default_residual_kind

ACTIVATIONS = ("tanh", "relu", "leaky_relu", "elu", "silu")
NORMALISATIONS = ("standard", "minmax", "custom_4d", "custom_27d", "none")
SCHEDULES = ("constant", "one_cycle", "plateau")
OPTIMIZERS = ("adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")
RESIDUAL_KINDS = ("relative", "absolute", "angle")
FORMATS = ("auto", "root", "hdf5", "csv")
CSV_OBJECTS = ("j", "b", "e-", "e+", "m-", "m+", "g")

# Thesis models. "encoder" is the list of hidden widths before the latent layer; the
# decoder mirrors it unless given.
PRESETS: dict[str, dict[str, Any]] = {
    "AE_3D_200": {"encoder": [200, 100, 50], "latent": 3, "activation": "tanh"},
    "AE_3D_100": {"encoder": [100, 100, 50], "latent": 3, "activation": "tanh"},
    "AE_3D_50": {"encoder": [50, 50, 20], "latent": 3, "activation": "tanh"},
    "AE_big": {"encoder": [8, 6, 4], "latent": 3, "activation": "tanh"},
    "AE_bn_LeakyReLU": {
        "encoder": [200, 200, 200],
        "latent": 18,
        "activation": "leaky_relu",
        "batch_norm": True,
    },
}


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: default value, a type check and a human description."""

    default: Any
    check: Callable[[Any], bool]
    expects: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _pos_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _choice(*options: str) -> Callable[[Any], bool]:
    return lambda v: v in options


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_pos_int(x) for x in v)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def _residual_map(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and x in RESIDUAL_KINDS for k, x in v.items()
    )


def _variables(v: Any) -> bool:
    return (isinstance(v, str) and v in VARIABLE_SETS) or (_str_list(v) and len(v) > 0)


GROUP_DEFAULTS: dict[str, Any] = {
    "size": None,
    "by": "sequence",
    "order": "file",
    "overflow": "drop",
    "event": "event",
}
GROUP_CHOICES = {
    "by": ("sequence", "event"),
    "order": ("file", "pt"),
    "overflow": ("drop", "new_group"),
}


def _group(v: Any) -> bool:
    """``data.group``: {} or size null (one jet per input), or a mapping of GROUP_DEFAULTS' keys."""
    if not isinstance(v, dict) or not set(v) <= set(GROUP_DEFAULTS):
        return False
    if v.get("size") is not None and not _is_int(v["size"]):
        return False
    return all(v[k] in opts for k, opts in GROUP_CHOICES.items() if k in v) and (
        "event" not in v or (isinstance(v["event"], str) and v["event"] != "")
    )


def group_of(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resolved ``data.group`` (every key filled in), or None for one jet per input."""
    g = cfg["data"].get("group") or {}
    return {**GROUP_DEFAULTS, **g} if g.get("size") is not None else None


#: ``model.stage1`` as a mapping: the best of several stage-1 jobs, chosen when the
#: stage-2 job starts (hepae_core.training.two_stage.resolve_stage1, docs/collective.md).
STAGE1_PICKS = ("best",)
STAGE1_KEYS = ("pick", "by", "from")
STAGE1_DEFAULT_BY = "best_val_loss"


def stage1_spec(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``model.stage1`` of a resolved config as ``{pick, by, from}``, or None without one.

    A plain path is ``{"pick": "path", "by": None, "from": [path]}``; a mapping gets its
    defaults (``pick: best``, ``by: best_val_loss``). The config itself keeps the mapping
    as written, so its canonical dump (and the job id) is what the user or the planner wrote.
    """
    s1 = cfg["model"].get("stage1")
    if s1 is None:
        return None
    if isinstance(s1, str):
        return {"pick": "path", "by": None, "from": [s1]}
    return {
        "pick": s1.get("pick", "best"),
        "by": s1.get("by", STAGE1_DEFAULT_BY),
        "from": list(s1["from"]),
    }


#: Every key metrics.json can hold (docs/metrics.md), as patterns: ``model.stage1.by`` and a
#: stage's ``stage1.by`` must name one, or the pick fails only after stage 1 has trained.
# Any codec or source name (ae, sq12, sqe12, sz3_12, zfp8, lossless...): new codecs need no
# change here; a misspelt statistic (ae.pt.widht) or top-level key is still caught.
_CODECS = r"(?:[a-z][a-z0-9_]*)"
_SOURCES = rf"(?:{_CODECS}|stage1|slot\d+)"
METRIC_KEY_PATTERNS = [
    re.compile(p)
    for p in (
        r"^param\..+$",
        r"^(?:schema_version|status|name|n_inputs|latent|n_params|variables|events_read"
        r"|jets_read|jets_beyond_leading|jets_nonfinite_dropped|jets_after_cuts|train_jets"
        r"|val_jets|test_jets|norm_domain_errors|epochs_run|best_epoch|best_val_loss"
        r"|final_train_loss|final_val_loss|test_loss|early_stopped|train_time_s"
        r"|train_jets_per_s|stack_size|stack_jets_per_s|device|threads|torch_version|attempts"
        r"|input_bytes_per_jet"
        r"|compression_ratio|compression_ratio_f16|compression_ratio_effective"
        r"|encode_s_per_jet|decode_s_per_jet|baselines_s|evaluate_s|train_groups|val_groups"
        r"|test_groups)$",
        rf"^{_SOURCES}\.[^.]+\.(?:mean|std|rms|width|frac_1pct|frac_5pct)$",
        rf"^{_CODECS}\.(?:bits_per_jet|ratio|ratio_file|clipped|payload_bytes|side_bytes"
        r"|model_bytes|break_even_jets)$",
        r"^rate\.[a-z_]+$",
        r"^cut\.\d+\.(?:removed|expr)$",
        r"^(?:residual|space)\.[^.]+$",
        r"^latent\.\d+\.(?:min|max)$",
        r"^stage2_cost\.[^.]+\.width_ratio$",
        r"^group\.[a-z_]+$",
        r"^slot\d+\.jets$",
        r"^stage1\.(?:latent|compression_ratio|id|pick_value)$",
        r"^sq\.side_bytes$",
        r"^pca\.(?:z|explained_variance|side_bytes)$",
    )
]
#: Names offered by "did you mean" for a misspelt metric.
METRIC_EXAMPLES = (
    "best_val_loss", "final_val_loss", "test_loss", "compression_ratio", "ae.bits_per_jet",
    "ae.pt.width", "ae.eta.width", "ae.phi.width", "ae.E.width", "ae.m.width", "ae.pt.rms",
    "ae.eta.rms", "ae.phi.rms", "ae.E.rms", "ae.m.rms", "encode_s_per_jet", "n_params",
)  # fmt: skip


def metric_key_problem(by: str) -> str | None:
    """Why ``by`` is no key a job's metrics.json can hold (docs/metrics.md), or None."""
    if any(p.match(by) for p in METRIC_KEY_PATTERNS):
        return None
    return (
        f"'{by}' is not a metrics.json key (lower is better; e.g. best_val_loss, ae.pt.width; "
        f"all keys: docs/metrics.md){did_you_mean(by, METRIC_EXAMPLES)}"
    )


def _check_stage1(s1: Any, source: str) -> None:
    """The mapping form of ``model.stage1``: known keys, pick best, a metric, job dirs."""
    if not isinstance(s1, dict):
        return
    for key in s1:
        if key not in STAGE1_KEYS:
            raise ConfigError(
                source=source,
                key=f"model.stage1.{key}",
                message="unknown key"
                + did_you_mean(str(key), STAGE1_KEYS)
                + "; model.stage1 takes pick: best, by: METRIC and from: [JOB_DIR, ...]",
            )
    if s1.get("pick", "best") not in STAGE1_PICKS:
        raise ConfigError(
            source=source,
            key="model.stage1.pick",
            message=f"is {s1['pick']!r}; write pick: best (the stage-1 job with the lowest "
            "'by' metric, chosen when this job starts), or give model.stage1 as one job dir",
        )
    by = s1.get("by", STAGE1_DEFAULT_BY)
    if not isinstance(by, str) or by == "":
        raise ConfigError(
            source=source,
            key="model.stage1.by",
            message=f"is {by!r}; write the name of a metrics.json key of the stage-1 jobs "
            f"(lower is better), e.g. by: ae.pt.width (default {STAGE1_DEFAULT_BY})",
        )
    problem = metric_key_problem(by)
    if problem is not None:
        raise ConfigError(source=source, key="model.stage1.by", message=problem)
    dirs = s1.get("from")
    if not isinstance(dirs, list) or not dirs:
        raise ConfigError(
            source=source,
            key="model.stage1.from",
            message=f"is {dirs!r}; write a non-empty list of stage-1 job dirs (relative to "
            "this config's directory), e.g. from: [../0a1b2c3d4e5f, ../9f8e7d6c5b4a]",
        )
    for i, d in enumerate(dirs):
        if not isinstance(d, str) or d == "":
            raise ConfigError(
                source=source,
                key=f"model.stage1.from.{i}",
                message=f"is {d!r}; every entry of from must be a job dir path (a string)",
            )


def _augment(v: Any) -> bool:
    """``train.augment``: phi_rotation/eta_reflection booleans, jes_sigma a number >= 0."""
    if not isinstance(v, dict) or not set(v) <= {"phi_rotation", "eta_reflection", "jes_sigma"}:
        return False
    flags_ok = all(isinstance(v[k], bool) for k in ("phi_rotation", "eta_reflection") if k in v)
    return flags_ok and ("jes_sigma" not in v or (_is_num(v["jes_sigma"]) and v["jes_sigma"] >= 0))


def _cuts(v: Any) -> bool:
    return isinstance(v, str) or _str_list(v) or v == []


SCHEMA: dict[str, dict[str, Field]] = {
    "data": {
        "source": Field(
            "bundled:dijet_4d", lambda v: isinstance(v, str) and v != "", "a file path"
        ),
        "format": Field("auto", _choice(*FORMATS), "one of " + ", ".join(FORMATS)),
        "tree": Field("jets", lambda v: isinstance(v, str) and v != "", "a tree name"),
        "key": Field(None, _opt(lambda v: isinstance(v, str)), "an HDF5 group or dataset"),
        "variables": Field(
            "4d", _variables, "a variable set (" + ", ".join(VARIABLE_SETS) + ") or a list"
        ),
        "branches": Field({}, _str_map, "a mapping variable -> branch name"),
        "units": Field("GeV", _choice("GeV", "MeV"), "GeV or MeV"),
        "max_jets": Field(None, _opt(_pos_int), "a positive integer or null"),
        "test_fraction": Field(0.2, lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1)"),
        "nonfinite": Field("drop", _choice("drop", "refuse"), "drop or refuse"),
        "cuts": Field([], _cuts, "a cut preset name or a list of cut expressions"),
        "container": Field(
            None,
            _opt(lambda v: isinstance(v, str) and v != ""),
            "null or a branch-name prefix (e.g. 'jet_' or '...AuxDyn.')",
        ),
        "leading": Field(None, _opt(_pos_int), "null (all jets) or N: the leading N per event"),
        "chunk_size": Field(100_000, _pos_int, "a positive integer (entries read at a time)"),
        "group": Field(
            {},
            _group,
            "{} or a mapping {size: G, by: sequence|event, order: file|pt, "
            "overflow: drop|new_group, event: BRANCH}",
        ),
        "csv_objects": Field(
            ["j"],
            lambda v: _str_list(v) and len(v) > 0 and all(x in CSV_OBJECTS for x in v),
            "a non-empty list of CSV object types from " + ", ".join(CSV_OBJECTS),
        ),
    },
    "normalisation": {
        "kind": Field("custom_4d", _choice(*NORMALISATIONS), "one of " + ", ".join(NORMALISATIONS)),
    },
    "model": {
        "preset": Field(None, _opt(lambda v: v in PRESETS), "null or one of " + ", ".join(PRESETS)),
        "encoder": Field([200, 100, 50], _int_list, "a list of positive layer widths"),
        "latent": Field(3, _pos_int, "a positive integer"),
        "decoder": Field(None, _opt(_int_list), "null (mirror the encoder) or a list"),
        "activation": Field("tanh", _choice(*ACTIVATIONS), "one of " + ", ".join(ACTIVATIONS)),
        "batch_norm": Field(False, lambda v: isinstance(v, bool), "true or false"),
        "dropout": Field(0.0, lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
        "latent_activation": Field(False, lambda v: isinstance(v, bool), "true or false"),
        "stage1": Field(
            None,
            _opt(lambda v: (isinstance(v, str) and v != "") or isinstance(v, dict)),
            "null, the path of a finished stage-1 job dir (relative to this config), or a "
            "mapping {pick: best, by: METRIC, from: [JOB_DIR, ...]}",
        ),
    },
    "train": {
        "optimizer": Field("adam", _choice(*OPTIMIZERS), "adam or adamw"),
        "lr": Field(1e-3, lambda v: _is_num(v) and v > 0, "a positive number"),
        "weight_decay": Field(0.0, lambda v: _is_num(v) and v >= 0, "a number >= 0"),
        "batch_size": Field(256, _pos_int, "a positive integer"),
        "epochs": Field(30, _pos_int, "a positive integer"),
        "schedule": Field("constant", _choice(*SCHEDULES), "one of " + ", ".join(SCHEDULES)),
        "patience": Field(None, _opt(_pos_int), "null or a positive integer (epochs)"),
        "min_delta": Field(0.0, lambda v: _is_num(v) and v >= 0, "a number >= 0"),
        "device": Field("auto", _choice(*DEVICES), "auto, cpu or cuda"),
        "threads": Field(None, _opt(_pos_int), "null (from the scheduler) or a count"),
        "checkpoint_every_s": Field(
            None, _opt(lambda v: _is_num(v) and v > 0), "null (each epoch) or seconds"
        ),
        "compile": Field(
            False, lambda v: isinstance(v, bool), "true (torch.compile the model) or false"
        ),
        "tensorboard": Field(
            False,
            lambda v: isinstance(v, bool),
            "true (per-epoch scalars for TensorBoard; optional extra) or false",
        ),
        "latent_noise_bits": Field(
            None, _opt(lambda v: _is_int(v) and 1 <= v <= 24), "null or bits per latent value"
        ),
        "latent_noise_epochs": Field(None, _opt(_pos_int), "null (all epochs) or a count"),
        # rate-aware training and symmetry augmentation (hepae_core.training.rate_model, .augment)
        "rate_lambda": Field(
            0.0, lambda v: _is_num(v) and v >= 0, "a number >= 0 (weight of the bits per jet)"
        ),
        "rate_quantise": Field("noise", _choice("noise", "ste"), "noise or ste"),
        "rate_residual_bounds": Field(
            {},
            lambda v: (
                isinstance(v, dict)
                and all(isinstance(k, str) and _is_num(b) and b > 0 for k, b in v.items())
            ),
            "{} or a mapping variable -> bound > 0 (relative for scale variables)",
        ),
        "augment": Field(
            {},
            _augment,
            "{} or a mapping {phi_rotation: true|false, eta_reflection: true|false, "
            "jes_sigma: a number >= 0}",
        ),
        "val_fraction": Field(
            0.1, lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1) of the train jets"
        ),
    },
    "evaluate": {
        "residuals": Field({}, _residual_map, "a mapping variable -> relative|absolute|angle"),
        "max_jets": Field(None, _opt(_pos_int), "null (all test jets) or a count"),
        "timing_jets": Field(100_000, _pos_int, "a positive integer"),
        "plots": Field(True, lambda v: isinstance(v, bool), "true or false"),
        "round": Field([], _str_list, "a list of integer-valued variables to round"),
        "baselines": Field(
            True, lambda v: isinstance(v, bool), "true (quantiser/PCA/lossless curves) or false"
        ),
        "bits": Field(
            list(range(6, 17)),
            lambda v: (
                isinstance(v, list) and len(v) > 0 and all(_is_int(x) and 1 <= x <= 24 for x in v)
            ),
            "a non-empty list of bits per value, each 1..24",
        ),
        "pca_components": Field(None, _opt(_pos_int), "null (the latent size) or a count"),
    },
}
TOP_LEVEL: dict[str, Field] = {
    "name": Field(None, _opt(lambda v: isinstance(v, str)), "a string"),
    "seed": Field(0, lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
}
SECTIONS = tuple(SCHEMA)


def known_keys() -> list[str]:
    """All dotted keys a config may set, e.g. ``train.lr``."""
    keys = list(TOP_LEVEL)
    for section, fields in SCHEMA.items():
        keys.extend(f"{section}.{name}" for name in fields)
    return keys


def _suggest(key: str, options: list[str]) -> str:
    """Did-you-mean for a dotted key: a top-level key set inside a section (``train.seed``)
    is pointed to its real place before any near spelling."""
    last = key.rsplit(".", 1)[-1]
    if "." in key and last in TOP_LEVEL:
        return f"; did you mean the top-level '{last}'? (write it unindented, outside any section)"
    return did_you_mean(key, options)


def _copy(value: Any) -> Any:
    # Only lists and dicts are mutable among the defaults; copying nothing else keeps
    # resolving (done once per grid point when planning) cheap: no copy.deepcopy, whose
    # memo bookkeeping cost half of planning 10,000 points.
    # Scalars inside are taken as they are, without a call each (most lists are of numbers).
    if isinstance(value, list):
        return [_copy(v) if isinstance(v, list | dict) else v for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) if isinstance(v, list | dict) else v for k, v in value.items()}
    return value


# The defaults as plain dicts, with the keys whose default is mutable (a list or a dict),
# built on first use: defaults() then copies a dict per section and only those values
# (a planner resolves one config per grid point; walking every field cost a third of it).
_Template = tuple[dict[str, Any], dict[str, tuple[dict[str, Any], tuple[str, ...]]]]
_DEFAULT_TEMPLATE: _Template | None = None


def _default_template() -> _Template:
    global _DEFAULT_TEMPLATE
    if _DEFAULT_TEMPLATE is None:
        top = {k: f.default for k, f in TOP_LEVEL.items()}
        sections: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        for section, fields in SCHEMA.items():
            values = {k: f.default for k, f in fields.items()}
            mutable = tuple(k for k, v in values.items() if isinstance(v, list | dict))
            sections[section] = (values, mutable)
        _DEFAULT_TEMPLATE = (top, sections)
    return _DEFAULT_TEMPLATE


def defaults() -> dict[str, Any]:
    """A complete config with every default filled in."""
    top, sections = _default_template()
    out: dict[str, Any] = {k: _copy(v) for k, v in top.items()}
    for section, (values, mutable) in sections.items():
        copy = values.copy()
        for k in mutable:
            copy[k] = _copy(copy[k])
        out[section] = copy
    return out


def resolve(raw: Any, source: str = "config") -> dict[str, Any]:
    """Validate a raw config mapping and return it complete, with defaults and presets.

    Parameters
    ----------
    raw
        The parsed YAML: a mapping of sections to mappings.
    source
        Where it came from (a file name), used in error messages.

    Raises
    ------
    ConfigError
        Naming the first bad key, what it expects and what to do.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(
            source=source,
            key=None,
            message=f"the config must be a mapping of sections, got {type(raw).__name__}",
        )
    cfg = defaults()
    allowed = list(TOP_LEVEL) + list(SECTIONS)
    for key, value in raw.items():
        if not isinstance(key, str) or key not in allowed:
            raise ConfigError(
                source=source,
                key=str(key),
                message="unknown key" + _suggest(str(key), allowed + known_keys()),
            )
        if key in TOP_LEVEL:
            _check(source, key, TOP_LEVEL[key], value)
            cfg[key] = value
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(source=source, key=key, message="must be a mapping of settings")
        fields = SCHEMA[key]
        for sub, subval in value.items():
            dotted = f"{key}.{sub}"
            if sub not in fields:
                raise ConfigError(
                    source=source,
                    key=dotted,
                    message="unknown key" + _suggest(dotted, known_keys()),
                )
            _check(source, dotted, fields[sub], subval)
        section = dict(value)
        if key == "model":
            section = _apply_preset(section)
        cfg[key].update(_copy(section))
    _check_consistency(cfg, source)
    return cfg


def _check(source: str, key: str, field: Field, value: Any) -> None:
    if not field.check(value):
        raise ConfigError(source=source, key=key, message=f"expects {field.expects}, got {value!r}")


def _apply_preset(model: dict[str, Any]) -> dict[str, Any]:
    """Fill a model section from its preset; keys set beside the preset override it."""
    preset = model.get("preset")
    if preset is None:
        return model
    merged = dict(PRESETS[preset])
    merged.update(model)
    return merged


def variables_of(cfg: Mapping[str, Any]) -> list[str]:
    """The list of variable names a resolved config trains on."""
    v = cfg["data"]["variables"]
    return list(VARIABLE_SETS[v]) if isinstance(v, str) else list(v)


def residual_kinds(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Residual kind per variable: the config's choice, else the variable's default."""
    kinds = {v: default_residual_kind(v) for v in variables_of(cfg)}
    kinds.update(cfg["evaluate"]["residuals"])
    return kinds


def _check_consistency(cfg: dict[str, Any], source: str) -> None:
    names = variables_of(cfg)
    if len(set(names)) != len(names):
        raise ConfigError(source=source, key="data.variables", message="lists a variable twice")
    n_in = len(names)
    latent = cfg["model"]["latent"]
    group = group_of(cfg)
    if group is not None and group["size"] < 1:
        raise ConfigError(
            source=source,
            key="data.group.size",
            message=f"is {group['size']}; a group holds at least 1 jet: choose 1 or more",
        )
    if cfg["model"]["stage1"] is not None:
        _check_stage1(cfg["model"]["stage1"], source)
        if group is None:
            raise ConfigError(
                source=source,
                key="data.group",
                message="is not set, but model.stage1 is: a stage-2 model compresses groups of "
                "stage-1 latent vectors; set data.group.size",
            )
        # the stage-2 input width (G x z1) is known only once the stage-1 model is read
    elif group is not None and latent >= n_in * group["size"]:
        raise ConfigError(
            source=source,
            key="model.latent",
            message=f"is {latent} but a group of {group['size']} jets has "
            f"{n_in * group['size']} values: choose a latent size below {n_in * group['size']}",
        )
    elif group is None and latent >= n_in:
        raise ConfigError(
            source=source,
            key="model.latent",
            message=f"is {latent} but the data has {n_in} variables: an autoencoder must compress, "
            f"so choose a latent size below {n_in}",
        )
    for key in cfg["evaluate"]["residuals"]:
        if key not in names:
            raise ConfigError(
                source=source,
                key=f"evaluate.residuals.{key}",
                message="names a variable that is not trained on",
            )
    for i, var in enumerate(cfg["evaluate"]["round"]):
        if var not in names:
            raise ConfigError(
                source=source,
                key=f"evaluate.round.{i}",
                message=f"'{var}' is not a trained variable{did_you_mean(var, names)} "
                f"(trained: {', '.join(names)})",
            )
    _check_cuts(cfg, source, names)
    _check_rate_augment(cfg, source, names, group)
    norm = cfg["normalisation"]["kind"]
    if norm.startswith("custom_"):
        from hepae_core.variables import CUSTOM_FORMULAS

        missing = [v for v in names if v not in CUSTOM_FORMULAS]
        if missing:
            raise ConfigError(
                source=source,
                key="normalisation.kind",
                message=f"{norm} has no formula for {', '.join(missing)}; use standard or minmax",
            )


def _check_rate_augment(
    cfg: dict[str, Any], source: str, names: list[str], group: dict[str, Any] | None
) -> None:
    """train.rate_lambda and train.augment: one jet per input, variables they can act on."""
    t = cfg["train"]
    per_jet = group is None and cfg["model"]["stage1"] is None
    if t["rate_lambda"] > 0:
        clash = (
            "data.group" if not per_jet
            else "train.latent_noise_bits" if t["latent_noise_bits"]
            else "train.compile" if t["compile"]
            else None
        )  # fmt: skip
        if clash:
            raise ConfigError(
                source=source,
                key="train.rate_lambda",
                message=f"is {t['rate_lambda']} but {clash} is set: rate-aware training "
                "quantises the latent of a per-jet model itself; drop one of the two",
            )
    for var in t["rate_residual_bounds"]:
        if var not in names:
            raise ConfigError(
                source=source,
                key=f"train.rate_residual_bounds.{var}",
                message=f"'{var}' is not a trained variable{did_you_mean(var, names)}",
            )
    if t["rate_residual_bounds"] and not t["rate_lambda"] > 0:
        raise ConfigError(
            source=source,
            key="train.rate_residual_bounds",
            message="is set but train.rate_lambda is 0: the residuals' bits count only in "
            "rate-aware training; set train.rate_lambda > 0 or remove the bounds",
        )
    if t["augment"]:
        if not per_jet:
            raise ConfigError(
                source=source,
                key="train.augment",
                message="is set with data.group: augmentation acts on one jet per input; "
                "remove train.augment",
            )
        from hepae_core.training.augment import problem

        found = problem(names, t["augment"])
        if found:
            raise ConfigError(source=source, key=f"train.augment.{found[0]}", message=found[1])


def _check_cuts(cfg: dict[str, Any], source: str, names: list[str]) -> None:
    """Cuts must parse and name known variables; branches may map trained or cut variables."""
    data = cfg["data"]
    if isinstance(data["cuts"], list) and not data["cuts"] and not data["branches"]:
        return  # nothing to check (the common case: skipped per grid point when planning)
    from hepae_core.data.cuts import check_cuts, cut_variables
    from hepae_core.variables import KNOWN_VARIABLES

    problems = check_cuts(data["cuts"], set(names) | KNOWN_VARIABLES | set(data["branches"]))
    if problems:
        key, message = problems[0]
        raise ConfigError(source=source, key=key, message=message)
    usable = names + [v for v in cut_variables(data["cuts"]) if v not in names]
    for key in data["branches"]:
        if key not in usable:
            raise ConfigError(
                source=source,
                key=f"data.branches.{key}",
                message="maps a variable that is neither in data.variables nor used by data.cuts"
                + _suggest(key, usable),
            )


def load(path: str | Path) -> dict[str, Any]:
    """Read and resolve a config file (safe YAML 1.2, duplicate keys refused).

    Errors name ``file:line`` of the offending key where the file sets it.
    """
    path = Path(path)
    raw, lines, _ = yamlio.load(path, ConfigError)
    try:
        return resolve(raw, str(path))
    except ConfigError as exc:
        if exc.key and exc.source == str(path):
            located = yamlio.where(str(path), lines, *exc.key.split("."))
            raise ConfigError(source=located, key=exc.key, message=exc.message) from None
        raise


#: Keys added after the first release (0.1.0), with their defaults. While at the default
#: they are left out of the canonical text, so a campaign planned before they existed keeps
#: its job ids when planned again (and nothing is trained twice); ``resolve`` fills them in
#: when a job reads its config. A key added later goes here with its default.
LATER_KEYS: dict[tuple[str, str], Any] = {
    ("train", "augment"): {},
    ("train", "rate_lambda"): 0.0,
    ("train", "rate_quantise"): "noise",
    ("train", "rate_residual_bounds"): {},
}


def canonical_form(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` without the :data:`LATER_KEYS` that are at their default (a shallow copy of
    the sections it changes; ``cfg`` is left as it is)."""
    out: dict[str, Any] = dict(cfg)
    for (section, key), default in LATER_KEYS.items():
        block = out.get(section)
        if isinstance(block, Mapping) and key in block and block[key] == default:
            out[section] = {k: v for k, v in block.items() if k != key}
    return out


def dump(cfg: Mapping[str, Any]) -> str:
    """Canonical YAML text of a config (sorted keys), the form job ids are hashed from."""
    return yamlio.dump(canonical_form(cfg), sort_keys=True, default_flow_style=None)
