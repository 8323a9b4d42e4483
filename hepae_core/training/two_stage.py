"""Grouped and two-stage (collective) models: their data, their model file, their evaluation.

* Grouped: G jets (d values each) per input, G x d -> z.
* Two-stage: a finished per-jet job (stage 1, d -> z1) named by ``model.stage1``; its
  encoder turns every jet into z1 values, and stage 2 compresses groups of G of them
  (G x z1 -> z2). The stage-1 weights and normalisation are copied into the stage-2
  model.pt, which therefore stands alone. ``model.stage1`` may also name several stage-1
  jobs (``pick: best``): the best of them is chosen when the stage-2 job starts and
  recorded in its ``stage1.json`` (:func:`resolve_stage1`).

Both are evaluated per jet in physical units with the residual code every model uses,
plus widths per slot; see docs/collective.md and docs/metrics.md.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepae_core import jobdir
from hepae_core.codecs.baselines import CASTS, FLOAT_BYTES, cast_roundtrip
from hepae_core.codecs.quantise import LatentQuantiser
from hepae_core.config import group_of, stage1_spec
from hepae_core.data.grouping import (
    Groups,
    event_branch,
    flat_mask,
    form_groups,
    gather,
    split_groups,
)
from hepae_core.data.normalise import Normaliser
from hepae_core.data.prepared import GroupSpec, Prepared
from hepae_core.diskfull import writing
from hepae_core.errors import DataError, HepaeError, did_you_mean
from hepae_core.evaluation.residuals import residuals, stats_table
from hepae_core.run.modelfile import load_model
from hepae_core.run.modelfile import stage1_from_payload as stage1_from_payload  # re-exported
from hepae_core.states import STAGE1_NOT_DONE
from hepae_core.training.models import AutoEncoder, build_model

SLOT_STATS = ("mean", "rms", "width")


@dataclass
class Stage1:
    """A finished per-jet model: the first stage of a two-stage model."""

    model: AutoEncoder
    norm: Normaliser
    payload: dict[str, Any]
    job_dir: Path | None = None
    choice: dict[str, Any] | None = None  # the stage1.json record

    @property
    def latent(self) -> int:
        return int(self.payload["model_config"]["latent"])


class Stage1NotDone(HepaeError):
    """No stage-1 job this stage-2 job may use is done yet: it waits on stage 1 (exit 2)."""

    error_kind = STAGE1_NOT_DONE


@dataclass
class GroupedCodec:
    """Jets in physical units <-> one latent vector per group, through one or two stages."""

    model: AutoEncoder  # the grouped (stage-2) model
    norm: Normaliser  # physical jets -> normalised (stage 1's for two-stage models)
    feat_norm: Normaliser | None  # stage-1 latent -> normalised (two-stage only)
    stage1: AutoEncoder | None
    size: int
    device: torch.device

    @torch.no_grad()
    def features(self, x_phys: np.ndarray, raw: bool = False) -> np.ndarray:
        """Per-jet inputs of the grouped model (normalised values or normalised latents).

        ``raw``: the stage-1 latents before their normalisation (to fit it).
        """
        x = self.norm.forward(x_phys)
        if self.stage1 is None:
            return x
        self.stage1.eval()
        z = self.stage1.encode(torch.from_numpy(x).to(self.device)).cpu().numpy()
        if raw:
            return z
        assert self.feat_norm is not None  # fitted on the raw latents before any other use
        return self.feat_norm.forward(z)

    @torch.no_grad()
    def jets_from_features(self, f: np.ndarray) -> np.ndarray:
        if self.stage1 is None:
            return self.norm.inverse(f)
        assert self.feat_norm is not None  # two-stage codecs always carry it
        z = torch.from_numpy(np.ascontiguousarray(self.feat_norm.inverse(f), dtype=np.float32))
        return self.norm.inverse(self.stage1.decode(z.to(self.device)).cpu().numpy())

    @torch.no_grad()
    def encode(self, x_phys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        f = gather(self.features(x_phys), rows).reshape(len(rows), -1)
        self.model.eval()
        return self.model.encode(torch.from_numpy(f).to(self.device)).cpu().numpy()

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents -> (n_groups, G, d) physical jets (every slot, padded ones too)."""
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(self.device)
        f = self.model.decode(zt).cpu().numpy().reshape(len(z) * self.size, -1)
        return self.jets_from_features(f).reshape(len(z), self.size, -1)


