"""Grouped encoding: groups, padding masks, whole-event splits, masked loss, grouped jobs."""

import json

import numpy as np
import pytest
import torch
import uproot
from conftest import run_job_process, write_job

from hepae_core.config import group_of, resolve
from hepae_core.data.grouping import form_groups, split_groups
from hepae_core.errors import EXIT_BAD_INPUT, ConfigError, DataError
from hepae_core.training.train import Trainer, evaluate_loss, masked_mse

CFG = {"data": {"source": "test.root"}}


def spec(**kw):
    return group_of(resolve({"data": {"group": kw}}))


def test_sequence_groups_are_consecutive_jets_and_the_last_is_padded():
    g = form_groups(CFG, spec(size=2), 23, pt=None)
    assert g.rows.shape == (12, 2)
    assert g.rows[0].tolist() == [0, 1] and g.rows[10].tolist() == [20, 21]
    assert g.rows[11].tolist() == [22, -1]
    assert g.counts["group.padded_slots"] == 1 and g.counts["group.jets"] == 23


def test_order_pt_puts_the_leading_jet_first_within_a_group():
    pt = np.array([10, 30, 20, 5, 50, 40, 1, 2, 3, 4, 5, 6] * 4, dtype=np.float32)
    g = form_groups(CFG, spec(size=3, order="pt"), 48, pt=pt)
    assert g.rows[0].tolist() == [1, 2, 0]  # pt 30, 20, 10
    assert g.rows[1].tolist() == [4, 5, 3]  # pt 50, 40, 5


def events_of(counts):
    return np.repeat(np.arange(len(counts)), counts).astype(np.float64)


def test_by_event_drop_and_new_group_count_what_they_do():
    counts = [3, 1, 2, 5, 2, 2, 1, 1, 2, 2, 2, 4]  # 27 jets in 12 events
    ev = events_of(counts)
    pt = np.arange(len(ev), dtype=np.float32)  # later jets harder: order pt reverses
    g = form_groups(CFG, spec(size=2, by="event", order="pt"), len(ev), pt, ev)
    assert g.rows.shape == (12, 2)
    assert g.rows[0].tolist() == [2, 1]  # event 0 = jets 0,1,2: the two hardest
    assert g.rows[1].tolist() == [3, -1]  # event 1: one jet, one padded slot
    # dropped beyond G=2: 1 + 3 + 2 = 6
    assert g.counts["group.jets_dropped"] == 6 and g.counts["group.padded_slots"] == 3
    n = form_groups(CFG, spec(size=2, by="event", overflow="new_group"), len(ev), pt, ev)
    # ceil(count / 2) groups per event: 2+1+1+3+1+1+1+1+1+1+1+2 = 16
    assert n.rows.shape == (16, 2) and n.counts["group.overflow_groups"] == 4
    assert n.counts["group.jets_dropped"] == 0 and n.counts["group.jets"] == 27
    # the split keeps the groups of one event together
    parts = split_groups(n, 0.25, 0.2, seed=3)
    for a, b in ((parts.train, parts.val), (parts.train, parts.test), (parts.val, parts.test)):
        assert not set(n.unit[a]) & set(n.unit[b])
    assert sorted(np.concatenate([parts.train, parts.val, parts.test]).tolist()) == list(range(16))


def test_group_sizes_the_data_cannot_fill_are_refused():
    with pytest.raises(DataError, match="make only 9 groups") as e:
        form_groups(CFG, spec(size=10), 90, pt=None)
    assert e.value.key == "data.group.size"
    ev = events_of([3, 1] * 6)
    with pytest.raises(DataError, match="no event has more than 3 jets"):
        form_groups(CFG, spec(size=4, by="event"), len(ev), None, ev)
    with pytest.raises(ConfigError, match="at least 1 jet") as e:
        resolve({"data": {"group": {"size": 0}}})
    assert e.value.key == "data.group.size"
    with pytest.raises(ConfigError, match=r"data\.group"):
        resolve({"data": {"group": {"size": 2, "by": "run"}}})
    with pytest.raises(ConfigError, match="below 8"):  # 2 jets x 4 values
        resolve({"data": {"group": {"size": 2}}, "model": {"latent": 8}})


def test_masked_loss_ignores_padded_slots():
    x = torch.tensor([[1.0, 2.0, 0.0, 0.0]])
    y = torch.tensor([[2.0, 2.0, 7.0, -3.0]])
    m = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # (2-1)^2 + 0 over the two real values = 0.5; the padded 7 and -3 do not count
    assert masked_mse(y, x, m).item() == pytest.approx(0.5)

    model = torch.nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.copy_(torch.eye(4) * 2)
        model.bias.zero_()
    # y = 2x: errors are x, real values 1 and 2 -> (1 + 4) / 2
    assert evaluate_loss(model, x, m) == pytest.approx(2.5)


