"""The summary's fast paths (orjson reading, floats written by orjson, rows of one key
order transposed together) give exactly what the json module and repr give."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import results.table as T
from results.synthetic import make_campaign
from results.table import CSV_NAME, SUMMARY_DIR, _float_cells, _float_rows, _read_h5, collect


def _odd_floats() -> np.ndarray:
    """Floats of every magnitude, the edges where repr changes its layout, and random bits."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, size=200_000, dtype=np.uint64).view(np.float64)
    powers = 10.0 ** np.arange(-323, 309)
    edges = np.concatenate([powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf)])
    small = rng.uniform(-2e-4, 2e-4, 50_000) * 10.0 ** rng.integers(-7, 1, 50_000)
    specials = [0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1e-05, 0.0001, 2.0**53]
    specials += [math.inf, -math.inf, math.nan, 123456789.125, 0.1]
    x = np.concatenate([bits, edges, -edges, small, specials])
    return x


def _repr_cells(col: np.ndarray) -> list[bytes]:
    return [b"" if v != v else float.__repr__(v).encode() for v in col.tolist()]


@pytest.mark.parametrize("fast", [True, False])
def test_float_cells_are_what_repr_writes(fast: bool) -> None:
    if fast and T._orjson is None:
        pytest.skip("orjson is not installed")
    col = _odd_floats()
    assert _float_cells(col, fast=fast) == _repr_cells(col)
    assert _float_cells(col[::3], fast=fast) == _repr_cells(col[::3])  # not contiguous
    assert _float_cells(np.zeros(0), fast=fast) == []