def _stage1_dir(job_dir: Path, entry: str) -> Path:
    """A ``model.stage1`` path: relative ones are taken from the job dir (config.yaml's).

    Normalised (``jobs/s2/../s1`` -> ``jobs/s1``) for the messages and the record; the job
    dir itself is already resolved, so this names the same directory.
    """
    return Path(os.path.normpath(job_dir / Path(entry).expanduser()))


def _candidate(job_dir: Path, entry: str, by: str | None, src: str) -> dict[str, Any]:
    """One stage-1 job's line in stage1.json: dir, id, state, value of ``by``, finished.

    A done job without the ``by`` key in its metrics.json is a bad input (the key is
    misspelt or not computed for these jobs); a null (non-finite) value only keeps the
    job out of the competition.
    """
    path = _stage1_dir(job_dir, entry)
    state = jobdir.read_state(path) if path.is_dir() else None
    word = (state or {}).get("state")
    cand: dict[str, Any] = {
        "dir": entry,
        "id": path.name,
        "state": word,
        "value": None,
        "finished": (state or {}).get("finished"),
    }
    if not path.is_dir():
        cand["missing"] = True
    if word == jobdir.RUNNING and jobdir.job_lock_holder(path) is None:
        cand["lost"] = True  # killed while running: state.json says running, no lock is held
    if by is None or word != jobdir.DONE:
        return cand
    metrics = jobdir.read_json(path / jobdir.METRICS)
    if metrics is None:
        raise HepaeError(
            source=str(path / jobdir.METRICS),
            key=None,
            message="the stage-1 job is done but this file is missing or unreadable; rerun "
            "that job with --force, then this one",
        )
    if by not in metrics:
        raise HepaeError(
            source=src,
            key="model.stage1.by",
            message=f"'{by}' is not a key of {path / jobdir.METRICS} (stage-1 job "
            f"{cand['id']}){did_you_mean(by, metrics)}; name a metrics.json key, lower is "
            "better (docs/metrics.md)",
        )
    value = metrics[by]
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        cand["value"] = float(value)
    return cand


def _describe_states(cands: list[dict[str, Any]], by: str) -> str:
    """``2 failed, 1 running, 1 not started``, in the order the states first appear."""
    words = []
    for c in cands:
        if c.get("missing"):
            words.append("missing")
        elif c.get("lost"):
            words.append("lost")
        elif c["state"] is None:
            words.append("not started")
        elif c["state"] == jobdir.DONE:
            words.append(f"done without a finite '{by}'")
        else:
            words.append(c["state"])
    return ", ".join(f"{n} {w}" for w, n in Counter(words).items())