def test_trainer_loss_is_the_mean_over_real_values_only():
    """At a learning rate too small to move the weights, the epoch's training loss is the
    masked MSE of the initial model: sum over real values / their count."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    m = torch.ones(200, 8)
    m[::3, 4:] = 0  # every third group has its second jet missing
    x = x * m  # padded slots hold zeros, as grouping.gather writes them
    tcfg = {"batch_size": 32, "lr": 1e-20, "weight_decay": 0.0, "optimizer": "adam",
            "schedule": "constant", "epochs": 1, "patience": None, "min_delta": 0.0,
            "checkpoint_every_s": None}  # fmt: skip
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Linear(3, 8))
    with torch.no_grad():
        err = (model(x) - x) ** 2
        expected = float((err * m).sum() / m.sum())  # 200*8 - 67*4 = 1332 real values
        unmasked = float(err.mean())
    assert abs(expected - unmasked) > 1e-3  # the padded outputs are not zero: it matters
    result = Trainer(model, x, x[:50], tcfg, seed=1, m_train=m, m_val=m[:50]).run()
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)
    # and without a mask (per-jet models): the plain mean over every value, as val_loss
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 3), torch.nn.Linear(3, 8))
    result = Trainer(model, x, x[:50], tcfg, seed=1).run()
    assert result.history[0]["train_loss"] == pytest.approx(unmasked, rel=1e-5)


def write_events_file(path, n_events=300, seed=0):
    """A flat jet tree with an event branch: 1 to 4 jets per event, pT-falling."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, n_events)
    ev = np.repeat(np.arange(n_events), counts)
    n = len(ev)
    pt = rng.uniform(25, 300, n).astype(np.float32)
    eta = rng.uniform(-2.5, 2.5, n).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    e = (pt * np.cosh(eta) * 1.02).astype(np.float32)
    with uproot.recreate(path) as f:
        f["jets"] = {"event": ev.astype(np.int64), "pt": pt, "eta": eta, "phi": phi, "E": e}
    return counts


GROUPED_JOB = {
    "data": {"source": "bundled:dijet_4d", "max_jets": 3002, "group": {"size": 4}},
    "model": {"encoder": [16, 8], "latent": 6},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1},
    "evaluate": {"plots": False, "timing_jets": 1000, "bits": [8]},
}


def test_grouped_job_reports_per_jet_per_slot_metrics_and_ratio(tmp_path):
    job = write_job(tmp_path / "g", GROUPED_JOB)
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    m = json.loads((job / "metrics.json").read_text())
    # 3002 jets in groups of 4: 751 groups, the last one with 2 jets
    assert m["group.groups"] == 751 and m["group.padded_slots"] == 2
    assert m["train_jets"] + m["val_jets"] + m["test_jets"] == 3002
    assert m["n_inputs"] == 16
    assert m["compression_ratio"] == pytest.approx(4 * 4 / 6)
    jpg = m["group.jets_per_group"]
    assert m["ae.bits_per_jet"] == pytest.approx(32 * 6 / jpg)
    assert m["aeq8.bits_per_jet"] == pytest.approx(6 * 8 / jpg)
    assert sum(m[f"slot{k}.jets"] for k in range(4)) == m["test_jets"]
    for k in range(4):
        assert m[f"slot{k}.pt.width"] > 0
    # the baselines are the per-jet ones, unchanged: 8-bit scalar quantiser on pt is fine
    assert 0 < m["sq8.pt.width"] < 0.01
    ev = np.load(job / "evaluation.npz")
    assert ev["inputs"].shape == (m["test_jets"], 4) and np.isfinite(ev["outputs"]).all()


def test_by_event_job_on_a_file_with_event_numbers(tmp_path):
    counts = write_events_file(tmp_path / "ev.root")
    cfg = json.loads(json.dumps(GROUPED_JOB))
    cfg["data"] = {
        "source": str(tmp_path / "ev.root"),
        "group": {"size": 3, "by": "event", "order": "pt", "overflow": "drop"},
    }
    job = write_job(tmp_path / "e", cfg)
    out = run_job_process(job)
    assert out.returncode == 0, out.stderr
    m = json.loads((job / "metrics.json").read_text())
    assert m["group.events"] == len(counts) == m["group.groups"]
    assert m["group.jets_dropped"] == int(np.maximum(counts - 3, 0).sum())
    assert m["group.padded_slots"] == int(np.maximum(3 - counts, 0).sum())
    assert m["slot0.jets"] >= m["slot1.jets"] >= m["slot2.jets"]


def test_by_event_on_the_bundled_sample_is_refused_clearly(tmp_path):
    cfg = json.loads(json.dumps(GROUPED_JOB))
    cfg["data"]["group"] = {"size": 2, "by": "event"}
    job = write_job(tmp_path / "b", cfg)
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT
    assert "data.group.by" in out.stderr and "without event numbers" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (job / "metrics.json").exists() and not (job / "model.pt").exists()


def test_a_group_too_large_for_the_data_is_refused(tmp_path):
    cfg = json.loads(json.dumps(GROUPED_JOB))
    cfg["data"]["max_jets"] = 200
    cfg["data"]["group"] = {"size": 32}
    cfg["model"]["latent"] = 3
    job = write_job(tmp_path / "big", cfg)
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT
    assert "data.group.size" in out.stderr and "at most 20" in out.stderr
    assert "Traceback" not in out.stderr and not (job / "model.pt").exists()


def test_by_event_without_an_event_branch_names_data_group_event(tmp_path):
    write_events_file(tmp_path / "ev.root")
    cfg = json.loads(json.dumps(GROUPED_JOB))
    cfg["data"] = {
        "source": str(tmp_path / "ev.root"),
        "group": {"size": 2, "by": "event", "event": "evt"},
    }
    job = write_job(tmp_path / "n", cfg)
    out = run_job_process(job)
    assert out.returncode == EXIT_BAD_INPUT
    assert "'data.group.event'" in out.stderr and "no 'evt'" in out.stderr
    assert "Traceback" not in out.stderr and not (job / "model.pt").exists()
