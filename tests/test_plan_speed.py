"""Planning many points: config defaults from a cached template are what a full copy of
the schema's defaults would be, and never shared between configs."""

from hepae_core import config as hc


def test_defaults_are_fresh_complete_copies():
    """defaults() builds from a cached template: every field is there with its default, and
    changing one config's lists or dicts never reaches another config (or the schema)."""
    a = hc.defaults()
    for section, fields in hc.SCHEMA.items():
        assert a[section] == {k: f.default for k, f in fields.items()}
    assert {k: a[k] for k in hc.TOP_LEVEL} == {k: f.default for k, f in hc.TOP_LEVEL.items()}
    a["evaluate"]["bits"].append(99)
    a["data"]["branches"]["pt"] = "x"
    a["data"]["group"]["size"] = 3
    a["model"]["encoder"][0] = 1
    b = hc.defaults()
    assert b["evaluate"]["bits"] == list(range(6, 17))
    assert b["data"]["branches"] == {} and b["data"]["group"] == {}
    assert b["model"]["encoder"] == [200, 100, 50]
    raw = {"model": {"encoder": [[1]], "latent": 2}}  # nested values are copied too
    cfg = hc.resolve({"data": {"branches": {"pt": "jet_pt"}}})
    assert cfg["data"]["branches"] == {"pt": "jet_pt"}
    assert (
        hc._copy(raw) == raw
        and hc._copy(raw)["model"]["encoder"][0] is not raw["model"]["encoder"][0]
    )
