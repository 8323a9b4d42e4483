"""The built wheel carries the templates, site profiles and the bundled sample."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_package_data(tmp_path):
    pytest.importorskip("setuptools")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("hepae_gridsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hepae_core/data/dijet_4d.root" in names
    assert "sites/local.yaml" in names
    for package in ("hepae_core", "gridsearch", "results", "jobs_templates", "sites"):
        assert f"{package}/__init__.py" in names
    # Every template and profile in the tree is shipped.
    for sub, pattern in (("jobs_templates", "*.j2"), ("sites", "*.yaml")):
        for f in (REPO / sub).glob(pattern):
            assert f"{sub}/{f.name}" in names
    assert not any(n.startswith("tests/") for n in names)


# What the build backend may say that is not about this project's configuration: the
# byte-compile notes (PYTHONDONTWRITEBYTECODE) and setuptools' note on editable installs.
_NOT_OURS = ("byte-compiling is disabled", "InformationOnly: Editable installation")


def _backend_warnings(tmp_path: Path, hook: str) -> list[str]:
    """Run one PEP 517 hook of setuptools on a copy of the tracked tree; return its warnings."""
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        rel = Path(name.decode())
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            f"from setuptools import build_meta as b; b.{hook}({str(tmp_path / 'out')!r})",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    return [
        line.strip()
        for line in text.splitlines()
        if ("warning" in line.lower() or "absent from" in line)
        and not any(skip in line for skip in _NOT_OURS)
    ]


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])
def test_install_prints_no_packaging_warning(tmp_path, hook):
    """`pip install -e .` (and a wheel build) says nothing about our packaging: the data
    folder hepae_core/data/ is package data, declared as such, not an undeclared package."""
    pytest.importorskip("setuptools")
    assert _backend_warnings(tmp_path, hook) == []
