"""The docs name every config key, so the reference cannot fall behind the schema."""

from pathlib import Path

from hepae_core.config import SCHEMA

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_config_reference_lists_every_key():
    text = (DOCS / "config.md").read_text()
    missing = [
        f"{section}.{key}"
        for section, fields in SCHEMA.items()
        for key in fields
        if f"  {key}:" not in text
    ]
    assert not missing, f"docs/config.md does not document: {missing}"
