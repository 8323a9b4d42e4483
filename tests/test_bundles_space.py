"""The space file's ``bundle:`` default: --bundle > space file > site profile > 1.

Dry runs only (nothing is trained): which K a submission gets is read from its notes,
its ledger record and its rendered files.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest_gs import cli, write

from gridsearch import bundles
from gridsearch.errors import GridsearchError
from gridsearch.spacefile import load_space

SPACE = """\
name: sbun
{bundle}base:
  data: {{source: bundled:dijet_4d, max_jets: 3000}}
  model: {{encoder: [8]}}
  train: {{epochs: 2, batch_size: 256}}
grid:
  train.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3, 5.0e-3, 6.0e-3]
"""


def _space(tmp_path: Path, bundle: str | None) -> Path:
    line = "" if bundle is None else f"bundle: {bundle}\n"
    return write(tmp_path / "space.yaml", SPACE.format(bundle=line))


def _plan(tmp_path: Path, bundle: str | None) -> Path:
    from gridsearch.plan import plan

    camp = tmp_path / "camp"
    plan(_space(tmp_path, bundle), camp)
    return camp


def _sites(tmp_path: Path, bundle: int | None) -> Path:
    d = tmp_path / "sites"
    extra = "" if bundle is None else f"bundle: {bundle}\n"
    write(d / "pool.yaml", "extends: condor\n" + extra)
    write(d / "here.yaml", "extends: local\n" + ("" if bundle is None else f"options: {{{extra}}}"))
    return d


def _k(capsys, camp: Path, site: str, sites_dir: Path, *more: str) -> int:
    """The bundle size a dry-run submission used (1: no bundles)."""
    code, out, err = cli(
        capsys, "submit", camp, "--site", site, "--sites-dir", sites_dir, "--dry-run", *more
    )
    assert code == 0, out + err
    record = json.loads((camp / "ledger.jsonl").read_text().splitlines()[-1])
    # jobs.txt, which every backend writes: one line per job, a bundle's share an index
    per_task = Counter(ln.split(" ")[0] for ln in (camp / record["dir"] / "jobs.txt").open())
    assert sum(per_task.values()) == 6
    return max(per_task.values())


@pytest.mark.parametrize("site", ["pool", "here"])
@pytest.mark.parametrize(
    ("space", "profile", "flag", "k"),
    [
        (None, None, None, 1),  # nothing asked: one job per task
        (None, 2, None, 2),  # the profile's
        ("3", 2, None, 3),  # the space file over the profile
        ("3", None, None, 3),
        ("3", 2, "2", 2),  # --bundle over both
        ("auto", None, None, 4),  # auto on one cpu: 4
        ("1", 2, None, 1),  # the space file can switch the profile's bundles off
    ],
)
def test_precedence(site, space, profile, flag, k, tmp_path, capsys):
    camp = _plan(tmp_path, space)
    sites_dir = _sites(tmp_path, profile)
    more = () if flag is None else ("--bundle", flag)
    assert _k(capsys, camp, site, sites_dir, *more) == k


def test_the_ledger_keeps_what_the_user_typed(tmp_path, capsys):
    camp = _plan(tmp_path, "3")
    _k(capsys, camp, "pool", _sites(tmp_path, None))
    record = json.loads((camp / "ledger.jsonl").read_text().splitlines()[-1])
    assert "bundle" not in record["overrides"]  # not given on the command line
    assert any(note.startswith("bundles of 3: 6 jobs in 2 tasks") for note in record["notes"])


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5", "true", "[4]"])
def test_bad_value_names_file_line_and_key(bad, tmp_path, capsys):
    path = _space(tmp_path, bad)
    with pytest.raises(GridsearchError) as err:
        load_space(path)
    # `bundle:` is the second line of the file
    assert str(err.value).startswith(f"{path}:2: 'bundle': expects a number of jobs per task")
    code, _, err_text = cli(capsys, "plan", path, "-o", tmp_path / "camp")
    assert code == 2
    assert f"{path}:2: 'bundle'" in err_text and "Traceback" not in err_text
    assert len(err_text.strip().splitlines()) == 1
    assert not (tmp_path / "camp" / "jobs").exists()


def test_a_bad_value_edited_into_the_campaign_copy_refuses_the_submission(tmp_path, capsys):
    camp = _plan(tmp_path, "3")
    copy = camp / "space.yaml"
    copy.write_text(copy.read_text().replace("bundle: 3", "bundle: lots"))
    code, _, err = cli(capsys, "submit", camp, "--site", "condor", "--dry-run")
    assert code == 2
    assert f"{copy}:2: 'bundle': expects a number" in err
    assert not (camp / "submit").exists() or not any((camp / "submit").iterdir())
    # --bundle still wins, and then the copy is not read
    code, _, err = cli(capsys, "submit", camp, "--site", "condor", "--dry-run", "--bundle", "2")
    assert code == 0, err


def test_space_default_without_a_copy_or_a_key(tmp_path):
    assert bundles.space_default(tmp_path) is None
    write(tmp_path / "space.yaml", "name: x\ngrid: {train.lr: [1]}\n")
    assert bundles.space_default(tmp_path) is None
    assert bundles.with_space_default({"bundle": 5}, tmp_path) == {"bundle": 5}
