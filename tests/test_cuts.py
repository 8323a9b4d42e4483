"""Cut expressions: the safe parser, vectorised evaluation, counts and config validation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hepae_core.config import resolve
from hepae_core.data.cuts import (
    PRESETS,
    CutFlow,
    CutSyntaxError,
    apply_cuts,
    check_cuts,
    cut_variables,
    parse,
)
from hepae_core.errors import ConfigError, DataError
from hepae_core.variables import VARIABLES_27D


@pytest.mark.parametrize(
    "expr, names",
    [
        ("abs(EMFrac) < 5", ("EMFrac",)),
        ("not (abs(EMFrac) < 0.05 and abs(eta) >= 2)", ("EMFrac", "eta")),
        ("Width != -1", ("Width",)),
        ("-2.5 < eta <= 2.5", ("eta",)),
        ("pt * 2 - m / 3 > 1e1 or not eta > 0", ("pt", "m", "eta")),
        ("log10(pt) > 1.5 and sqrt(m) >= +1", ("pt", "m")),
        ("True", ()),
    ],
)
def test_parse_accepts_the_whitelist(expr, names):
    assert parse(expr).names == names


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("__import__('os').system('true') == 0", "may be called"),
        ("pt.real > 1", "'Attribute' is not allowed"),
        ("pt[0] > 1", "'Subscript' is not allowed"),
        ("pt ** 2 > 1", "'Pow' is not allowed"),
        ("(lambda: 1)() > 0", "may be called"),
        ("pt > 'a'", "only numbers"),
        ("pt in (1, 2)", "'In' is not allowed"),
        ("pt", "is not a condition"),
        ("pt > 1 and eta", "is not a condition"),
        ("pt >", "does not parse"),
        ("", "non-empty"),
        ("abs(pt, 2) < 1", "may be called"),
        ("pt > 1; eta < 2", "does not parse"),
    ],
)
def test_parse_refuses_everything_else(expr, fragment):
    with pytest.raises(CutSyntaxError, match=None) as info:
        parse(expr)
    assert fragment in str(info.value)


def test_evaluation_matches_numpy():
    rng = np.random.default_rng(3)
    cols = {v: rng.normal(0, 3, 1000) for v in ("eta", "EMFrac", "Width", "pt")}
    cols["Width"][::7] = -1
    cases = {
        "abs(EMFrac) < 5": np.abs(cols["EMFrac"]) < 5,
        "not (abs(EMFrac) < 0.05 and abs(eta) >= 2)": ~(
            (np.abs(cols["EMFrac"]) < 0.05) & (np.abs(cols["eta"]) >= 2)
        ),
        "abs(Width) < 5 and Width != -1": (np.abs(cols["Width"]) < 5) & (cols["Width"] != -1),
        "-1 < eta < pt": (cols["eta"] > -1) & (cols["eta"] < cols["pt"]),
        "eta + 2 * pt / 4 - -1 >= 0 or EMFrac < 0": (cols["eta"] + 2 * cols["pt"] / 4 + 1 >= 0)
        | (cols["EMFrac"] < 0),
    }
    for expr, expected in cases.items():
        np.testing.assert_array_equal(parse(expr).mask(cols), expected, err_msg=expr)


def test_counts_are_sequential_and_in_order():
    values = np.array([[0.0, 10.0], [3.0, 10.0], [3.0, -1.0], [0.5, -1.0], [0.1, 1.0]])
    kept, counts = apply_cuts(values, ["eta", "Width"], ["abs(eta) < 2", "Width != -1"], "f")
    np.testing.assert_array_equal(kept, values[[0, 4]])
    assert counts == {
        "cut.0.expr": "abs(eta) < 2",
        "cut.0.removed": 2,
        "cut.1.expr": "Width != -1",
        "cut.1.removed": 1,
    }


def test_cutflow_accumulates_over_chunks():
    rng = np.random.default_rng(0)
    eta = rng.normal(0, 2, 10_000)
    whole = CutFlow(["abs(eta) < 2", "eta > -1"])
    whole.mask({"eta": eta})
    chunked = CutFlow(["abs(eta) < 2", "eta > -1"])
    for part in np.array_split(eta, 7):
        chunked.mask({"eta": part})
    assert whole.counts() == chunked.counts()


def test_thesis_preset_matches_the_thesis_cuts():
    rng = np.random.default_rng(5)
    n = 20_000
    cols = {v: rng.normal(0, 2, n) for v in VARIABLES_27D}
    cols["NegativeE"] = rng.normal(0, 300, n)
    cols["Timing"] = rng.normal(0, 100, n)
    cols["Width"][::11] = -1
    keep = CutFlow("thesis_27d").mask(cols)
    c = cols
    ref = np.abs(c["EMFrac"]) < 5
    ref &= ~((np.abs(c["EMFrac"]) < 0.05) & (np.abs(c["eta"]) >= 2))
    ref &= ~(
        (c["AverageLArQF"] > 0.8)
        & (c["EMFrac"] > 0.95)
        & (c["LArQuality"] > 0.8)
        & (np.abs(c["eta"]) < 2.8)
    )
    ref &= np.abs(c["NegativeE"]) < 300
    ref &= ~(
        (c["AverageLArQF"] > 0.8) & (np.abs(c["HECQuality"]) > 0.5) & (np.abs(c["HECFrac"]) > 0.5)
    )
    ref &= (c["OotFracClusters5"] > -0.1) & (c["OotFracClusters10"] > -0.1)
    ref &= (np.abs(c["Width"]) < 5) & (c["Width"] != -1) & (np.abs(c["WidthPhi"]) < 5)
    ref &= (np.abs(c["Timing"]) < 125) & (c["LArQuality"] < 4) & (np.abs(c["HECQuality"]) < 2.5)
    np.testing.assert_array_equal(keep, ref)
    assert 0 < keep.sum() < n
    assert set(cut_variables("thesis_27d")) <= set(VARIABLES_27D)
    assert len(PRESETS["thesis_27d"]) == 12


def test_apply_cuts_names_a_missing_column():
    with pytest.raises(DataError, match=r"data.cuts\[0\].*needs m"):
        apply_cuts(np.zeros((3, 1)), ["pt"], ["m > 1"], "file.root")


def test_check_cuts_reports_index_and_suggestion():
    problems = check_cuts(["pt > 1", "abs(EMFracc) < 5"], ["pt", "EMFrac"])
    assert problems[0][0] == "data.cuts[1]"
    assert "EMFracc" in problems[0][1] and "did you mean 'EMFrac'" in problems[0][1]
    assert check_cuts("thesis27", [])[0][0] == "data.cuts"


@pytest.mark.parametrize(
    "cuts, key, fragment",
    [
        (["abs(eta) < 2.5", "pt >"], "data.cuts[1]", "does not parse"),
        (["abs(eta) < 2.5", "ptt > 20"], "data.cuts[1]", "unknown variable 'ptt'"),
        ("thesis27d", "data.cuts", "did you mean 'thesis_27d'"),
        (["os.system('x') == 0"], "data.cuts[0]", "may be called"),
    ],
)
def test_resolve_refuses_bad_cuts(cuts, key, fragment):
    with pytest.raises(ConfigError) as info:
        resolve({"data": {"cuts": cuts}}, "space.yaml")
    msg = str(info.value)
    assert f"'{key}'" in msg and fragment in msg and "space.yaml" in msg


def test_resolve_accepts_cuts_on_untrained_and_mapped_variables():
    cfg = resolve(
        {
            "data": {
                "variables": "4d",
                "cuts": ["m / pt < 0.3", "my_width < 0.2", "thing > 0"],
                "branches": {"my_width": "width", "thing": "n90"},
            }
        }
    )
    assert cfg["data"]["cuts"][1] == "my_width < 0.2"
    with pytest.raises(ConfigError, match=r"data.branches.unused"):
        resolve({"data": {"branches": {"unused": "x"}}})


def test_config_validates_cuts_without_numpy():
    code = (
        "import sys; sys.modules['numpy'] = None; sys.modules['torch'] = None\n"
        "from hepae_core.config import resolve\n"
        "from hepae_core.errors import ConfigError\n"
        "resolve({'data': {'variables': '27d', 'cuts': 'thesis_27d'},"
        " 'model': {'latent': 18}})\n"
        "try:\n"
        "    resolve({'data': {'cuts': ['pt >']}})\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert "data.cuts[0]" in out.stdout
