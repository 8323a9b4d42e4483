"""status reads state.json with one os.open and one read: every case reads as before, and
the table's fast path for plain cells prints what the escaping path prints."""

import json

from gridsearch.status import _READ_SIZE, _read_state
from gridsearch.table import table
from gridsearch.text import safe


def test_read_state_cases(tmp_path):
    assert _read_state(str(tmp_path / "missing.json")) is None
    assert _read_state(str(tmp_path / "missing" / "state.json")) is None
    (tmp_path / "file").write_text("x")
    assert _read_state(str(tmp_path / "file" / "state.json")) is None  # not a directory
    (tmp_path / "dir.json").mkdir()
    assert _read_state(str(tmp_path / "dir.json")) == {
        "state": None,
        "reason": "state.json cannot be read: Is a directory",
    }
    (tmp_path / "bad.json").write_text("{not json")
    assert _read_state(str(tmp_path / "bad.json"))["reason"] == "state.json is not valid JSON"
    (tmp_path / "list.json").write_text("[1]")
    assert _read_state(str(tmp_path / "list.json"))["reason"] == "state.json is not a JSON object"
    n = _READ_SIZE
    for size in (25, n - 1, n, n + 1, 2 * n, 3 * n + 5):  # file sizes around the buffer's
        record = {"state": "done", "pad": "p" * (size - 25)}
        text = json.dumps(record, separators=(",", ":"))
        assert len(text) == size
        (tmp_path / "big.json").write_text(text)
        assert _read_state(str(tmp_path / "big.json")) == record, size


def test_table_plain_cells_equal_escaped_cells():
    cells = ["plain", "a b", "ümläut", "x\x1b[2Jy", "tab\tz", "\x7f", "~", "", None, 1.5, [1, 2]]
    out = table(["h"], [[c] for c in cells]).splitlines()[1:]
    want = [safe(c) if isinstance(c, str) else None for c in cells]
    assert [o.rstrip() for o in out[:8]] == [w.rstrip() for w in want[:8]]
    assert out[8:] == ["-", "1.5", "1-2"]