@pytest.mark.parametrize("fast", [True, False])
def test_float_rows_are_what_repr_writes(fast: bool, monkeypatch) -> None:
    """A block of several columns: each row's cells as repr writes them, NaN empty, joined
    by commas; rows with infinities, NaNs and small magnitudes among ordinary floats."""
    if fast and T._orjson is None:
        pytest.skip("orjson is not installed")
    x = _odd_floats()
    block = x[: len(x) // 7 * 7].reshape(-1, 7)
    want = [b",".join(_repr_cells(row)) for row in block]
    assert _float_rows(block, fast=fast) == want
    assert (
        _float_rows(block[::5, 1:4], fast=fast)
        == [  # a view, not contiguous
            b",".join(_repr_cells(row)) for row in block[::5, 1:4]
        ]
    )
    monkeypatch.setattr(T, "_BLOCK_CELLS", 50)  # many parts, one of them short
    assert _float_rows(block[:103], fast=fast) == want[:103]
    wide = block[:10].reshape(1, -1)  # one row of 70 cells, wider than a part of 50
    assert _float_rows(wide, fast=fast) == [b",".join(want[:10])]
    monkeypatch.undo()
    plain = np.array([[1.0, 2.5], [3.0, -0.0]])  # nothing to put back
    assert _float_rows(plain, fast=fast) == [b"1.0,2.5", b"3.0,-0.0"]
    assert _float_rows(np.zeros((3, 0)), fast=fast) == [b"", b"", b""]


def test_orjson_is_used_when_installed() -> None:
    if T._orjson is None:
        pytest.skip("orjson is not installed")
    assert T._fast_floats()  # this orjson writes floats as the formatter expects


def _bump(path: Path, text: str) -> None:
    path.write_text(text)


def _campaign(tmp_path: Path) -> Path:
    """A small campaign with what the fast paths must get right: rows in other key orders,
    a NaN token (orjson refuses it), ints, booleans and strings among floats, a key few
    rows have, floats of every layout."""
    root = make_campaign(tmp_path / "c", 16, eval_fraction=0.0, n_failed=1, n_running=1)
    jobs = sorted(p for p in (root / "jobs").iterdir() if (p / "metrics.json").exists())
    odd = _odd_floats()[-2000:]
    for i, job in enumerate(jobs):
        m = json.loads((job / "metrics.json").read_text())
        m["tiny"] = float(odd[i * 7 % len(odd)]) if np.isfinite(odd[i * 7 % len(odd)]) else 1e-05
        m["mixed"] = [3, 2.5, True, "x", None][i % 5] if i < 5 else 1.5e-07
        m["flag"] = bool(i % 2)
        if i % 4 == 0:
            m["rare"] = 1e-05 * i
        if i == 2:
            m["best_val_loss"] = math.nan  # json writes the token NaN
        text = json.dumps(m, indent=1, sort_keys=i % 3 != 1)  # some rows in another order
        _bump(job / "metrics.json", text)
    return root


def test_table_and_csv_equal_those_read_by_json(tmp_path: Path, monkeypatch) -> None:
    root = _campaign(tmp_path)
    other = tmp_path / "json_only"
    shutil.copytree(root, other)
    collect(root)
    monkeypatch.setattr(T, "_orjson", None)
    T._fast_floats.cache_clear()
    try:
        collect(other)
    finally:
        monkeypatch.undo()
        T._fast_floats.cache_clear()
    a = _read_h5(root / SUMMARY_DIR / "summary.h5")
    b = _read_h5(other / SUMMARY_DIR / "summary.h5")
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert (a[k] == b[k]).all(), k
    assert a["mixed"].dtype == np.float64  # a string among numbers: NaN, and a problem
    assert sum("mixed = 'x' is not a number" in p for p in a["problems"]) == 1
    flag = a["flag"][a["has_metrics"]]  # booleans; NaN for the rows without metrics
    assert set(flag.tolist()) == {0.0, 1.0} and np.isnan(a["flag"][~a["has_metrics"]]).all()
    assert np.isnan(a["best_val_loss"][a["has_metrics"]]).sum() == 1
    assert (root / SUMMARY_DIR / CSV_NAME).read_bytes() == (
        other / SUMMARY_DIR / CSV_NAME
    ).read_bytes()


def test_rows_of_other_key_orders_keep_their_values(tmp_path: Path) -> None:
    root = _campaign(tmp_path)
    table = collect(root, write=False)
    cols = table.columns
    for job in sorted((root / "jobs").iterdir()):
        path = job / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        row = int(np.flatnonzero(cols["job_id"] == job.name)[0])
        for key in ("tiny", "rare", "best_val_loss", "flag"):
            want = m.get(key)
            got = cols[key][row]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got != got, (job.name, key)
            else:
                assert got == want and type(want)(got) == want, (job.name, key)


def _csv_writer(columns: dict[str, np.ndarray]) -> bytes:
    """What csv.writer writes for the columns (NaN as an empty cell)."""
    import csv
    import io

    cols = [[None if v != v else v for v in c.tolist()] for c in columns.values()]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(columns))
    w.writerows(zip(*cols))
    return buf.getvalue().encode()


@pytest.mark.parametrize("with_inf", [False, True])
def test_float_columns_are_written_as_csv_writer_writes_them(
    tmp_path: Path, with_inf: bool
) -> None:
    x = _odd_floats()
    x = x[np.isfinite(x) | np.isnan(x)] if not with_inf else x
    rng = np.random.default_rng(3)
    n = len(x) // 4
    cols = {"job_id": np.array([f"j{i}" for i in range(n)], dtype=object)}
    for k in range(3):
        cols[f"f{k}"] = rng.permutation(x)[:n]
    cols["count"] = np.arange(n, dtype=np.int64)
    cols["near"] = np.array([10.00001, 0.000010001, -0.00001, 100.0000001] * n)[:n]
    cols["last"] = rng.permutation(x)[:n]
    path = tmp_path / "t.csv"
    offsets = T.write_csv(path, cols)
    data = path.read_bytes()
    assert data == _csv_writer(cols)
    assert offsets is not None and offsets[-1] == len(data) and len(offsets) == n + 2
