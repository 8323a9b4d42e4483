"""The one YAML loader: the same scalars and the same refusals for configs, spaces, sites."""

import pytest

from gridsearch.errors import GridsearchError
from gridsearch.sites import _parse as parse_site
from gridsearch.space import parse_yaml as parse_space
from hepae_core.errors import UserError
from hepae_core.yamlio import parse

TEXT = "lr: 1e-3\ntime: 20:00\nflag: on\nok: true\nn: 0755\nhex: 0x10\nday: 2026-01-02\n"
EXPECTED = {
    "lr": 0.001,
    "time": "20:00",
    "flag": "on",
    "ok": True,
    "n": 755,
    "hex": 16,
    "day": "2026-01-02",
}


@pytest.mark.parametrize(
    "reader",
    [lambda t: parse(t, "f")[0], lambda t: parse_space(t, "f")[0], lambda t: parse_site(t, "f")],
)
def test_yaml_12_scalars_everywhere(reader):
    assert reader(TEXT) == EXPECTED


def test_lines_of_keys_and_items():
    _, lines = parse("a:\n  b: 1\n  c:\n    - x\n    - y\n", "f")
    assert lines == {("a",): 1, ("a", "b"): 2, ("a", "c"): 3, ("a", "c", 0): 4, ("a", "c", 1): 5}


def test_site_profile_with_a_duplicate_key_is_refused():
    with pytest.raises(GridsearchError) as err:
        parse_site("kind: slurm\nlimits:\n  time: 1h\n  time: 2h\n", "sites/x.yaml")
    assert str(err.value) == "sites/x.yaml:4: 'time': key given twice (first at line 3); keep one"


def test_unsafe_tag_is_refused():
    with pytest.raises(UserError, match=r"^f:1: is not valid YAML"):
        parse("a: !!python/name:os.system\n", "f")


def test_space_file_that_is_a_directory_or_binary(tmp_path):
    from gridsearch.spacefile import load_space

    with pytest.raises(GridsearchError, match="is a directory, not a YAML file"):
        load_space(tmp_path)
    p = tmp_path / "space.yaml"
    p.write_bytes(b"name: s\n\xff\n")
    with pytest.raises(GridsearchError, match=r"space.yaml: is not a text file \(byte 8"):
        load_space(p)
