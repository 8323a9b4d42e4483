"""The incremental summary table: rows rewritten in place equal a table written from scratch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from results.synthetic import make_campaign
from results.table import COLUMNS_NAME, CSV_NAME, H5_NAME, SUMMARY_DIR, _read_h5, collect


def _touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def _edit(job: Path, **changes: object) -> None:
    path = job / "metrics.json"
    m = json.loads(path.read_text())
    for k, v in changes.items():
        if v is KeyError:
            m.pop(k, None)
        else:
            m[k] = v
    path.write_text(json.dumps(m))
    _touch(path)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert (a[k] == b[k]).all(), k


def _files(root: Path) -> tuple[dict[str, np.ndarray], bytes]:
    out = root / SUMMARY_DIR
    return _read_h5(out / H5_NAME), (out / CSV_NAME).read_bytes()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speed") / "c"
    make_campaign(root, 60, eval_fraction=0.0, n_failed=2, n_running=1)
    return root


@pytest.mark.parametrize(
    "edit",
    [
        {"best_val_loss": 1.5e-5},  # a value: rows rewritten in place
        {"best_val_loss": 2e-5, "train_jets_per_s": None},  # a missing number
        {"device": 3},  # a string column gets a number: typed again
        {"new_key": 1.0},  # a new column: written whole
        {"latent": KeyError},  # a key gone from one job
    ],
    ids=["value", "missing", "type", "new-column", "gone"],
)
def test_incremental_table_equals_one_written_from_scratch(campaign, tmp_path, edit):
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    collect(root)
    assert (root / SUMMARY_DIR / COLUMNS_NAME).is_file()
    jobs = sorted((root / "jobs").iterdir())
    for job in jobs[3::20]:
        if (job / "metrics.json").exists():
            _edit(job, **edit)
    inc = collect(root)
    assert inc.n_read == 3 and inc.n_cached == 57 and inc.written
    h5_inc, csv_inc = _files(root)
    scratch = tmp_path / "scratch"
    shutil.copytree(root, scratch)
    shutil.rmtree(scratch / SUMMARY_DIR)
    full = collect(scratch)
    assert full.n_read == 60
    _same(inc.columns, full.columns)
    h5_full, csv_full = _files(scratch)
    _same(h5_inc, h5_full)
    assert csv_inc == csv_full
    # and again from the table just updated: nothing read, nothing written
    again = collect(root)
    assert (again.n_read, again.written) == (0, False)
    _same(again.columns, full.columns)


def test_a_csv_changed_behind_the_cache_is_written_whole(campaign, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    collect(root)
    csv_path = root / SUMMARY_DIR / CSV_NAME
    csv_path.write_bytes(csv_path.read_bytes() + b"edited by hand\r\n")
    job = sorted((root / "jobs").iterdir())[3]
    _edit(job, best_val_loss=3e-5)
    collect(root)
    scratch = tmp_path / "scratch"
    shutil.copytree(root, scratch)
    shutil.rmtree(scratch / SUMMARY_DIR)
    collect(scratch)
    assert csv_path.read_bytes() == (scratch / SUMMARY_DIR / CSV_NAME).read_bytes()
