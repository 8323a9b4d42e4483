"""summary.csv is written column-wise (and from the text metrics.json holds) but holds
exactly what csv.writer would write for the table's values."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from results.synthetic import make_campaign
from results.table import CSV_NAME, SUMMARY_DIR, _read_h5, collect, write_csv


def _reference(columns: dict[str, np.ndarray]) -> bytes:
    """The CSV as csv.writer writes the columns (missing numbers as empty cells)."""
    cols = []
    for c in columns.values():
        vals = c.tolist()
        if c.dtype.kind == "f":
            vals = [None if v != v else v for v in vals]
        cols.append(vals)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(columns))
    w.writerows(zip(*cols))
    return buf.getvalue().encode("utf-8")


def test_odd_values_are_written_as_csv_writer_writes_them(tmp_path: Path) -> None:
    floats = [0.1, float("nan"), float("inf"), -0.0, 1e16, 1e-05, -2.5e-300, 123456789.125]
    columns = {
        "job_id": np.array([f"j{i}" for i in range(8)], dtype=object),
        "x,with comma": np.array(floats),
        "count": np.array([0, -1, 2**62, 3, 4, 5, 6, 7], dtype=np.int64),
        "flag": np.array([True, False] * 4),
        "text": np.array(
            ["", "a,b", 'say "hi"', "two\r\nlines", "é ü", "nul\x00byte", " pad ", "plain"],
            dtype=object,
        ),
    }
    path = tmp_path / "t.csv"
    offsets = write_csv(path, columns)
    assert path.read_bytes() == _reference(columns)
    assert offsets is None  # a value holds a CRLF: lines are not rows
    columns["text"][3] = "one line"
    offsets = write_csv(path, columns)
    data = path.read_bytes()
    assert data == _reference(columns)
    assert offsets is not None and offsets[-1] == len(data) and len(offsets) == 8 + 2


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_csv_from_the_read_text_equals_csv_writer_on_the_table(tmp_path: Path) -> None:
    """A cold summary writes each float as metrics.json has it (no formatting again); the
    file equals csv.writer's on the stored table, also with numbers of mixed types."""
    root = make_campaign(tmp_path / "c", 12, eval_fraction=0.0, n_failed=1, n_running=1)
    jobs = sorted(p for p in (root / "jobs").iterdir() if (p / "metrics.json").exists())
    edits = {
        0: {"mixed": 3, "huge": 1e300, "neg": -0.0},  # an int where others have floats
        1: {"mixed": 2.5, "as_text": "1.5"},  # a number given as a string
        2: {"mixed": 0.1, "as_text": 2.0, "gone": 1.0},
    }
    for i, changes in edits.items():
        m = json.loads((jobs[i] / "metrics.json").read_text())
        m.update(changes)
        _bump(jobs[i] / "metrics.json", json.dumps(m, indent=1, sort_keys=True))
    path = jobs[3] / "metrics.json"  # a float too large for a double: read as inf
    _bump(path, path.read_text().replace('"best_val_loss": ', '"best_val_loss": 1e999, "x": ', 1))
    table = collect(root)
    out = root / SUMMARY_DIR
    stored = _read_h5(out / "summary.h5")
    assert (out / CSV_NAME).read_bytes() == _reference(stored)
    assert np.isinf(table.columns["best_val_loss"]).sum() == 1
    # an incremental rewrite of a few rows, and a table written whole from the cache
    m = json.loads((jobs[4] / "metrics.json").read_text())
    m["best_val_loss"] = 0.000123
    _bump(jobs[4] / "metrics.json", json.dumps(m, indent=1, sort_keys=True))
    collect(root)
    assert (out / CSV_NAME).read_bytes() == _reference(_read_h5(out / "summary.h5"))
    m["new_key"] = 7.25
    _bump(jobs[4] / "metrics.json", json.dumps(m, indent=1, sort_keys=True))
    collect(root)
    assert (out / CSV_NAME).read_bytes() == _reference(_read_h5(out / "summary.h5"))
    scratch = tmp_path / "scratch"
    shutil.copytree(root, scratch)
    collect(scratch, use_cache=False)
    assert (scratch / SUMMARY_DIR / CSV_NAME).read_bytes() == (out / CSV_NAME).read_bytes()


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert (a[k] == b[k]).all(), k


def _job(root: Path, job_id: str, **metrics: object) -> None:
    job = root / "jobs" / job_id
    job.mkdir(parents=True, exist_ok=True)
    m = {"schema_version": 1, "status": "done", "best_val_loss": 1.0, "latent": 2, **metrics}
    _bump(job / "metrics.json", json.dumps(m, indent=1, sort_keys=True))
    (job / "state.json").write_text(json.dumps({"state": "done"}))


def test_derived_columns_of_fresh_rows_join_those_of_cached_rows(tmp_path: Path) -> None:
    """kind, group_size and stage1_id are derived again only for the rows read again; the
    table equals one collected from scratch, also when a row changes kind."""
    root = tmp_path / "c"
    for i in range(6):
        _job(root, f"s{i}", best_val_loss=0.1 * (i + 1))
    first = collect(root)
    assert first.columns["kind"].tolist() == ["single"] * 6
    _job(root, "s2", best_val_loss=0.3, **{"group.size": 4})  # now a grouped job
    _job(root, "t0", **{"stage1.id": "s0", "stage1.latent": 2, "group.size": 2})  # new
    inc = collect(root)
    assert inc.n_read == 2 and inc.n_cached == 5
    got = dict(zip(inc.columns["job_id"].tolist(), inc.columns["kind"].tolist()))
    assert got["s2"] == "grouped" and got["t0"] == "two-stage" and got["s1"] == "single"
    assert (
        dict(zip(inc.columns["job_id"].tolist(), inc.columns["stage1_id"].tolist()))["t0"] == "s0"
    )
    scratch = tmp_path / "scratch"
    shutil.copytree(root, scratch)
    full = collect(scratch, use_cache=False)
    _same(inc.columns, full.columns)
    _same(
        _read_h5(root / SUMMARY_DIR / "summary.h5"), _read_h5(scratch / SUMMARY_DIR / "summary.h5")
    )
    assert (root / SUMMARY_DIR / CSV_NAME).read_bytes() == (
        scratch / SUMMARY_DIR / CSV_NAME
    ).read_bytes()
