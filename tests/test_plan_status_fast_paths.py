"""The fast paths of plan and status give what the plain code gives: point configs equal to
``set_dotted`` key by key, canonical texts equal to ``hepae_core.config.dump`` (later keys
set or at their default), tables equal to the cell-by-cell layout, and job dirs equal to
the Path of the joined string."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest_gs import TINY_BASE, manifest, set_state, write

from gridsearch.campaign import open_campaign
from gridsearch.plan import _Canon, plan
from gridsearch.space import _set_all, iter_points, set_dotted
from gridsearch.spacefile import load_space
from gridsearch.status import campaign_status
from gridsearch.table import _table_ragged, table
from hepae_core import config as hc


def test_points_equal_set_dotted_key_by_key(tmp_path):
    """Each section copied once per point gives the configs of one set_dotted per key:
    several keys of one section, three-part keys, repeats; the base's sections unchanged."""
    space = load_space(
        write(
            tmp_path / "s.yaml",
            "name: t\n" + TINY_BASE + "grid:\n"
            "  train.lr: [1.0e-3, 2.0e-3]\n"
            "  train.weight_decay: [0, 1.0e-4]\n"
            "  model.latent: [2, 3]\n"
            "  data.group.size: [2, 4]\n"
            "  data.group.by: [sequence, random]\n"
            "repeat: 2\n",
        )
    )
    base_before = json.dumps(space.base, sort_keys=True)
    points = list(iter_points(space))
    assert len(points) == 64
    for point in points:
        raw = dict(space.base)
        for key, value in point.params.items():
            set_dotted(raw, key, value)
        assert raw == point.raw
        assert repr(raw) == repr(point.raw)  # the same types: 0 stays 0, not 0.0
    assert json.dumps(space.base, sort_keys=True) == base_before


def test_set_all_copies_a_whole_section_value_before_setting_inside():
    """A value that is a whole section (set by one key) is copied before a later key sets
    inside it, as set_dotted does: the value given stays as it was."""
    value = {"epochs": 3}
    split = [["train"], ["train", "lr"], ["data", "group", "size"], ["data", "group", "by"]]
    values = [value, 0.1, 2, "sequence"]
    raw: dict = {"data": {"source": "x"}}
    _set_all(raw, split, values)
    plain: dict = {"data": {"source": "x"}}
    for parts, v in zip(split, values, strict=True):
        set_dotted(plain, ".".join(parts), v)
    assert (
        raw
        == plain
        == {
            "data": {"source": "x", "group": {"size": 2, "by": "sequence"}},
            "train": {"epochs": 3, "lr": 0.1},
        }
    )
    assert value == {"epochs": 3}


def test_canonical_dump_equals_hepae_core_dump_with_later_keys():
    """Later keys at their default are left out, set ones kept, exactly as hc.dump does,
    also when one cache serves both kinds of train section."""
    canon = _Canon()
    raws = [
        {"train": {"lr": 1e-3}},
        {"train": {"lr": 1e-3, "rate_lambda": 0.5, "rate_residual_bounds": {"pt": 0.01}}},
        {"train": {"lr": 1e-3, "rate_lambda": 0.0, "rate_quantise": "noise"}},
        {"train": {"lr": 1e-3, "augment": {"phi_rotation": True}}},
        {"train": {"lr": 1e-3}, "seed": 3},
    ]
    texts = []
    for raw in raws:
        cfg = hc.resolve(raw)
        texts.append(canon.dump(cfg, skip="name"))
        assert texts[-1] == hc.dump({k: v for k, v in cfg.items() if k != "name"})
    assert "rate_lambda" not in texts[0] and "rate_lambda: 0.5" in texts[1]
    assert "augment" in texts[3] and "augment" not in texts[4]
    assert texts[0] == texts[2]  # set to their defaults: the same text, the same job id


def test_table_equals_cell_by_cell_layout():
    rows = [
        [0, "abc", None, 1.5e-4, True, [1, 2], "x\x1b[31my", "é"],
        [10, "a longer cell", "z", 3.0, False, [], "", "tab\there"],
    ]
    head = ["#", "id", "name", "train", "flag", "list", "info", "u"]
    assert table(head, rows) == _table_ragged(head, rows)
    assert "\\x1b" in table(head, rows)  # the escape sequence is shown, not sent
    assert table(head, []) == _table_ragged(head, []) == "#  id  name  train  flag  list  info  u"
    short = [[1, 2], [3]]  # ragged rows keep the old layout
    assert table(["a", "b"], short) == _table_ragged(["a", "b"], short)


def test_status_job_dirs_equal_joined_paths(tmp_path):
    """A job's dir is the Path of root + its manifest ``dir``, the standard jobs/<id> (made
    as a child Path) and any other (a manifest written by hand or an older version)."""
    space = write(tmp_path / "s.yaml", "name: t\n" + TINY_BASE + "grid:\n  model.latent: [2, 3]\n")
    camp = tmp_path / "camp"
    plan(space, camp)
    m = manifest(camp)
    moved = m["jobs"][1]
    (camp / "elsewhere").mkdir()
    os.rename(camp / moved["dir"], camp / "elsewhere" / moved["id"])
    moved["dir"] = f"elsewhere/{moved['id']}"
    (camp / "manifest.json").write_text(json.dumps(m))
    set_state(camp / "elsewhere" / moved["id"], "done")
    statuses = campaign_status(open_campaign(str(camp)), query=False)
    for js, entry in zip(statuses, m["jobs"], strict=True):
        assert js.dir == Path(os.path.join(str(camp), entry["dir"]))
        assert str(js.dir) == os.path.normpath(os.path.join(str(camp), entry["dir"]))
    assert [js.state.word for js in statuses] == ["planned", "done"]