def _recorded_choice(job_dir: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The stage1.json to keep: a resumed job (checkpoint.pt present) keeps its stage 1.

    Only a record made for this very ``model.stage1`` (same pick, by and candidates)
    counts; an edited config picks again.
    """
    if not (job_dir / jobdir.CHECKPOINT).is_file():
        return None
    rec = jobdir.read_json(job_dir / jobdir.STAGE1_CHOICE)
    if rec is None or not isinstance(rec.get("candidates"), list):
        return None
    dirs = [c.get("dir") for c in rec["candidates"] if isinstance(c, dict)]
    same = (rec.get("pick"), rec.get("by"), dirs) == (spec["pick"], spec["by"], spec["from"])
    return rec if same and rec.get("chosen") in spec["from"] else None


def resolve_stage1(cfg: dict[str, Any], job_dir: Path) -> tuple[dict[str, Any], bool]:
    """Which stage-1 job this stage-2 job uses: (the stage1.json record, reused).

    ``model.stage1`` as a path names it; as ``{pick: best, by, from}`` the candidates that
    are done with a finite ``by`` in their metrics.json compete and the lowest wins (a
    tie: the first in ``from``). A job resuming from its checkpoint keeps the choice its
    stage1.json recorded (``reused`` True), so a resumed training stays exact even when a
    better stage-1 job finished meanwhile.

    Raises
    ------
    Stage1NotDone
        No candidate competes and some are not done yet (exit 2, error kind
        ``stage1_not_done``: the job waits on stage 1).
    HepaeError
        A done candidate's metrics.json lacks ``by``, or every candidate is done without
        a finite value of it.
    """
    spec = stage1_spec(cfg)
    assert spec is not None  # called for two-stage configs (model.stage1 set) only
    recorded = _recorded_choice(job_dir, spec)
    if recorded is not None:
        return recorded, True
    src = str(job_dir / jobdir.CONFIG)
    by = spec["by"]
    cands = [_candidate(job_dir, entry, by, src) for entry in spec["from"]]
    if spec["pick"] == "path":
        chosen = cands[0]
    else:
        competing = [c for c in cands if c["value"] is not None]
        if not competing:
            n = len(cands)
            states = _describe_states(cands, by)
            jobs = "the stage-1 job is not" if n == 1 else f"none of the {n} stage-1 jobs is"
            if all(c["state"] == jobdir.DONE for c in cands):
                raise HepaeError(
                    source=src,
                    key="model.stage1",
                    message=f"{jobs} usable: {states}; choose another model.stage1.by",
                )
            raise Stage1NotDone(
                source=src,
                key="model.stage1",
                message=f"{jobs} done ({states}); run or rerun them until one is done, "
                "then this job",
            )
        chosen = min(competing, key=lambda c: c["value"])  # the first of equal ones
    record = {
        "pick": spec["pick"],
        "by": by,
        "chosen": chosen["dir"],
        "chosen_id": chosen["id"],
        "value": chosen["value"],
        "time": jobdir.now_iso(),
        "candidates": [{k: v for k, v in c.items() if k != "missing"} for c in cands],
    }
    return record, False


def load_stage1(cfg: dict[str, Any], job_dir: Path, variables: list[str]) -> Stage1:
    """The stage-1 model ``model.stage1`` names or picks; HepaeError (exit 2) when unusable.

    The choice (:func:`resolve_stage1`) is written to the job dir's stage1.json once the
    chosen job has passed every check.
    """
    choice, reused = resolve_stage1(cfg, job_dir)
    path = _stage1_dir(job_dir, choice["chosen"])
    src = str(path)

    def bad(message: str, cls: type[HepaeError] = HepaeError) -> HepaeError:
        return cls(source=src, key="model.stage1", message=message)

    if not path.is_dir():
        raise bad(
            "no stage-1 job directory here; model.stage1 names a finished per-jet job dir "
            "(relative paths are taken from the directory of config.yaml)"
        )
    state = (jobdir.read_state(path) or {}).get("state")
    if state != jobdir.DONE or not (path / jobdir.MODEL).is_file():
        raise bad(
            f"the stage-1 job is not finished (state: {state or 'none'}); run it first, then "
            "this job",
            Stage1NotDone,
        )
    model, norm, payload = load_model(path / jobdir.MODEL)
    if payload.get("group") or payload.get("stage1"):
        raise bad("is a grouped model; stage 1 must be a per-jet model (one jet per input)")
    if list(payload["variables"]) != list(variables):
        raise bad(
            f"was trained on {', '.join(payload['variables'])} but this config's "
            f"data.variables are {', '.join(variables)}: use the same variables"
        )
    if not reused:
        target = job_dir / jobdir.STAGE1_CHOICE
        with writing(target):
            jobdir.atomic_write_json(target, choice)
    return Stage1(model=model, norm=norm, payload=payload, job_dir=path, choice=choice)


def choice_metrics(stage1: Stage1) -> dict[str, Any]:
    """``stage1.id`` and ``stage1.pick_value`` for a stage-2 job's metrics.json."""
    choice = stage1.choice or {}
    return {"stage1.id": choice.get("chosen_id"), "stage1.pick_value": choice.get("value")}


def prepare(job_dir: Path, cfg: dict[str, Any]) -> Prepared:
    """Read, group, split and normalise for a grouped or two-stage job: a Prepared."""
    from hepae_core.config import variables_of

    group = group_of(cfg)
    assert group is not None  # JobRun.prepare comes here for grouped configs only
    variables = variables_of(cfg)
    stage1 = load_stage1(cfg, job_dir, variables) if cfg["model"]["stage1"] else None
    if stage1 is not None and cfg["model"]["latent"] >= group["size"] * stage1.latent:
        n = group["size"] * stage1.latent
        raise HepaeError(
            source=str(job_dir / jobdir.CONFIG),
            key="model.latent",
            message=f"is {cfg['model']['latent']}, but a group of {group['size']} stage-1 "
            f"latent vectors has {n} values: choose a latent size below {n}",
        )
    jets, event = _read_jets(cfg, job_dir, group)
    counts = dict(jets.counts)
    pt = jets.values[:, variables.index("pt")] if "pt" in variables else None
    if group["order"] == "pt" and pt is None:
        raise HepaeError(
            source=cfg["data"]["source"],
            key="data.group.order",
            message="is pt, but pt is not among data.variables: use order: file",
        )
    groups = form_groups(cfg, group, len(jets.values), pt, event)
    parts = split_groups(
        groups, cfg["data"]["test_fraction"], cfg["train"]["val_fraction"], cfg["seed"]
    )
    train_jets = groups.rows[parts.train]
    train_jets = train_jets[train_jets >= 0]
    codec = _new_codec(cfg, group["size"], variables, stage1, jets.values[train_jets])
    feats = codec.features(jets.values)
    # Jets outside the normalisation's domain cannot be encoded: their slots become padding.
    bad = ~np.isfinite(feats).all(axis=1)
    counts["norm_domain_errors"] = int(bad.sum())
    rows = np.where(bad[np.maximum(groups.rows, 0)] & (groups.rows >= 0), -1, groups.rows)
    groups = Groups(rows=rows, unit=groups.unit, counts=groups.counts)
    counts.update(groups.counts)
    feats = np.where(bad[:, None], 0.0, feats).astype(np.float32)
    width = feats.shape[1]

    def flat(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = groups.rows[idx]
        return gather(feats, r).reshape(len(r), -1), flat_mask(r >= 0, width)

    (x_train, m_train), (x_val, m_val), (x_test, m_test) = (
        flat(p) for p in (parts.train, parts.val, parts.test)
    )
    test_rows = groups.rows[parts.test]
    counts.update(
        train_groups=len(parts.train),
        val_groups=len(parts.val),
        test_groups=len(parts.test),
        train_jets=int((groups.rows[parts.train] >= 0).sum()),
        val_jets=int((groups.rows[parts.val] >= 0).sum()),
        test_jets=int((test_rows >= 0).sum()),
    )
    n_inputs = group["size"] * width
    spec = GroupSpec(
        n_inputs=n_inputs,
        m_train=m_train,
        m_val=m_val,
        m_test=m_test,
        codec=codec,
        train_rows=groups.rows[parts.train],
        test_rows=test_rows,
        stage1=stage1,
        model_extra=_model_extra(group, n_inputs, stage1, codec),
    )
    # the test jets are picked by rows (GroupSpec.test_rows): x_test_phys holds them all
    return Prepared(
        variables, norm=codec.norm, x_train=x_train, x_train_phys=jets.values[train_jets],
        x_val=x_val, x_test_phys=jets.values, x_test_norm=x_test, counts=counts, group=spec,
    )  # fmt: skip


def _read_jets(cfg: dict[str, Any], job_dir: Path, group: dict[str, Any]) -> tuple[Any, Any]:
    """The sample's jets and, for ``by: event``, their event numbers (else None)."""
    from hepae_core.data.jets import load_jets

    carry = event_branch(cfg, group)
    try:
        jets = load_jets(cfg, job_dir, carry)
    except DataError as exc:
        if carry and f"no branch '{carry[0]}'" in exc.message:
            raise DataError(
                source=exc.source,
                key="data.group.event",
                message=f"by: event needs a per-jet event-number branch, and there is no "
                f"'{carry[0]}': name it with data.group.event, or use by: sequence",
            ) from None
        raise
    return jets, (jets.extra.get(carry[0]) if carry else None)


def _new_codec(
    cfg: dict[str, Any],
    size: int,
    variables: list[str],
    stage1: Stage1 | None,
    x_train_phys: np.ndarray,
) -> GroupedCodec:
    """The codec of the model to train, its normalisers fitted on the training jets.

    Its model is a placeholder until training ends (JobRun puts the best one in). It is
    built first, as it always was: its weights draw from the seeded generator.
    """
    placeholder = build_model(cfg["model"], 1)
    cpu = torch.device("cpu")
    if stage1 is None:
        norm = Normaliser.fit(cfg["normalisation"]["kind"], variables, x_train_phys)
        return GroupedCodec(placeholder, norm, None, None, size, cpu)
    codec = GroupedCodec(placeholder, stage1.norm, None, stage1.model, size, cpu)
    z_train = codec.features(x_train_phys, raw=True)
    names = [f"z{i}" for i in range(stage1.latent)]
    codec.feat_norm = Normaliser.fit("standard", names, z_train[np.isfinite(z_train).all(axis=1)])
    return codec


def _model_extra(
    group: dict[str, Any], n_inputs: int, stage1: Stage1 | None, codec: GroupedCodec
) -> dict[str, Any]:
    """What a grouped or two-stage model.pt carries beside the per-jet keys."""
    extra: dict[str, Any] = {"group": group, "n_inputs": n_inputs}
    if stage1 is not None:
        assert codec.feat_norm is not None  # fitted by _new_codec for two-stage models
        extra["stage1"] = {
            "model_config": stage1.payload["model_config"],
            "state_dict": stage1.payload["state_dict"],
            "job_dir": str(stage1.job_dir),
            "val_loss": stage1.payload.get("val_loss"),
        }
        extra["feature_normalisation"] = codec.feat_norm.to_dict()
    return extra


def codec_from_payload(
    model: AutoEncoder, norm: Normaliser, payload: dict[str, Any], device: torch.device
) -> GroupedCodec:
    """The GroupedCodec of a saved grouped or two-stage model.pt."""
    stage1 = feat = None
    if payload.get("stage1"):
        stage1, _ = stage1_from_payload(payload)
        stage1 = stage1.to(device)
        feat = Normaliser.from_dict(payload["feature_normalisation"])
    return GroupedCodec(model.to(device), norm, feat, stage1, int(payload["group"]["size"]), device)


def evaluate_prepared(
    data: Prepared,
    best: AutoEncoder,
    kinds: dict[str, str],
    ecfg: dict[str, Any],
    device: torch.device,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """A grouped or two-stage job's evaluation of its trained model ``best`` on its test
    groups (JobRun.evaluate): (metrics, test jets in, jets out), stage-1 choice included."""
    spec = data.group
    assert spec is not None  # JobRun.evaluate comes here for grouped jobs only
    codec = spec.codec
    codec.model, codec.device = best, device
    if codec.stage1 is not None:
        codec.stage1 = codec.stage1.to(device)
    metrics, x_eval, out = evaluate_grouped(
        codec, data.x_test_phys, spec.test_rows, spec.train_rows, kinds, ecfg,
        stage1=codec.stage1,
    )  # fmt: skip
    if spec.stage1 is not None:
        metrics.update(choice_metrics(spec.stage1))
    return metrics, x_eval, out


def evaluate_grouped(
    codec: GroupedCodec,
    x_phys: np.ndarray,
    test_rows: np.ndarray,
    train_rows: np.ndarray,
    kinds: dict[str, str],
    ecfg: dict[str, Any],
    stage1: AutoEncoder | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics of a grouped model on the test groups: (metrics, test jets in, jets out).

    Returns per-jet arrays of the real (unpadded) slots, in physical units. The keys are
    a per-jet model's (docs/metrics.md) with bits and ratios per group of G jets, plus
    ``slot<k>.*``, ``group.*`` and, for two-stage models, ``stage1.*`` and
    ``stage2_cost.*``.
    """
    variables = codec.norm.variables
    kind_list = [kinds[v] for v in variables]
    d, g = len(variables), codec.size
    rows = test_rows
    if ecfg["max_jets"]:
        keep = np.cumsum((rows >= 0).sum(axis=1)) <= ecfg["max_jets"]
        keep[0] = True
        rows = rows[keep]
    real = rows >= 0
    n_groups, n_real = len(rows), int(real.sum())
    x_in = x_phys[rows[real]]
    t0 = time.perf_counter()
    z = codec.encode(x_phys, rows)
    t1 = time.perf_counter()
    y = codec.decode(z)
    t2 = time.perf_counter()
    out = y[real]
    latent = z.shape[1]
    m: dict[str, Any] = {}
    res = residuals(x_in, out, kind_list)
    m.update(stats_table("ae", res, variables))
    slot = np.broadcast_to(np.arange(g), rows.shape)[real]
    for k in range(g):
        sel = slot == k
        m[f"slot{k}.jets"] = int(sel.sum())
        if sel.any():
            m.update(stats_table(f"slot{k}", res[sel], variables, SLOT_STATS))
    z16 = z.astype(np.float16).astype(np.float32)
    m.update(
        stats_table("ae_f16latent", residuals(x_in, codec.decode(z16)[real], kind_list), variables)
    )
    for name in CASTS:
        cast = cast_roundtrip(x_in, name)
        m.update(stats_table(name, residuals(x_in, cast, kind_list), variables))
        m[f"{name}.bits_per_jet"] = 16 * d
        m[f"{name}.ratio"] = 2.0
    for v in variables:
        m[f"residual.{v}"] = kinds[v]
    jets_per_group = n_real / n_groups if n_groups else float("nan")
    m["group.size"] = g
    m["group.jets_per_group"] = jets_per_group
    m["input_bytes_per_jet"] = FLOAT_BYTES * d
    m["compression_ratio"] = g * d / latent
    m["compression_ratio_effective"] = jets_per_group * d / latent
    m["compression_ratio_f16"] = FLOAT_BYTES * g * d / (2 * latent)
    m["ae.bits_per_jet"] = 32 * latent / jets_per_group
    m["ae_f16latent.bits_per_jet"] = 16 * latent / jets_per_group
    m["encode_s_per_jet"] = (t1 - t0) / max(1, n_real)
    m["decode_s_per_jet"] = (t2 - t1) / max(1, n_real)
    if stage1 is not None:
        m.update(_stage1_metrics(codec, stage1, x_in, kind_list, m))
    if ecfg["baselines"] and n_real:
        t0 = time.perf_counter()
        m.update(_baseline_metrics(codec, stage1, x_phys, train_rows, x_in, z, rows, ecfg, kinds))
        m["baselines_s"] = time.perf_counter() - t0
    return m, x_in, out


def _stage1_metrics(
    codec: GroupedCodec,
    stage1: AutoEncoder,
    x_in: np.ndarray,
    kind_list: list[str],
    m: dict[str, Any],
) -> dict[str, Any]:
    """The stage-1 model alone on the test jets, and what stage 2 costs beside it.

    ``m`` holds the two-stage model's ``ae.<v>.width``.
    """
    variables = codec.norm.variables
    d = len(variables)
    with torch.no_grad():
        x1 = torch.from_numpy(codec.norm.forward(x_in)).to(codec.device)
        y1 = codec.norm.inverse(stage1(x1).cpu().numpy())
    out = stats_table("stage1", residuals(x_in, y1, kind_list), variables)
    assert codec.feat_norm is not None  # a two-stage codec normalises the stage-1 latents
    z1 = len(codec.feat_norm.variables)  # one standardised variable per stage-1 latent
    out["stage1.latent"] = z1
    out["stage1.compression_ratio"] = d / z1 if z1 else float("nan")
    for v in variables:
        w1, w2 = out[f"stage1.{v}.width"], m[f"ae.{v}.width"]
        out[f"stage2_cost.{v}.width_ratio"] = w2 / w1 if w1 else float("nan")
    return out


def _baseline_metrics(
    codec: GroupedCodec,
    stage1: AutoEncoder | None,
    x_phys: np.ndarray,
    train_rows: np.ndarray,
    x_in: np.ndarray,
    z: np.ndarray,
    rows: np.ndarray,
    ecfg: dict[str, Any],
    kinds: dict[str, str],
) -> dict[str, Any]:
    """The baselines on the test jets and the model's latent quantised at each ``k``.

    The same codecs and byte accounting as a per-jet model (the model's weights counted);
    bits per jet are per group of G jets divided by the real jets per group.
    """
    from hepae_core.codecs.registry import LatentCodec
    from hepae_core.evaluation.evaluate import (
        CURVE_STATS,
        baseline_metrics,
        model_weight_bytes,
        rate_keys,
    )

    variables = codec.norm.variables
    kind_list = [kinds[v] for v in variables]
    d, g, latent = len(variables), codec.size, z.shape[1]
    real = rows >= 0
    n_real = int(real.sum())
    jets_per_group = n_real / len(rows)
    x_train = x_phys[train_rows[train_rows >= 0]]
    bits = tuple(ecfg["bits"])
    pca_z = ecfg["pca_components"] or max(1, min(d - 1, round(latent / g)))
    m = baseline_metrics(x_in, x_train, variables, kind_list, bits, pca_z)
    z_train = codec.encode(x_phys, train_rows)
    q = LatentQuantiser.fit(z_train[np.isfinite(z_train).all(axis=1)])
    for i, (a, b) in enumerate(zip(q.lo, q.hi)):
        m[f"latent.{i}.min"] = a
        m[f"latent.{i}.max"] = b
    mb = sum(model_weight_bytes(mod) for mod in (codec.model, stage1) if mod is not None)
    for k in bits:
        # LatentCodec's encode takes jets; the grouped one takes jets and group rows
        lc = LatentCodec(variables, codec.encode, codec.decode, k, mb, kind_list, q)  # type: ignore[arg-type]
        enc = lc.encode_latent(z, n_real)
        yq = codec.decode(lc.decode_latent(enc))[real]
        m.update(stats_table(f"aeq{k}", residuals(x_in, yq, kind_list), variables, CURVE_STATS))
        m.update(
            rate_keys(lc, enc, d, lc.nominal_bits_per_jet(jets_per_group), m["rate.file_jets"], m)
        )
    return m
